//! The seed flow across a cluster of real node processes: the host is connected to node 1 and live with
//! media; a fan watches from node 3; a viewer connected to node 2 calls the host; wherever the call's and
//! the channels' actors live, the call connects with media both ways, the live room pauses and resumes,
//! presence and busy agree across nodes, and a node joining mid-call takes partitions without cutting the
//! call off.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use showcall_proto::admin::WatchEventsRequest;
use showcall_proto::admin::event::Kind;
use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole};
use showcall_tests::cluster::{Etcd, NodeOptions, NodeProcess, start_converged, wait_converged};
use showcall_tests::sdk_helpers::{MediaCall, video_call_with_media};
use showcall_tests::sdk_helpers::{is_paused, is_resumed};

const LIVE: &str = "host_live";
const APP: &str = "demo";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_between_users_on_different_nodes_connects_with_media_and_busy_is_seen_everywhere() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let [n1, n2, n3]: [NodeProcess; 3] = start_converged(&etcd, &["n1", "n2", "n3"], &options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("three nodes"));

    // A business server watches the events of every node through node 3.
    let mut admin = showcall_tests::admin::admin_at(&n3.grpc_url.clone()).await;
    let mut events = admin
        .watch_events(WatchEventsRequest {
            after_cursor: None,
            app_id: APP.into(),
        })
        .await
        .expect("watch accepted")
        .into_inner();

    // The host, on node 1, goes live with media; a fan on node 3 watches.
    let mut host = n1.prepared_user("host").await;
    let host_live = host.join_media(LIVE, ChannelRole::Broadcaster).await;
    let mut fan = n3.user("fan").await;
    let fan_media = fan.join_media(LIVE, ChannelRole::Audience).await;
    fan_media
        .wait_video_frames(10)
        .await
        .expect("live video reaches the fan");

    // The viewer, on node 2, calls the host; the host accepts.
    let mut viewer = n2.prepared_user("viewer").await;
    // Connected once media flows both ways: the server saw each side's first frame reach the other.
    let MediaCall {
        created,
        caller_media: viewer_call,
        callee_media: host_call,
    } = video_call_with_media(&mut viewer, &mut host).await;
    viewer_call
        .wait_video_frames(20)
        .await
        .expect("the viewer sees the host");
    host_call
        .wait_video_frames(20)
        .await
        .expect("the host sees the viewer");
    fan.wait_channel(LIVE, |k| is_paused(k, "host")).await;

    // The actors really are spread: each lives on exactly one node, and not all on the clients' nodes.
    let home: HashMap<String, String> = showcall_tests::cluster::homes(&[&n1, &n2, &n3]).await;
    let wanted = [
        "user/demo/host".to_owned(),
        "user/demo/viewer".to_owned(),
        format!("channel/demo/{LIVE}"),
        format!("channel/demo/{}", created.channel),
        format!("call/-/{}", created.call_id),
    ];
    let nodes: std::collections::BTreeSet<&String> = wanted
        .iter()
        .map(|a| {
            home.get(a)
                .unwrap_or_else(|| panic!("{a} is active nowhere: {home:?}"))
        })
        .collect();
    println!(
        "placement: {:?}",
        wanted.iter().map(|a| (a, &home[a])).collect::<Vec<_>>()
    );
    assert!(nodes.len() >= 2, "the flow crossed nodes: {home:?}");

    // Busy everywhere: a third user, on node 3, calling the host is told at once.
    let mut other = n3.prepared_user("other").await;
    other
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    other
        .wait_state(CallState::Prepared, CallStateReason::RemoteCallBusy)
        .await;

    // A fourth node joins during the call and takes its share — busy partitions too, handed over with
    // their actors; the established call and the live room are not cut off, and nothing is ever served
    // twice.
    let n4 = NodeProcess::start(&etcd, "n4", &options).await;
    wait_converged(&[&n1, &n2, &n3, &n4], options.partitions).await;
    showcall_tests::cluster::homes(&[&n1, &n2, &n3, &n4]).await;

    // Hang up: both are back to prepared; the fan sees the host live again.
    viewer.api.hangup("host", "bye").await.expect("hangup");
    viewer
        .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
        .await;
    host.wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
    fan.wait_channel(LIVE, |k| is_resumed(k, "host")).await;
    let before = fan_media.stats().video_keyframes_in;
    fan_media
        .wait_for(|s| s.video_keyframes_in > before)
        .await
        .expect("host video comes back to the fan from a keyframe");
    assert!(host_live.stats().video_frames_out > 0);

    // The business server saw the call's whole life, in order, wherever its actors ran, and its one
    // billing record.
    let mut lifecycle = Vec::new();
    while lifecycle.last().map(String::as_str) != Some("ended") {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("events keep coming")
            .expect("the stream goes on")
            .expect("an event");
        let step = match event.kind {
            Some(Kind::CallCreated(c)) if c.call_id == created.call_id => "created",
            Some(Kind::CallRinging(c)) if c.call_id == created.call_id => "ringing",
            Some(Kind::CallAccepted(c)) if c.call_id == created.call_id => "accepted",
            Some(Kind::CallConnected(c)) if c.call_id == created.call_id => "connected",
            Some(Kind::CallEnded(r)) if r.call_id == created.call_id => {
                assert!(r.connected_duration_ms > 0, "a connected duration: {r:?}");
                "ended"
            }
            _ => continue,
        };
        lifecycle.push(step.to_owned());
    }
    assert_eq!(
        lifecycle,
        ["created", "ringing", "accepted", "connected", "ended"]
    );
}
