//! One call is one trace, across nodes: two real node processes export their spans over OTLP/gRPC to an
//! in-process collector. A viewer whose user actor lives on one node calls a host whose user actor lives
//! on the other, continuing the client's own `traceparent`; the host accepts, both join the call channel
//! with media, the call connects, the viewer hangs up. Every span of that call — the gateway's request,
//! both user actors, the call actor, the call channel — shares the client's trace id, and together they
//! form one tree under the client's span.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use showcall_sdk::proto::client_frame::Command;
use showcall_sdk::proto::{Call, Hangup, response};
use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole};
use showcall_tests::cluster::{
    DEMO_APP, Etcd, NodeOptions, NodeProcess, eventually, start_converged,
};
use showcall_tests::otlp_collector::{CollectedSpan, OtlpCollector};

/// The client's own span, which the call's trace continues.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Which node runs `actor` (`user/demo/<id>`), from the nodes' own reports. A node that is briefly
/// fenced (a lease renewal late on a loaded machine) lists nothing until it serves again: ask until one
/// does.
async fn home_of(nodes: &[&NodeProcess], actor: &str) -> String {
    eventually(
        &format!("{actor} is active on a node"),
        Duration::from_secs(60),
        async || {
            for node in nodes {
                let info = node.info().await.ok_or("a node did not answer")?;
                if info.active_actors.iter().any(|a| a == actor) {
                    return Ok(node.id.clone());
                }
            }
            Err("active nowhere")
        },
    )
    .await
}

/// Every step of a call that connects with media and is hung up, wherever it runs.
const STEPS: [&str; 16] = [
    "signal.call",
    "user.call",
    "call",
    "call.start",
    "user.ring",
    "call.ringing",
    "call.accept",
    "channel.join",
    "call.party_joined",
    "channel.media_flowing",
    "call.media_flowing",
    "call.connected",
    "call.hangup",
    "user.call_update",
    "channel.close",
    "call.ended",
];

/// The spans of `call_id`, once the call's trace is complete: every step was exported (each node sends
/// its own batches, in its own time), and every span's parent was received too (but the root's, which is
/// the client's span).
fn whole_trace(all: &[CollectedSpan], call_id: &str) -> Result<Vec<CollectedSpan>, String> {
    let ours: Vec<CollectedSpan> = all
        .iter()
        .filter(|s| s.attribute("call.id") == Some(call_id))
        .cloned()
        .collect();
    let names: BTreeSet<&str> = ours.iter().map(|s| s.name.as_str()).collect();
    let ids: BTreeSet<&str> = ours.iter().map(|s| s.span_id.as_str()).collect();
    let orphans: Vec<&CollectedSpan> = ours
        .iter()
        .filter(|s| s.parent_span_id != CLIENT_SPAN && !ids.contains(s.parent_span_id.as_str()))
        .collect();
    let missing: Vec<&str> = STEPS.into_iter().filter(|s| !names.contains(s)).collect();
    if missing.is_empty() && orphans.is_empty() {
        Ok(ours)
    } else {
        Err(format!(
            "{} spans {names:?}; missing steps {missing:?}; without their parent: {orphans:#?}",
            ours.len()
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_across_nodes_is_one_trace_from_the_request_to_its_end() {
    let collector = OtlpCollector::start().await;
    let etcd = Etcd::start().await;
    let options = NodeOptions {
        env: vec![
            ("SHOWCALL_OTLP_ENDPOINT".into(), collector.endpoint.clone()),
            // Batches leave every 100 ms (default 5 s), so the test does not wait on the exporter.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
        ..NodeOptions::default()
    };
    let [n1, n2]: [NodeProcess; 2] = start_converged(&etcd, &["n1", "n2"], &options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("two nodes"));
    let nodes = [&n1, &n2];

    // The host, through node 1; a viewer, through node 2, whose user actor lives on the other node than
    // the host's (user ids hash to partitions: try a few).
    let mut host = n1.prepared_user("host").await;
    let host_home = home_of(&nodes, "user/demo/host").await;
    let mut found = None;
    for i in 0..32 {
        let id = format!("viewer-{i}");
        let viewer = n2.prepared_user(&id).await;
        let home = home_of(&nodes, &format!("user/{DEMO_APP}/{id}")).await;
        if home != host_home {
            found = Some((id, viewer, home));
            break;
        }
        viewer.signal.logout().await.expect("logout");
    }
    let (viewer_id, viewer, viewer_home) =
        found.expect("one of 32 user ids lives on the other node");
    println!("host's actor on {host_home}, {viewer_id}'s on {viewer_home}");

    // The viewer's app sends its own trace context with the call.
    let answer = viewer
        .signal
        .request(Command::Call(Call {
            remote_user_id: "host".into(),
            call_type: CallType::Video as i32,
            traceparent: format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
            ..Default::default()
        }))
        .await
        .expect("call placed");
    let Some(response::Result::CallCreated(created)) = answer.result else {
        panic!("a call_created answer: {answer:?}");
    };
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    host.api.accept(&viewer_id).await.expect("accepted");
    let _viewer_media = viewer
        .join_media(&created.channel, ChannelRole::Broadcaster)
        .await;
    let _host_media = host
        .join_media(&created.channel, ChannelRole::Broadcaster)
        .await;
    host.wait_state(CallState::Connected, CallStateReason::RecvRemoteFirstFrame)
        .await;
    viewer
        .signal
        .request(Command::Hangup(Hangup {
            call_id: created.call_id.clone(),
            reason: "bye".into(),
        }))
        .await
        .expect("hangup accepted");
    host.wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;

    let spans = collector
        .wait_for("the call's whole trace", Duration::from_secs(60), |all| {
            whole_trace(all, &created.call_id)
        })
        .await;
    let by_name: BTreeMap<&str, Vec<&CollectedSpan>> =
        spans.iter().fold(BTreeMap::new(), |mut map, s| {
            map.entry(s.name.as_str()).or_default().push(s);
            map
        });
    println!(
        "{} spans: {:?}",
        spans.len(),
        by_name
            .iter()
            .map(|(name, s)| (name, s.len()))
            .collect::<Vec<_>>()
    );

    // One trace: the client's.
    let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces, BTreeSet::from([CLIENT_TRACE]), "{spans:#?}");

    // One tree: a single root — the gateway's request, a child of the client's span — and every other
    // span's parent among the call's spans.
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&CollectedSpan> = spans
        .iter()
        .filter(|s| !ids.contains(s.parent_span_id.as_str()))
        .collect();
    assert_eq!(roots.len(), 1, "exactly one root: {roots:#?}");
    let root = roots[0];
    assert_eq!(root.name, "signal.call");
    assert_eq!(root.parent_span_id, CLIENT_SPAN);
    assert_eq!(root.attribute("caller.id"), Some(viewer_id.as_str()));
    assert_eq!(root.attribute("callee.id"), Some("host"));
    assert_eq!(root.attribute("app.id"), Some(DEMO_APP));

    // From both nodes: the exporting node is in each span's resource.
    let exporters: BTreeSet<&str> = spans
        .iter()
        .map(|s| s.resource.get("node.id").map_or("", String::as_str))
        .collect();
    assert_eq!(
        exporters,
        BTreeSet::from(["n1", "n2"]),
        "spans from both nodes"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.resource.get("service.name").map(String::as_str) == Some("showcall"))
    );

    // Every step of the call is there (`whole_trace` waited for them), where it ran.
    assert_eq!(by_name["channel.join"].len(), 2, "each party's media join");
    let ring = by_name["user.ring"][0];
    assert_eq!(
        ring.resource["node.id"], host_home,
        "the ring is the host's actor's"
    );
    assert_eq!(ring.attribute("user.id"), Some("host"));
    let placed = by_name["user.call"][0];
    assert_eq!(
        placed.resource["node.id"], viewer_home,
        "the call is placed by the viewer's actor"
    );

    // The call's span holds its parties and, at the end, why it ended.
    let call = by_name["call"][0];
    assert_eq!(call.attribute("caller.id"), Some(viewer_id.as_str()));
    assert_eq!(call.attribute("callee.id"), Some("host"));
    assert_eq!(call.attribute("call.end_reason"), Some("hangup"));
    assert_eq!(
        by_name["call.ended"][0].attribute("call.end_reason"),
        Some("hangup")
    );
}
