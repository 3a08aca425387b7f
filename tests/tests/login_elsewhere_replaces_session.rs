//! One connection per user: logging in again from another connection (another device, a restarted app
//! whose old socket is still open) takes the session over. The first connection is told SessionClosed
//! REPLACED and closed; the session — its call included — goes on on the new connection, and the peer
//! notices nothing.

use showcall_sdk::proto::event;
use showcall_sdk::{CallEvent, CallState, Event, Recorded, SdkError, SessionCloseReason};
use showcall_tests::TestNode;
use showcall_tests::grace_helpers::{Party, connect_call, connected_then_hung_up, hang_up};

fn closed_reason(e: &Event) -> Option<SessionCloseReason> {
    match &e.kind {
        Some(event::Kind::SessionClosed(c)) => SessionCloseReason::try_from(c.reason).ok(),
        _ => None,
    }
}

#[tokio::test]
async fn a_second_login_replaces_the_first_and_keeps_the_call() {
    let node = TestNode::start().await;
    let mut viewer = Party::prepared(&node, "viewer").await;
    let mut first = Party::prepared(&node, "host").await;
    let call = connect_call(&mut viewer, &mut first).await;
    let id = call.call_id.as_str();

    let mut second = Party::login(&node, "host").await;

    // The first connection is told why, then closed.
    let closed = first.wait_event(|e| closed_reason(e).is_some()).await;
    assert_eq!(
        closed_reason(&closed),
        Some(SessionCloseReason::Replaced),
        "{closed:?}"
    );
    first
        .rec
        .wait_for(|r| {
            matches!(
                r,
                Recorded::SessionClosed {
                    reason: SessionCloseReason::Replaced,
                    ..
                }
            )
        })
        .await;
    first
        .rec
        .wait_for(|r| matches!(r, Recorded::SignalDisconnected { .. }))
        .await;
    assert_eq!(first.signal.ping().await, Err(SdkError::Disconnected));

    // The second connection carries the session over, call included.
    assert!(second.login.resumed, "{:?}", second.login);
    let snapshot = second.login.call.clone().expect("the session's call");
    assert_eq!(
        (snapshot.call_id.as_str(), snapshot.state),
        (id, CallState::Connected as i32)
    );
    assert_eq!(second.api.get_call_id().as_deref(), Some(id));

    hang_up(&mut second, &mut viewer, id).await;
    assert_eq!(
        second.states_of(id),
        [(
            CallState::Prepared,
            showcall_sdk::CallStateReason::LocalHangup
        )]
    );
    assert_eq!(viewer.states_of(id), connected_then_hung_up(true, false));
    // The takeover was not a drop: the viewer never heard its peer leave or come back.
    let presence: Vec<_> = viewer
        .log
        .iter()
        .filter(|e| {
            matches!(&e.kind, Some(event::Kind::CallEventChanged(c))
                if c.event == CallEvent::RemoteLeft as i32 || c.event == CallEvent::RemoteReconnected as i32)
        })
        .collect();
    assert!(presence.is_empty(), "{presence:#?}");
    // And the new connection is fully the user's: it can call.
    let next = second.call("viewer").await;
    viewer.wait_state(&next.call_id, CallState::Calling).await;
}

#[tokio::test]
async fn a_replaced_connection_does_not_start_a_grace_period() {
    let node =
        TestNode::start_with(|c| c.grace_period = std::time::Duration::from_millis(300)).await;
    let mut viewer = Party::prepared(&node, "viewer").await;
    let mut first = Party::prepared(&node, "host").await;
    let call = connect_call(&mut viewer, &mut first).await;
    let id = call.call_id.as_str();

    let mut second = Party::login(&node, "host").await;
    first
        .rec
        .wait_for(|r| matches!(r, Recorded::SignalDisconnected { .. }))
        .await;

    // Well past the (short) grace period of a drop — observed by a drop that did end its call — the
    // replaced connection's end has not ended the host's call.
    let mut witness = Party::prepared(&node, "witness").await;
    let mut witness_peer = Party::prepared(&node, "witness-peer").await;
    let w = connect_call(&mut witness, &mut witness_peer).await;
    witness.signal.abort();
    witness_peer
        .wait_state(&w.call_id, CallState::Prepared)
        .await;

    hang_up(&mut viewer, &mut second, id).await;
    assert_eq!(viewer.states_of(id), connected_then_hung_up(true, true));
}
