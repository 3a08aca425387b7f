//! A node of the next minor wire version speaking to this one over the real node link (the rule is
//! `showcall_protocol::wire`'s): its envelopes with fields this release does not know are delivered, a
//! message kind this release does not know is dropped and counted (not taken for garbage silently), and
//! envelopes of another major are refused.

use std::collections::HashMap;

use showcall_auth::ClusterSecret;
use showcall_proto::node::node_link_client::NodeLinkClient;
use showcall_proto::node::{DeliverSummary, Envelope};
use showcall_protocol::wire::{WIRE_MAJOR, WIRE_MINOR};
use showcall_tests::cluster::{CLUSTER_SECRET, Etcd, NodeOptions, NodeProcess, start_converged};
use showcall_tests::prometheus::{Scrape, scrape};

/// A frame from member n2 written with wire `major`.`minor`.
fn frame(major: u32, minor: u32, payload: serde_json::Value) -> Envelope {
    Envelope {
        from_node: "n2".into(),
        actor_key: "reply/1".into(),
        payload: serde_json::to_vec(&payload).expect("JSON"),
        trace_context: HashMap::new(),
        wire_major: major,
        wire_minor: minor,
    }
}

/// Sends `frames` on one link stream to `node` as member n2; the receiver's summary.
async fn deliver(node: &NodeProcess, frames: Vec<Envelope>) -> DeliverSummary {
    let token = ClusterSecret::new(CLUSTER_SECRET)
        .mint("n2", showcall_tests::now_secs())
        .expect("a member's token");
    let mut client = NodeLinkClient::connect(node.grpc_url.clone())
        .await
        .expect("the link port is reachable");
    let mut request = tonic::Request::new(futures_util::stream::iter(frames));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    client
        .deliver(request)
        .await
        .expect("a member's link opens")
        .into_inner()
}

/// How many envelopes the node dropped for `reason` between two scrapes (a counter appears at its first
/// increment).
fn dropped(before: &Scrape, after: &Scrape, reason: &str) -> f64 {
    let key = format!("showcall_node_link_dropped_total{{reason=\"{reason}\"}}");
    after.find(&key).unwrap_or(0.0) - before.find(&key).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_the_next_minor_version_is_understood_as_far_as_this_release_can() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let [n1, _n2]: [NodeProcess; 2] = start_converged(&etcd, &["n1", "n2"], &options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("two nodes"));
    let next = WIRE_MINOR + 1;
    let before = scrape(n1.http_addr).await;

    let summary = deliver(
        &n1,
        vec![
            // A reply with fields added in the next minor: delivered (to no one waiting: harmless).
            frame(
                WIRE_MAJOR,
                next,
                serde_json::json!({
                    "from": "n2", "hops": 0, "route_hint": "fast",
                    "body": { "Reply": { "id": 1, "result": { "Ok": "Done" }, "priority": 2 } }
                }),
            ),
            // A request of a kind this release does not know: dropped and counted; its sender would be
            // answered UNAVAILABLE at once (here n2, which waits for nothing under id 9).
            frame(
                WIRE_MAJOR,
                next,
                serde_json::json!({
                    "from": "n2",
                    "body": { "User": { "app": "demo", "user": "host", "msg": {
                        "Mute": { "seconds": 30, "reply": { "node": "n2", "id": 9 } }
                    } } }
                }),
            ),
            // A frame of another major: refused.
            frame(
                WIRE_MAJOR + 1,
                0,
                serde_json::json!({ "from": "n2", "body": { "SinkMoved": { "id": 3 } } }),
            ),
        ],
    )
    .await;
    assert_eq!(
        (summary.delivered, summary.malformed),
        (1, 2),
        "{summary:?}"
    );
    let after = scrape(n1.http_addr).await;
    assert_eq!(dropped(&before, &after, "unknown_kind"), 1.0);
    assert_eq!(dropped(&before, &after, "other_major"), 1.0);
}

/// A mixed-version cluster: n2 writes every frame as a node of the next minor would
/// (`rehearse_next_wire_minor`), n1 is this release. A viewer connected to n2 calls a host connected to
/// n1: the call connects with media both ways and ends for both, as in a cluster of one release; n1
/// dropped only the kinds it does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_a_node_of_the_next_minor_runs_the_call_flow() {
    use showcall_sdk::{CallState, CallStateReason};
    use showcall_tests::cluster::wait_converged;
    use showcall_tests::sdk_helpers::{MediaCall, video_call_with_media};

    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let n1 = NodeProcess::start(&etcd, "n1", &options).await;
    let before = scrape(n1.http_addr).await;
    let next_minor = NodeOptions {
        env: vec![("SHOWCALL_REHEARSE_NEXT_WIRE_MINOR".into(), "true".into())],
        ..NodeOptions::default()
    };
    let n2 = NodeProcess::start(&etcd, "n2", &next_minor).await;
    wait_converged(&[&n1, &n2], options.partitions).await;

    let mut host = n1.prepared_user("host").await;
    let mut viewer = n2.prepared_user("viewer").await;
    let MediaCall {
        created,
        caller_media,
        callee_media,
    } = video_call_with_media(&mut viewer, &mut host).await;
    caller_media
        .wait_video_frames(10)
        .await
        .expect("the viewer sees the host");
    callee_media
        .wait_video_frames(10)
        .await
        .expect("the host sees the viewer");
    viewer
        .api
        .hangup_with_call_id(&created.call_id, "bye")
        .await
        .expect("hangup");
    viewer
        .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
        .await;
    host.wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;

    let after = scrape(n1.http_addr).await;
    assert!(
        dropped(&before, &after, "unknown_kind") >= 1.0,
        "n2's frames of a kind n1 does not know reached n1 and were counted"
    );
    for reason in ["malformed", "other_major"] {
        assert_eq!(
            dropped(&before, &after, reason),
            0.0,
            "no frame of the next minor was {reason} to n1"
        );
    }
}
