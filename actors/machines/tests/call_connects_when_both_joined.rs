//! A call connects once it is accepted and both parties are in its channel, whichever comes last; what
//! each side is shown on the way (event info, reason texts) and the record the business server gets.

mod support;

use showcall_machines::call::{EndCause, SessionEnd, Undeliverable};
use showcall_machines::{
    CallEffect, CallEvent, CallInput, CallMachine, CallRecord, CallState, CallType, CallUpdate,
    EventInfo, Side,
};
use support::{A, B, delivered, delivery, lines, must, setup, show};

fn join(user: &str) -> CallInput {
    CallInput::ChannelJoined {
        user: user.into(),
        media: false,
    }
}

fn left(user: &str) -> CallInput {
    CallInput::ChannelLeft { user: user.into() }
}

fn accept() -> CallInput {
    CallInput::Accept { by: B.into() }
}

fn ringing() -> CallMachine {
    let mut m = CallMachine::new(setup(), 1_000);
    must(&mut m, CallInput::Start, 1_000);
    must(&mut m, delivered(), 1_100);
    m
}

fn states(m: &CallMachine) -> (CallState, CallState) {
    (m.state_of(Side::Caller), m.state_of(Side::Callee))
}

/// The (state, event_reason, info) of every state update to `user`.
fn state_updates(fx: &[CallEffect], user: &str) -> Vec<(CallState, String, EventInfo)> {
    let to_user = fx.iter().filter_map(|e| match e {
        CallEffect::Notify { to, update } if to.as_str() == user => Some(update),
        _ => None,
    });
    to_user
        .filter_map(|u| match u {
            CallUpdate::State {
                state,
                event_reason,
                info,
                ..
            } => Some((*state, event_reason.clone(), info.clone())),
            _ => None,
        })
        .collect()
}

fn event_reasons(fx: &[CallEffect], user: &str) -> Vec<String> {
    let to_user = fx.iter().filter_map(|e| match e {
        CallEffect::Notify {
            to,
            update: CallUpdate::Event { event_reason, .. },
        } if to.as_str() == user => Some(event_reason.clone()),
        _ => None,
    });
    to_user.collect()
}

fn record(fx: &[CallEffect]) -> CallRecord {
    let found = fx.iter().find_map(|e| {
        if let CallEffect::Ended(r) = e {
            Some(r.clone())
        } else {
            None
        }
    });
    found.expect("the call ended with a record")
}

#[test]
fn the_callee_joining_last_connects_the_call_with_both_joined() {
    let mut m = CallMachine::new(setup(), 1_000);
    let start = must(&mut m, CallInput::Start, 1_000);
    let start_text = "open call-c1 for A B
        A state Calling LocalVideoCall; A event LocalVideoCall
        ring B; set timer at 16000";
    assert_eq!(show(&start), lines(start_text));
    assert_eq!(states(&m), (CallState::Calling, CallState::Prepared));
    must(&mut m, delivered(), 1_100);
    assert_eq!(states(&m), (CallState::Calling, CallState::Calling));
    must(&mut m, accept(), 2_000);
    assert_eq!(states(&m), (CallState::Connecting, CallState::Connecting));
    let caller_in = must(&mut m, join(A), 2_500);
    assert_eq!(
        show(&caller_in),
        lines("A event LocalJoined; B event RemoteJoined")
    );
    assert_eq!(states(&m), (CallState::Connecting, CallState::Connecting));
    let callee_in = must(&mut m, join(B), 3_000);
    let connected = "B event LocalJoined; A event RemoteJoined; cancel timer
        A state Connected BothJoined; A connected
        B state Connected BothJoined; B connected
        persist connected at 3000";
    assert_eq!(show(&callee_in), lines(connected));
    assert_eq!(states(&m), (CallState::Connected, CallState::Connected));
    for e in &callee_in {
        if let CallEffect::Notify {
            update:
                CallUpdate::Connected {
                    room,
                    call_user,
                    timestamp,
                },
            ..
        } = e
        {
            assert_eq!(
                (room.as_str(), call_user.as_str(), *timestamp),
                ("call-c1", A, 3_000)
            );
        }
    }
}

#[test]
fn both_in_the_channel_while_ringing_connect_at_the_accept_with_the_accept_as_reason() {
    // canJoinRtcOnCalling: the callee may join media while ringing to show video sooner.
    let mut m = ringing();
    must(&mut m, join(A), 1_200);
    must(&mut m, join(B), 1_300);
    assert_eq!(
        states(&m),
        (CallState::Calling, CallState::Calling),
        "joining alone does not connect"
    );
    let accepted = must(&mut m, accept(), 2_000);
    let text = "B state Connecting LocalAccepted; B event LocalAccepted
        A state Connecting RemoteAccepted; A event RemoteAccepted
        pause live-alice A; pause live-bob B; cancel timer
        A state Connected RemoteAccepted; A connected
        B state Connected LocalAccepted; B connected
        persist connected at 2000";
    assert_eq!(show(&accepted), lines(text));
}

#[test]
fn a_caller_in_the_channel_before_the_ring_arrives_is_not_announced_to_the_callee() {
    let mut m = CallMachine::new(setup(), 1_000);
    must(&mut m, CallInput::Start, 1_000);
    assert_eq!(
        show(&must(&mut m, join(A), 1_050)),
        lines("A event LocalJoined")
    );
    assert_eq!(
        show(&must(&mut m, left(A), 1_060)),
        lines("A event LocalLeft")
    );
    must(&mut m, delivered(), 1_100);
    assert_eq!(
        show(&must(&mut m, join(A), 1_150)),
        lines("A event LocalJoined; B event RemoteJoined")
    );
}

#[test]
fn connecting_needs_both_parties_in_the_channel_at_the_same_time() {
    let mut m = ringing();
    must(&mut m, accept(), 2_000);
    must(&mut m, join(A), 2_100);
    assert_eq!(
        show(&must(&mut m, left(A), 2_200)),
        lines("A event LocalLeft; B event RemoteLeft")
    );
    must(&mut m, join(B), 2_300);
    assert_eq!(states(&m), (CallState::Connecting, CallState::Connecting));
    let back = must(&mut m, join(A), 2_400);
    assert!(
        show(&back).contains(&"A state Connected BothJoined".to_owned()),
        "{back:?}"
    );
    assert_eq!(states(&m), (CallState::Connected, CallState::Connected));
}

#[test]
fn leaving_and_rejoining_a_connected_call_keeps_it_connected_without_connecting_twice() {
    let mut m = ringing();
    must(&mut m, accept(), 2_000);
    must(&mut m, join(A), 2_100);
    must(&mut m, join(B), 2_200);
    must(&mut m, left(B), 3_000);
    assert_eq!(states(&m), (CallState::Connected, CallState::Connected));
    assert_eq!(
        show(&must(&mut m, join(B), 3_500)),
        lines("B event LocalJoined; A event RemoteJoined")
    );
    let end = must(
        &mut m,
        CallInput::Hangup {
            by: B.into(),
            reason: String::new(),
        },
        9_200,
    );
    assert_eq!(
        record(&end).connected_ms,
        7_000,
        "connected time counts from the first connect"
    );
}

#[test]
fn the_record_carries_the_timeline_and_each_side_its_view_of_the_call() {
    let mut m = ringing();
    must(&mut m, accept(), 2_000);
    must(&mut m, join(A), 2_500);
    must(&mut m, join(B), 3_000);
    let end = must(
        &mut m,
        CallInput::Hangup {
            by: A.into(),
            reason: "bye".into(),
        },
        10_000,
    );
    let r = record(&end);
    assert_eq!(
        (r.created_at, r.accepted_at, r.connected_at),
        (1_000, Some(2_000), Some(3_000))
    );
    assert_eq!(
        (r.ended_at, r.connected_ms, r.call_type),
        (10_000, 7_000, CallType::Video)
    );
    assert_eq!(
        r.cause,
        EndCause::Hangup {
            by: A.into(),
            reason: "bye".into()
        }
    );

    let (_, caller_text, caller_info) = state_updates(&end, A).pop().expect("caller told");
    let (_, callee_text, callee_info) = state_updates(&end, B).pop().expect("callee told");
    assert_eq!(
        (caller_text.as_str(), callee_text.as_str()),
        ("bye", "bye"),
        "the hangup reason reaches both"
    );
    assert_eq!(event_reasons(&end, B), vec!["bye".to_owned()]);
    for info in [&caller_info, &callee_info] {
        let who = (
            info.call_id.as_str(),
            info.from_user.as_str(),
            info.remote_user.as_str(),
        );
        assert_eq!(who, ("c1", A, B));
        assert_eq!(
            (info.from_room.as_str(), info.call_type),
            ("call-c1", CallType::Video)
        );
        let keys: Vec<_> = info
            .timing
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let want = "accept=2000 call=1000 callee_joined=3000 caller_joined=2500 connected=3000 end=10000 ringing=1100";
        assert_eq!(keys.join(" "), want);
    }
    // Each side is shown the other's user extension with the call extension merged over it.
    let shown = |info: &EventInfo| format!("{:?}", info.extension);
    assert_eq!(shown(&caller_info), r#"{"gift": "rose", "nick": "Bob"}"#);
    assert_eq!(shown(&callee_info), r#"{"gift": "rose", "nick": "Alice"}"#);
}

#[test]
fn the_caller_is_shown_its_call_extension_at_once_and_the_callees_user_extension_when_it_rings() {
    let mut m = CallMachine::new(setup(), 1_000);
    let start = must(&mut m, CallInput::Start, 1_000);
    let (state, _, calling) = state_updates(&start, A).pop().expect("the caller is told");
    assert_eq!(state, CallState::Calling);
    assert_eq!(format!("{:?}", calling.extension), r#"{"gift": "rose"}"#);

    let rang = must(&mut m, delivered(), 1_100);
    let delivery = rang.iter().find_map(|e| match e {
        CallEffect::Notify {
            to,
            update: CallUpdate::Event { event, info, .. },
        } if to.as_str() == A => Some((*event, info.clone())),
        _ => None,
    });
    let (event, info) = delivery.expect("the caller hears of the delivery");
    assert_eq!(event, CallEvent::RemoteUserRecvCall);
    let info = info.expect("the delivery carries what the caller is shown now");
    assert_eq!(
        format!("{:?}", info.extension),
        r#"{"gift": "rose", "nick": "Bob"}"#
    );
    assert_eq!(info.timing.get("ringing"), Some(&1_100));
}

#[test]
fn the_call_extension_wins_over_the_peers_user_extension_on_both_sides() {
    let mut both = setup();
    both.call_extension.insert("nick".into(), "Ally".into());
    both.extension.insert("nick".into(), "Ally".into());
    let mut m = CallMachine::new(both, 1_000);
    must(&mut m, CallInput::Start, 1_000);
    must(&mut m, delivered(), 1_100);
    let nick = |side| m.info_for(side).extension.get("nick").cloned();
    assert_eq!(nick(Side::Caller).as_deref(), Some("Ally"));
    assert_eq!(nick(Side::Callee).as_deref(), Some("Ally"));
}

#[test]
fn the_texts_apps_show_travel_with_the_reasons() {
    let mut m = CallMachine::new(setup(), 0);
    must(&mut m, CallInput::Start, 0);
    let busy = must(&mut m, CallInput::Undeliverable(Undeliverable::Busy), 1);
    let (_, text, _) = state_updates(&busy, A).pop().expect("caller told");
    assert_eq!(text, "The user is currently busy", "CallAPI's busy text");

    let mut m = ringing();
    let reject = must(
        &mut m,
        CallInput::Reject {
            by: B.into(),
            reason: "on air".into(),
        },
        2_000,
    );
    for user in [A, B] {
        let (state, text, _) = state_updates(&reject, user).pop().expect("told");
        assert_eq!(
            (state, text.as_str()),
            (CallState::Prepared, "on air"),
            "{user}"
        );
        assert_eq!(
            event_reasons(&reject, user),
            vec!["on air".to_owned()],
            "{user}"
        );
    }
    assert_eq!(
        record(&reject).cause,
        EndCause::Rejected {
            reason: "on air".into()
        }
    );

    let mut m = ringing();
    let gone = must(
        &mut m,
        CallInput::SessionEnded {
            user: B.into(),
            how: SessionEnd::Gone,
        },
        40_000,
    );
    let (_, text, _) = state_updates(&gone, A).pop().expect("caller told");
    assert_eq!(text, "peer did not come back within the grace period");
}

#[test]
fn an_audio_call_is_announced_as_audio() {
    let mut s = setup();
    s.call_type = CallType::Audio;
    let mut m = CallMachine::new(s, 0);
    let start = must(&mut m, CallInput::Start, 0);
    assert!(show(&start).contains(&"A state Calling LocalAudioCall".to_owned()));
    let ring = must(&mut m, delivered(), 1);
    assert_eq!(
        show(&ring),
        lines(
            "B state Calling RemoteAudioCall; B event RemoteAudioCall; A event RemoteUserRecvCall"
        )
    );
}

#[test]
fn a_callee_whose_ring_told_its_client_is_not_told_calling_again() {
    let mut m = CallMachine::new(setup(), 0);
    must(&mut m, CallInput::Start, 0);
    let ring = must(&mut m, delivery(true), 1);
    // Only the caller hears of the delivery; the call rings on as before.
    assert_eq!(show(&ring), lines("A event RemoteUserRecvCall"));
    assert_eq!(m.info_for(Side::Caller).timing.get("ringing"), Some(&1));
}

#[test]
fn without_a_calling_timeout_no_timer_is_armed_or_cancelled() {
    let mut s = setup();
    s.timeout_ms = None;
    let mut m = CallMachine::new(s, 0);
    let mut all = must(&mut m, CallInput::Start, 0);
    all.extend(must(&mut m, delivered(), 1));
    all.extend(must(&mut m, accept(), 2));
    all.extend(must(&mut m, join(A), 3));
    all.extend(must(&mut m, join(B), 4));
    all.extend(must(
        &mut m,
        CallInput::Hangup {
            by: A.into(),
            reason: String::new(),
        },
        5,
    ));
    assert!(
        show(&all).iter().all(|l| !l.contains("timer")),
        "{:?}",
        show(&all)
    );
}
