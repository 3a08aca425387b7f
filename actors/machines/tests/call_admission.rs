//! Admission: an app that requires it has its business server allow each call before it rings. The caller
//! sees `calling` at once, as for any call; the callee hears nothing until the call is allowed. A refusal
//! or a business server that does not answer in time ends the call for the caller alone, with
//! `refusedByPolicy` and the reason as its text, and one record that says it was refused.

mod support;

use proptest::prelude::*;
use showcall_machines::call::{ADMISSION_TIMED_OUT, EndCause};
use showcall_machines::{
    AdmissionRequest, CallEffect, CallInput, CallMachine, CallSetup, CallState, CallUpdate,
    PauseAt, Side, StateReason,
};
use support::{A, B, admission_setup, delivered, lines, must, show};

const T_CREATE: u64 = 1_000;

fn started(setup: CallSetup) -> (CallMachine, Vec<CallEffect>) {
    let mut m = CallMachine::new(setup, T_CREATE);
    let fx = must(&mut m, CallInput::Start, T_CREATE);
    (m, fx)
}

/// The state update (state, reason, text) sent to `user` in `fx`, the last one.
fn last_state(fx: &[CallEffect], user: &str) -> Option<(CallState, StateReason, String)> {
    fx.iter().rev().find_map(|e| match e {
        CallEffect::Notify {
            to,
            update:
                CallUpdate::State {
                    state,
                    reason,
                    event_reason,
                    ..
                },
        } if to.as_str() == user => Some((*state, *reason, event_reason.clone())),
        _ => None,
    })
}

fn record_cause(fx: &[CallEffect]) -> Option<EndCause> {
    fx.iter().find_map(|e| match e {
        CallEffect::Ended(r) => Some(r.cause.clone()),
        _ => None,
    })
}

#[test]
fn the_caller_sees_calling_at_once_while_the_business_server_is_asked() {
    let (m, fx) = started(admission_setup());
    assert_eq!(
        show(&fx),
        lines(
            "A state Calling LocalVideoCall; A event LocalVideoCall
             authorize A -> B
             set timer at 3000"
        )
    );
    let asked = fx.iter().find_map(|e| match e {
        CallEffect::Authorize(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(
        asked,
        Some(AdmissionRequest {
            call_id: "c1".into(),
            caller: A.into(),
            callee: B.into(),
            call_type: showcall_machines::CallType::Video,
            extension: admission_setup().extension,
        }),
        "the request names the call, both parties, the type and the extension the callee would see"
    );
    assert_eq!(m.state_of(Side::Caller), CallState::Calling);
    assert_eq!(
        m.state_of(Side::Callee),
        CallState::Prepared,
        "the callee does not know of the call"
    );
}

#[test]
fn an_allowed_call_rings_and_goes_on_as_any_call() {
    let setup = CallSetup {
        // The caller's live room pauses when the call rings: only once it is allowed.
        pause_at: PauseAt::Ringing,
        ..admission_setup()
    };
    let (mut m, _) = started(setup);
    let allowed = CallInput::Authorized {
        allowed: true,
        reason: String::new(),
    };
    let fx = must(&mut m, allowed, 1_200);
    assert_eq!(
        show(&fx),
        lines(
            "cancel timer
             open call-c1 for A B
             ring B
             set timer at 16200
             pause live-alice A"
        ),
        "the caller is not told `calling` a second time"
    );
    let fx = must(&mut m, delivered(), 1_300);
    assert_eq!(
        last_state(&fx, B),
        Some((
            CallState::Calling,
            StateReason::RemoteVideoCall,
            String::new()
        ))
    );
    must(&mut m, CallInput::Accept { by: B.into() }, 2_000);
    assert_eq!(m.state_of(Side::Caller), CallState::Connecting);
    let late = CallInput::AdmissionTimeout;
    assert!(
        m.handle(late, 3_200).is_err(),
        "a late admission timer is refused once the call rings"
    );
}

#[test]
fn a_refused_call_ends_for_the_caller_alone_with_the_business_servers_reason() {
    let (mut m, _) = started(admission_setup());
    let refused = CallInput::Authorized {
        allowed: false,
        reason: "insufficient balance".into(),
    };
    let fx = must(&mut m, refused, 1_300);
    assert_eq!(
        last_state(&fx, A),
        Some((
            CallState::Prepared,
            StateReason::RefusedByPolicy,
            "insufficient balance".into()
        ))
    );
    assert!(
        fx.iter()
            .all(|e| !matches!(e, CallEffect::Notify { to, .. } if to.as_str() == B)),
        "the callee is never told: {fx:?}"
    );
    assert!(
        !fx.iter()
            .any(|e| matches!(e, CallEffect::CloseChannel { .. } | CallEffect::Ring { .. })),
        "no channel was opened, nothing rang: {fx:?}"
    );
    assert_eq!(
        record_cause(&fx),
        Some(EndCause::Refused {
            reason: "insufficient balance".into()
        })
    );
    assert!(m.is_ended());
}

#[test]
fn no_answer_in_time_is_a_refusal_that_says_so() {
    let (mut m, _) = started(admission_setup());
    let fx = must(&mut m, CallInput::AdmissionTimeout, 3_000);
    assert_eq!(
        last_state(&fx, A),
        Some((
            CallState::Prepared,
            StateReason::RefusedByPolicy,
            ADMISSION_TIMED_OUT.into()
        ))
    );
    assert_eq!(
        record_cause(&fx),
        Some(EndCause::Refused {
            reason: ADMISSION_TIMED_OUT.into()
        })
    );
    let late = CallInput::Authorized {
        allowed: true,
        reason: String::new(),
    };
    assert!(
        m.handle(late, 3_100).is_err(),
        "an answer after the timeout is dropped"
    );
}

#[test]
fn the_caller_may_cancel_while_the_call_is_authorized_and_the_callee_never_rings() {
    let (mut m, _) = started(admission_setup());
    let fx = must(&mut m, CallInput::Cancel { by: A.into() }, 1_500);
    assert_eq!(
        show(&fx),
        lines(
            "cancel timer
             A state Prepared LocalCancelled; A event LocalCancelled
             ended cancelled after 0"
        )
    );
    let late = CallInput::Authorized {
        allowed: true,
        reason: String::new(),
    };
    assert!(
        m.handle(late, 1_600).is_err(),
        "an allow after the cancel rings nobody"
    );
}

#[test]
fn a_snapshot_of_a_connected_admitted_call_keeps_its_settings() {
    let (mut m, _) = started(admission_setup());
    let allow = CallInput::Authorized {
        allowed: true,
        reason: String::new(),
    };
    must(&mut m, allow, 1_100);
    must(&mut m, delivered(), 1_200);
    must(&mut m, CallInput::Accept { by: B.into() }, 1_300);
    for user in [A, B] {
        let join = CallInput::ChannelJoined {
            user: user.into(),
            media: false,
        };
        must(&mut m, join, 1_400);
    }
    let snapshot = m.snapshot().expect("connected");
    assert_eq!(snapshot.setup.admission_timeout_ms, Some(2_000));
    // A record written before admission existed has neither field: it still restores.
    let mut json = serde_json::to_value(&snapshot).expect("serializes");
    let setup = json["setup"].as_object_mut().expect("an object");
    setup.remove("admission_timeout_ms");
    setup.remove("billing_tick_ms");
    let old: showcall_machines::CallSnapshot = serde_json::from_value(json).expect("old records");
    assert_eq!(old.setup.admission_timeout_ms, None);
    assert_eq!(old.setup.billing_tick_ms, None);
}

/// Any input an authorizing call may meet, from either party or the business server.
fn any_input() -> impl Strategy<Value = CallInput> {
    let user =
        prop_oneof![Just(A), Just(B)].prop_map(|u| -> showcall_machines::UserId { u.into() });
    prop_oneof![
        Just(CallInput::Start),
        any::<bool>().prop_map(|allowed| CallInput::Authorized {
            allowed,
            reason: "policy".into()
        }),
        Just(CallInput::AdmissionTimeout),
        Just(delivered()),
        Just(CallInput::CallingTimeout),
        user.clone().prop_map(|by| CallInput::Cancel { by }),
        user.clone().prop_map(|by| CallInput::Accept { by }),
        user.clone().prop_map(|by| CallInput::Reject {
            by,
            reason: "no".into()
        }),
        user.clone().prop_map(|by| CallInput::Hangup {
            by,
            reason: "bye".into()
        }),
        user.clone()
            .prop_map(|user| CallInput::ChannelJoined { user, media: false }),
        user.clone().prop_map(|user| CallInput::PeerAway { user }),
        user.prop_map(|by| CallInput::GaveWay { by }),
        Just(CallInput::Terminate {
            reason: "ops".into()
        }),
    ]
}

proptest! {
    /// Whatever happens, in any order: nothing reaches the callee, no channel opens and nothing rings until
    /// the business server allowed the call; a call that ends does so exactly once with a reason for the
    /// caller; a refused call never rang.
    #[test]
    fn nothing_rings_before_the_business_server_allows(inputs in prop::collection::vec(any_input(), 1..30)) {
        let mut m = CallMachine::new(admission_setup(), T_CREATE);
        let mut now = T_CREATE;
        let mut allowed = false;
        let mut records = Vec::new();
        let mut caller_final = None;
        for input in inputs {
            now += 100;
            let allowing = matches!(input, CallInput::Authorized { allowed: true, .. });
            let before = format!("{m:?}");
            let Ok(fx) = m.handle(input, now) else {
                prop_assert_eq!(format!("{m:?}"), before, "a refused input changed the call");
                continue;
            };
            allowed |= allowing;
            for e in &fx {
                let to_callee = matches!(e, CallEffect::Notify { to, .. } if to.as_str() == B);
                let opens = matches!(e, CallEffect::Ring { .. } | CallEffect::OpenChannel { .. });
                prop_assert!(allowed || !(to_callee || opens), "before the allow: {:?}", e);
                if let CallEffect::Ended(r) = e {
                    records.push(r.clone());
                }
                if let CallEffect::Notify { to, update } = e
                    && to.as_str() == A
                    && update.is_final()
                {
                    caller_final = Some(update.clone());
                }
            }
        }
        prop_assert!(records.len() <= 1, "one record at most: {:?}", records);
        prop_assert_eq!(m.is_ended(), records.len() == 1);
        if let Some(record) = records.first() {
            prop_assert!(caller_final.is_some(), "the caller was told the end");
            if let EndCause::Refused { .. } = record.cause {
                prop_assert!(!allowed, "a refused call was never allowed");
                let Some(CallUpdate::State { reason, .. }) = caller_final else { unreachable!() };
                prop_assert_eq!(reason, StateReason::RefusedByPolicy);
            }
        }
    }
}
