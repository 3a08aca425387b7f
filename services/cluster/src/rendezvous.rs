//! Where a partition should live: rendezvous (highest random weight) hashing over the live nodes.
//!
//! Every node computes the same target from the same set of live nodes, with no coordinator. When a node
//! joins, only the partitions it wins move (about 1/N of them); when one leaves, only its own move, each
//! to the node that scores next best — so rebalancing never shuffles partitions between survivors.
//!
//! [`plan`] turns the target into steps for one node: claim the partitions it should own that have no
//! owner, release those it owns that another live node should own. A partition owned by someone else is
//! never taken: its owner releases it (handoff) or its owner's lease expires (failure) first.

use std::collections::{BTreeMap, BTreeSet};

use showcall_protocol::NodeId;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::partition::PartitionId;

/// The live node that should own `partition`.
pub fn target<'a>(
    partition: PartitionId,
    live: impl IntoIterator<Item = &'a NodeId>,
) -> Option<&'a NodeId> {
    live.into_iter().max_by_key(|node| {
        (
            xxh3_64_with_seed(node.0.as_bytes(), u64::from(partition)),
            *node,
        )
    })
}

/// One thing a node does to move towards the target assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Claim(PartitionId),
    Release(PartitionId),
}

/// The steps that move `me` towards the target, given the live nodes and the current owners.
pub fn plan(
    me: &NodeId,
    partitions: u32,
    live: &BTreeSet<NodeId>,
    owners: &BTreeMap<PartitionId, NodeId>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if !live.contains(me) {
        // Not registered (yet, or any more): claim nothing; what it still owns is released by its lease.
        return steps;
    }
    for p in 0..partitions {
        let wanted = target(p, live) == Some(me);
        match owners.get(&p) {
            None if wanted => steps.push(Step::Claim(p)),
            Some(owner) if owner == me && !wanted => steps.push(Step::Release(p)),
            _ => {}
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> BTreeSet<NodeId> {
        ids.iter().map(|i| NodeId((*i).to_owned())).collect()
    }

    fn assignment(live: &BTreeSet<NodeId>, n: u32) -> BTreeMap<PartitionId, NodeId> {
        (0..n)
            .map(|p| (p, target(p, live).unwrap().clone()))
            .collect()
    }

    #[test]
    fn every_partition_has_one_target_and_nodes_get_a_fair_share() {
        let live = nodes(&["n1", "n2", "n3"]);
        let a = assignment(&live, 256);
        for node in &live {
            let share = a.values().filter(|o| *o == node).count();
            assert!((50..=120).contains(&share), "{node} got {share} of 256");
        }
    }

    #[test]
    fn a_joining_node_takes_only_from_others_and_a_leaving_node_moves_only_its_own() {
        let three = nodes(&["n1", "n2", "n3"]);
        let four = nodes(&["n1", "n2", "n3", "n4"]);
        let before = assignment(&three, 256);
        let after = assignment(&four, 256);
        for p in 0..256 {
            if before[&p] != after[&p] {
                assert_eq!(after[&p].0, "n4", "partition {p} moved between old nodes");
            }
        }
        let two = nodes(&["n1", "n3"]);
        let shrunk = assignment(&two, 256);
        for p in 0..256 {
            if before[&p].0 != "n2" {
                assert_eq!(before[&p], shrunk[&p], "partition {p} of a survivor moved");
            }
        }
    }

    #[test]
    fn plan_claims_free_targets_and_releases_what_another_should_own() {
        let me = NodeId("n1".into());
        let live = nodes(&["n1", "n2"]);
        let mine: Vec<PartitionId> = (0..16).filter(|p| target(*p, &live) == Some(&me)).collect();
        let theirs: Vec<PartitionId> = (0..16).filter(|p| target(*p, &live) != Some(&me)).collect();
        let mut owners = BTreeMap::new();
        // I hold one of theirs; one of mine is held by n2 (it must release it, not me take it).
        owners.insert(theirs[0], me.clone());
        owners.insert(mine[0], NodeId("n2".into()));
        let steps = plan(&me, 16, &live, &owners);
        assert!(steps.contains(&Step::Release(theirs[0])));
        assert!(!steps.contains(&Step::Claim(mine[0])));
        for p in &mine[1..] {
            assert!(steps.contains(&Step::Claim(*p)));
        }
        // A node that is not registered claims nothing.
        assert!(plan(&NodeId("n9".into()), 16, &live, &BTreeMap::new()).is_empty());
    }
}
