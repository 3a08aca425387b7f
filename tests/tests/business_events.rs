//! A business server (a tonic client of the admin API, as an app's backend would be) watches the events
//! of the seed's flow: presence, the live room's members (the seed's 103/105/104/106), the call's
//! lifecycle with the host paused and resumed, and the billing record with its connected duration. Each
//! step's events are checked as they come, in order (or, where actors on their own report one step
//! concurrently, as a set). A watcher that reconnects with its last cursor gets exactly what followed.

use std::collections::HashMap;

use futures_util::StreamExt;
use showcall_proto::admin::event::Kind;
use showcall_proto::admin::{Event, MemberRole};
use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole, PrepareConfig};
use showcall_tests::admin::{admin_at, watch_events};
use showcall_tests::sdk_helpers::{SdkUser, is_paused};
use showcall_tests::{DEADLINE, TestNode};
use tonic::Streaming;

const LIVE: &str = "host_live";

/// An event as one line; the call's random channel name reads `<call>`.
fn line(event: &Event, call_channel: &str) -> String {
    let ch = |c: &str| {
        if !call_channel.is_empty() && c == call_channel {
            "<call>".to_owned()
        } else {
            c.to_owned()
        }
    };
    let role = |r: i32| match MemberRole::try_from(r) {
        Ok(MemberRole::Broadcaster) => "broadcaster",
        Ok(MemberRole::Audience) => "audience",
        _ => "?",
    };
    match event.kind.as_ref().expect("every event has a kind") {
        Kind::UserOnline(u) => format!("online {}", u.user_id),
        Kind::UserOffline(u) => format!("offline {}", u.user_id),
        Kind::MemberJoined(m) => format!(
            "joined {} {} {} {}",
            ch(&m.channel),
            m.user_id,
            role(m.role),
            m.seed_code
        ),
        Kind::MemberLeft(m) => format!(
            "left {} {} {} {}",
            ch(&m.channel),
            m.user_id,
            role(m.role),
            m.seed_code
        ),
        Kind::HostPaused(p) => format!("paused {} {}", p.channel, p.host_user_id),
        Kind::HostResumed(p) => format!("resumed {} {}", p.channel, p.host_user_id),
        Kind::CallCreated(c) => {
            format!("call created {} -> {}", c.caller_user_id, c.callee_user_id)
        }
        Kind::CallRinging(_) => "call ringing".into(),
        Kind::CallAccepted(_) => "call accepted".into(),
        Kind::CallConnected(_) => "call connected".into(),
        Kind::CallEnded(e) => format!("call ended {} by {}", e.end_reason, e.ended_by_user_id),
        Kind::MemberKicked(k) => format!("kicked {} {}", k.channel, k.user_id),
        Kind::BillingTick(t) => format!("billing tick {}", t.tick),
    }
}

struct Watcher {
    stream: Streaming<Event>,
    seen: Vec<Event>,
}

impl Watcher {
    async fn open(grpc: &str, after: Option<u64>) -> Watcher {
        let mut admin = admin_at(grpc).await;
        let stream = watch_events(&mut admin, "demo", after).await;
        Watcher {
            stream,
            seen: Vec::new(),
        }
    }

    /// The next `n` events.
    async fn next(&mut self, n: usize) -> Vec<Event> {
        let mut got = Vec::new();
        while got.len() < n {
            let event = tokio::time::timeout(DEADLINE, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("no event within {DEADLINE:?}; got {got:?}"))
                .expect("the stream goes on")
                .expect("an event");
            got.push(event);
        }
        self.seen.extend(got.clone());
        got
    }

    /// The next events, in order, as lines.
    async fn expect(&mut self, call_channel: &str, want: &[&str]) {
        let got: Vec<String> = self
            .next(want.len())
            .await
            .iter()
            .map(|e| line(e, call_channel))
            .collect();
        assert_eq!(got, want);
    }

    /// The next events in any order (reported by several actors at once).
    async fn expect_set(&mut self, call_channel: &str, want: &[&str]) -> Vec<Event> {
        let events = self.next(want.len()).await;
        let mut got: Vec<String> = events.iter().map(|e| line(e, call_channel)).collect();
        let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        events
    }
}

#[tokio::test]
async fn a_business_server_watches_the_seed_flow_and_resumes_after_its_cursor() {
    let node = TestNode::start().await;
    let grpc = format!("http://{}", node.handle.grpc_addr);
    let mut watcher = Watcher::open(&grpc, None).await;

    let mut host = SdkUser::login(&node, "host").await;
    watcher.expect("", &["online host"]).await;
    let mut viewer = SdkUser::login(&node, "viewer").await;
    watcher.expect("", &["online viewer"]).await;
    let mut fan = SdkUser::login(&node, "fan").await;
    watcher.expect("", &["online fan"]).await;
    for user in [&host, &viewer] {
        user.api
            .prepare_for_call(PrepareConfig::default())
            .await
            .expect("prepared");
    }

    host.signal
        .join_channel(LIVE, ChannelRole::Broadcaster)
        .await
        .expect("host goes live");
    watcher
        .expect("", &["joined host_live host broadcaster 103"])
        .await;
    fan.signal
        .join_channel(LIVE, ChannelRole::Audience)
        .await
        .expect("fan watches");
    watcher
        .expect("", &["joined host_live fan audience 105"])
        .await;

    let created = viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    let call_channel = created.channel.clone();
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    watcher
        .expect(
            &call_channel,
            &["call created viewer -> host", "call ringing"],
        )
        .await;
    host.api.accept("viewer").await.expect("accepted");
    fan.wait_channel(LIVE, |k| is_paused(k, "host")).await;
    watcher
        .expect(&call_channel, &["call accepted", "paused host_live host"])
        .await;
    viewer.api.join_call_channel().await.expect("viewer joins");
    watcher
        .expect(&call_channel, &["joined <call> viewer broadcaster 103"])
        .await;
    host.api.join_call_channel().await.expect("host joins");
    watcher
        .expect(
            &call_channel,
            &["joined <call> host broadcaster 103", "call connected"],
        )
        .await;
    let resume_after = watcher.seen.last().expect("seen").cursor;

    viewer.api.hangup("host", "bye").await.expect("hangup");
    let ended = watcher
        .expect_set(
            &call_channel,
            &[
                "call ended hangup by viewer",
                "resumed host_live host",
                "left <call> viewer broadcaster 104",
                "left <call> host broadcaster 104",
            ],
        )
        .await;
    // The billing record: connected time, exactly from connect to end.
    let record = ended
        .iter()
        .find_map(|e| match &e.kind {
            Some(Kind::CallEnded(r)) => Some(r.clone()),
            _ => None,
        })
        .expect("a call.ended record");
    assert_eq!(record.call_id, created.call_id);
    let connected_at = record.connected_at_ms.expect("it connected");
    assert_eq!(
        record.connected_duration_ms,
        record.ended_at_ms - connected_at
    );
    assert_eq!(record.detail, "bye");

    fan.signal.leave_channel(LIVE).await.expect("fan leaves");
    watcher
        .expect("", &["left host_live fan audience 106"])
        .await;
    host.signal.leave_channel(LIVE).await.expect("host leaves");
    watcher
        .expect("", &["left host_live host broadcaster 104"])
        .await;
    viewer.signal.logout().await.expect("logout");
    watcher.expect("", &["offline viewer"]).await;

    // A business server that reconnects with the cursor it last handled gets exactly what followed,
    // with the same ids.
    let after: Vec<&Event> = watcher
        .seen
        .iter()
        .filter(|e| e.cursor > resume_after)
        .collect();
    let mut again = Watcher::open(&grpc, Some(resume_after)).await;
    let replayed = again.next(after.len()).await;
    assert_eq!(
        replayed.iter().map(|e| &e.id).collect::<Vec<_>>(),
        after.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    assert_eq!(replayed.iter().collect::<Vec<_>>(), after);
    let _ = (&mut host, &mut viewer);
}

#[tokio::test]
async fn a_watch_for_another_apps_events_is_refused() {
    let node = TestNode::start().await;
    let mut admin = admin_at(&format!("http://{}", node.handle.grpc_addr)).await;
    let refused = admin
        .watch_events(showcall_proto::admin::WatchEventsRequest {
            after_cursor: None,
            app_id: "no-such-app".into(),
        })
        .await
        .expect_err("refused");
    // The demo key acts for the demo app only.
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(refused.message().contains("no-such-app"));
}
