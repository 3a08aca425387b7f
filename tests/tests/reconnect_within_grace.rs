//! A connection that drops mid-call (a crash, a network loss: the TCP connection is cut without a close) does
//! not end the call: the peer is told remoteLeft at once, and when the user logs in again within the grace
//! period its session resumes — the call snapshot, its channels, the events it missed in order and numbered
//! on from where it was — the peer is told remoteReconnected, and the call ends normally later.

use std::time::Duration;

use showcall_sdk::proto::{channel_event, event};
use showcall_sdk::{CallEvent, CallState, CallStateReason as R, ChannelRole, Event, Recorded};
use showcall_tests::grace_helpers::{Party, connect_call, connected_then_hung_up, hang_up};
use showcall_tests::{TestNode, audience_grants};

const GRACE: Duration = Duration::from_secs(30);

async fn node() -> TestNode {
    TestNode::start_with(|c| c.grace_period = GRACE).await
}

fn call_event_of(e: &Event, call_id: &str) -> Option<CallEvent> {
    match &e.kind {
        Some(event::Kind::CallEventChanged(c)) if c.call_id == call_id => {
            CallEvent::try_from(c.event).ok()
        }
        _ => None,
    }
}

/// Member joins/leaves in `channel`, as text.
fn members_in(e: &Event, channel: &str) -> Option<String> {
    let Some(event::Kind::ChannelEvent(c)) = &e.kind else {
        return None;
    };
    if c.channel != channel {
        return None;
    }
    match &c.kind {
        Some(channel_event::Kind::MemberJoined(m)) => Some(format!("{} joined", m.user_id)),
        Some(channel_event::Kind::MemberLeft(u)) => Some(format!("{u} left")),
        _ => None,
    }
}

fn broadcaster_news(e: &Event) -> Option<String> {
    let Some(event::Kind::ChannelEvent(c)) = &e.kind else {
        return None;
    };
    match &c.kind {
        Some(channel_event::Kind::BroadcasterPaused(p)) => Some(format!("{} paused", p.user_id)),
        Some(channel_event::Kind::BroadcasterResumed(u)) => Some(format!("{u} resumed")),
        Some(channel_event::Kind::MemberLeft(u)) => Some(format!("{u} left")),
        _ => None,
    }
}

#[tokio::test]
async fn a_dropped_host_resumes_its_call_and_hears_what_it_missed() {
    let node = node().await;
    let mut viewer = Party::prepared(&node, "viewer").await;
    let mut host = Party::prepared(&node, "host").await;
    host.signal
        .join_channel("live-host", ChannelRole::Broadcaster)
        .await
        .expect("the host goes live");
    let fan_token = node.token_with(
        "fan",
        Duration::from_secs(3600),
        audience_grants("live-host"),
    );
    let mut fan = Party::login_with(&node, "fan", &fan_token).await;
    fan.signal
        .join_channel("live-host", ChannelRole::Audience)
        .await
        .expect("the fan watches");

    let call = connect_call(&mut viewer, &mut host).await;
    let id = call.call_id.as_str();
    fan.wait_event(|e| broadcaster_news(e).as_deref() == Some("host paused"))
        .await;
    // onCallConnected is the last thing the host is told before the drop.
    host.wait_event(|e| matches!(e.kind, Some(event::Kind::CallConnected(_))))
        .await;
    let last_seq = host.log.last().expect("events before the drop").seq;

    host.signal.abort();
    host.rec
        .wait_for(|r| matches!(r, Recorded::SignalDisconnected { .. }))
        .await;
    let why = viewer.wait_call_event(id, CallEvent::RemoteLeft).await;
    assert_eq!(why, "connection lost");

    // While the host is away the viewer steps out of the call channel and back in: news for the host.
    viewer
        .signal
        .leave_channel(&call.channel)
        .await
        .expect("leave");
    viewer.wait_call_event(id, CallEvent::LocalLeft).await;
    viewer.join(&call.channel).await;
    viewer.wait_call_event(id, CallEvent::LocalJoined).await;

    // Back within grace, on a new connection of the same client.
    host.signal.reconnect().await.expect("reconnect");
    let back = host.signal.login(&node.token("host")).await.expect("login");
    assert!(back.resumed, "{back:?}");
    assert_eq!(back.grace_period_ms as u128, GRACE.as_millis());
    let snapshot = back.call.clone().expect("resumed into the call");
    assert_eq!(snapshot.call_id, id);
    assert_eq!(snapshot.state, CallState::Connected as i32);
    let info = snapshot
        .event_info
        .expect("the snapshot carries event info");
    assert_eq!(
        (info.from_user_id.as_str(), info.remote_user_id.as_str()),
        ("viewer", "host")
    );
    let mut channels = back.channels.clone();
    channels.sort();
    let mut expected = vec![call.channel.clone(), "live-host".to_owned()];
    expected.sort();
    assert_eq!(channels, expected);

    let why = viewer
        .wait_call_event(id, CallEvent::RemoteReconnected)
        .await;
    assert_eq!(why, "reconnected");

    // What the host missed arrives in order, numbered on from the last event it had.
    host.wait_event(|e| call_event_of(e, id) == Some(CallEvent::RemoteJoined))
        .await;
    let missed: Vec<Event> = host
        .log
        .iter()
        .filter(|e| e.seq > last_seq)
        .cloned()
        .collect();
    let seqs: Vec<u64> = missed.iter().map(|e| e.seq).collect();
    let numbered_on: Vec<u64> = (last_seq + 1..=last_seq + missed.len() as u64).collect();
    assert_eq!(seqs, numbered_on, "replayed events continue the numbering");
    let call_news: Vec<CallEvent> = missed.iter().filter_map(|e| call_event_of(e, id)).collect();
    assert_eq!(call_news, [CallEvent::RemoteLeft, CallEvent::RemoteJoined]);
    let channel_news: Vec<String> = missed
        .iter()
        .filter_map(|e| members_in(e, &call.channel))
        .collect();
    assert_eq!(channel_news, ["viewer left", "viewer joined"]);
    assert!(
        missed
            .iter()
            .all(|e| !matches!(e.kind, Some(event::Kind::CallStateChanged(_)))),
        "the call's state did not change while away: {missed:#?}"
    );

    // The call goes on to a normal hangup, and the host's live room resumes.
    hang_up(&mut host, &mut viewer, id).await;
    assert_eq!(host.states_of(id), connected_then_hung_up(false, true));
    assert_eq!(viewer.states_of(id), connected_then_hung_up(true, false));
    fan.wait_event(|e| broadcaster_news(e).as_deref() == Some("host resumed"))
        .await;
    let fan_saw: Vec<String> = fan.log.iter().filter_map(broadcaster_news).collect();
    assert_eq!(
        fan_saw,
        ["host paused", "host resumed"],
        "the host never left its room"
    );
    let presence: Vec<CallEvent> = viewer
        .log
        .iter()
        .filter_map(|e| call_event_of(e, id))
        .filter(|e| matches!(e, CallEvent::RemoteLeft | CallEvent::RemoteReconnected))
        .collect();
    assert_eq!(
        presence,
        [CallEvent::RemoteLeft, CallEvent::RemoteReconnected],
        "the viewer heard of the drop and the return once each"
    );
}

#[tokio::test]
async fn a_dropped_caller_resumes_on_a_new_client_from_the_snapshot() {
    let node = node().await;
    let mut viewer = Party::prepared(&node, "viewer").await;
    let mut host = Party::prepared(&node, "host").await;
    let call = connect_call(&mut viewer, &mut host).await;
    let id = call.call_id.as_str();

    viewer.signal.abort();
    host.wait_call_event(id, CallEvent::RemoteLeft).await;

    // An app restarted from scratch: a new client, a new CallApi, only the user id and a token.
    let mut again = Party::login(&node, "viewer").await;
    assert!(again.login.resumed);
    let snapshot = again.login.call.clone().expect("resumed into the call");
    assert_eq!(
        (snapshot.call_id.as_str(), snapshot.state),
        (id, CallState::Connected as i32)
    );
    // The new CallApi starts from the snapshot: it knows the call, so a plain hangup ends it.
    assert_eq!(again.api.state(), CallState::Connected);
    assert_eq!(again.api.get_call_id().as_deref(), Some(id));
    host.wait_call_event(id, CallEvent::RemoteReconnected).await;

    again.api.hangup("host", "bye").await.expect("hangup");
    let own = again.wait_state(id, CallState::Prepared).await;
    assert_eq!(own.reason, R::LocalHangup as i32);
    let theirs = host.wait_state(id, CallState::Prepared).await;
    assert_eq!(theirs.reason, R::RemoteHangup as i32);
    assert_eq!(theirs.event_reason, "bye");
    let d = host.wait_disconnected(id).await;
    assert_eq!(d.hangup_user_id, "viewer");
    assert_eq!(host.states_of(id), connected_then_hung_up(false, false));
    assert_eq!(again.states_of(id), [(CallState::Prepared, R::LocalHangup)]);
}
