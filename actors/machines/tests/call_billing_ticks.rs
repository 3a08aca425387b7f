//! Billing ticks: a connected call ticks every period, counted and timed from its connect, so the business
//! server can charge per minute. The end cancels the tick; a call restored on a new node ticks on aligned
//! to its original connect.

mod support;

use showcall_machines::{CallEffect, CallInput, CallMachine, CallSetup, CallTimer, Millis};
use support::{A, B, delivered, must, setup};

const T_CONNECT: Millis = 3_000;
const MINUTE: u64 = 60_000;

fn ticking() -> CallSetup {
    CallSetup {
        billing_tick_ms: Some(MINUTE),
        ..setup()
    }
}

fn join(user: &str) -> CallInput {
    CallInput::ChannelJoined {
        user: user.into(),
        media: false,
    }
}

/// A call connected at `T_CONNECT`, and the effects of its connect.
fn connected(setup: CallSetup) -> (CallMachine, Vec<CallEffect>) {
    let mut m = CallMachine::new(setup, 1_000);
    must(&mut m, CallInput::Start, 1_000);
    must(&mut m, delivered(), 1_100);
    must(&mut m, CallInput::Accept { by: B.into() }, 2_000);
    must(&mut m, join(A), 2_500);
    let fx = must(&mut m, join(B), T_CONNECT);
    (m, fx)
}

fn timers(fx: &[CallEffect]) -> Vec<(CallTimer, Option<u64>)> {
    fx.iter()
        .filter_map(|e| match e {
            CallEffect::SetTimer { timer, at } => Some((*timer, Some(*at))),
            CallEffect::CancelTimer { timer } => Some((*timer, None)),
            _ => None,
        })
        .collect()
}

fn ticks(fx: &[CallEffect]) -> Vec<(u64, u64)> {
    fx.iter()
        .filter_map(|e| match e {
            CallEffect::BillingTick { tick, connected_ms } => Some((*tick, *connected_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_connected_call_ticks_every_period_counted_from_its_connect() {
    let (mut m, fx) = connected(ticking());
    assert!(
        timers(&fx).contains(&(CallTimer::BillingTick, Some(T_CONNECT + MINUTE))),
        "the first tick is due a period after the connect: {fx:?}"
    );
    // The timer fires 40 ms late: the tick says how long the call has been connected, and the next one is
    // due at its own mark, not a period after this late one.
    let fx = must(&mut m, CallInput::BillingTick, T_CONNECT + MINUTE + 40);
    assert_eq!(ticks(&fx), vec![(1, MINUTE + 40)]);
    assert_eq!(
        timers(&fx),
        vec![(CallTimer::BillingTick, Some(T_CONNECT + 2 * MINUTE))]
    );
    let fx = must(&mut m, CallInput::BillingTick, T_CONNECT + 2 * MINUTE);
    assert_eq!(ticks(&fx), vec![(2, 2 * MINUTE)]);

    let hangup = CallInput::Hangup {
        by: A.into(),
        reason: "bye".into(),
    };
    let fx = must(&mut m, hangup, T_CONNECT + 2 * MINUTE + 500);
    assert!(
        timers(&fx).contains(&(CallTimer::BillingTick, None)),
        "the end cancels the tick: {fx:?}"
    );
    assert!(ticks(&fx).is_empty());
    assert!(
        m.handle(CallInput::BillingTick, T_CONNECT + 3 * MINUTE)
            .is_err(),
        "no tick after the end"
    );
}

#[test]
fn without_a_period_there_are_no_ticks() {
    let (mut m, fx) = connected(setup());
    assert!(
        !timers(&fx)
            .iter()
            .any(|(t, _)| *t == CallTimer::BillingTick),
        "{fx:?}"
    );
    assert!(
        m.handle(CallInput::BillingTick, T_CONNECT + MINUTE)
            .is_err()
    );
    let zero = CallSetup {
        billing_tick_ms: Some(0),
        ..setup()
    };
    let (_, fx) = connected(zero);
    assert!(
        !timers(&fx)
            .iter()
            .any(|(t, _)| *t == CallTimer::BillingTick),
        "a zero period is off: {fx:?}"
    );
}

#[test]
fn a_call_that_never_connected_never_ticks() {
    let mut m = CallMachine::new(ticking(), 1_000);
    must(&mut m, CallInput::Start, 1_000);
    assert!(m.handle(CallInput::BillingTick, 61_000).is_err());
    must(&mut m, delivered(), 1_100);
    let fx = must(&mut m, CallInput::Cancel { by: A.into() }, 2_000);
    assert!(
        !timers(&fx)
            .iter()
            .any(|(t, _)| *t == CallTimer::BillingTick),
        "nothing to cancel: {fx:?}"
    );
}

#[test]
fn a_restored_call_ticks_on_aligned_to_its_original_connect() {
    let (mut m, _) = connected(ticking());
    must(&mut m, CallInput::BillingTick, T_CONNECT + MINUTE);
    let snapshot = m.snapshot().expect("connected");
    // Its node dies after tick 1; the new owner restores it 2.5 periods after the connect. Tick 2's mark
    // passed while the call had no node: it is not sent again (the old node may have sent it).
    let mut restored = CallMachine::restore(snapshot);
    let now = T_CONNECT + 2 * MINUTE + MINUTE / 2;
    let fx = must(&mut restored, CallInput::Adopt, now);
    assert!(
        timers(&fx).contains(&(CallTimer::BillingTick, Some(T_CONNECT + 3 * MINUTE))),
        "the next tick is due at its own mark: {fx:?}"
    );
    let fx = must(
        &mut restored,
        CallInput::BillingTick,
        T_CONNECT + 3 * MINUTE,
    );
    assert_eq!(
        ticks(&fx),
        vec![(3, 3 * MINUTE)],
        "numbered from the original connect"
    );
}
