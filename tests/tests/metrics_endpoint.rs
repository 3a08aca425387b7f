//! An operator scrapes a node's `/metrics` over real HTTP (the node's `http_addr`) while a viewer calls a
//! host with real media through the router, then hangs up: the page shows the two users online, the call
//! connected with its ringing and setup latencies, media flowing both ways, and afterwards no call left
//! and one more call ended by a hangup.
//!
//! Waits are on real signals (the SDK's callbacks, the admin API's `CallEnded` event, which the node
//! reports only after it counted the end). Recorded series (counters, histograms) come from a
//! process-wide recorder that other nodes in the same test process would share, so they are compared as
//! deltas between scrapes; sampled series (users, calls, channels, media) are exact per node.

use std::collections::HashMap;

use futures_util::StreamExt;
use showcall_proto::admin::WatchEventsRequest;
use showcall_proto::admin::event::Kind;
use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole, PrepareConfig};
use showcall_tests::prometheus::{delta, scrape};
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::{DEADLINE, TestNode};

const STATES: [&str; 4] = ["calling", "ringing", "connecting", "connected"];
const PACKETS_IN: &str = "showcall_media_packets_total{direction=\"in\"}";
const PACKETS_OUT: &str = "showcall_media_packets_total{direction=\"out\"}";
const BYTES_IN: &str = "showcall_media_bytes_total{direction=\"in\"}";
const BYTES_OUT: &str = "showcall_media_bytes_total{direction=\"out\"}";
const ENDED_BY_HANGUP: &str = "showcall_calls_ended_total{reason=\"hangup\"}";
const SETUP_COUNT: &str = "showcall_call_setup_seconds_count";
const RINGING_COUNT: &str = "showcall_call_ringing_seconds_count";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_call_with_media_from_ringing_to_hangup() {
    let node = TestNode::start().await;

    // An idle node: every documented series is there, nothing is running.
    let idle = scrape(node.handle.http_addr).await;
    assert_eq!(idle.get("showcall_users_online"), 0.0);
    for state in STATES {
        assert_eq!(idle.calls(state), 0.0, "{state}");
    }
    assert_eq!(idle.get("showcall_channels_open"), 0.0);
    for key in [
        PACKETS_IN,
        PACKETS_OUT,
        BYTES_IN,
        BYTES_OUT,
        "showcall_media_packets_lost_total",
        ENDED_BY_HANGUP,
        "showcall_webhook_failures_total",
        "showcall_signaling_connections",
        SETUP_COUNT,
        RINGING_COUNT,
        "showcall_call_setup_seconds_bucket{le=\"+Inf\"}",
    ] {
        idle.get(key);
    }
    assert!(
        !idle.0.contains_key("showcall_partitions_owned"),
        "a single node owns no partitions"
    );

    // A viewer calls the host; both join the call's channel with media; it connects.
    let mut host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let created = viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    host.api.accept("viewer").await.expect("accepted");
    let mut sessions = Vec::new();
    for user in [&viewer, &host] {
        let media = user
            .join_media(&created.channel, ChannelRole::Broadcaster)
            .await;
        sessions.push(media);
    }
    for user in [&mut viewer, &mut host] {
        user.wait_state(CallState::Connected, CallStateReason::RecvRemoteFirstFrame)
            .await;
    }
    for media in &sessions {
        media
            .wait_video_frames(10)
            .await
            .expect("video flows both ways");
    }

    let connected = scrape(node.handle.http_addr).await;
    assert_eq!(connected.get("showcall_users_online"), 2.0);
    assert_eq!(connected.calls("connected"), 1.0);
    for state in ["calling", "ringing", "connecting"] {
        assert_eq!(connected.calls(state), 0.0, "{state}");
    }
    assert!(
        connected.get("showcall_channels_open") >= 1.0,
        "the call's channel is open"
    );
    assert!(
        connected.get("showcall_signaling_connections") >= 2.0,
        "both users' WebSockets"
    );
    assert!(delta(&idle, &connected, RINGING_COUNT) >= 1.0);
    assert!(delta(&idle, &connected, SETUP_COUNT) >= 1.0);
    for key in [PACKETS_IN, PACKETS_OUT, BYTES_IN, BYTES_OUT] {
        assert!(delta(&idle, &connected, key) > 0.0, "{key} grew");
    }

    // The viewer hangs up; the business server hears the call ended (counted before it is reported).
    let mut admin =
        showcall_tests::admin::admin_at(&format!("http://{}", node.handle.grpc_addr)).await;
    let mut events = admin
        .watch_events(WatchEventsRequest {
            after_cursor: None,
            app_id: node.app().to_owned(),
        })
        .await
        .expect("watch accepted")
        .into_inner();
    viewer.api.hangup("host", "bye").await.expect("hung up");
    viewer
        .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
        .await;
    loop {
        let event = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("the call's end is reported within the deadline")
            .expect("the stream goes on")
            .expect("an event");
        if matches!(event.kind, Some(Kind::CallEnded(_))) {
            break;
        }
    }

    let ended = scrape(node.handle.http_addr).await;
    for state in STATES {
        assert_eq!(ended.calls(state), 0.0, "{state}");
    }
    assert_eq!(delta(&connected, &ended, ENDED_BY_HANGUP), 1.0);
    assert_eq!(
        ended.get("showcall_users_online"),
        2.0,
        "both still logged in"
    );
}
