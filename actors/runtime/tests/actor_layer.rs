//! The actor layer without sockets: a single-node [`Hub`] with its user, call and channel actors, clients
//! that are only their connection inboxes, and tokio's paused clock. Timeouts (calling, grace, token
//! expiry) are reached on virtual time — the runtime jumps to the next timer when every task waits — so
//! each story takes milliseconds, and its times are exact.

mod support;

use futures_util::StreamExt;
use showcall_machines::call::CallUpdate;
use showcall_machines::user::{ClientEvent, CloseReason, Prepared};
use showcall_machines::{CallEvent, CallState, StateReason, UserConfig};
use showcall_protocol::UserCommand;
use showcall_protocol::events::EventKind;
use support::{Client, STUCK, connected, hang_up, hub};

#[tokio::test(start_paused = true)]
async fn a_ring_nobody_answers_times_out_for_both_after_the_calling_timeout() {
    let hub = hub();
    let mut alice = Client::prepared(&hub, "alice").await;
    let mut bob = Client::prepared(&hub, "bob").await;
    let placed_at = hub.now_ms();
    let (call, _) = alice.call("bob").await;
    bob.state(CallState::Calling, StateReason::RemoteVideoCall)
        .await;

    let ended = alice
        .state(CallState::Prepared, StateReason::CallingTimeout)
        .await;
    assert_eq!(ended, call);
    bob.state(CallState::Prepared, StateReason::RemoteCallingTimeout)
        .await;
    let waited = hub.now_ms() - placed_at;
    let timeout = UserConfig::default().default_call_timeout_ms;
    assert!(
        (timeout..timeout + 100).contains(&waited),
        "the call ended {waited} ms after it was placed"
    );
    assert_eq!(hub.calls_active(), 0, "the call actor stopped");
}

#[tokio::test(start_paused = true)]
async fn a_call_to_a_user_not_logged_in_is_offline_at_once() {
    let hub = hub();
    let mut alice = Client::prepared(&hub, "alice").await;
    let placed_at = hub.now_ms();
    alice.call("nobody").await;
    alice
        .state(CallState::Prepared, StateReason::RemoteOffline)
        .await;
    assert_eq!(hub.now_ms(), placed_at, "no timer was waited for");
}

#[tokio::test(start_paused = true)]
async fn a_caller_gone_past_its_grace_ends_the_call_for_the_callee() {
    let hub = hub();
    let mut alice = Client::prepared(&hub, "alice").await;
    let mut bob = Client::prepared(&hub, "bob").await;
    let (call, _) = connected(&mut alice, &mut bob).await;

    let dropped_at = hub.now_ms();
    alice.session.connection_lost();
    bob.event(CallEvent::RemoteLeft).await;
    let ended = bob
        .state(CallState::Prepared, StateReason::RemoteLeft)
        .await;
    assert_eq!(ended, call);
    let waited = hub.now_ms() - dropped_at;
    let grace = UserConfig::default().grace_ms;
    assert!(
        (grace..grace + 100).contains(&waited),
        "ended {waited} ms after the drop"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_expiring_in_a_call_ends_it_for_its_user_first_then_closes_the_session() {
    let hub = hub();
    let mut alice = Client::login(&hub, "alice", 60_000).await;
    alice
        .command(UserCommand::Prepare(Prepared::default()))
        .await;
    let mut bob = Client::prepared(&hub, "bob").await;
    let (call, _) = connected(&mut alice, &mut bob).await;

    assert_eq!(alice.until_closed().await, CloseReason::TokenExpired);
    let ends: Vec<String> = alice
        .seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Call {
                call_id,
                update: CallUpdate::State { state, reason, .. },
            } if *call_id == call && *state == CallState::Prepared => Some(format!("{reason:?}")),
            ClientEvent::Call {
                update: CallUpdate::Disconnected { .. },
                ..
            } => Some("disconnected".into()),
            ClientEvent::SessionClosed { reason } => Some(format!("closed {reason:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        ["TokenExpired", "disconnected", "closed TokenExpired"]
    );
    bob.state(CallState::Prepared, StateReason::RemoteLoggedOut)
        .await;
}

#[tokio::test(start_paused = true)]
async fn the_business_events_tell_a_calls_story_in_order() {
    let hub = hub();
    let mut watch = hub.events().watch(None).expect("watch from the start");
    let mut alice = Client::prepared(&hub, "alice").await;
    let mut bob = Client::prepared(&hub, "bob").await;
    let (call, _) = connected(&mut alice, &mut bob).await;
    hang_up(&mut alice, &mut bob, &call).await;

    let mut story = Vec::new();
    while !story.iter().any(|s: &String| s.starts_with("ended")) {
        let next = tokio::time::timeout(STUCK, watch.next())
            .await
            .expect("the events came")
            .expect("the log lives")
            .expect("no watch error");
        let line = match next.event.kind {
            EventKind::CallCreated { call: c, .. } if c == call => "created".to_owned(),
            EventKind::CallRinging { call: c } if c == call => "ringing".to_owned(),
            EventKind::CallAccepted { call: c } if c == call => "accepted".to_owned(),
            EventKind::CallConnected { call: c } if c == call => "connected".to_owned(),
            EventKind::CallEnded { record } if record.id == call => {
                format!("ended after {} ms connected", record.connected_ms)
            }
            _ => continue,
        };
        story.push(line);
    }
    assert_eq!(
        story,
        [
            "created",
            "ringing",
            "accepted",
            "connected",
            "ended after 0 ms connected"
        ]
    );
}
