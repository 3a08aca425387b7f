//! Channel pins: a channel runs on one media node for its whole life, chosen when it opens.
//!
//! Users and calls are placed by partition (any node can run them; they move with their partition). A
//! channel cannot move: its media sessions live in that node's router. So a channel is **pinned**: the
//! node that opens it writes `<prefix>channels/<app>/<channel>` → its node id, bound to its own lease,
//! with a transaction that requires the key to be absent (one pin per channel, ever, while it is open).
//! The pin goes when the channel closes, or with the lease when the node dies (and the node's loss tells
//! the survivors which channels went with it). Every node follows the pins through the cluster watch, so
//! routing a channel message is a map lookup.
//!
//! **Where a new channel opens:** the live node with the fewest pinned channels per unit of capacity
//! ([`least_loaded`]); ties go to the highest rendezvous weight of (channel, node), so nodes that see the
//! same view choose alike. Two first joins of one live channel on nodes with different views may pick
//! different nodes: the transaction lets one win and the other join answers UNAVAILABLE ("try again").

use std::collections::BTreeMap;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use showcall_actors::NodeId;
use showcall_actors::ports::PinRefusal;
use xxhash_rust::xxh3::xxh3_64;

use crate::membership::Membership;
use crate::view::ClusterView;

/// The node a new channel should open on (see the module docs); `None` when no node is live.
pub fn least_loaded(view: &ClusterView, channel: &str) -> Option<NodeId> {
    let mut load: BTreeMap<&NodeId, u64> = view.nodes.keys().map(|n| (n, 0)).collect();
    for node in view.channels.values() {
        if let Some(count) = load.get_mut(node) {
            *count += 1;
        }
    }
    view.nodes
        .iter()
        .map(|(id, info)| {
            // Channels per unit of capacity, compared without floats: count / capacity as a fraction
            // scaled by a common large factor.
            let capacity = u64::from(info.capacity.max(1));
            let per_capacity = load[id].saturating_mul(1 << 20) / capacity;
            let weight = xxh3_64(format!("{channel}\u{0}{id}").as_bytes());
            (per_capacity, std::cmp::Reverse(weight), id)
        })
        .min()
        .map(|(_, _, id)| id.clone())
}

impl Membership {
    /// The node a channel is pinned to, as last seen.
    pub fn channel_node(&self, channel: &str) -> Option<NodeId> {
        self.view().channels.get(channel).cloned()
    }

    /// Where a new channel should open.
    pub fn choose_channel_node(&self, channel: &str) -> Option<NodeId> {
        least_loaded(&self.view(), channel)
    }

    /// Pins `channel` to this node under its lease. Known here at once (routing does not wait for the
    /// watch to echo it).
    pub async fn pin_channel(&self, channel: &str) -> Result<(), PinRefusal> {
        if self.is_fenced() {
            return Err(PinRefusal::Unavailable(
                "this node is cut off from etcd; try again".into(),
            ));
        }
        let key = self.layout().channel(channel);
        let me = self.me().0.clone();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                me.clone(),
                Some(PutOptions::new().with_lease(self.lease_id())),
            )])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.client();
        let response = client
            .txn(txn)
            .await
            .map_err(|e| PinRefusal::Unavailable(format!("etcd: {e}")))?;
        if response.succeeded() {
            self.note_channel(channel, Some(self.me().clone()));
            return Ok(());
        }
        let holder = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .and_then(|kv| kv.value_str().ok().map(|v| NodeId(v.to_owned()))),
            _ => None,
        });
        match holder {
            Some(node) => {
                self.note_channel(channel, Some(node.clone()));
                Err(PinRefusal::Elsewhere(node))
            }
            // Deleted between the compare and the get: the caller may try again.
            None => Err(PinRefusal::Unavailable(
                "the channel was closing; try again".into(),
            )),
        }
    }

    /// Removes this node's pin of `channel` (only if it is still ours). Not awaited: a pin that cannot
    /// be deleted goes with the lease.
    pub fn unpin_channel(&self, channel: &str) {
        self.note_channel(channel, None);
        let key = self.layout().channel(channel);
        let me = self.me().0.clone();
        let mut client = self.client();
        tokio::spawn(async move {
            let txn = Txn::new()
                .when([Compare::value(key.clone(), CompareOp::Equal, me)])
                .and_then([TxnOp::delete(key, None)]);
            if let Err(e) = client.txn(txn).await {
                tracing::warn!(error = %e, "channel pin not removed; it goes with the lease");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::NodeInfo;

    fn view(nodes: &[(&str, u32)], pins: &[(&str, &str)]) -> ClusterView {
        let mut view = ClusterView::default();
        for (id, capacity) in nodes {
            let info = NodeInfo {
                id: NodeId((*id).into()),
                grpc_addr: String::new(),
                media_addr: String::new(),
                signal_url: String::new(),
                capacity: *capacity,
            };
            view.nodes.insert(NodeId((*id).into()), info);
        }
        for (channel, node) in pins {
            view.channels
                .insert((*channel).into(), NodeId((*node).into()));
        }
        view
    }

    #[test]
    fn the_node_with_the_fewest_channels_per_capacity_is_chosen() {
        let v = view(
            &[("n1", 100), ("n2", 100), ("n3", 100)],
            &[("a/1", "n1"), ("a/2", "n1"), ("a/3", "n2")],
        );
        assert_eq!(least_loaded(&v, "a/new"), Some(NodeId("n3".into())));
        // Twice the capacity carries twice the channels before it counts as more loaded.
        let v = view(
            &[("n1", 200), ("n2", 100)],
            &[("a/1", "n1"), ("a/2", "n1"), ("a/3", "n2")],
        );
        assert_eq!(least_loaded(&v, "a/new"), Some(NodeId("n1".into())));
    }

    #[test]
    fn ties_are_broken_alike_for_a_channel_and_spread_over_channels() {
        let v = view(&[("n1", 100), ("n2", 100), ("n3", 100)], &[]);
        let first = least_loaded(&v, "a/room");
        assert_eq!(least_loaded(&v, "a/room"), first, "deterministic");
        let chosen: std::collections::BTreeSet<_> = (0..30)
            .filter_map(|i| least_loaded(&v, &format!("a/room-{i}")))
            .collect();
        assert_eq!(chosen.len(), 3, "empty nodes share new channels");
    }

    #[test]
    fn pins_of_dead_nodes_do_not_count_and_no_node_means_no_choice() {
        let v = view(&[("n1", 100)], &[("a/1", "gone")]);
        assert_eq!(least_loaded(&v, "a/new"), Some(NodeId("n1".into())));
        assert_eq!(least_loaded(&view(&[], &[]), "a/new"), None);
    }
}
