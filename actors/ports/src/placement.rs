//! Ports: what the actors need from the outside world, as traits that services implement.
//!
//! The actors crate sits below the services; it names what it needs here and the node binary wires in
//! the implementations (DESIGN.md "Dependencies point down").

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use showcall_machines::ChannelName;

use showcall_protocol::keys::{ActorKey, AppId, NodeId};
use showcall_protocol::media_edge::{EdgeRule, MediaNode};

/// Where an actor lives. The single-node default answers "here" for every key; the cluster's etcd
/// placement (`showcall-cluster`) answers from partition ownership for users and calls, and from the
/// channel's pin for channels (a channel runs on the media node it was pinned to when it opened).
pub trait Placement: Send + Sync + Debug + 'static {
    /// This node.
    fn this_node(&self) -> &NodeId;
    /// The node that runs `key`'s actor now; `None` while its partition is between owners, or for a
    /// channel that is not open anywhere.
    fn owner(&self, key: &ActorKey) -> Option<NodeId>;
    /// Whether this node may run `key`'s actor now (it owns the key and is not fenced).
    fn serves(&self, key: &ActorKey) -> bool {
        self.owner(key).as_ref() == Some(self.this_node())
    }
    /// Where a channel that is not open anywhere should open (the least loaded media node).
    fn choose_channel_node(&self, _app: &AppId, _channel: &ChannelName) -> Option<NodeId> {
        Some(self.this_node().clone())
    }
    /// Every live node (this one included), for questions asked of the whole cluster.
    fn nodes(&self) -> Vec<NodeId> {
        vec![self.this_node().clone()]
    }
    /// Pins a channel that is opening here to this node. Refused when another node holds it, or this
    /// node cannot take new channels now.
    fn pin_channel(&self, _app: &AppId, _channel: &ChannelName) -> PinFuture {
        Box::pin(async { Ok(()) })
    }
    /// The channel closed here: its pin goes.
    fn unpin_channel(&self, _app: &AppId, _channel: &ChannelName) {}
    /// The URL clients reach `node`'s signaling at directly, when it announces one (its
    /// `signal_public_url`) and is not leaving; `None` otherwise, and on one node. A login that may
    /// follow its session to its node is sent there (`Login.follow_home`).
    fn public_signal_url(&self, _node: &NodeId) -> Option<String> {
        None
    }
    /// Where this node puts viewers' media sessions of the rooms it is the origin of (its `[media] edge`
    /// setting; `showcall_protocol::media_edge`). On one node there is nowhere else: `Origin`.
    fn edge_rule(&self) -> EdgeRule {
        EdgeRule::Origin
    }
    /// The cluster's media nodes as they announce themselves (wire minor, relay, media load and
    /// limits), this node included; empty on one node (the origin then counts as unlimited).
    fn media_nodes(&self) -> Vec<MediaNode> {
        Vec::new()
    }
    /// For a new call's channel: the tag of the media node chosen for it, carried in the channel's name
    /// (call channels are never pinned in etcd: their name says where they run). `None` on one node.
    fn call_channel_tag(&self) -> Option<String> {
        None
    }
}

/// The outcome of pinning a channel.
pub type PinFuture = Pin<Box<dyn Future<Output = Result<(), PinRefusal>> + Send>>;

/// Why a channel could not be pinned to this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinRefusal {
    /// Another node pinned it first.
    Elsewhere(NodeId),
    /// This node cannot take new channels now (fenced, or etcd unreachable).
    Unavailable(String),
}

/// Every actor lives on this node.
#[derive(Debug)]
pub struct LocalPlacement {
    node: NodeId,
}

impl LocalPlacement {
    pub fn new(node: NodeId) -> Self {
        Self { node }
    }
}

impl Placement for LocalPlacement {
    fn this_node(&self) -> &NodeId {
        &self.node
    }

    fn owner(&self, _key: &ActorKey) -> Option<NodeId> {
        Some(self.node.clone())
    }

    fn serves(&self, _key: &ActorKey) -> bool {
        true
    }
}
