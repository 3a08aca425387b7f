//! A user's actor rests as state between its messages and runs when one comes, on tokio's paused
//! clock: what a client sees does not change — calls ring resting users, their token and grace timers
//! fire at the same times — only the node holds less for them.

mod support;

use showcall_machines::UserConfig;
use showcall_machines::user::{ClientEvent, CloseReason};
use showcall_protocol::events::EventKind;
use showcall_runtime::Hub;
use support::{Client, connected, hang_up, hub};

/// Waits until `n` users rest: a run gives its actor back right after the answer it sent.
async fn until_resting(hub: &Hub, n: usize) {
    for _ in 0..10_000 {
        if hub.users_resting() == n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{} users rest, not {n}", hub.users_resting());
}

#[tokio::test(start_paused = true)]
async fn resting_users_are_rung_connect_and_hang_up() {
    let hub = hub();
    let mut alice = Client::prepared(&hub, "alice").await;
    let mut bob = Client::prepared(&hub, "bob").await;
    until_resting(&hub, 2).await;
    assert_eq!(hub.users_online(), 2);

    // A command from the resting caller runs it; its ring runs the callee.
    let (call, _) = connected(&mut alice, &mut bob).await;
    until_resting(&hub, 2).await;
    assert_eq!(hub.calls_active(), 1, "a connected call's users rest too");
    hang_up(&mut alice, &mut bob, &call).await;
    assert_eq!(hub.users_online(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_resting_users_token_warning_and_expiry_come_on_time() {
    let hub = hub();
    let logged_in_at = hub.now_ms();
    let mut alice = Client::login(&hub, "alice", 60_000).await;
    until_resting(&hub, 1).await;

    loop {
        if let Some(ClientEvent::TokenWillExpire { .. }) = alice.next().await {
            break;
        }
    }
    let warning = UserConfig::default().token_warning_ms;
    assert_eq!(
        hub.now_ms() - logged_in_at,
        60_000 - warning,
        "warned on time"
    );
    assert_eq!(alice.until_closed().await, CloseReason::TokenExpired);
    assert_eq!(hub.now_ms() - logged_in_at, 60_000, "closed at expiry");
    assert_eq!(hub.users_online(), 0, "the session is over");
}

#[tokio::test(start_paused = true)]
async fn a_resting_dropped_session_ends_at_the_end_of_its_grace() {
    let hub = hub();
    let mut watch = hub.events().watch(None).expect("watch from the start");
    let alice = Client::prepared(&hub, "alice").await;
    let dropped_at = hub.now_ms();
    alice.session.connection_lost();
    until_resting(&hub, 1).await;
    assert_eq!(hub.users_online(), 1);

    use futures_util::StreamExt;
    loop {
        let next = watch
            .next()
            .await
            .expect("the log lives")
            .expect("no watch error");
        if let EventKind::UserOffline { user } = next.event.kind {
            assert_eq!(user.as_str(), "alice");
            break;
        }
    }
    assert_eq!(
        hub.now_ms() - dropped_at,
        UserConfig::default().grace_ms,
        "offline exactly at the end of the grace period"
    );
    assert_eq!(hub.users_online(), 0);
}
