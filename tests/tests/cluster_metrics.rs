//! Two real node processes on a real etcd, scraped over HTTP like Prometheus does: together they report
//! every partition owned exactly once (per-node gauges that sum to the cluster's `partitions`), each has
//! timed its own etcd requests (the claims' transactions, the snapshot read, its lease grant and its
//! keep-alives), and users logged in through either node add up to the users online.

use std::time::Duration;

use showcall_tests::cluster::{Etcd, NodeOptions, eventually, start_converged};
use showcall_tests::prometheus::scrape;

/// Guard against a hang only (the lease TTL is 2 s).
const LIMIT: Duration = Duration::from_secs(60);

fn etcd_requests(op: &str) -> String {
    format!("showcall_etcd_request_seconds_count{{op=\"{op}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_report_their_partitions_etcd_latency_and_users() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let nodes = start_converged(&etcd, &["m1", "m2"], &options).await;

    // Partitions move until the target assignment is reached: a node that has just joined may own none
    // yet while the other's gauge already covers every partition, so wait for both.
    let owned = eventually(
        "the nodes' gauges cover every partition, each node owning some",
        LIMIT,
        async || {
            let mut owned = Vec::new();
            for node in &nodes {
                owned.push(
                    scrape(node.http_addr)
                        .await
                        .get("showcall_partitions_owned"),
                );
            }
            if owned.iter().sum::<f64>() == f64::from(options.partitions)
                && owned.iter().all(|n| *n > 0.0)
            {
                Ok(owned)
            } else {
                Err(owned)
            }
        },
    )
    .await;
    assert_eq!(owned.len(), 2);

    for node in &nodes {
        // Keep-alives go out every TTL/4: wait for the first answer rather than assume it came.
        let page = eventually("a lease keep-alive was answered", LIMIT, async || {
            let page = scrape(node.http_addr).await;
            match page.find(&etcd_requests("lease_keep_alive")) {
                Some(n) if n > 0.0 => Ok(page),
                other => Err(other),
            }
        })
        .await;
        for op in ["txn", "get", "lease_grant"] {
            assert!(
                page.get(&etcd_requests(op)) > 0.0,
                "{}: {op} timed",
                node.id
            );
        }
        assert!(page.get("showcall_etcd_request_seconds_bucket{le=\"+Inf\",op=\"txn\"}") > 0.0);
    }

    // One user through each node: each is counted once, by the node running its actor.
    let _alice = nodes[0].user("alice").await;
    let _bob = nodes[1].user("bob").await;
    let mut online = 0.0;
    for node in &nodes {
        online += scrape(node.http_addr).await.get("showcall_users_online");
    }
    assert_eq!(online, 2.0);
}
