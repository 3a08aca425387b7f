//! Channel pins: a channel runs on one media node for its whole life, chosen when it opens.
//!
//! Users and calls are placed by partition (any node can run them; they move with their partition). A
//! channel cannot move: its media sessions live in that node's router. So a channel stays on the node
//! chosen when it opened:
//! - **Live rooms** are named by the app, and any node may be first to open one, so the node that opens
//!   it writes a **pin**, `<prefix>channels/<app>/<channel>` → its node id, bound to its own lease, with a
//!   transaction that requires the key to be absent (one room, one node). The pin goes when the room
//!   closes, or with the lease when the node dies. Every node follows the pins through the cluster watch.
//! - **Call channels** are named by the server when the call is placed, so the name itself carries the
//!   chosen node: `call-<hex>@<node tag>` ([`crate::view::node_tag`]). No etcd write per call; every node
//!   routes by the tag; a call channel is gone when the node with its tag is gone.
//!
//! **Where a new channel opens:** power of two choices — two live nodes at random, the one with fewer
//! open channels per unit of capacity (its `media_capacity`, counting the new channel) wins
//! ([`choose_media_node`]). Each node republishes its open
//! channel count in its node info (at most once a second, when it changed); picking the less loaded of
//! two random nodes keeps nodes that all see the same slightly stale numbers from piling onto one node.
//!
//! **A call's channel prefers the call's own node** ([`choose_call_media_node`]): the node choosing is
//! the one the call runs on (a call starts on its caller's node), so a channel there opens and closes
//! without a node-link round trip, and the call depends on two nodes (its caller's and its callee's)
//! rather than three. Calls are already spread evenly (callers are spread over nodes by partition), so
//! the second choice is kept only as a correction: one other live node drawn at random takes the channel
//! when it carries less than three quarters of this node's channels per unit of capacity (a node hot
//! with live rooms sheds calls to cooler ones). A leaving node opens nothing new: its calls' channels
//! go by power of two choices among the others.
//! Two first joins of one live room on different nodes may pick different nodes: the pin transaction lets
//! one win and the other join answers UNAVAILABLE ("try again").

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use rand::Rng;
use showcall_ports::PinRefusal;
use showcall_protocol::NodeId;

use crate::etcd_timing::timed;
use crate::membership::Membership;
use crate::view::{ClusterView, NodeInfo, node_tag};

/// Channels per unit of capacity a node would carry with one more, comparable without floats. The one
/// more is what sets nodes of different capacities apart while none carries anything yet.
fn load(info: &NodeInfo) -> u64 {
    (u64::from(info.load.saturating_add(1)) << 20) / u64::from(info.capacity.max(1))
}

/// The node a new channel should open on (see the module docs); `None` when no node is live. `pick`
/// draws indexes below its argument (random in production).
pub fn choose_media_node(
    view: &ClusterView,
    mut pick: impl FnMut(usize) -> usize,
) -> Option<NodeId> {
    // A leaving node opens nothing new.
    let nodes: Vec<&NodeInfo> = view.nodes.values().filter(|n| !n.leaving).collect();
    match nodes.len() {
        0 => None,
        1 => Some(nodes[0].id.clone()),
        n => {
            let a = pick(n);
            let b = (a + 1 + pick(n - 1)) % n;
            let (a, b) = (nodes[a], nodes[b]);
            Some(if load(b) < load(a) { b } else { a }.id.clone())
        }
    }
}

/// The node a new call's channel should open on, chosen by `me`, the node the call runs on (see the
/// module docs); `None` when no node is live. `pick` draws indexes below its argument.
pub fn choose_call_media_node(
    view: &ClusterView,
    me: &NodeId,
    mut pick: impl FnMut(usize) -> usize,
) -> Option<NodeId> {
    let Some(mine) = view.nodes.get(me).filter(|n| !n.leaving) else {
        return choose_media_node(view, pick);
    };
    let others: Vec<&NodeInfo> = view
        .nodes
        .values()
        .filter(|n| !n.leaving && n.id != *me)
        .collect();
    if others.is_empty() {
        return Some(me.clone());
    }
    let other = others[pick(others.len())];
    // `other` < ¾ of `mine`, compared without floats.
    let sheds = u128::from(load(other)) * 4 < u128::from(load(mine)) * 3;
    Some(if sheds { other } else { mine }.id.clone())
}

/// The live node a call channel's tag names.
pub fn node_of_tag(view: &ClusterView, tag: &str) -> Option<NodeId> {
    view.nodes.keys().find(|id| node_tag(id) == tag).cloned()
}

impl Membership {
    /// The node a channel is pinned to, as last seen.
    pub fn channel_node(&self, channel: &str) -> Option<NodeId> {
        self.read_view(|view| view.channels.get(channel).cloned())
    }

    /// Where a new channel should open.
    pub fn choose_channel_node(&self) -> Option<NodeId> {
        let mut rng = rand::rng();
        let chosen = self.read_view(|view| choose_media_node(view, |n| rng.random_range(0..n)))?;
        // Counted at once in this node's view (until that node publishes its real load), so a burst of
        // opens from here spreads instead of following one stale number.
        self.note_load(&chosen, 1);
        Some(chosen)
    }

    /// Where a new call's channel should open, chosen by the node the call runs on (this one).
    pub fn choose_call_channel_node(&self) -> Option<NodeId> {
        let mut rng = rand::rng();
        let chosen = self.read_view(|view| {
            choose_call_media_node(view, self.me(), |n| rng.random_range(0..n))
        })?;
        // Another node taken is counted at once, as in `choose_channel_node`; this node's own choices
        // are not: the other nodes' choices of themselves are unseen here until they publish, so this
        // node's count is compared as published too, or a burst of calls here would shed them all.
        if chosen != *self.me() {
            self.note_load(&chosen, 1);
        }
        Some(chosen)
    }

    /// The live node a call channel's tag names.
    pub fn tagged_node(&self, tag: &str) -> Option<NodeId> {
        self.read_view(|view| node_of_tag(view, tag))
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
        let response = timed("txn", client.txn(txn))
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
            if let Err(e) = timed("txn", client.txn(txn)).await {
                tracing::warn!(error = %e, "channel pin not removed; it goes with the lease");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(nodes: &[(&str, u32, u32)]) -> ClusterView {
        let mut view = ClusterView::default();
        for (id, capacity, load) in nodes {
            let info = NodeInfo {
                id: NodeId((*id).into()),
                grpc_addr: String::new(),
                media_addr: String::new(),
                signal_url: String::new(),
                signal_public_url: None,
                capacity: *capacity,
                load: *load,
                leaving: false,
                lease: 0,
                timeline: true,
                wire_minor: 0,
                media: None,
            };
            view.nodes.insert(NodeId((*id).into()), info);
        }
        view
    }

    #[test]
    fn of_the_two_drawn_the_node_with_fewer_channels_per_capacity_wins() {
        let v = view(&[("n1", 100, 50), ("n2", 100, 10), ("n3", 100, 30)]);
        // Draws n1 and n2 (indexes 0, then 0 of the remaining → n2).
        assert_eq!(choose_media_node(&v, |_| 0), Some(NodeId("n2".into())));
        // Twice the capacity carries twice the channels before it counts as more loaded.
        let v = view(&[("n1", 200, 40), ("n2", 100, 30)]);
        assert_eq!(choose_media_node(&v, |_| 0), Some(NodeId("n1".into())));
    }

    #[test]
    fn the_two_drawn_are_always_distinct_nodes() {
        let v = view(&[("n1", 100, 0), ("n2", 100, 0), ("n3", 100, 0)]);
        for a in 0..3 {
            for b in 0..2 {
                let mut draws = [a, b].into_iter();
                let chosen = choose_media_node(&v, |n| {
                    let d = draws.next().expect("two draws");
                    assert!(d < n);
                    d
                });
                assert!(chosen.is_some());
            }
        }
    }

    #[test]
    fn one_node_is_always_chosen_and_no_node_means_no_choice() {
        assert_eq!(
            choose_media_node(&view(&[("n1", 100, 99)]), |_| unreachable!()),
            Some(NodeId("n1".into()))
        );
        assert_eq!(choose_media_node(&view(&[]), |_| 0), None);
    }

    #[test]
    fn a_call_channel_stays_on_the_calls_node_unless_the_other_drawn_carries_under_three_quarters()
    {
        let me = NodeId("n1".into());
        // Even, or the other only somewhat cooler: here.
        let v = view(&[("n1", 100, 40), ("n2", 100, 40), ("n3", 100, 31)]);
        for draw in 0..2 {
            assert_eq!(choose_call_media_node(&v, &me, |_| draw), Some(me.clone()));
        }
        // The other drawn carries under ¾ of this node's channels: there.
        let v = view(&[("n1", 100, 40), ("n2", 100, 29)]);
        assert_eq!(
            choose_call_media_node(&v, &me, |n| {
                assert_eq!(n, 1, "only the other nodes are drawn from");
                0
            }),
            Some(NodeId("n2".into()))
        );
        // Per unit of capacity: a node twice as big with 50 channels is cooler than 40 of 100.
        let v = view(&[("n1", 100, 40), ("n2", 200, 50)]);
        assert_eq!(
            choose_call_media_node(&v, &me, |_| 0),
            Some(NodeId("n2".into()))
        );
        // Alone: here.
        let v = view(&[("n1", 100, 99)]);
        assert_eq!(
            choose_call_media_node(&v, &me, |_| unreachable!()),
            Some(me.clone())
        );
    }

    #[test]
    fn a_leaving_node_puts_its_calls_channels_on_the_others() {
        let me = NodeId("n1".into());
        let mut v = view(&[("n1", 100, 0), ("n2", 100, 50), ("n3", 100, 60)]);
        v.nodes.get_mut(&me).expect("n1").leaving = true;
        for a in 0..2 {
            let chosen = choose_call_media_node(&v, &me, |n| a.min(n - 1));
            assert!(chosen.is_some_and(|n| n != me));
        }
        v.nodes.retain(|id, _| *id == me);
        assert_eq!(choose_call_media_node(&v, &me, |_| 0), None);
    }

    #[test]
    fn a_tag_names_its_live_node() {
        let v = view(&[("n1", 100, 0), ("n2", 100, 0)]);
        let tag = node_tag(&NodeId("n2".into()));
        assert_eq!(node_of_tag(&v, &tag), Some(NodeId("n2".into())));
        assert_eq!(node_of_tag(&v, "00000000"), None);
    }
}
