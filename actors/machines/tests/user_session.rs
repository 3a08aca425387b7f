//! `UserMachine`: one user's session told as the stories its client lives through — log in, be replaced,
//! drop and come back (or not), keep a token alive, and the call decisions only a user can make: busy,
//! offline, calling yourself, stale call ids, and glare.
//!
//! Effects are shown in a small text form (`push #4 call c1 state Prepared RemoteHangup`, `to c1
//! peer-away`, `timer Grace at 30000`) so each step reads like what the actor will do.

use std::collections::BTreeMap;

use showcall_machines::call::{SessionEnd, Undeliverable};
use showcall_machines::user::{CallCommand, ClientEvent, Prepared, Pushed};
use showcall_machines::{
    CallEvent, CallId, CallInput, CallState, CallType, CallUpdate, ChannelName, ChannelUpdate,
    ConnId, EventInfo, Millis, PauseAt, Role, StateReason, UserConfig, UserEffect, UserError,
    UserId, UserInput, UserMachine, UserTimer,
};

const ALICE: &str = "alice";
const BOB: &str = "bob";
const CAROL: &str = "carol";
/// Tokens in these stories expire at 100 s; the warning comes 30 s before.
const EXPIRES: Millis = 100_000;

fn config() -> UserConfig {
    UserConfig {
        grace_ms: 30_000,
        token_warning_ms: 30_000,
        default_call_timeout_ms: 15_000,
        pause_at: PauseAt::Accept,
        takeover_wait_ms: 15_000,
        billing_tick_ms: 0,
    }
}

fn login(conn: u64) -> UserInput {
    UserInput::Login {
        conn: ConnId(conn),
        token_expires_at: EXPIRES,
    }
}

fn lost(conn: u64) -> UserInput {
    UserInput::ConnectionLost { conn: ConnId(conn) }
}

fn logout(conn: u64) -> UserInput {
    UserInput::Logout { conn: ConnId(conn) }
}

fn tick(timer: UserTimer) -> UserInput {
    UserInput::Timer(timer)
}

/// An input taken without a single effect.
fn silent(m: &mut UserMachine, input: UserInput, now: Millis, why: &str) {
    assert_eq!(ok(m, input, now), Vec::<String>::new(), "{why}");
}

/// Logged in on connection 1 at t=0 and prepared for calls.
fn online(user: &str) -> UserMachine {
    let mut m = UserMachine::new(user.into(), config());
    ok(&mut m, login(1), 0);
    ok(&mut m, UserInput::Prepare(Prepared::default()), 0);
    m
}

fn ok(m: &mut UserMachine, input: UserInput, now: Millis) -> Vec<String> {
    let what = format!("{input:?}");
    let fx = m
        .handle(input, now)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    show(&fx)
}

/// A refused input returns exactly `err` and leaves the machine as it was.
fn refused(m: &mut UserMachine, input: UserInput, now: Millis, err: UserError) {
    let before = format!("{m:?}");
    assert_eq!(m.handle(input, now), Err(err));
    assert_eq!(
        format!("{m:?}"),
        before,
        "a refused input changed the machine"
    );
}

fn lines(text: &str) -> Vec<String> {
    let lines = text.split(['\n', ';']).map(str::trim);
    lines.filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn update(u: &CallUpdate) -> String {
    match u {
        CallUpdate::State { state, reason, .. } => format!("state {state:?} {reason:?}"),
        CallUpdate::Event { event, .. } => format!("event {event:?}"),
        CallUpdate::Connected { .. } => "connected".into(),
        CallUpdate::Disconnected { duration_ms, .. } => format!("disconnected after {duration_ms}"),
    }
}

fn input(i: &CallInput) -> String {
    match i {
        CallInput::Delivered {
            live_channels,
            announced,
            ..
        } => {
            let live: Vec<_> = live_channels.iter().map(ChannelName::as_str).collect();
            let announced = if *announced { " announced" } else { "" };
            format!("delivered live=[{}]{announced}", live.join(","))
        }
        CallInput::Undeliverable(why) => format!("undeliverable {why:?}"),
        CallInput::Cancel { by } => format!("cancel by {by}"),
        CallInput::Accept { by } => format!("accept by {by}"),
        CallInput::Reject { by, reason } => format!("reject by {by} ({reason})"),
        CallInput::Hangup { by, reason } => format!("hangup by {by} ({reason})"),
        CallInput::PeerAway { user } => format!("{user} away"),
        CallInput::PeerBack { user } => format!("{user} back"),
        CallInput::SessionEnded { user, how } => format!("session of {user} ended {how:?}"),
        CallInput::GaveWay { by } => format!("{by} gave way"),
        CallInput::PartyPresent { user, present } => format!("{user} present={present}"),
        other => format!("{other:?}"),
    }
}

fn show(fx: &[UserEffect]) -> Vec<String> {
    fx.iter()
        .map(|e| match e {
            UserEffect::Push(Pushed { seq, event, .. }) => {
                let what = match event {
                    ClientEvent::Call { call_id, update: u } => {
                        format!("call {call_id} {}", update(u))
                    }
                    ClientEvent::Channel { channel, update } => {
                        format!("channel {channel} {update:?}")
                    }
                    ClientEvent::TokenWillExpire { expires_at } => {
                        format!("token expires at {expires_at}")
                    }
                    ClientEvent::SessionClosed { reason } => format!("session closed {reason:?}"),
                    ClientEvent::Kicked {
                        channel,
                        call_id,
                        ban_seconds,
                    } => format!("kicked from {channel} call {call_id:?} ban {ban_seconds}"),
                };
                format!("push #{seq} {what}")
            }
            UserEffect::Close { conn, reason } => format!("close conn {} {reason:?}", conn.0),
            UserEffect::SpawnCall(s) => format!("spawn {} {} -> {}", s.id, s.caller, s.callee),
            UserEffect::ToCall { call_id, input: i } => format!("to {call_id} {}", input(i)),
            UserEffect::CommandCall { call_id, input: i } => {
                format!("command {call_id} {}", input(i))
            }
            UserEffect::JoinChannel { channel, role, .. } => format!("join {channel} {role:?}"),
            UserEffect::LeaveChannel { channel } => format!("leave {channel}"),
            UserEffect::ToChannel { channel, input } => format!("tell {channel} {input:?}"),
            UserEffect::SetTimer { timer, at } => format!("timer {timer:?} at {at}"),
            UserEffect::Stop => "stop".into(),
        })
        .collect()
}

fn info(call: &str, caller: &str, callee: &str) -> EventInfo {
    EventInfo {
        call_id: call.into(),
        from_user: caller.into(),
        from_room: format!("call-{call}").into(),
        remote_user: callee.into(),
        call_type: CallType::Video,
        extension: BTreeMap::new(),
        timing: BTreeMap::new(),
    }
}

fn start_call(call: &str, callee: &str) -> UserInput {
    UserInput::StartCall {
        callee: callee.into(),
        call_type: CallType::Video,
        extension: BTreeMap::new(),
        timeout_ms: None,
        call_id: call.into(),
        channel: format!("call-{call}").into(),
    }
}

fn ring(call: &str, caller: &str, callee: &str) -> UserInput {
    UserInput::Ring {
        info: info(call, caller, callee),
    }
}

fn state(
    call: &str,
    state: CallState,
    reason: StateReason,
    caller: &str,
    callee: &str,
) -> UserInput {
    let info = info(call, caller, callee);
    let update = CallUpdate::State {
        state,
        reason,
        event_reason: String::new(),
        info,
    };
    UserInput::CallUpdate {
        call_id: call.into(),
        update,
    }
}

fn event(call: &str, event: CallEvent) -> UserInput {
    let update = CallUpdate::Event {
        event,
        event_reason: String::new(),
        info: None,
    };
    UserInput::CallUpdate {
        call_id: call.into(),
        update,
    }
}

fn command(call: &str, command: CallCommand) -> UserInput {
    UserInput::Command {
        call_id: call.into(),
        command,
    }
}

/// `user` is in call c1 with `peer` as its callee, both sides connected.
fn in_call(user: &str, peer: &str) -> UserMachine {
    let mut m = online(user);
    ok(&mut m, start_call("c1", peer), 1_000);
    ok(
        &mut m,
        state(
            "c1",
            CallState::Connected,
            StateReason::BothJoined,
            user,
            peer,
        ),
        2_000,
    );
    m
}

/// The client joins `channel` and the channel admits it.
fn in_channel(m: &mut UserMachine, channel: &str, role: Role, now: Millis) {
    let channel = ChannelName::from(channel);
    ok(
        m,
        UserInput::JoinChannel {
            channel: channel.clone(),
            role,
            may_publish: true,
            offer: None,
        },
        now,
    );
    let broadcasters = Vec::new();
    let joined = UserInput::ChannelJoined {
        channel,
        role,
        broadcasters,
    };
    ok(m, joined, now);
}

fn current_call(m: &UserMachine) -> Option<(String, CallState)> {
    m.call().map(|c| (c.id.to_string(), c.state))
}

#[test]
fn login_arms_the_token_warning_and_expiry() {
    let mut m = UserMachine::new(ALICE.into(), config());
    let fx = ok(&mut m, login(1), 10_000);
    assert_eq!(
        fx,
        lines("timer TokenWarning at 70000; timer TokenExpiry at 100000")
    );
    assert_eq!(
        (m.connection(), m.resumed(), m.token_expires_at()),
        (Some(ConnId(1)), false, EXPIRES)
    );
}

#[test]
fn a_second_login_replaces_the_first_connection() {
    let mut m = online(ALICE);
    let fx = ok(&mut m, login(2), 5_000);
    assert_eq!(
        fx,
        lines("close conn 1 Replaced; timer TokenWarning at 70000; timer TokenExpiry at 100000")
    );
    // Taking over a live session carries it over, like a resume.
    assert_eq!((m.connection(), m.resumed()), (Some(ConnId(2)), true));
    // The replaced connection speaks for nobody any more.
    refused(&mut m, lost(1), 5_001, UserError::NotThisConnection);
    refused(&mut m, logout(1), 5_002, UserError::NotThisConnection);
}

#[test]
fn a_dropped_connection_keeps_the_call_and_tells_the_peer_at_once() {
    let mut m = in_call(ALICE, BOB);
    let fx = ok(&mut m, lost(1), 10_000);
    assert_eq!(fx, lines("timer Grace at 40000; to c1 alice away"));
    assert_eq!(m.connection(), None);
    assert_eq!(current_call(&m), Some(("c1".into(), CallState::Connected)));
}

#[test]
fn events_while_away_are_replayed_on_resume_with_continuing_numbers() {
    let mut m = in_call(ALICE, BOB); // the client saw #1: the connected state
    let seen = ok(&mut m, event("c1", CallEvent::RemoteJoined), 2_500);
    assert_eq!(seen, lines("push #3 call c1 event RemoteJoined"));
    ok(&mut m, lost(1), 10_000);
    silent(&mut m, event("c1", CallEvent::RemoteLeft), 11_000, "");
    let end = state(
        "c1",
        CallState::Prepared,
        StateReason::RemoteHangup,
        ALICE,
        BOB,
    );
    silent(&mut m, end, 12_000, "buffered, not pushed");
    assert_eq!(
        m.call(),
        None,
        "the call is over for the machine even while away"
    );

    let fx = ok(&mut m, login(2), 20_000);
    let replay = "timer TokenWarning at 70000; timer TokenExpiry at 100000
        push #4 call c1 event RemoteLeft; push #5 call c1 state Prepared RemoteHangup";
    assert_eq!(fx, lines(replay), "no peer-back: the call ended meanwhile");
    assert!(m.resumed());
    let next = ok(&mut m, tick(UserTimer::TokenWarning), 70_000);
    assert_eq!(next, lines("push #6 token expires at 100000"));
}

#[test]
fn coming_back_within_grace_resumes_the_call_and_the_old_grace_timer_is_ignored() {
    let mut m = in_call(ALICE, BOB);
    ok(&mut m, lost(1), 10_000);
    let fx = ok(&mut m, login(2), 20_000);
    assert_eq!(fx[0], "to c1 alice back");
    silent(&mut m, tick(UserTimer::Grace), 40_000, "");
    // Dropped again: only the second grace period counts.
    ok(&mut m, lost(2), 50_000);
    silent(&mut m, tick(UserTimer::Grace), 79_999, "");
    assert_eq!(current_call(&m), Some(("c1".into(), CallState::Connected)));
}

#[test]
fn past_grace_the_call_ends_for_the_peer_the_channels_are_left_and_the_session_stops() {
    let mut m = in_call(ALICE, BOB);
    in_channel(&mut m, "live-alice", Role::Broadcaster, 3_000);
    in_channel(&mut m, "call-c1", Role::Broadcaster, 3_000);
    ok(&mut m, lost(1), 10_000);
    let fx = ok(&mut m, tick(UserTimer::Grace), 40_000);
    assert_eq!(
        fx,
        lines("to c1 session of alice ended Gone; leave call-c1; leave live-alice; stop")
    );
    assert!(m.is_closed());
    assert_eq!((m.call(), m.channels().count()), (None, 0));
    refused(&mut m, login(3), 40_001, UserError::Closed);
}

#[test]
fn the_token_warning_fires_once_at_its_time_and_stale_firings_are_ignored() {
    let mut m = online(ALICE);
    silent(&mut m, tick(UserTimer::TokenWarning), 69_999, "early");
    let warn = ok(&mut m, tick(UserTimer::TokenWarning), 70_000);
    assert_eq!(warn, lines("push #2 token expires at 100000"));
    silent(&mut m, tick(UserTimer::TokenWarning), 71_000, "once");
}

#[test]
fn renewing_moves_both_deadlines_and_old_timers_fire_harmlessly() {
    let mut m = online(ALICE);
    let fx = ok(
        &mut m,
        UserInput::RenewToken {
            token_expires_at: 200_000,
        },
        60_000,
    );
    assert_eq!(
        fx,
        lines("timer TokenWarning at 170000; timer TokenExpiry at 200000")
    );
    assert_eq!(m.token_expires_at(), 200_000);
    silent(&mut m, tick(UserTimer::TokenWarning), 70_000, "");
    silent(&mut m, tick(UserTimer::TokenExpiry), 100_000, "");
    assert!(!m.is_closed());
    let warn = ok(&mut m, tick(UserTimer::TokenWarning), 170_000);
    assert_eq!(warn, lines("push #2 token expires at 200000"));
}

#[test]
fn an_expired_token_closes_the_session_and_ends_the_call() {
    let mut m = in_call(ALICE, BOB); // push #2 was the connected state
    let fx = ok(&mut m, tick(UserTimer::TokenExpiry), EXPIRES);
    // The client hears its call end before the session closes (the call's own word would come too late).
    let text = "push #3 call c1 state Prepared TokenExpired
        to c1 session of alice ended TokenExpired
        push #4 session closed TokenExpired; close conn 1 TokenExpired; stop";
    assert_eq!(fx, lines(text));
    assert!(m.is_closed());
}

#[test]
fn a_token_expiring_in_a_connected_call_tells_the_client_it_ended_and_disconnected() {
    let mut m = online(ALICE);
    ok(&mut m, start_call("c1", BOB), 1_000);
    let mut connected = info("c1", ALICE, BOB);
    connected.timing.insert("connected".into(), 2_000);
    let update = CallUpdate::State {
        state: CallState::Connected,
        reason: StateReason::BothJoined,
        event_reason: String::new(),
        info: connected,
    };
    let call_id = CallId::from("c1");
    ok(&mut m, UserInput::CallUpdate { call_id, update }, 2_000);
    let fx = m
        .handle(tick(UserTimer::TokenExpiry), EXPIRES)
        .expect("the session ends");
    assert_eq!(
        show(&fx),
        lines(
            "push #3 call c1 state Prepared TokenExpired
             push #4 call c1 disconnected after 98000
             to c1 session of alice ended TokenExpired
             push #5 session closed TokenExpired; close conn 1 TokenExpired; stop"
        )
    );
    let Some(UserEffect::Push(Pushed {
        event:
            ClientEvent::Call {
                update: CallUpdate::State { info, .. },
                ..
            },
        ..
    })) = fx.first()
    else {
        panic!("the first effect is the call's end");
    };
    assert_eq!(info.timing.get("end"), Some(&EXPIRES), "the end is stamped");
}

#[test]
fn preparing_tells_the_client_it_is_prepared_once() {
    let mut m = UserMachine::new(ALICE.into(), config());
    ok(&mut m, login(1), 0);
    let first = ok(&mut m, UserInput::Prepare(Prepared::default()), 0);
    assert_eq!(first, lines("push #1 call  state Prepared None"));
    let again = ok(&mut m, UserInput::Prepare(Prepared::default()), 0);
    assert_eq!(again, Vec::<String>::new(), "new settings only");
    ok(&mut m, UserInput::Unprepare, 0);
    let after_unprepare = ok(&mut m, UserInput::Prepare(Prepared::default()), 0);
    assert_eq!(after_unprepare, lines("push #2 call  state Prepared None"));
}

#[test]
fn a_token_expiring_while_away_ends_the_session_without_a_connection_to_close() {
    let mut m = in_call(ALICE, BOB);
    ok(&mut m, lost(1), 90_000);
    let fx = ok(&mut m, tick(UserTimer::TokenExpiry), EXPIRES);
    assert_eq!(fx, lines("to c1 session of alice ended TokenExpired; stop"));
}

#[test]
fn logging_out_ends_the_call_for_the_peer_and_closes_the_connection() {
    let mut m = in_call(ALICE, BOB);
    let fx = ok(&mut m, logout(1), 5_000);
    let text = "to c1 session of alice ended LoggedOut
        push #3 session closed LoggedOut; close conn 1 LoggedOut; stop";
    assert_eq!(fx, lines(text));
}

#[test]
fn a_ring_for_a_user_in_another_call_is_refused_as_busy() {
    let mut m = in_call(BOB, CAROL);
    let before = format!("{m:?}");
    assert_eq!(
        ok(&mut m, ring("c2", ALICE, BOB), 5_000),
        lines("to c2 undeliverable Busy")
    );
    assert_eq!(format!("{m:?}"), before, "the current call is untouched");
}

#[test]
fn a_ring_for_a_user_not_prepared_or_away_is_refused_as_offline() {
    let mut fresh = UserMachine::new(BOB.into(), config());
    ok(&mut fresh, login(1), 0);
    assert_eq!(
        ok(&mut fresh, ring("c1", ALICE, BOB), 1_000),
        lines("to c1 undeliverable Offline")
    );

    let mut away = online(BOB);
    ok(&mut away, lost(1), 500);
    assert_eq!(
        ok(&mut away, ring("c1", ALICE, BOB), 1_000),
        lines("to c1 undeliverable Offline")
    );
    assert_eq!(away.call(), None);
}

#[test]
fn a_delivered_ring_tells_the_client_makes_the_call_current_and_reports_the_live_rooms_to_pause() {
    let mut m = online(BOB);
    in_channel(&mut m, "live-bob", Role::Broadcaster, 100);
    in_channel(&mut m, "fans", Role::Audience, 100);
    in_channel(&mut m, "call-old", Role::Broadcaster, 100); // a call channel is never a live room
    assert_eq!(
        ok(&mut m, ring("c1", ALICE, BOB), 1_000),
        lines(
            "push #2 call c1 state Calling RemoteVideoCall; push #3 call c1 event RemoteVideoCall; \
             to c1 delivered live=[live-bob] announced"
        )
    );
    assert_eq!(current_call(&m), Some(("c1".into(), CallState::Calling)));
}

#[test]
fn a_call_of_an_older_node_repeating_calling_after_the_ring_is_not_shown_twice() {
    let mut m = online(BOB);
    ok(&mut m, ring("c1", ALICE, BOB), 1_000);
    // A call on a node of wire 1.5 answers `delivered` with what the ring already told the client.
    let calling = state(
        "c1",
        CallState::Calling,
        StateReason::RemoteVideoCall,
        ALICE,
        BOB,
    );
    silent(&mut m, calling, 1_010, "calling was shown at the ring");
    let video = event("c1", CallEvent::RemoteVideoCall);
    silent(
        &mut m,
        video,
        1_010,
        "remoteVideoCall was shown at the ring",
    );
    // What the call says after that reaches the client.
    assert_eq!(
        ok(&mut m, event("c1", CallEvent::RemoteJoined), 1_020),
        lines("push #4 call c1 event RemoteJoined")
    );
}

#[test]
fn calls_that_cannot_start_are_refused_with_the_reason() {
    let mut fresh = UserMachine::new(ALICE.into(), config());
    ok(&mut fresh, login(1), 0);
    refused(
        &mut fresh,
        start_call("c1", BOB),
        10,
        UserError::NotPrepared,
    );

    let mut m = online(ALICE);
    refused(&mut m, start_call("c1", ALICE), 10, UserError::CallToSelf);
    assert_eq!(
        ok(&mut m, start_call("c1", BOB), 20),
        lines("spawn c1 alice -> bob")
    );
    refused(
        &mut m,
        start_call("c2", CAROL),
        30,
        UserError::AlreadyInCall,
    );
    refused(
        &mut m,
        UserInput::Prepare(Prepared::default()),
        40,
        UserError::AlreadyInCall,
    );
}

#[test]
fn a_call_whose_actor_did_not_start_is_forgotten_and_the_user_may_call_again() {
    let mut m = online(ALICE);
    ok(&mut m, start_call("c1", BOB), 10);
    // Another call's failure, or one the client was already shown, is not this one.
    silent(
        &mut m,
        UserInput::CallNotStarted {
            call_id: "c0".into(),
        },
        20,
        "a stale id changes nothing",
    );
    assert_eq!(current_call(&m), Some(("c1".into(), CallState::Calling)));
    silent(
        &mut m,
        UserInput::CallNotStarted {
            call_id: "c1".into(),
        },
        30,
        "the client's Call is answered with the error: nothing to push",
    );
    assert_eq!(current_call(&m), None);
    assert_eq!(
        ok(&mut m, start_call("c2", BOB), 40),
        lines("spawn c2 alice -> bob")
    );

    // A call the client already sees (its actor started and said so) is not undone.
    let mut shown = in_call(ALICE, BOB);
    silent(
        &mut shown,
        UserInput::CallNotStarted {
            call_id: "c1".into(),
        },
        3_000,
        "a running call stays",
    );
    assert_eq!(
        current_call(&shown),
        Some(("c1".into(), CallState::Connected))
    );
}

#[test]
fn the_spawned_call_takes_the_timeout_extension_and_live_rooms_of_the_caller() {
    let mut m = online(ALICE);
    let prepared = Prepared {
        extension: BTreeMap::from([("nick".into(), "Al".into()), ("tier".into(), "gold".into())]),
        call_timeout_ms: Some(20_000),
        first_frame_waiting_disabled: true,
    };
    ok(&mut m, UserInput::Prepare(prepared), 0);
    in_channel(&mut m, "live-alice", Role::Broadcaster, 0);
    let spawn = |m: &mut UserMachine, call: &str, timeout_ms| {
        let extension = BTreeMap::from([("tier".into(), "vip".into())]);
        let input = UserInput::StartCall {
            callee: BOB.into(),
            call_type: CallType::Audio,
            extension,
            timeout_ms,
            call_id: call.into(),
            channel: "call-x".into(),
        };
        match m.handle(input, 0).expect("call starts").pop() {
            Some(UserEffect::SpawnCall(setup)) => setup,
            other => panic!("expected a spawn, got {other:?}"),
        }
    };
    let s = spawn(&mut m, "c1", None);
    assert_eq!(s.timeout_ms, Some(20_000), "the prepared timeout");
    assert_eq!(
        s.extension.get("tier").map(String::as_str),
        Some("vip"),
        "the call's extension wins"
    );
    assert_eq!(s.extension.get("nick").map(String::as_str), Some("Al"));
    assert_eq!(
        (s.call_type, s.first_frame_waiting_disabled),
        (CallType::Audio, true)
    );
    assert_eq!(s.caller_live, vec![ChannelName::from("live-alice")]);
    let mut m = online(ALICE);
    assert_eq!(
        spawn(&mut m, "c2", Some(0)).timeout_ms,
        None,
        "0 = no timeout"
    );
    let mut m = online(ALICE);
    assert_eq!(
        spawn(&mut m, "c3", None).timeout_ms,
        Some(15_000),
        "the node default"
    );
}

#[test]
fn commands_name_the_current_call_or_are_refused() {
    let mut m = online(ALICE);
    refused(
        &mut m,
        command("c1", CallCommand::Cancel),
        10,
        UserError::NoSuchCall,
    );
    ok(&mut m, start_call("c1", BOB), 20);
    assert_eq!(
        ok(&mut m, command("c1", CallCommand::Cancel), 30),
        lines("command c1 cancel by alice")
    );
    refused(
        &mut m,
        command("c0", CallCommand::Cancel),
        40,
        UserError::NoSuchCall,
    );
    // The call ends; a late command for it is stale.
    let ended = state(
        "c1",
        CallState::Prepared,
        StateReason::LocalCancelled,
        ALICE,
        BOB,
    );
    assert_eq!(
        ok(&mut m, ended, 50),
        lines("push #2 call c1 state Prepared LocalCancelled")
    );
    let hangup = CallCommand::Hangup {
        reason: "late".into(),
    };
    refused(&mut m, command("c1", hangup), 60, UserError::NoSuchCall);
}

#[test]
fn the_client_hears_the_end_event_and_the_disconnect_that_follow_the_final_state() {
    let mut m = in_call(ALICE, BOB);
    let end = state(
        "c1",
        CallState::Prepared,
        StateReason::RemoteHangup,
        ALICE,
        BOB,
    );
    ok(&mut m, end, 9_000);
    assert_eq!(m.call(), None);
    assert_eq!(
        ok(&mut m, event("c1", CallEvent::RemoteHangup), 9_000),
        lines("push #4 call c1 event RemoteHangup")
    );
    let disconnected = CallUpdate::Disconnected {
        room: "call-c1".into(),
        hangup_user: Some(BOB.into()),
        timestamp: 9_000,
        duration_ms: 7_000,
    };
    let fx = ok(
        &mut m,
        UserInput::CallUpdate {
            call_id: "c1".into(),
            update: disconnected,
        },
        9_000,
    );
    assert_eq!(fx, lines("push #5 call c1 disconnected after 7000"));
    // Nothing else of that call reaches the client any more, and no other call's updates ever do.
    let late = state(
        "c1",
        CallState::Connected,
        StateReason::BothJoined,
        ALICE,
        BOB,
    );
    silent(&mut m, late, 9_500, "");
    silent(&mut m, event("c9", CallEvent::RemoteLeft), 9_500, "");
}

#[test]
fn glare_the_smaller_id_keeps_its_call_and_refuses_the_other() {
    // alice < bob: alice's call to bob wins.
    let mut alice = online(ALICE);
    ok(&mut alice, start_call("c-alice", BOB), 1_000);
    let before = format!("{alice:?}");
    let fx = ok(&mut alice, ring("c-bob", BOB, ALICE), 1_001);
    assert_eq!(fx, lines("to c-bob undeliverable Glare"));
    assert_eq!(format!("{alice:?}"), before);
}

#[test]
fn glare_the_larger_id_gives_way_tells_its_client_then_rings_for_the_winner() {
    let mut bob = online(BOB);
    ok(&mut bob, start_call("c-bob", ALICE), 1_000);
    let fx = ok(&mut bob, ring("c-alice", ALICE, BOB), 1_001);
    let text = "to c-bob bob gave way; push #2 call c-bob state Prepared GlareResolved
        push #3 call c-alice state Calling RemoteVideoCall; push #4 call c-alice event RemoteVideoCall
        to c-alice delivered live=[] announced";
    assert_eq!(fx, lines(text));
    let call = bob.call().expect("ringing for alice's call");
    assert_eq!(
        (call.id.as_str(), call.peer.as_str(), call.state),
        ("c-alice", ALICE, CallState::Calling)
    );
    // The given-way call's own end reaches the machine later and is not repeated to the client.
    let late = state(
        "c-bob",
        CallState::Prepared,
        StateReason::GlareResolved,
        BOB,
        ALICE,
    );
    silent(&mut bob, late, 1_002, "");
}

#[test]
fn glare_the_smaller_id_rung_first_withdraws_the_ringing_call_and_places_its_own() {
    // Both called at once, but bob's ring reached alice before her own Call did: her call still wins.
    let mut alice = online(ALICE);
    ok(&mut alice, ring("c-bob", BOB, ALICE), 1_000);
    let fx = ok(&mut alice, start_call("c-alice", BOB), 1_001);
    // Her client was told of bob's call at its ring (#2, #3): it is told that call ended.
    let text = "to c-bob alice gave way; push #4 call c-bob state Prepared GlareResolved
        spawn c-alice alice -> bob";
    assert_eq!(fx, lines(text));
    assert_eq!(
        current_call(&alice),
        Some(("c-alice".into(), CallState::Calling))
    );
    // The withdrawn call's own end reaches the machine later and is not repeated to the client.
    let late = state(
        "c-bob",
        CallState::Prepared,
        StateReason::RemoteCancelled,
        BOB,
        ALICE,
    );
    silent(&mut alice, late, 1_002, "");
}

#[test]
fn glare_the_larger_id_rung_first_is_refused_its_call_would_lose() {
    let mut bob = online(BOB);
    ok(&mut bob, ring("c-alice", ALICE, BOB), 1_000);
    refused(
        &mut bob,
        start_call("c-bob", ALICE),
        1_001,
        UserError::AlreadyInCall,
    );
}

#[test]
fn a_ring_from_someone_else_while_calling_is_busy_not_glare() {
    let mut bob = online(BOB);
    ok(&mut bob, start_call("c-bob", ALICE), 1_000);
    assert_eq!(
        ok(&mut bob, ring("c-carol", CAROL, BOB), 1_001),
        lines("to c-carol undeliverable Busy")
    );
    assert_eq!(
        current_call(&bob),
        Some(("c-bob".into(), CallState::Calling))
    );
}

#[test]
fn channel_news_reaches_members_only_and_leaving_needs_membership() {
    let mut m = online(ALICE);
    let paused = ChannelUpdate::BroadcasterPaused { user: BOB.into() };
    let news = |c: &str| UserInput::ChannelUpdate {
        channel: c.into(),
        update: paused.clone(),
    };
    silent(&mut m, news("live-bob"), 10, "");
    refused(
        &mut m,
        UserInput::LeaveChannel {
            channel: "live-bob".into(),
        },
        20,
        UserError::NotInChannel,
    );
    let join = UserInput::JoinChannel {
        channel: "live-bob".into(),
        role: Role::Audience,
        may_publish: true,
        offer: None,
    };
    assert_eq!(ok(&mut m, join, 30), lines("join live-bob Audience"));
    ok(
        &mut m,
        UserInput::ChannelJoined {
            channel: "live-bob".into(),
            role: Role::Audience,
            broadcasters: vec![BOB.into()],
        },
        31,
    );
    let fx = ok(&mut m, news("live-bob"), 40);
    assert_eq!(
        fx,
        lines(r#"push #2 channel live-bob BroadcasterPaused { user: UserId("bob") }"#)
    );
    // The room is given up (its node died and it did not reopen in time): the client is told it is
    // out, as a member that left; a second removal tells nothing more.
    let removed = || UserInput::ChannelRemoved {
        channel: "live-bob".into(),
    };
    assert_eq!(
        ok(&mut m, removed(), 50),
        lines(r#"push #3 channel live-bob MemberLeft { user: UserId("alice") }"#)
    );
    assert_eq!(m.channels().count(), 0);
    silent(&mut m, removed(), 51, "no longer a member");
}

#[test]
fn a_call_channel_closing_at_the_calls_end_tells_the_client_nothing_of_its_own() {
    let mut m = online(ALICE);
    let join = UserInput::JoinChannel {
        channel: "call-c1".into(),
        role: Role::Broadcaster,
        may_publish: true,
        offer: None,
    };
    ok(&mut m, join, 10);
    ok(
        &mut m,
        UserInput::ChannelJoined {
            channel: "call-c1".into(),
            role: Role::Broadcaster,
            broadcasters: Vec::new(),
        },
        11,
    );
    let removed = UserInput::ChannelRemoved {
        channel: "call-c1".into(),
    };
    assert_eq!(
        ok(&mut m, removed, 20),
        Vec::<String>::new(),
        "the call tells"
    );
    assert_eq!(m.channels().count(), 0);
}

#[test]
fn a_session_end_reaches_the_call_with_how_it_ended() {
    // The call machine turns these into the peer's reason (see call_transitions); here: which one is sent.
    for (how, input) in [
        (SessionEnd::LoggedOut, logout(1)),
        (SessionEnd::TokenExpired, tick(UserTimer::TokenExpiry)),
    ] {
        let mut m = in_call(ALICE, BOB);
        let fx = m.handle(input, EXPIRES).expect("session ends");
        let sent = CallInput::SessionEnded {
            user: ALICE.into(),
            how,
        };
        let told = UserEffect::ToCall {
            call_id: CallId::from("c1"),
            input: sent,
        };
        assert!(fx.contains(&told), "{how:?}: {fx:?}");
    }
}

#[test]
fn a_session_that_ends_with_a_join_in_flight_leaves_that_channel_too() {
    // The leave follows the join into the channel, so the channel never keeps a member nobody runs.
    let mut m = online(BOB);
    in_channel(&mut m, "live-bob", Role::Broadcaster, 10);
    let join = UserInput::JoinChannel {
        channel: "live-alice".into(),
        role: Role::Audience,
        may_publish: true,
        offer: None,
    };
    ok(&mut m, join, 20);
    let fx = ok(&mut m, logout(1), 30);
    let text = "leave live-alice; leave live-bob; push #2 session closed LoggedOut; close conn 1 LoggedOut; stop";
    assert_eq!(fx, lines(text));
}

#[test]
fn a_join_confirmed_for_an_earlier_session_is_not_this_sessions() {
    // bob's previous session joined live-alice and ended before the channel answered; the channel's
    // confirmation reaches the session bob has now, which never asked.
    let mut m = online(BOB);
    let stray = UserInput::ChannelJoined {
        channel: "live-alice".into(),
        role: Role::Audience,
        broadcasters: vec![ALICE.into()],
    };
    silent(&mut m, stray, 10, "");
    assert_eq!(m.channels().count(), 0);
    let paused = ChannelUpdate::BroadcasterPaused { user: ALICE.into() };
    let news = UserInput::ChannelUpdate {
        channel: "live-alice".into(),
        update: paused,
    };
    silent(&mut m, news, 20, "no news from a room it is not in");
}

fn owner_lost(call: &str) -> UserInput {
    UserInput::CallOwnerLost {
        call_id: call.into(),
    }
}

fn adopted(call: &str) -> UserInput {
    UserInput::CallAdopted {
        call_id: call.into(),
    }
}

#[test]
fn a_connected_call_whose_node_died_waits_for_its_takeover_and_is_adopted() {
    let mut m = in_call(ALICE, BOB);
    assert_eq!(
        ok(&mut m, owner_lost("c1"), 5_000),
        lines("timer Takeover at 20000"),
        "the client is told nothing yet"
    );
    assert_eq!(
        ok(&mut m, adopted("c1"), 6_000),
        lines("to c1 alice present=true")
    );
    assert_eq!(ok(&mut m, tick(UserTimer::Takeover), 20_000), lines(""));
    assert_eq!(
        current_call(&m),
        Some(("c1".into(), CallState::Connected)),
        "the adopted call goes on"
    );
}

#[test]
fn without_a_takeover_the_user_gives_up_on_the_call_when_the_wait_is_over() {
    let mut m = in_call(ALICE, BOB);
    in_channel(&mut m, "live-alice", Role::Broadcaster, 2_500);
    ok(&mut m, owner_lost("c1"), 5_000);
    let fx = ok(&mut m, tick(UserTimer::Takeover), 20_000);
    assert_eq!(
        fx,
        lines(
            "tell call-c1 Close
             tell live-alice ResumeBroadcaster { host: UserId(\"alice\"), call: CallId(\"c1\") }
             push #3 call c1 state Prepared EndedByServer"
        )
    );
    assert_eq!(current_call(&m), None);
    // A takeover that comes after all finds the call gone, and hears so.
    assert_eq!(
        ok(&mut m, adopted("c1"), 21_000),
        lines("to c1 alice present=false")
    );
}

#[test]
fn a_call_that_had_not_connected_is_lost_at_once() {
    let mut m = online(ALICE);
    ok(&mut m, start_call("c1", BOB), 1_000);
    let calling = state(
        "c1",
        CallState::Calling,
        StateReason::LocalVideoCall,
        ALICE,
        BOB,
    );
    ok(&mut m, calling, 1_000);
    let fx = ok(&mut m, owner_lost("c1"), 5_000);
    assert_eq!(
        fx,
        lines(
            "tell call-c1 Close
             push #3 call c1 state Prepared EndedByServer"
        )
    );
    assert_eq!(current_call(&m), None);
}

#[test]
fn a_lost_call_the_client_was_never_shown_is_forgotten_quietly() {
    let mut m = online(ALICE);
    ok(&mut m, start_call("c1", BOB), 1_000);
    assert_eq!(
        ok(&mut m, owner_lost("c1"), 5_000),
        lines("tell call-c1 Close")
    );
    assert_eq!(current_call(&m), None, "not busy any more");
}

#[test]
fn a_lost_call_that_is_not_the_current_one_changes_nothing() {
    let mut m = in_call(ALICE, BOB);
    assert_eq!(ok(&mut m, owner_lost("c9"), 5_000), lines(""));
    assert_eq!(ok(&mut m, tick(UserTimer::Takeover), 20_000), lines(""));
    assert_eq!(current_call(&m), Some(("c1".into(), CallState::Connected)));
    assert_eq!(
        ok(&mut m, adopted("c9"), 21_000),
        lines("to c9 alice present=false")
    );
}

#[test]
fn presence_is_in_call_over_live_over_online() {
    use showcall_machines::user::Presence;
    let mut m = online(ALICE);
    assert_eq!(m.presence(), Presence::Online);
    in_channel(&mut m, "live-alice", Role::Audience, 10);
    assert_eq!(m.presence(), Presence::Online, "watching is not being live");
    in_channel(&mut m, "live-alice", Role::Broadcaster, 20);
    assert_eq!(m.presence(), Presence::Live);
    ok(&mut m, start_call("c1", BOB), 30);
    assert_eq!(
        m.presence(),
        Presence::InCall,
        "calling counts as in a call"
    );
    in_channel(&mut m, "call-c1", Role::Broadcaster, 40);
    assert_eq!(m.presence(), Presence::InCall);
}

#[test]
fn a_ring_or_a_takeover_question_nobody_can_take_tells_the_call_offline_or_absent() {
    let bob = UserId::from("bob");
    let (call, answer) = ring("c1", "alice", "bob")
        .unreachable_answer(&bob)
        .expect("a ring waits for an answer");
    assert_eq!(call.as_str(), "c1");
    assert_eq!(answer, CallInput::Undeliverable(Undeliverable::Offline));

    let asked = UserInput::CallAdopted {
        call_id: "c2".into(),
    };
    let (call, answer) = asked.unreachable_answer(&bob).expect("a question too");
    assert_eq!(call.as_str(), "c2");
    assert_eq!(
        answer,
        CallInput::PartyPresent {
            user: bob.clone(),
            present: false
        }
    );
    // News about a call waits for no answer: nobody to tell is nothing to tell.
    assert_eq!(
        event("c1", CallEvent::RemoteLeft).unreachable_answer(&bob),
        None
    );
}

#[test]
fn a_room_lost_with_its_node_is_told_as_its_broadcasters_leaving_and_the_reopened_room_followed() {
    // carol watches bob's room; its node dies. carol's client hears bob left (the room is gone with
    // its node), stays a member (an edge kept its media session), and follows the room when it reopens.
    let mut m = online("carol");
    let join = UserInput::JoinChannel {
        channel: "live-bob".into(),
        role: Role::Audience,
        may_publish: true,
        offer: None,
    };
    ok(&mut m, join, 10);
    let joined = UserInput::ChannelJoined {
        channel: "live-bob".into(),
        role: Role::Audience,
        broadcasters: vec![BOB.into()],
    };
    ok(&mut m, joined, 11);
    // dave starts broadcasting too; an audience member joining is not a broadcaster.
    let member = |role| showcall_machines::channel::Member {
        role,
        publish: showcall_machines::PublishState::None,
    };
    for (user, role) in [("dave", Role::Broadcaster), ("erin", Role::Audience)] {
        let update = ChannelUpdate::MemberJoined {
            user: user.into(),
            member: member(role),
        };
        let news = UserInput::ChannelUpdate {
            channel: "live-bob".into(),
            update,
        };
        ok(&mut m, news, 20);
    }
    let lost = || UserInput::ChannelLost {
        channel: "live-bob".into(),
    };
    let fx = ok(&mut m, lost(), 30);
    assert_eq!(
        fx,
        lines(
            r#"push #4 channel live-bob MemberLeft { user: UserId("bob") }; push #5 channel live-bob MemberLeft { user: UserId("dave") }"#
        )
    );
    assert_eq!(m.channels().count(), 1, "still a member");
    silent(&mut m, lost(), 31, "told once");
    // The room reopens; bob is told as broadcasting again, and its next loss is told again.
    let update = ChannelUpdate::MemberJoined {
        user: BOB.into(),
        member: member(Role::Broadcaster),
    };
    let news = UserInput::ChannelUpdate {
        channel: "live-bob".into(),
        update,
    };
    ok(&mut m, news, 40);
    let fx = ok(&mut m, lost(), 50);
    assert_eq!(
        fx,
        lines(r#"push #7 channel live-bob MemberLeft { user: UserId("bob") }"#)
    );
    // A room this session left is not told.
    let leave = UserInput::LeaveChannel {
        channel: "live-bob".into(),
    };
    ok(&mut m, leave, 60);
    silent(&mut m, lost(), 70, "not a member any more");
}
