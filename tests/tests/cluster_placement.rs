//! Placement across real node processes and a real etcd: every partition is served by exactly one node;
//! when the node serving the most is SIGKILLed the survivors take its partitions once its lease expires;
//! a joining node takes its share; with etcd frozen every node fences (serves nothing) and after etcd
//! returns the cluster converges again. At every sample no partition and no actor is served by two nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use showcall_tests::cluster::{Etcd, NodeOptions, NodeProcess, eventually};

const PARTITIONS: u32 = 64;
/// Guard against a hang only (lease TTL is 2 s); convergence times are printed, not asserted.
const LIMIT: Duration = Duration::from_secs(60);

/// What the nodes say they serve. Nodes are asked one after another, so a handoff between two answers
/// can show a partition on both (the old owner answered before releasing, the new one after claiming);
/// a partition (or actor) reported by two nodes in two consecutive rounds is a violation.
async fn served(nodes: &[&NodeProcess]) -> BTreeMap<String, Vec<u32>> {
    let first = sample(nodes).await;
    let second = sample(nodes).await;
    for (what, a) in &second.doubles {
        if first.doubles.get(what) == Some(a) {
            panic!(
                "{what} served by {} and {} at once (seen twice in a row)",
                a.0, a.1
            );
        }
    }
    second.by_node
}

struct Sample {
    by_node: BTreeMap<String, Vec<u32>>,
    /// Partitions or actors two nodes reported, with the two nodes.
    doubles: BTreeMap<String, (String, String)>,
}

async fn sample(nodes: &[&NodeProcess]) -> Sample {
    let mut by_node = BTreeMap::new();
    let mut holder: BTreeMap<String, String> = BTreeMap::new();
    let mut doubles = BTreeMap::new();
    for node in nodes {
        let Some(info) = node.info().await else {
            continue;
        };
        let things = info
            .partitions
            .iter()
            .map(|p| format!("partition {p}"))
            .chain(info.active_actors.iter().map(|a| format!("actor {a}")));
        for thing in things {
            if let Some(other) = holder.insert(thing.clone(), node.id.clone()) {
                doubles.insert(thing, (other, node.id.clone()));
            }
        }
        by_node.insert(node.id.clone(), info.partitions);
    }
    Sample { by_node, doubles }
}

/// Every partition served, each by one of `nodes`, and every one of them serving some.
async fn converged(
    nodes: &[&NodeProcess],
) -> Result<BTreeMap<String, Vec<u32>>, BTreeMap<String, Vec<u32>>> {
    let by_node = served(nodes).await;
    let all: BTreeSet<u32> = by_node.values().flatten().copied().collect();
    let everyone = by_node.len() == nodes.len() && by_node.values().all(|p| !p.is_empty());
    if all.len() == PARTITIONS as usize && everyone {
        Ok(by_node)
    } else {
        Err(by_node)
    }
}

fn options() -> NodeOptions {
    NodeOptions {
        lease_ttl: "2s",
        partitions: PARTITIONS,
        ..NodeOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_to_survivors_of_a_killed_node_and_to_a_joining_node() {
    let etcd = Etcd::start().await;
    let n1 = NodeProcess::start(&etcd, "n1", &options()).await;
    let n2 = NodeProcess::start(&etcd, "n2", &options()).await;
    let n3 = NodeProcess::start(&etcd, "n3", &options()).await;
    let shares = eventually("three nodes share every partition", LIMIT, async || {
        converged(&[&n1, &n2, &n3]).await
    })
    .await;
    println!(
        "three nodes: {:?}",
        shares.iter().map(|(n, p)| (n, p.len())).collect::<Vec<_>>()
    );

    // SIGKILL the node serving the most.
    let biggest = shares
        .iter()
        .max_by_key(|(_, p)| p.len())
        .map(|(n, _)| n.clone())
        .expect("three nodes");
    let mut nodes = vec![n1, n2, n3];
    let at = nodes
        .iter()
        .position(|n| n.id == biggest)
        .expect("known node");
    let victim = nodes.remove(at);
    let killed_at = Instant::now();
    victim.kill().await;
    let survivors: Vec<&NodeProcess> = nodes.iter().collect();
    eventually("the survivors serve every partition", LIMIT, async || {
        converged(&survivors).await
    })
    .await;
    println!(
        "{biggest} killed: survivors own everything after {:?}",
        killed_at.elapsed()
    );

    // A fourth node joins and takes its share; nobody else's partitions move among the old nodes.
    let n4 = NodeProcess::start(&etcd, "n4", &options()).await;
    let joined_at = Instant::now();
    let mut all: Vec<&NodeProcess> = nodes.iter().collect();
    all.push(&n4);
    let after = eventually("the joining node takes its share", LIMIT, async || {
        converged(&all).await
    })
    .await;
    println!(
        "n4 joined: its share after {:?}: {}",
        joined_at.elapsed(),
        after["n4"].len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_fence_while_etcd_is_frozen_and_converge_when_it_returns() {
    let etcd = Etcd::start().await;
    let n1 = NodeProcess::start(&etcd, "n1", &options()).await;
    let n2 = NodeProcess::start(&etcd, "n2", &options()).await;
    eventually("two nodes share every partition", LIMIT, async || {
        converged(&[&n1, &n2]).await
    })
    .await;

    etcd.pause();
    eventually("both nodes fence", LIMIT, async || {
        let (a, b) = (n1.info().await, n2.info().await);
        match (&a, &b) {
            (Some(a), Some(b))
                if a.fenced && b.fenced && a.partitions.is_empty() && b.partitions.is_empty() =>
            {
                Ok(())
            }
            _ => Err((a, b)),
        }
    })
    .await;

    etcd.resume();
    eventually("the cluster converges again", LIMIT, async || {
        converged(&[&n1, &n2]).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_with_a_live_nodes_id_is_refused() {
    let etcd = Etcd::start().await;
    let _n1 = NodeProcess::start(&etcd, "n1", &options()).await;
    let refused = NodeProcess::try_start(&etcd, "n1", &options()).await;
    let output = refused.err().expect("the duplicate node exits");
    assert!(
        output.contains("already registered"),
        "the node says why: {output}"
    );
}
