//! A rolling upgrade from a release that keeps the business event log under `<prefix>events/` and reads
//! only there: nodes of both releases share one etcd while it runs. This release's node (its membership
//! and event log, in process, on a real etcd) meets an older node — written into etcd as that release
//! writes itself: a node key without `timeline`, batches under `events/` — and an older node's reader (an
//! etcd watch of `events/`, as that release's `WatchEvents` and webhook leader have).
//!
//! - While the older node is in the cluster, this node writes under `events/`: the older reader gets
//!   every node's events. This node's reader gets both nodes' events too, in one order.
//! - Once the older node is gone, this node writes under `timeline/`.
//! - A cursor of an event from the older log resumes here with what followed, from both logs.

use std::time::Duration;

use etcd_client::{EventType, GetOptions, PutOptions, WatchOptions};
use futures_util::StreamExt;
use showcall_cluster::event_log::{MAX_BATCH, cursor_of};
use showcall_cluster::view::Layout;
use showcall_cluster::{ClusterConfig, EtcdEventLog, Membership, NodeInfo};
use showcall_ports::event_log::{BusinessEvent, EventKind, EventLog, EventStream, LoggedEvent};
use showcall_protocol::{AppId, NodeId};
use showcall_tests::cluster::Etcd;

const PREFIX: &str = "/showcall/v1/";

fn online(user: &str) -> BusinessEvent {
    BusinessEvent {
        app: AppId("demo".into()),
        at: 1_800_000_000_000,
        kind: EventKind::UserOnline { user: user.into() },
    }
}

fn user_of(event: &BusinessEvent) -> String {
    match &event.kind {
        EventKind::UserOnline { user } => user.to_string(),
        other => panic!("unexpected event {other:?}"),
    }
}

/// The next event of `stream` (the timeout guards against a hang; nothing waits on it).
async fn next(stream: &mut EventStream) -> LoggedEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
        .expect("no watch error")
}

/// Waits until this node's view satisfies `seen` (woken by the membership's own change signal).
async fn until_view(
    membership: &Membership,
    seen: impl Fn(&showcall_cluster::ClusterView) -> bool,
) {
    let mut changes = membership.watch_changes();
    tokio::time::timeout(
        Duration::from_secs(10),
        changes.wait_for(|_| membership.read_view(&seen)),
    )
    .await
    .expect("the view changes within 10 s")
    .expect("the membership runs");
}

/// The users of the batches under `prefix`, in key order.
async fn users_under(client: &mut etcd_client::Client, prefix: String) -> Vec<String> {
    let found = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .expect("etcd answers");
    found
        .kvs()
        .iter()
        .flat_map(|kv| serde_json::from_slice::<Vec<BusinessEvent>>(kv.value()).expect("a batch"))
        .map(|event| user_of(&event))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_releases_read_every_event_while_an_older_node_is_in_the_cluster() {
    let etcd = Etcd::start().await;
    let layout = Layout {
        prefix: PREFIX.into(),
    };
    let mut client = etcd_client::Client::connect([etcd.url.as_str()], None)
        .await
        .expect("etcd reachable");
    let membership = Membership::start(ClusterConfig {
        endpoints: vec![etcd.url.clone()],
        prefix: PREFIX.into(),
        partitions: 8,
        lease_ttl: Duration::from_secs(2),
        info: NodeInfo {
            id: NodeId("n1".into()),
            grpc_addr: "127.0.0.1:1".into(),
            media_addr: "127.0.0.1:2".into(),
            signal_url: "ws://127.0.0.1:3/signal".into(),
            signal_public_url: None,
            capacity: 100,
            load: 0,
            leaving: false,
            lease: 0,
            timeline: true,
            wire_minor: 0,
            media: None,
        },
    })
    .await
    .expect("n1 joins");
    let log = EtcdEventLog::new(&membership);

    // Both readers start after everything so far: this node's, and an older node's (`events/` only).
    let start = client
        .get(PREFIX, Some(GetOptions::new().with_count_only()))
        .await
        .expect("etcd answers")
        .header()
        .expect("a header")
        .revision();
    let mut reader = log
        .watch(Some(cursor_of(start as u64, MAX_BATCH - 1)))
        .expect("a watch");
    let mut older_reader = client
        .watch(
            layout.older_events(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(start + 1),
            ),
        )
        .await
        .expect("an etcd watch");

    // An older node (its key as that release writes it: no `timeline`). It is leaving, so that
    // placement leaves it alone; its readers still serve until it exits.
    let older_lease = client.lease_grant(60, None).await.expect("a lease").id();
    let older_info = serde_json::json!({
        "id": "n0",
        "grpc_addr": "127.0.0.1:9",
        "media_addr": "127.0.0.1:9",
        "signal_url": "ws://127.0.0.1:9/signal",
        "capacity": 100,
        "load": 0,
        "leaving": true,
        "lease": older_lease,
    });
    client
        .put(
            layout.node(&NodeId("n0".into())),
            older_info.to_string(),
            Some(PutOptions::new().with_lease(older_lease)),
        )
        .await
        .expect("n0's key");
    until_view(&membership, |view| {
        view.nodes.contains_key(&NodeId("n0".into()))
    })
    .await;

    // The older node writes a batch where it does; then this node writes one.
    let n0_batch = serde_json::to_vec(&vec![online("from-n0")]).expect("a batch");
    client
        .put(
            format!("{}n0/{:020}", layout.older_events(), 1),
            n0_batch,
            None,
        )
        .await
        .expect("n0's batch");
    log.append(online("from-n1-beside-n0"));

    let from_n0 = next(&mut reader).await;
    let beside = next(&mut reader).await;
    assert_eq!(
        [user_of(&from_n0.event), user_of(&beside.event)],
        ["from-n0", "from-n1-beside-n0"],
        "this node reads the older log and its own, in etcd's order"
    );
    assert!(from_n0.cursor < beside.cursor);

    let mut older_seen = Vec::new();
    while older_seen.len() < 2 {
        let response = tokio::time::timeout(Duration::from_secs(10), older_reader.message())
            .await
            .expect("the older reader hears within 10 s")
            .expect("the watch goes on")
            .expect("a response");
        for event in response.events() {
            if event.event_type() == EventType::Put
                && let Some(kv) = event.kv()
            {
                let batch: Vec<BusinessEvent> =
                    serde_json::from_slice(kv.value()).expect("a batch");
                older_seen.extend(batch.iter().map(user_of));
            }
        }
    }
    assert_eq!(
        older_seen,
        ["from-n0", "from-n1-beside-n0"],
        "the older node's reader gets this node's events too"
    );

    // The older node exits: this node's next batch goes under `timeline/`.
    client.lease_revoke(older_lease).await.expect("revoked");
    until_view(&membership, |view| {
        !view.nodes.contains_key(&NodeId("n0".into()))
    })
    .await;
    log.append(online("from-n1-alone"));
    let alone = next(&mut reader).await;
    assert_eq!(user_of(&alone.event), "from-n1-alone");
    assert!(beside.cursor < alone.cursor);
    assert_eq!(
        users_under(&mut client, layout.events()).await,
        ["from-n1-alone"]
    );
    assert_eq!(
        users_under(&mut client, layout.older_events()).await,
        ["from-n0", "from-n1-beside-n0"]
    );

    // A cursor from the older log (a business server's, or the webhook checkpoint an older leader
    // wrote) resumes here with everything that followed it, from both logs.
    let mut resumed = log.watch(Some(from_n0.cursor)).expect("a watch");
    assert_eq!(next(&mut resumed).await, beside);
    assert_eq!(next(&mut resumed).await, alone);

    membership.stop().await;
}
