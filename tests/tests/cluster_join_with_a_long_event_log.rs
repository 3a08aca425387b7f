//! A busy cluster writes megabytes of business events to etcd within seconds, and keeps them an hour. A
//! node that joins then (or whose watch breaks and reads the cluster again) must still read the cluster:
//! the membership reads only its own keys, never the event log. Before, it read the whole prefix, and
//! past 4 MB (the etcd client's largest response) the node could not join ("decoded message length too
//! large"). The same holds for the log an older release keeps under `<prefix>events/`, which sorts
//! among the membership's keys: a node joining a cluster in a rolling upgrade (its older nodes have
//! filled that log) reads around it.

use showcall_cluster::event_log::MAX_BATCH;
use showcall_cluster::view::Layout;
use showcall_protocol::AppId;
use showcall_protocol::events::{BusinessEvent, EventKind};
use showcall_tests::cluster::{Etcd, NodeOptions, NodeProcess, wait_converged};

/// About 6 MB of events in full batches under `log` (a prefix), as node `n1`'s event writer puts them.
async fn fill_event_log(etcd: &Etcd, log: String) {
    let mut client = etcd_client::Client::connect([etcd.url.as_str()], None)
        .await
        .expect("etcd reachable");
    let mut written = 0;
    for n in 0u64.. {
        if written > 6 << 20 {
            break;
        }
        let batch: Vec<BusinessEvent> = (0..MAX_BATCH)
            .map(|i| BusinessEvent {
                app: AppId("demo".into()),
                at: 1_800_000_000_000,
                kind: EventKind::UserOnline {
                    user: format!("viewer-{n}-{i}-of-a-long-busy-hour").into(),
                },
            })
            .collect();
        let value = serde_json::to_vec(&batch).expect("events serialize");
        written += value.len();
        let key = format!("{log}n1/{n:020}");
        client.put(key, value, None).await.expect("batch put");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_a_cluster_whose_event_log_outgrew_one_etcd_response() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let n1 = NodeProcess::start(&etcd, "n1", &options).await;
    wait_converged(&[&n1], options.partitions).await;

    let layout = Layout {
        prefix: "/showcall/v1/".into(),
    };
    fill_event_log(&etcd, layout.events()).await;
    fill_event_log(&etcd, layout.older_events()).await;

    // It reads the cluster, joins, and takes its share.
    let n2 = NodeProcess::start(&etcd, "n2", &options).await;
    wait_converged(&[&n1, &n2], options.partitions).await;
}
