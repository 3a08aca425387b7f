//! [`EtcdPlacement`]: the actors' `Placement` port answered from the cluster view: users and calls by
//! partition owner, channels by pin ([`crate::channel_pins`]).

use showcall_machines::ChannelName;
use showcall_ports::{PinFuture, Placement};
use showcall_protocol::ActorKey;
use showcall_protocol::AppId;
use showcall_protocol::NodeId;
use showcall_protocol::media_edge::{EdgeRule, MediaNode};

use crate::membership::Membership;
use crate::partition::partition_of;
use crate::view::{channel_id, node_tag, tag_of_call_channel};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct EtcdPlacement {
    membership: Membership,
    /// Where viewers' media sessions of rooms this node is the origin of go (`[media] edge`).
    edge_rule: EdgeRule,
}

impl EtcdPlacement {
    pub fn new(membership: Membership) -> Self {
        Self {
            membership,
            edge_rule: EdgeRule::default(),
        }
    }

    /// This node's `[media] edge` rule.
    pub fn with_edge_rule(self, edge_rule: EdgeRule) -> Self {
        Self { edge_rule, ..self }
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }
}

impl Placement for EtcdPlacement {
    fn this_node(&self) -> &NodeId {
        self.membership.me()
    }

    fn owner(&self, key: &ActorKey) -> Option<NodeId> {
        match key {
            ActorKey::Channel(app, channel) => match tag_of_call_channel(channel) {
                Some(tag) => self.membership.tagged_node(tag),
                None => self.membership.channel_node(&channel_id(app, channel)),
            },
            _ => self
                .membership
                .owner(partition_of(key, self.membership.partitions())),
        }
    }

    fn serves(&self, key: &ActorKey) -> bool {
        match key {
            ActorKey::Channel(..) => {
                !self.membership.is_fenced() && self.owner(key).as_ref() == Some(self.this_node())
            }
            _ => self
                .membership
                .serves(partition_of(key, self.membership.partitions())),
        }
    }

    fn nodes(&self) -> Vec<NodeId> {
        self.membership
            .read_view(|view| view.nodes.keys().cloned().collect())
    }

    fn public_signal_url(&self, node: &NodeId) -> Option<String> {
        self.membership.read_view(|view| {
            let info = view.nodes.get(node)?;
            (!info.leaving)
                .then(|| info.signal_public_url.clone())
                .flatten()
        })
    }

    fn choose_channel_node(&self, _app: &AppId, _channel: &ChannelName) -> Option<NodeId> {
        self.membership.choose_channel_node()
    }

    fn pin_channel(&self, app: &AppId, channel: &ChannelName) -> PinFuture {
        if channel.is_call_channel() {
            // Its name says where it runs: nothing to write.
            return Box::pin(async { Ok(()) });
        }
        let membership = self.membership.clone();
        let channel = channel_id(app, channel);
        Box::pin(async move { membership.pin_channel(&channel).await })
    }

    fn unpin_channel(&self, app: &AppId, channel: &ChannelName) {
        if !channel.is_call_channel() {
            self.membership.unpin_channel(&channel_id(app, channel));
        }
    }

    fn edge_rule(&self) -> EdgeRule {
        self.edge_rule
    }

    fn media_nodes(&self) -> Vec<MediaNode> {
        self.membership.media_nodes()
    }

    fn call_channel_tag(&self) -> Option<String> {
        self.membership
            .choose_call_channel_node()
            .map(|node| node_tag(&node))
    }
}
