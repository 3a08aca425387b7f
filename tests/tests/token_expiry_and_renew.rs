//! Token lifetime: a session is warned before its token expires; renewing keeps the session (and its call)
//! past the old deadline; a session that does not renew is closed with TOKEN_EXPIRED and its call ends for
//! both parties (the expiring one hears `tokenExpired` and the disconnect before its session closes); expired
//! tokens are refused at login, and a renewal must name the same user.
//!
//! Deadlines are observed, never slept through: "the old deadline has passed" is known because a witness
//! session, whose token was minted after the renewed one with a longer life, has itself expired.

use std::time::Duration;

use showcall_auth::TokenIssuer;
use showcall_node::config::NodeConfig;
use showcall_sdk::proto::event;
use showcall_sdk::{
    CallEvent, CallState, CallStateReason as R, ErrorCode, Event, Recorded, SessionCloseReason,
};
use showcall_tests::grace_helpers::{
    Party, connect_call, connected_then_hung_up, hang_up, refusal,
};
use showcall_tests::{TestNode, full_grants, now_secs};

/// How long before expiry sessions are warned.
const WARNING: Duration = Duration::from_secs(2);

async fn node() -> TestNode {
    TestNode::start_with(|c| c.token_expiry_warning = WARNING).await
}

fn short_token(node: &TestNode, user: &str, ttl_secs: u64) -> String {
    node.token_with(user, Duration::from_secs(ttl_secs), full_grants())
}

fn is_warning(e: &Event) -> bool {
    matches!(e.kind, Some(event::Kind::TokenWillExpire(_)))
}

fn closed_reason(e: &Event) -> Option<SessionCloseReason> {
    match &e.kind {
        Some(event::Kind::SessionClosed(c)) => SessionCloseReason::try_from(c.reason).ok(),
        _ => None,
    }
}

/// Waits until the session is closed by the server for its token, then until the connection is gone.
async fn wait_expired(p: &mut Party) {
    let closed = p.wait_event(|e| closed_reason(e).is_some()).await;
    assert_eq!(
        closed_reason(&closed),
        Some(SessionCloseReason::TokenExpired),
        "{closed:?}"
    );
    p.rec
        .wait_for(|r| matches!(r, Recorded::SignalDisconnected { .. }))
        .await;
}

#[tokio::test]
async fn a_renewed_session_and_its_call_outlive_the_first_token() {
    let node = node().await;
    let mut renewer = Party::login_with(&node, "renewer", &short_token(&node, "renewer", 4)).await;
    // Minted after the renewer's and living a second longer: its expiry comes after the renewer's first one.
    let mut witness = Party::login_with(&node, "witness", &short_token(&node, "witness", 5)).await;
    assert!(witness.login.token_expires_at_ms > renewer.login.token_expires_at_ms);
    renewer.prepare().await;
    let mut peer = Party::prepared(&node, "peer").await;
    let call = connect_call(&mut renewer, &mut peer).await;

    // onTokenPrivilegeWillExpire, for the token the session logged in with.
    let warning = renewer.wait_event(is_warning).await;
    let Some(event::Kind::TokenWillExpire(w)) = warning.kind else {
        unreachable!("matched a warning")
    };
    assert_eq!(w.expires_at_ms, renewer.login.token_expires_at_ms);
    renewer
        .rec
        .wait_for(|r| matches!(r, Recorded::TokenWillExpire { expires_at_ms } if *expires_at_ms == w.expires_at_ms))
        .await;
    renewer
        .rec
        .wait_for(|r| matches!(r, Recorded::CallTokenWillExpire))
        .await;

    renewer
        .signal
        .renew_token(&node.token("renewer"))
        .await
        .expect("renewing with a fresh token of the same user");

    // The witness does not renew: once it is closed, the renewer's first deadline is behind us.
    witness.wait_event(is_warning).await;
    wait_expired(&mut witness).await;

    // Same connection, same session, same call: still connected, and it ends only when hung up.
    renewer.ping().await;
    hang_up(&mut renewer, &mut peer, &call.call_id).await;
    assert_eq!(
        renewer.states_of(&call.call_id),
        connected_then_hung_up(true, true)
    );
    assert_eq!(
        peer.states_of(&call.call_id),
        connected_then_hung_up(false, false)
    );
    // And it can make a new call.
    let next = renewer.call("peer").await;
    peer.wait_state(&next.call_id, CallState::Calling).await;
    renewer.api.cancel_call().await.expect("cancel");
    peer.wait_state(&next.call_id, CallState::Prepared).await;

    renewer.ping().await;
    renewer.drain_ready();
    let warnings = renewer.log.iter().filter(|e| is_warning(e)).count();
    assert_eq!(
        warnings, 1,
        "one warning for the first token, none yet for the renewed one"
    );
    let closed: Vec<_> = renewer.log.iter().filter_map(closed_reason).collect();
    assert!(
        closed.is_empty(),
        "the renewed session was closed: {closed:?}"
    );
    assert!(renewer.signal.is_connected());
}

#[tokio::test]
async fn an_unrenewed_session_is_closed_and_its_call_ends_for_the_peer() {
    let node = node().await;
    let token = short_token(&node, "expirer", 4);
    let mut expirer = Party::login_with(&node, "expirer", &token).await;
    let deadline = expirer.login.token_expires_at_ms;
    expirer.prepare().await;
    let mut peer = Party::prepared(&node, "peer").await;
    let call = connect_call(&mut expirer, &mut peer).await;
    let id = call.call_id.as_str();

    expirer.wait_event(is_warning).await;
    // A renewal naming another user is refused and changes nothing: the first deadline still holds.
    let r = expirer.signal.renew_token(&node.token("mallory")).await;
    assert_eq!(
        refusal("renew with another user's token", r),
        ErrorCode::TokenInvalid
    );
    wait_expired(&mut expirer).await;
    assert!(!expirer.signal.is_connected());

    // The expiring user hears its own call end first: `prepared` with tokenExpired (105), then the
    // disconnect, then the session's close.
    let mut expected = connected_then_hung_up(true, true);
    *expected.last_mut().expect("non-empty") = (CallState::Prepared, R::TokenExpired);
    assert_eq!(expirer.states_of(id), expected);
    let own = expirer.log.iter().find_map(|e| match &e.kind {
        Some(event::Kind::CallDisconnected(d)) if d.call_id == id => Some(d.clone()),
        _ => None,
    });
    let own = own.expect("the expiring user heard its call disconnect");
    assert_eq!(own.hangup_user_id, "expirer");
    let order: Vec<&str> = expirer
        .log
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::CallStateChanged(c)) if c.reason == R::TokenExpired as i32 => {
                Some("ended")
            }
            Some(event::Kind::CallDisconnected(_)) => Some("disconnected"),
            Some(event::Kind::SessionClosed(_)) => Some("closed"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["ended", "disconnected", "closed"]);

    // The peer's call ends with the expired session's user named.
    let ended = peer.wait_state(id, CallState::Prepared).await;
    assert_eq!(ended.reason, R::RemoteLoggedOut as i32, "{ended:?}");
    assert_eq!(ended.event_reason, "peer's session expired");
    peer.wait_call_event(id, CallEvent::RemoteLeft).await;
    let d = peer.wait_disconnected(id).await;
    assert_eq!(d.hangup_user_id, "expirer");
    let mut expected = connected_then_hung_up(false, false);
    *expected.last_mut().expect("non-empty") = (CallState::Prepared, R::RemoteLoggedOut);
    assert_eq!(peer.states_of(id), expected);

    // The token is dead: logging in with it again is refused; a fresh token starts a fresh session.
    expirer.signal.reconnect().await.expect("reconnect");
    let r = expirer.signal.login(&token).await;
    assert_eq!(
        refusal("login with the expired token", r),
        ErrorCode::TokenExpired
    );
    let fresh = expirer
        .signal
        .login(&node.token("expirer"))
        .await
        .expect("fresh login");
    assert!(!fresh.resumed, "an expired session is not resumed");
    assert!(fresh.call.is_none());
    assert!(fresh.token_expires_at_ms > deadline);
}

#[tokio::test]
async fn an_expired_token_is_refused_at_login_and_nothing_is_opened() {
    let node = node().await;
    // Minted two minutes ago for one minute, with the node's own (default) app secret.
    let keys = NodeConfig::default().app_keys();
    let (expired, _) = TokenIssuer::mint(
        &keys,
        node.app(),
        "late",
        Duration::from_secs(60),
        full_grants(),
        now_secs() - 120,
    )
    .expect("mint");
    let late = showcall_sdk::SignalClient::connect(&node.url())
        .await
        .expect("connects");
    let r = late.login(&expired).await;
    assert_eq!(
        refusal("login with an expired token", r),
        ErrorCode::TokenExpired
    );
    // Nothing was opened for the user: a call to it finds it offline, and its next login is fresh.
    let mut caller = Party::prepared(&node, "caller").await;
    let created = caller.call("late").await;
    let ended = caller
        .wait_state(&created.call_id, CallState::Prepared)
        .await;
    assert_eq!(ended.reason, R::RemoteOffline as i32, "{ended:?}");
    let info = late
        .login(&node.token("late"))
        .await
        .expect("a valid token");
    assert!(!info.resumed);
}

#[tokio::test]
async fn renewing_needs_a_valid_token_of_the_same_user() {
    let node = node().await;
    let mut user = Party::prepared(&node, "user").await;
    let mut other = Party::prepared(&node, "other").await;

    let r = user.signal.renew_token(&node.token("other")).await;
    assert_eq!(
        refusal("renew with another user's token", r),
        ErrorCode::TokenInvalid
    );
    let r = user.signal.renew_token("not.a.token").await;
    assert_eq!(refusal("renew with garbage", r), ErrorCode::TokenInvalid);
    let keys = NodeConfig::default().app_keys();
    let (expired, _) = TokenIssuer::mint(
        &keys,
        node.app(),
        "user",
        Duration::from_secs(60),
        full_grants(),
        now_secs() - 120,
    )
    .expect("mint");
    let r = user.signal.renew_token(&expired).await;
    assert_eq!(
        refusal("renew with an expired token", r),
        ErrorCode::TokenExpired
    );

    // Still "user", on the same connection: a call from it names it as the caller.
    let created = user.call("other").await;
    let ring = other.wait_state(&created.call_id, CallState::Calling).await;
    assert_eq!(ring.event_info.expect("info").from_user_id, "user");
    user.api.cancel_call().await.expect("cancel");
    user.wait_state(&created.call_id, CallState::Prepared).await;
}
