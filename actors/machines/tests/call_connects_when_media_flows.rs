//! When both parties join the call channel with media, the call connects only once a first frame from
//! each side has reached the other (the server sees it: it is the media router) — CallAPI's default.
//! `firstFrameWaitingDisabled`, or a party joined without media, keeps the join rule.

mod support;

use showcall_machines::{CallInput, CallMachine, CallState, CallUpdate, Side, StateReason};
use support::{A, B, delivered, must, setup, show};

fn join_with_media(user: &str) -> CallInput {
    CallInput::ChannelJoined {
        user: user.into(),
        media: true,
    }
}

fn frame_from(user: &str) -> CallInput {
    CallInput::MediaFlowing { from: user.into() }
}

fn accepted(first_frame_waiting_disabled: bool) -> CallMachine {
    let mut s = setup();
    s.first_frame_waiting_disabled = first_frame_waiting_disabled;
    let mut m = CallMachine::new(s, 1_000);
    must(&mut m, CallInput::Start, 1_000);
    must(&mut m, delivered(), 1_100);
    must(&mut m, CallInput::Accept { by: B.into() }, 1_200);
    m
}

fn connected_reasons(fx: &[showcall_machines::CallEffect]) -> Vec<StateReason> {
    fx.iter()
        .filter_map(|e| match e {
            showcall_machines::CallEffect::Notify {
                update:
                    CallUpdate::State {
                        state: CallState::Connected,
                        reason,
                        ..
                    },
                ..
            } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn media_both_ways_connects_with_recv_remote_first_frame() {
    let mut m = accepted(false);
    must(&mut m, join_with_media(A), 1_300);
    must(&mut m, join_with_media(B), 1_400);
    assert_eq!(
        m.state_of(Side::Caller),
        CallState::Connecting,
        "joined is not enough"
    );
    let fx = must(&mut m, frame_from(A), 1_500);
    assert_eq!(show(&fx), vec!["B event RecvRemoteFirstFrame"]);
    assert_eq!(
        m.state_of(Side::Callee),
        CallState::Connecting,
        "one way is not enough"
    );
    let fx = must(&mut m, frame_from(B), 1_600);
    assert_eq!(
        connected_reasons(&fx),
        vec![
            StateReason::RecvRemoteFirstFrame,
            StateReason::RecvRemoteFirstFrame
        ]
    );
    let info = m.info_for(Side::Caller);
    assert_eq!(info.timing.get("caller_first_frame"), Some(&1_500));
    assert_eq!(info.timing.get("callee_first_frame"), Some(&1_600));
    assert_eq!(info.timing.get("connected"), Some(&1_600));
}

#[test]
fn frames_before_the_accept_connect_at_the_accept() {
    let mut s = setup();
    s.first_frame_waiting_disabled = false;
    let mut m = CallMachine::new(s, 1_000);
    must(&mut m, CallInput::Start, 1_000);
    must(&mut m, delivered(), 1_100);
    // The callee joined while ringing (canJoinRtcOnCalling): media already flows both ways.
    for input in [
        join_with_media(A),
        join_with_media(B),
        frame_from(A),
        frame_from(B),
    ] {
        must(&mut m, input, 1_200);
    }
    assert_eq!(m.state_of(Side::Caller), CallState::Calling);
    let fx = must(&mut m, CallInput::Accept { by: B.into() }, 1_300);
    assert_eq!(
        connected_reasons(&fx),
        vec![StateReason::RemoteAccepted, StateReason::LocalAccepted]
    );
}

#[test]
fn first_frame_waiting_disabled_connects_on_join() {
    let mut m = accepted(true);
    must(&mut m, join_with_media(A), 1_300);
    let fx = must(&mut m, join_with_media(B), 1_400);
    assert_eq!(
        connected_reasons(&fx),
        vec![StateReason::BothJoined, StateReason::BothJoined]
    );
}

#[test]
fn a_party_without_media_keeps_the_join_rule() {
    let mut m = accepted(false);
    must(&mut m, join_with_media(A), 1_300);
    let signaling_only = CallInput::ChannelJoined {
        user: B.into(),
        media: false,
    };
    let fx = must(&mut m, signaling_only, 1_400);
    assert_eq!(
        connected_reasons(&fx),
        vec![StateReason::BothJoined, StateReason::BothJoined]
    );
}

#[test]
fn a_repeated_first_frame_changes_nothing() {
    let mut m = accepted(false);
    must(&mut m, join_with_media(A), 1_300);
    must(&mut m, frame_from(A), 1_400);
    assert!(must(&mut m, frame_from(A), 1_500).is_empty());
}
