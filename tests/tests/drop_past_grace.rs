//! A user whose connection drops and who does not come back within the grace period is gone: the peer's
//! call ends `prepared` with remoteLeft (101) — no waiting for a timeout, no business-server kick — the
//! stale member is removed from its channels (the audience sees it leave), and the user can later log in
//! afresh (not resumed) and call again.

use std::time::Duration;

use showcall_sdk::proto::{channel_event, event};
use showcall_sdk::{
    CallEvent, CallState, CallStateReason as R, ChannelRole, ErrorCode, Event, Recorded,
};
use showcall_tests::grace_helpers::{
    Party, connect_call, connected_then_hung_up, hang_up, refusal,
};
use showcall_tests::{TestNode, audience_grants};

async fn node() -> TestNode {
    TestNode::start_with(|c| c.grace_period = Duration::from_millis(500)).await
}

fn live_news(e: &Event) -> Option<String> {
    let Some(event::Kind::ChannelEvent(c)) = &e.kind else {
        return None;
    };
    match &c.kind {
        Some(channel_event::Kind::BroadcasterPaused(p)) => Some(format!("{} paused", p.user_id)),
        Some(channel_event::Kind::BroadcasterResumed(u)) => Some(format!("{u} resumed")),
        Some(channel_event::Kind::MemberLeft(u)) => Some(format!("{u} left")),
        Some(channel_event::Kind::MemberJoined(m)) => Some(format!("{} joined", m.user_id)),
        Some(
            channel_event::Kind::MediaOffer(_) | channel_event::Kind::VideoPausedForBandwidth(_),
        )
        | None => None,
    }
}

#[tokio::test]
async fn a_host_gone_past_grace_ends_the_call_and_leaves_its_room() {
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
    fan.wait_event(|e| live_news(e).as_deref() == Some("host paused"))
        .await;

    host.signal.abort();

    // At once: the host left. After the grace period: the call is over, and says why.
    assert_eq!(
        viewer.wait_call_event(id, CallEvent::RemoteLeft).await,
        "connection lost"
    );
    let ended = viewer.wait_state(id, CallState::Prepared).await;
    assert_eq!(ended.reason, R::RemoteLeft as i32, "{ended:?}");
    assert_eq!(
        ended.event_reason,
        "peer did not come back within the grace period"
    );
    let d = viewer.wait_disconnected(id).await;
    assert_eq!(
        (d.hangup_user_id.as_str(), d.current_user_id.as_str()),
        ("host", "viewer")
    );
    let mut expected = connected_then_hung_up(true, false);
    *expected.last_mut().expect("non-empty") = (CallState::Prepared, R::RemoteLeft);
    assert_eq!(viewer.states_of(id), expected);
    viewer
        .rec
        .wait_for(|r| r.is_state(CallState::Prepared, R::RemoteLeft))
        .await;
    assert_eq!(viewer.api.state(), CallState::Prepared);
    assert_eq!(viewer.api.get_call_id(), None);

    // The room lost its stale broadcaster; the fan stays.
    fan.wait_event(|e| live_news(e).as_deref() == Some("host left"))
        .await;
    let fan_ping = fan.signal.ping().await;
    assert!(fan_ping.is_ok(), "the fan's session is untouched");

    // The host comes back too late: a fresh session, nothing resumed, not even its readiness.
    host.signal.reconnect().await.expect("reconnect");
    let back = host.signal.login(&node.token("host")).await.expect("login");
    assert!(!back.resumed, "{back:?}");
    assert!(back.call.is_none() && back.channels.is_empty(), "{back:?}");
    host.rec
        .wait_for(|r| matches!(r, Recorded::State { state: CallState::Idle, event_reason, .. } if event_reason == "new session"))
        .await;
    let r = host
        .api
        .call("viewer", showcall_sdk::CallType::Video, Default::default())
        .await;
    assert_eq!(
        refusal("call before preparing again", r),
        ErrorCode::NotPrepared
    );
    // The old call is gone for good: its channel admits nobody.
    let r = host
        .signal
        .join_channel(&call.channel, ChannelRole::Broadcaster)
        .await;
    assert_eq!(
        refusal("joining the ended call's channel", r),
        ErrorCode::NotAParticipant
    );

    host.prepare().await;
    let again = connect_call(&mut host, &mut viewer).await;
    hang_up(&mut viewer, &mut host, &again.call_id).await;
    assert_eq!(
        host.states_of(&again.call_id),
        connected_then_hung_up(true, false)
    );
    assert_eq!(
        viewer.states_of(&again.call_id),
        connected_then_hung_up(false, true)
    );
}

#[tokio::test]
async fn a_caller_gone_while_ringing_stops_the_ring_after_grace() {
    let node = node().await;
    let viewer = Party::prepared(&node, "viewer").await;
    let mut host = Party::prepared(&node, "host").await;
    let created = viewer.call("host").await;
    let id = created.call_id.as_str();
    host.wait_state(id, CallState::Calling).await;

    // The caller's app dies mid-ring: the host is not left ringing until the calling timeout.
    viewer.signal.abort();
    assert_eq!(
        host.wait_call_event(id, CallEvent::RemoteLeft).await,
        "connection lost"
    );
    let ended = host.wait_state(id, CallState::Prepared).await;
    assert_eq!(ended.reason, R::RemoteLeft as i32, "{ended:?}");
    assert_eq!(
        host.states_of(id),
        [
            (CallState::Calling, R::RemoteVideoCall),
            (CallState::Prepared, R::RemoteLeft)
        ]
    );
    // A call that never connected has no onCallDisconnected.
    host.ping().await;
    host.drain_ready();
    assert!(
        !host
            .log
            .iter()
            .any(|e| matches!(e.kind, Some(event::Kind::CallDisconnected(_)))),
        "{:#?}",
        host.log
    );
    // The host is free again.
    let r = host.api.accept_with_call_id(id).await;
    assert_eq!(
        refusal("accepting the ended call", r),
        ErrorCode::NoSuchCall
    );
    let mut late = Party::prepared(&node, "viewer").await;
    assert!(!late.login.resumed);
    let next = connect_call(&mut late, &mut host).await;
    hang_up(&mut host, &mut late, &next.call_id).await;
}
