//! The calling timeout: one server timer per call, started when it rings and covering `calling` and
//! `connecting`. On expiry the caller sees callingTimeout and the callee remoteCallingTimeout; 0 turns it
//! off. Timeouts here are a few hundred milliseconds, set the way apps set them (PrepareForCall, or the
//! Call itself); the tests wait for the resulting events, and compare calls by which ends first.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use showcall_sdk::{
    CallEvent, CallState, CallStateReason, CallType, ChannelRole, ErrorCode, PrepareConfig,
    Recorded,
};
use showcall_tests::sdk_helpers::{SdkUser, refusal};
use showcall_tests::{JsonClient, TestNode};

/// A timeout for calls nobody answers.
const SHORT_MS: u32 = 300;
/// A timeout for calls that must get through an accept (and joins) first: long enough for those round
/// trips on a loaded machine, so the test cannot time out before the step it is about.
const ACCEPT_MS: u32 = 1000;

fn timeout(ms: u32) -> PrepareConfig {
    PrepareConfig {
        call_timeout_ms: Some(ms),
        ..PrepareConfig::default()
    }
}

async fn call(caller: &mut SdkUser, callee: &mut SdkUser) -> String {
    let created = caller
        .api
        .call(&callee.id, CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    caller
        .wait_state(CallState::Calling, CallStateReason::LocalVideoCall)
        .await;
    let ring = callee
        .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    assert_eq!(ring.call_id, created.call_id);
    created.call_id
}

/// Both sides of `call_id` end with the timeout reasons and events.
async fn assert_timed_out(caller: &mut SdkUser, callee: &mut SdkUser, call_id: &str) {
    let info = caller
        .wait_state(CallState::Prepared, CallStateReason::CallingTimeout)
        .await;
    assert_eq!(info.call_id, call_id);
    caller.wait_event(CallEvent::CallingTimeout).await;
    let info = callee
        .wait_state(CallState::Prepared, CallStateReason::RemoteCallingTimeout)
        .await;
    assert_eq!(info.call_id, call_id);
    callee.wait_event(CallEvent::RemoteCallingTimeout).await;
    for u in [caller, callee] {
        assert_eq!(u.api.state(), CallState::Prepared);
        assert!(u.api.get_call_id().is_none());
    }
}

#[tokio::test]
async fn an_unanswered_call_times_out_on_both_sides() {
    let node = TestNode::start().await;
    let mut alice = SdkUser::prepared(&node, "alice", timeout(SHORT_MS)).await;
    let mut bob = SdkUser::prepared(&node, "bob", PrepareConfig::default()).await;
    let call_id = call(&mut alice, &mut bob).await;

    assert_timed_out(&mut alice, &mut bob, &call_id).await;
    // Too late to pick it up.
    assert_eq!(
        refusal(bob.api.accept_with_call_id(&call_id).await),
        ErrorCode::NoSuchCall
    );
}

#[tokio::test]
async fn an_accepted_call_that_never_connects_times_out_and_the_room_resumes() {
    const LIVE: &str = "host_live";
    let node = TestNode::start().await;
    let mut host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let mut viewer = SdkUser::prepared(&node, "viewer", timeout(ACCEPT_MS)).await;
    let mut fan = SdkUser::login(&node, "fan").await;
    host.join(LIVE, ChannelRole::Broadcaster).await;
    fan.join(LIVE, ChannelRole::Audience).await;

    let call_id = call(&mut viewer, &mut host).await;
    host.api.accept("viewer").await.expect("accepted");
    viewer
        .wait_state(CallState::Connecting, CallStateReason::RemoteAccepted)
        .await;
    fan.wait_paused(LIVE, "host").await;
    // The viewer's app joins the call channel on `connecting`; the host's never does.
    viewer.api.join_call_channel().await.expect("viewer joins");

    assert_timed_out(&mut viewer, &mut host, &call_id).await;
    fan.wait_resumed(LIVE, "host").await;

    // A call that never connected is not reported as disconnected. Anything about the old call was sent
    // before the next call's first event, so placing another call bounds the wait.
    let next = call(&mut viewer, &mut host).await;
    assert_ne!(next, call_id);
    for u in [&viewer, &host] {
        assert!(
            !u.rec.seen().iter().any(|r| matches!(
                r,
                Recorded::Disconnected { .. } | Recorded::Connected { .. }
            )),
            "{} was told of a connection: {:?}",
            u.id,
            u.rec.seen()
        );
    }
}

#[tokio::test]
async fn a_call_with_timeout_zero_still_rings_after_a_timed_call_has_expired() {
    // The node default is short too, so a 0 misread as "use the default" would end the untimed call first.
    let node = TestNode::start_with(|c| c.call_timeout = Duration::from_millis(200)).await;
    let mut alice = SdkUser::prepared(&node, "alice", timeout(0)).await;
    let mut bob = SdkUser::prepared(&node, "bob", PrepareConfig::default()).await;
    let mut carol = SdkUser::prepared(&node, "carol", timeout(2 * SHORT_MS)).await;
    let mut dave = SdkUser::prepared(&node, "dave", PrepareConfig::default()).await;

    // Alice's untimed call rings first; Carol's timed call rings after it and expires.
    let untimed = call(&mut alice, &mut bob).await;
    let timed = call(&mut carol, &mut dave).await;
    assert_timed_out(&mut carol, &mut dave, &timed).await;

    // Alice's call is still ringing: Bob can take it, and it connects.
    bob.api.accept("alice").await.expect("still ringing");
    let info = alice
        .wait_state(CallState::Connecting, CallStateReason::RemoteAccepted)
        .await;
    assert_eq!(info.call_id, untimed);
    assert!(
        !alice
            .rec
            .seen()
            .iter()
            .any(|r| r.is_event(CallEvent::CallingTimeout)),
        "{:?}",
        alice.rec.seen()
    );
}

#[tokio::test]
async fn a_connected_call_outlives_its_calling_timeout() {
    let node = TestNode::start().await;
    // Alice's timeout only has to outlast connecting; Carol's, started after Alice connected, is longer,
    // so when it fires Alice's would have fired well before — had connecting not stopped it.
    let mut alice = SdkUser::prepared(&node, "alice", timeout(ACCEPT_MS)).await;
    let mut bob = SdkUser::prepared(&node, "bob", PrepareConfig::default()).await;
    let mut carol = SdkUser::prepared(&node, "carol", timeout(ACCEPT_MS + SHORT_MS)).await;
    let mut dave = SdkUser::prepared(&node, "dave", PrepareConfig::default()).await;

    let connected = call(&mut alice, &mut bob).await;
    bob.api.accept("alice").await.expect("accepted");
    alice
        .wait_state(CallState::Connecting, CallStateReason::RemoteAccepted)
        .await;
    alice.api.join_call_channel().await.expect("alice joins");
    bob.api.join_call_channel().await.expect("bob joins");
    for u in [&mut alice, &mut bob] {
        u.wait_state(CallState::Connected, CallStateReason::BothJoined)
            .await;
    }

    let timed = call(&mut carol, &mut dave).await;
    assert_timed_out(&mut carol, &mut dave, &timed).await;

    // Alice and Bob are still talking; the call ends when one of them hangs up.
    alice.api.hangup("bob", "").await.expect("still connected");
    let info = bob
        .wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
    assert_eq!(info.call_id, connected);
    for u in [&alice, &bob] {
        assert!(
            !u.rec
                .seen()
                .iter()
                .any(|r| r.is_event(CallEvent::CallingTimeout)
                    || r.is_event(CallEvent::RemoteCallingTimeout)),
            "{}: {:?}",
            u.id,
            u.rec.seen()
        );
    }
}

#[tokio::test]
async fn a_call_command_overrides_the_prepared_timeout() {
    let node = TestNode::start().await;
    let mut bob = SdkUser::prepared(&node, "bob", PrepareConfig::default()).await;
    // A browser prepared without a timeout, then sets one on this call only.
    let mut alice = JsonClient::login(&node.url(), &node.token("alice")).await;
    let r = alice
        .request(json!({ "prepareForCall": { "callTimeoutMs": 0 } }))
        .await;
    assert!(r.get("error").is_none(), "{r}");
    // CallAPI's onCallStateChanged(prepared), outside any call.
    let prepared = alice.wait_state("CALL_STATE_PREPARED").await;
    assert_eq!(prepared["callId"], serde_json::Value::Null, "{prepared}");
    let r = alice
        .request(json!({ "call": { "remoteUserId": "bob", "callTimeoutMs": SHORT_MS } }))
        .await;
    let call_id = r["callCreated"]["callId"]
        .as_str()
        .unwrap_or_else(|| panic!("call refused: {r}"))
        .to_owned();
    bob.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;

    let ended = alice.wait_state("CALL_STATE_PREPARED").await;
    assert_eq!(ended["reason"], "CALL_STATE_REASON_CALLING_TIMEOUT");
    assert_eq!(ended["callId"], call_id.as_str());
    let info = bob
        .wait_state(CallState::Prepared, CallStateReason::RemoteCallingTimeout)
        .await;
    assert_eq!(info.call_id, call_id);
}
