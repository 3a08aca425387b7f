//! A host's live publication is paused for a 1v1 call — at the accept by default, as soon as the call rings
//! when configured — and resumed exactly once when the call ends, however it ends.

mod support;

use showcall_machines::call::Undeliverable;
use showcall_machines::{CallEffect, CallInput, CallMachine, PauseAt};
use support::{A, B, delivered, lines, must, setup, show};

fn live_effects(fx: &[CallEffect]) -> Vec<String> {
    let shown = show(fx);
    shown
        .into_iter()
        .filter(|l| l.starts_with("pause") || l.starts_with("resume"))
        .collect()
}

fn pausing_at_ringing() -> CallMachine {
    let mut s = setup();
    s.pause_at = PauseAt::Ringing;
    CallMachine::new(s, 0)
}

#[test]
fn by_default_a_call_pauses_both_hosts_at_the_accept_and_resumes_them_at_the_end() {
    let mut m = CallMachine::new(setup(), 0);
    assert_eq!(
        live_effects(&must(&mut m, CallInput::Start, 0)),
        Vec::<String>::new()
    );
    assert_eq!(
        live_effects(&must(&mut m, delivered(), 10)),
        Vec::<String>::new()
    );
    let accept = must(&mut m, CallInput::Accept { by: B.into() }, 20);
    assert_eq!(
        live_effects(&accept),
        lines("pause live-alice A; pause live-bob B")
    );
    let hangup = must(
        &mut m,
        CallInput::Hangup {
            by: A.into(),
            reason: String::new(),
        },
        30,
    );
    assert_eq!(
        live_effects(&hangup),
        lines("resume live-alice A; resume live-bob B")
    );
}

#[test]
fn a_rejected_or_missed_call_never_interrupts_the_live_room_by_default() {
    for end in [
        CallInput::Reject {
            by: B.into(),
            reason: "no".into(),
        },
        CallInput::Cancel { by: A.into() },
        CallInput::CallingTimeout,
    ] {
        let mut m = CallMachine::new(setup(), 0);
        let mut all = must(&mut m, CallInput::Start, 0);
        all.extend(must(&mut m, delivered(), 10));
        all.extend(must(&mut m, end.clone(), 20));
        assert_eq!(live_effects(&all), Vec::<String>::new(), "{end:?}");
    }
}

#[test]
fn configured_to_pause_at_ringing_each_host_pauses_when_it_learns_of_the_call() {
    let mut m = pausing_at_ringing();
    let start = must(&mut m, CallInput::Start, 0);
    assert_eq!(
        show(&start),
        lines(
            "open call-c1 for A B
            A state Calling LocalVideoCall; A event LocalVideoCall
            ring B; set timer at 15000; pause live-alice A"
        )
    );
    let ring = must(&mut m, delivered(), 10);
    assert_eq!(live_effects(&ring), lines("pause live-bob B"));
    // Already paused: the accept pauses nothing twice.
    let accept = must(&mut m, CallInput::Accept { by: B.into() }, 20);
    assert_eq!(live_effects(&accept), Vec::<String>::new());
    let end = must(
        &mut m,
        CallInput::Terminate {
            reason: "ops".into(),
        },
        30,
    );
    assert_eq!(
        live_effects(&end),
        lines("resume live-alice A; resume live-bob B")
    );
}

#[test]
fn paused_at_ringing_a_refused_or_unanswered_call_resumes_at_once() {
    let mut m = pausing_at_ringing();
    must(&mut m, CallInput::Start, 0);
    let busy = must(&mut m, CallInput::Undeliverable(Undeliverable::Busy), 5);
    assert_eq!(live_effects(&busy), lines("resume live-alice A"));

    let mut m = pausing_at_ringing();
    must(&mut m, CallInput::Start, 0);
    must(&mut m, delivered(), 10);
    let timeout = must(&mut m, CallInput::CallingTimeout, 15_000);
    assert_eq!(
        live_effects(&timeout),
        lines("resume live-alice A; resume live-bob B")
    );
}

#[test]
fn a_caller_who_is_not_live_anywhere_pauses_nothing() {
    let mut s = setup();
    s.caller_live.clear();
    let mut m = CallMachine::new(s, 0);
    must(&mut m, CallInput::Start, 0);
    let no_live = CallInput::Delivered {
        live_channels: vec![],
        extension: Default::default(),
        announced: false,
    };
    must(&mut m, no_live, 10);
    let accept = must(&mut m, CallInput::Accept { by: B.into() }, 20);
    assert_eq!(live_effects(&accept), Vec::<String>::new());
    let end = must(
        &mut m,
        CallInput::Hangup {
            by: B.into(),
            reason: String::new(),
        },
        30,
    );
    assert_eq!(live_effects(&end), Vec::<String>::new());
}

#[test]
fn a_host_live_in_two_rooms_is_paused_and_resumed_in_both() {
    let mut m = CallMachine::new(setup(), 0);
    must(&mut m, CallInput::Start, 0);
    let two = CallInput::Delivered {
        live_channels: vec!["live-bob".into(), "live-bob-2".into()],
        extension: Default::default(),
        announced: false,
    };
    must(&mut m, two, 10);
    let accept = must(&mut m, CallInput::Accept { by: B.into() }, 20);
    assert_eq!(
        live_effects(&accept),
        lines("pause live-alice A; pause live-bob B; pause live-bob-2 B")
    );
    let gone = CallInput::SessionEnded {
        user: A.into(),
        how: showcall_machines::call::SessionEnd::Gone,
    };
    let end = must(&mut m, gone, 30);
    assert_eq!(
        live_effects(&end),
        lines("resume live-alice A; resume live-bob B; resume live-bob-2 B")
    );
}
