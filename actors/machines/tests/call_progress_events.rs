//! The milestones a call reports to the business server (`CallEffect::Progress`): created, ringing,
//! accepted, connected — each once, in that order, in the step that reached it; the end is the record.

mod support;

use showcall_machines::call::{CallMachine, CallProgress, Undeliverable};
use showcall_machines::{CallEffect, CallInput, Millis};
use support::{A, B, admission_setup, delivered, must, setup};

use CallProgress::{Accepted, Connected, Created, Ringing};

fn progress(fx: &[CallEffect]) -> Vec<CallProgress> {
    let milestones = fx.iter().filter_map(|e| match e {
        CallEffect::Progress(p) => Some(*p),
        _ => None,
    });
    milestones.collect()
}

fn ended(fx: &[CallEffect]) -> bool {
    fx.iter().any(|e| matches!(e, CallEffect::Ended(_)))
}

fn join(user: &str) -> CallInput {
    CallInput::ChannelJoined {
        user: user.into(),
        media: false,
    }
}

/// Feeds the inputs in order (one per second); the milestones of each step.
fn steps(m: &mut CallMachine, inputs: Vec<CallInput>) -> Vec<Vec<CallProgress>> {
    let mut now: Millis = 1_000;
    inputs
        .into_iter()
        .map(|input| {
            now += 1_000;
            progress(&must(m, input, now))
        })
        .collect()
}

#[test]
fn a_call_reports_each_milestone_once_in_the_step_that_reached_it() {
    let mut m = CallMachine::new(setup(), 1_000);
    let seen = steps(
        &mut m,
        vec![
            CallInput::Start,
            delivered(),
            CallInput::Accept { by: B.into() },
            join(A),
            join(B),
            CallInput::Hangup {
                by: A.into(),
                reason: "bye".into(),
            },
        ],
    );
    assert_eq!(
        seen,
        vec![
            vec![Created],
            vec![Ringing],
            vec![Accepted],
            vec![],
            vec![Connected],
            vec![]
        ]
    );
}

#[test]
fn an_accept_with_both_already_in_the_channel_is_accepted_and_connected_in_one_step() {
    let mut m = CallMachine::new(setup(), 1_000);
    let seen = steps(
        &mut m,
        vec![
            CallInput::Start,
            delivered(),
            join(A),
            join(B),
            CallInput::Accept { by: B.into() },
        ],
    );
    assert_eq!(seen.last(), Some(&vec![Accepted, Connected]));
}

#[test]
fn a_call_that_never_rang_reports_only_its_creation() {
    let mut m = CallMachine::new(setup(), 1_000);
    let start = must(&mut m, CallInput::Start, 1_000);
    let offline = must(
        &mut m,
        CallInput::Undeliverable(Undeliverable::Offline),
        1_100,
    );
    assert_eq!(progress(&start), vec![Created]);
    assert_eq!(progress(&offline), vec![]);
    assert!(ended(&offline));
}

#[test]
fn a_call_waiting_for_admission_is_created_at_once_and_rings_once_allowed_and_delivered() {
    let mut m = CallMachine::new(admission_setup(), 1_000);
    let seen = steps(
        &mut m,
        vec![
            CallInput::Start,
            CallInput::Authorized {
                allowed: true,
                reason: String::new(),
            },
            delivered(),
        ],
    );
    assert_eq!(seen, vec![vec![Created], vec![], vec![Ringing]]);
}

#[test]
fn a_refused_call_is_created_and_ends_without_ringing() {
    let mut m = CallMachine::new(admission_setup(), 1_000);
    must(&mut m, CallInput::Start, 1_000);
    let refused = must(
        &mut m,
        CallInput::Authorized {
            allowed: false,
            reason: "no balance".into(),
        },
        1_500,
    );
    assert_eq!(progress(&refused), vec![]);
    assert!(ended(&refused));
}

#[test]
fn a_call_restored_on_another_node_reports_no_milestone_again() {
    let mut m = CallMachine::new(setup(), 1_000);
    steps(
        &mut m,
        vec![
            CallInput::Start,
            delivered(),
            CallInput::Accept { by: B.into() },
            join(A),
            join(B),
        ],
    );
    let snapshot = m.snapshot().expect("a connected call has a snapshot");
    let mut restored = CallMachine::restore(snapshot);
    let adopt = must(&mut restored, CallInput::Adopt, 10_000);
    assert_eq!(progress(&adopt), vec![]);
}
