//! A connected call restored on a new node from its snapshot (the node running it died): it goes on when
//! both parties and its channel still hold it, and ends exactly once with `endedByServer` and an accurate
//! duration when any of them does not, or does not answer in time.

mod support;

use showcall_machines::call::ADOPTION_TIMEOUT_MS;
use showcall_machines::{
    CallEffect, CallError, CallInput, CallMachine, CallSnapshot, CallState, Millis, Side,
};
use support::{A, B, delivered, lines, must, setup, show};

const T_CONNECT: Millis = 3_000;
/// When the new owner restores the call.
const T_RESTORE: Millis = 9_000;

fn join(user: &str) -> CallInput {
    CallInput::ChannelJoined {
        user: user.into(),
        media: false,
    }
}

/// A call connected at 3 s, and the snapshot it asked to persist then.
fn connected() -> (CallMachine, CallSnapshot) {
    let mut m = CallMachine::new(setup(), 1_000);
    must(&mut m, CallInput::Start, 1_000);
    assert_eq!(m.snapshot(), None, "nothing to persist while ringing");
    must(&mut m, delivered(), 1_100);
    must(&mut m, CallInput::Accept { by: B.into() }, 2_000);
    assert_eq!(m.snapshot(), None, "nothing to persist while connecting");
    must(&mut m, join(A), 2_500);
    let fx = must(&mut m, join(B), T_CONNECT);
    let mut persisted: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            CallEffect::Persist(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(persisted.len(), 1, "connecting persists the snapshot once");
    assert_eq!(Some(persisted[0].clone()), m.snapshot());
    (m, persisted.remove(0))
}

/// The snapshot restored on a new node, after it asked its holders.
fn adopting() -> CallMachine {
    let (_, snapshot) = connected();
    // The record travels as JSON through etcd.
    let json = serde_json::to_string(&snapshot).expect("serializes");
    let snapshot: CallSnapshot = serde_json::from_str(&json).expect("deserializes");
    let mut m = CallMachine::restore(snapshot);
    assert!(m.is_adopting());
    let fx = must(&mut m, CallInput::Adopt, T_RESTORE);
    assert_eq!(
        show(&fx),
        lines(&format!(
            "ask A; ask B; ask call-c1; set timer at {}",
            T_RESTORE + ADOPTION_TIMEOUT_MS
        ))
    );
    m
}

fn present(user: &str, present: bool) -> CallInput {
    CallInput::PartyPresent {
        user: user.into(),
        present,
    }
}

#[test]
fn a_restored_call_is_connected_for_both_parties_with_its_original_times() {
    let (original, _) = connected();
    let m = adopting();
    for side in [Side::Caller, Side::Callee] {
        assert_eq!(m.state_of(side), CallState::Connected);
        assert_eq!(m.info_for(side), original.info_for(side));
    }
}

#[test]
fn when_both_parties_and_the_channel_answer_the_call_goes_on_unseen() {
    let mut m = adopting();
    assert_eq!(show(&must(&mut m, present(A, true), 9_100)), lines(""));
    assert_eq!(
        show(&must(
            &mut m,
            CallInput::ChannelPresent { present: true },
            9_200
        )),
        lines("")
    );
    assert_eq!(
        show(&must(&mut m, present(B, true), 9_300)),
        lines("cancel timer"),
        "the last answer settles it; the parties are told nothing"
    );
    assert!(!m.is_adopting());
    // A late timer or answer is refused: the adoption is over.
    assert!(matches!(
        m.handle(CallInput::AdoptionTimeout, 14_000),
        Err(CallError::Unexpected { .. })
    ));
    assert!(matches!(
        m.handle(present(A, false), 14_000),
        Err(CallError::Unexpected { .. })
    ));
    // It hangs up as usual; the duration counts from the original connect.
    let fx = must(
        &mut m,
        CallInput::Hangup {
            by: A.into(),
            reason: "bye".into(),
        },
        20_000,
    );
    assert_eq!(
        show(&fx),
        lines(
            "A state Prepared LocalHangup; A event LocalHangup; A disconnected by A after 17000
             B state Prepared RemoteHangup; B event RemoteHangup; B disconnected by A after 17000
             resume live-alice A; resume live-bob B; close call-c1
             ended hangup by A (bye) after 17000"
        )
    );
}

const LOST: &str = "cancel timer
    A state Prepared EndedByServer; A disconnected by - after 7000
    B state Prepared EndedByServer; B disconnected by - after 7000
    resume live-alice A; resume live-bob B; close call-c1
    ended node lost after 7000";

#[test]
fn a_party_that_no_longer_holds_the_call_ends_it_for_both_exactly_once() {
    for absent in [A, B] {
        let mut m = adopting();
        must(&mut m, CallInput::ChannelPresent { present: true }, 9_500);
        assert_eq!(
            show(&must(&mut m, present(absent, false), 10_000)),
            lines(LOST)
        );
        assert!(m.is_ended());
        assert_eq!(
            m.handle(CallInput::AdoptionTimeout, 14_000),
            Err(CallError::Ended),
            "ends once"
        );
    }
}

#[test]
fn a_lost_channel_ends_the_call() {
    let mut m = adopting();
    must(&mut m, present(A, true), 9_500);
    let fx = must(&mut m, CallInput::ChannelPresent { present: false }, 10_000);
    assert_eq!(show(&fx), lines(LOST));
}

#[test]
fn holders_that_do_not_answer_in_time_end_the_call() {
    let mut m = adopting();
    must(&mut m, present(A, true), 9_500);
    must(&mut m, present(B, true), 9_600);
    let fx = must(&mut m, CallInput::AdoptionTimeout, 10_000);
    assert_eq!(show(&fx), lines(LOST));
}

#[test]
fn a_hangup_during_the_adoption_ends_the_call_and_its_adoption() {
    let mut m = adopting();
    let fx = must(
        &mut m,
        CallInput::Hangup {
            by: B.into(),
            reason: "bye".into(),
        },
        10_000,
    );
    assert_eq!(
        show(&fx),
        lines(
            "cancel timer
             A state Prepared RemoteHangup; A event RemoteHangup; A disconnected by B after 7000
             B state Prepared LocalHangup; B event LocalHangup; B disconnected by B after 7000
             resume live-alice A; resume live-bob B; close call-c1
             ended hangup by B (bye) after 7000"
        )
    );
}

#[test]
fn adopt_is_refused_twice_and_on_a_call_that_was_not_restored() {
    let mut m = adopting();
    assert!(matches!(
        m.handle(CallInput::Adopt, 9_100),
        Err(CallError::Unexpected { input: "adopt", .. })
    ));
    let (mut original, _) = connected();
    assert!(matches!(
        original.handle(CallInput::Adopt, 9_100),
        Err(CallError::Unexpected { input: "adopt", .. })
    ));
}
