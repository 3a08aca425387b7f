//! Calls that never connect: the callee is busy or offline (told at once, not after a timeout), the caller
//! withdraws a ringing call, or the callee declines it with a reason. A host's live room is not paused for
//! a call that was never accepted.

use std::collections::HashMap;

use showcall_sdk::{
    CallEvent, CallState, CallStateReason, CallType, ChannelRole, ErrorCode, PrepareConfig,
    PublishState, Recorded, channel_event,
};
use showcall_tests::TestNode;
use showcall_tests::sdk_helpers::{
    SdkUser, is_member_joined, is_paused, is_resumed, member, refusal,
};

/// The text CallAPI apps already show for a busy callee.
const BUSY_TEXT: &str = "The user is currently busy";

/// No calling timeout: a call that is not answered can only end by what the test is about, so a missing
/// "at once" reply hangs into the harness deadline and fails instead of passing as a timeout.
fn no_timeout() -> PrepareConfig {
    PrepareConfig {
        call_timeout_ms: Some(0),
        ..PrepareConfig::default()
    }
}

/// Places a video call and checks the caller's `calling`; returns the call id.
async fn call(caller: &mut SdkUser, callee: &str) -> String {
    let created = caller
        .api
        .call(callee, CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    let info = caller
        .wait_state(CallState::Calling, CallStateReason::LocalVideoCall)
        .await;
    assert_eq!(info.call_id, created.call_id);
    created.call_id
}

/// `caller` calls `callee`, who accepts; both join the call channel and are connected. Returns the call id.
async fn connect(caller: &mut SdkUser, callee: &mut SdkUser) -> String {
    let call_id = call(caller, &callee.id).await;
    callee
        .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    callee.api.accept(&caller.id).await.expect("accepted");
    let sides = [
        (&mut *caller, CallStateReason::RemoteAccepted),
        (&mut *callee, CallStateReason::LocalAccepted),
    ];
    for (u, reason) in sides {
        u.wait_state(CallState::Connecting, reason).await;
        u.api.join_call_channel().await.expect("joins call channel");
    }
    for u in [caller, callee] {
        let info = u
            .wait_state(CallState::Connected, CallStateReason::BothJoined)
            .await;
        assert_eq!(info.call_id, call_id);
    }
    call_id
}

/// The call ids named by every state change `user` has reported so far.
fn state_call_ids(user: &SdkUser) -> Vec<String> {
    user.rec
        .seen()
        .iter()
        .filter_map(|r| match r {
            Recorded::State { info, .. } => Some(info.call_id.clone()),
            _ => None,
        })
        .collect()
}

/// The caller of an undeliverable call sees `calling`, then `prepared` with `reason`, `text` and `event`.
async fn assert_ended_at_once(
    caller: &mut SdkUser,
    call_id: &str,
    reason: CallStateReason,
    event: CallEvent,
) -> String {
    let (text, info) = caller.wait_state_text(CallState::Prepared, reason).await;
    assert_eq!(info.call_id, call_id);
    assert!(info.timing.contains_key("end"), "{info:?}");
    assert_eq!(caller.wait_event(event).await, text);
    assert_eq!(caller.api.state(), CallState::Prepared);
    assert!(caller.api.get_call_id().is_none());
    text
}

#[tokio::test]
async fn calling_someone_in_a_call_is_refused_as_busy_at_once_and_their_call_goes_on() {
    let node = TestNode::start().await;
    let mut alice = SdkUser::prepared(&node, "alice", no_timeout()).await;
    let mut bob = SdkUser::prepared(&node, "bob", no_timeout()).await;
    let mut carol = SdkUser::prepared(&node, "carol", no_timeout()).await;
    let alice_bob = connect(&mut alice, &mut bob).await;

    // Carol calls Bob (the callee of a connected call), then Alice (its caller): both are busy.
    for target in ["bob", "alice"] {
        let busy = call(&mut carol, target).await;
        let text = assert_ended_at_once(
            &mut carol,
            &busy,
            CallStateReason::RemoteCallBusy,
            CallEvent::RemoteCallBusy,
        )
        .await;
        assert_eq!(text, BUSY_TEXT);
    }

    // Alice and Bob's call is untouched: still connected, and it ends normally.
    assert_eq!(bob.api.get_call_id(), Some(alice_bob.clone()));
    assert_eq!(alice.api.state(), CallState::Connected);
    alice.api.hangup("bob", "bye").await.expect("hangup");
    let (why, info) = bob
        .wait_state_text(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
    assert_eq!((why.as_str(), info.call_id.as_str()), ("bye", &*alice_bob));
    // Neither heard anything of Carol's calls.
    for u in [&alice, &bob] {
        let ids = state_call_ids(u);
        assert!(
            ids.iter().all(|id| id.is_empty() || *id == alice_bob),
            "{} saw another call: {:?}",
            u.id,
            u.rec.seen()
        );
    }

    // Busy is not sticky: now Bob is free, Carol's call rings.
    let again = call(&mut carol, "bob").await;
    let ring = bob
        .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    assert_eq!(ring.call_id, again);
}

#[tokio::test]
async fn a_callee_already_ringing_is_busy_and_can_still_answer_the_first_call() {
    let node = TestNode::start().await;
    let mut alice = SdkUser::prepared(&node, "alice", no_timeout()).await;
    let mut bob = SdkUser::prepared(&node, "bob", no_timeout()).await;
    let mut carol = SdkUser::prepared(&node, "carol", no_timeout()).await;
    let first = call(&mut alice, "bob").await;
    bob.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;

    let second = call(&mut carol, "bob").await;
    let text = assert_ended_at_once(
        &mut carol,
        &second,
        CallStateReason::RemoteCallBusy,
        CallEvent::RemoteCallBusy,
    )
    .await;
    assert_eq!(text, BUSY_TEXT);

    // Bob still rings for Alice and takes her call.
    bob.api.accept("alice").await.expect("accepts alice");
    let info = alice
        .wait_state(CallState::Connecting, CallStateReason::RemoteAccepted)
        .await;
    assert_eq!(info.call_id, first);
    bob.wait_state(CallState::Connecting, CallStateReason::LocalAccepted)
        .await;
}

#[tokio::test]
async fn calling_someone_who_never_logged_in_is_refused_as_offline_at_once() {
    let node = TestNode::start().await;
    let mut alice = SdkUser::prepared(&node, "alice", no_timeout()).await;
    let ghost = call(&mut alice, "ghost").await;
    assert_ended_at_once(
        &mut alice,
        &ghost,
        CallStateReason::RemoteOffline,
        CallEvent::RemoteOffline,
    )
    .await;
}

#[tokio::test]
async fn calling_someone_logged_in_but_not_prepared_is_refused_as_offline_at_once() {
    let node = TestNode::start().await;
    let mut alice = SdkUser::prepared(&node, "alice", no_timeout()).await;
    let mut bob = SdkUser::login(&node, "bob").await;
    let unprepared = call(&mut alice, "bob").await;
    assert_ended_at_once(
        &mut alice,
        &unprepared,
        CallStateReason::RemoteOffline,
        CallEvent::RemoteOffline,
    )
    .await;

    // Once Bob prepares he rings, and the call he was offline for never reached him: his first call
    // callbacks are his own `prepared`, then the new call ringing.
    bob.api
        .prepare_for_call(PrepareConfig::default())
        .await
        .expect("bob prepares");
    let second = call(&mut alice, "bob").await;
    bob.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    let states: Vec<_> = bob
        .rec
        .seen()
        .iter()
        .filter_map(|r| match r {
            Recorded::State {
                state,
                reason,
                info,
                ..
            } => Some((*state, *reason, info.call_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            (CallState::Prepared, CallStateReason::None, String::new()),
            (CallState::Calling, CallStateReason::RemoteVideoCall, second),
        ]
    );
}

#[tokio::test]
async fn the_caller_cancels_while_it_rings() {
    let node = TestNode::start().await;
    let mut alice = SdkUser::prepared(&node, "alice", no_timeout()).await;
    let mut bob = SdkUser::prepared(&node, "bob", no_timeout()).await;
    let call_id = call(&mut alice, "bob").await;
    bob.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;

    alice.api.cancel_call().await.expect("cancel accepted");
    let info = alice
        .wait_state(CallState::Prepared, CallStateReason::LocalCancelled)
        .await;
    assert_eq!(info.call_id, call_id);
    alice.wait_event(CallEvent::LocalCancelled).await;
    let info = bob
        .wait_state(CallState::Prepared, CallStateReason::RemoteCancelled)
        .await;
    assert_eq!(info.call_id, call_id);
    bob.wait_event(CallEvent::RemoteCancelled).await;

    // The withdrawn call cannot be picked up any more.
    let late = bob.api.accept_with_call_id(&call_id).await;
    assert_eq!(refusal(late), ErrorCode::NoSuchCall);
}

#[tokio::test]
async fn the_callee_rejects_with_a_reason_the_caller_is_shown() {
    let node = TestNode::start().await;
    let mut alice = SdkUser::prepared(&node, "alice", no_timeout()).await;
    let mut bob = SdkUser::prepared(&node, "bob", no_timeout()).await;
    let call_id = call(&mut alice, "bob").await;
    bob.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;

    bob.api
        .reject("alice", "on stage, call me later")
        .await
        .expect("reject accepted");
    let (why, info) = alice
        .wait_state_text(CallState::Prepared, CallStateReason::RemoteRejected)
        .await;
    assert_eq!(why, "on stage, call me later");
    assert_eq!(info.call_id, call_id);
    assert_eq!(
        alice.wait_event(CallEvent::RemoteRejected).await,
        "on stage, call me later"
    );
    let info = bob
        .wait_state(CallState::Prepared, CallStateReason::LocalRejected)
        .await;
    assert_eq!(info.call_id, call_id);
    bob.wait_event(CallEvent::LocalRejected).await;
    assert!(bob.api.get_call_id().is_none());
}

#[tokio::test]
async fn a_live_room_is_not_paused_for_calls_the_host_never_accepts() {
    const LIVE: &str = "host_live";
    let node = TestNode::start().await; // pauses at accept (the default)
    let mut host = SdkUser::prepared(&node, "host", no_timeout()).await;
    let mut viewer = SdkUser::prepared(&node, "viewer", no_timeout()).await;
    let mut fan = SdkUser::login(&node, "fan").await;
    host.join(LIVE, ChannelRole::Broadcaster).await;
    viewer.join(LIVE, ChannelRole::Audience).await;
    fan.join(LIVE, ChannelRole::Audience).await;

    // One call rejected, one cancelled while ringing.
    call(&mut viewer, "host").await;
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    host.api.reject("viewer", "not now").await.expect("reject");
    viewer
        .wait_state(CallState::Prepared, CallStateReason::RemoteRejected)
        .await;
    call(&mut viewer, "host").await;
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    viewer.api.cancel_call().await.expect("cancel");
    host.wait_state(CallState::Prepared, CallStateReason::RemoteCancelled)
        .await;

    // A latecomer walks in after both: the host is live, not paused...
    let latecomer = SdkUser::login(&node, "latecomer").await;
    let joined = latecomer.join(LIVE, ChannelRole::Audience).await;
    assert!(!joined.broadcaster_paused);
    assert_eq!(
        member(&joined, "host").publish_state,
        PublishState::Publishing as i32
    );
    // ...and everyone already in the room saw them arrive without a pause (or resume) before it. A pause for
    // either call would have reached the room before the latecomer's join, which came after both calls.
    for u in [&mut fan, &mut viewer, &mut host] {
        u.wait_channel(LIVE, |k| is_member_joined(k, "latecomer"))
            .await;
        let before: Vec<_> = u
            .channel_events(LIVE)
            .into_iter()
            .take_while(|k| !is_member_joined(k, "latecomer"))
            .filter(|k| is_paused(k, "host") || is_resumed(k, "host"))
            .collect();
        assert!(before.is_empty(), "{} saw {before:?}", u.id);
    }

    // The call the host accepts is the one that pauses the room, once, and resumes it at the end.
    connect(&mut viewer, &mut host).await;
    fan.wait_paused(LIVE, "host").await;
    viewer.api.hangup("", "").await.expect("hangup");
    fan.wait_resumed(LIVE, "host").await;
    let pauses = fan
        .channel_events(LIVE)
        .iter()
        .filter(|k| matches!(k, channel_event::Kind::BroadcasterPaused(_)))
        .count();
    assert_eq!(pauses, 1, "{:?}", fan.channel_events(LIVE));
}
