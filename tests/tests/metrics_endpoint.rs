//! An operator scrapes a node's `/metrics` over real HTTP (the node's `http_addr`) while a viewer calls a
//! host with real media through the router, then hangs up: the page shows the two users online, the call
//! connected with its ringing and setup latencies, media flowing both ways, and afterwards no call left
//! and one more call ended by a hangup.
//!
//! Waits are on real signals (the SDK's callbacks, the admin API's `CallEnded` event, which the node
//! reports only after it counted the end). Recorded series (counters, histograms) come from a
//! process-wide recorder that other nodes in the same test process would share, so they are compared as
//! deltas between scrapes; sampled series (users, calls, channels, media) are exact per node.

use std::collections::{BTreeMap, HashMap};

use futures_util::StreamExt;
use showcall_proto::admin::WatchEventsRequest;
use showcall_proto::admin::admin_client::AdminClient;
use showcall_proto::admin::event::Kind;
use showcall_sdk::media::{MediaOptions, MediaSession};
use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole, PrepareConfig};
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::{DEADLINE, TestNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One scrape: every series by `name{label="value",…}` (labels sorted), with its value.
#[derive(Debug)]
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// `GET /metrics` over a plain TCP connection, as Prometheus does.
    async fn of(node: &TestNode) -> Scrape {
        let addr = node.handle.http_addr;
        let mut tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("metrics port reachable");
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes())
            .await
            .expect("request sent");
        let mut response = String::new();
        tokio::time::timeout(DEADLINE, tcp.read_to_string(&mut response))
            .await
            .expect("the page comes within the deadline")
            .expect("a UTF-8 response");
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "the text exposition format: {head}"
        );
        Scrape::parse(body)
    }

    /// The text format's sample lines (`name{labels} value`); comments and blank lines skipped.
    fn parse(body: &str) -> Scrape {
        let mut series = BTreeMap::new();
        for line in body
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (key, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("a sample line: {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("a number in {line:?}"));
            let key = match key.split_once('{') {
                Some((name, labels)) => {
                    let mut labels: Vec<&str> = labels
                        .trim_end_matches('}')
                        .split(',')
                        .filter(|l| !l.is_empty())
                        .collect();
                    labels.sort_unstable();
                    format!("{name}{{{}}}", labels.join(","))
                }
                None => key.to_owned(),
            };
            assert!(
                series.insert(key.clone(), value).is_none(),
                "{key} appears twice"
            );
        }
        Scrape(series)
    }

    /// A series' value; panics (with the page) when the node does not show it.
    fn get(&self, key: &str) -> f64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from /metrics: {:#?}", self.0))
    }

    fn calls(&self, state: &str) -> f64 {
        self.get(&format!("showcall_calls{{state=\"{state}\"}}"))
    }
}

/// How much a series grew from `before` to `after`.
fn delta(before: &Scrape, after: &Scrape, key: &str) -> f64 {
    after.get(key) - before.get(key)
}

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
    let idle = Scrape::of(&node).await;
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
        let (media, _) = MediaSession::join(
            &user.signal,
            &created.channel,
            ChannelRole::Broadcaster,
            MediaOptions::default(),
        )
        .await
        .expect("joins the call with media");
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

    let connected = Scrape::of(&node).await;
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
    let mut admin = AdminClient::connect(format!("http://{}", node.handle.grpc_addr))
        .await
        .expect("admin API reachable");
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

    let ended = Scrape::of(&node).await;
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
