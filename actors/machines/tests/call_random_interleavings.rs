//! Random interleavings of three users' commands, message deliveries, timers, drops and logins, run through
//! the real machines wired as the actors wire them (`support/dispatcher.rs`). Whatever the order, calls end
//! with both sides agreeing and exactly one end reason.
//!
//! Checked whenever every mailbox is empty:
//! - a call has a record iff it ended; an ended call is nobody's current call; a live call is the current
//!   call of both its parties, and each user machine's state for it is the call's state for that side;
//! - each connected client's last state for a call is its user machine's state, or `Prepared` once over;
//! - every channel member is a live user that knows it is in the channel (and the reverse), and a paused
//!   broadcaster belongs to a call still running.
//!
//! Checked at the end, after every pending timer fired (tokens expire, so every session and call ends):
//! every call ended exactly once with one record, every pause was resumed, no channel keeps a member, and
//! every client saw at most one final state per call, with a reason matching the record's cause.
//! Refused inputs are checked by the dispatcher to change nothing.

#[path = "support/dispatcher.rs"]
mod dispatcher;

use std::collections::BTreeMap;

use dispatcher::{NAMES, Op, World, index_of, live_room, uid};
use proptest::prelude::*;
use showcall_machines::call::{EndCause, SessionEnd};
use showcall_machines::user::{ClientEvent, CloseReason, Pushed};
use showcall_machines::{
    CallId, CallState, CallUpdate, PauseAt, PublishState, Side, StateReason, UserId,
};

/// Weighted so that calls often get as far as connected before something ends them.
fn op() -> impl Strategy<Value = Op> {
    let who = || 0..3usize;
    prop_oneof![
        24 => (0..64usize).prop_map(Op::Deliver),
        4 => (who(), 1..3usize, any::<bool>())
            .prop_map(|(from, d, timeout)| Op::Call { from, to: (from + d) % 3, timeout }),
        8 => (who(), 0..6u8, prop::bool::weighted(0.1))
            .prop_map(|(who, cmd, stale)| Op::Command { who, cmd, stale }),
        6 => who().prop_map(Op::JoinCall),
        1 => who().prop_map(Op::LeaveCall),
        2 => who().prop_map(Op::GoLive),
        2 => (who(), who()).prop_map(|(who, host)| Op::Watch { who, host }),
        1 => (who(), who()).prop_map(|(who, host)| Op::LeaveRoom { who, host }),
        1 => who().prop_map(Op::Drop),
        4 => who().prop_map(Op::Login),
        1 => who().prop_map(Op::Logout),
        1 => who().prop_map(Op::Renew),
        3 => (0..3usize).prop_map(Op::Fire), // mostly the next timers due
        1 => (0..64usize).prop_map(Op::Fire),
        1 => (0..8usize).prop_map(Op::Terminate),
        2 => (0..20_000u64).prop_map(Op::Wait),
    ]
}

/// The properties, read off the whole world.
impl World {
    /// Everything delivered: every party agrees with every call, channel and client.
    fn check_agreement(&self) {
        for (id, slot) in &self.calls {
            let call = &slot.machine;
            assert_eq!(
                slot.records.len(),
                usize::from(call.is_ended()),
                "{id}: a record iff ended"
            );
            for side in [Side::Caller, Side::Callee] {
                let party = match side {
                    Side::Caller => &call.setup().caller,
                    Side::Callee => &call.setup().callee,
                };
                let u = index_of(party);
                let machine = &self.users[u].machine;
                let mine = machine
                    .call()
                    .filter(|c| c.id == *id && !machine.is_closed());
                if call.is_ended() {
                    assert!(mine.is_none(), "{id} ended but {party} is still in it");
                    continue;
                }
                let mine = mine
                    .unwrap_or_else(|| panic!("{id} runs but its {side:?} {party} is not in it"));
                assert_eq!(
                    (mine.side, mine.state),
                    (side, call.state_of(side)),
                    "{id}: {party} disagrees"
                );
            }
        }
        for (u, session) in self.users.iter().enumerate() {
            if session.machine.connection().is_none() {
                continue; // away (events buffered) or stopped
            }
            let current = session.machine.call();
            for (id, last) in last_states(&session.client) {
                match current.filter(|c| c.id == id) {
                    Some(c) => assert_eq!(last, c.state, "{}'s client is behind on {id}", NAMES[u]),
                    None => assert_eq!(
                        last,
                        CallState::Prepared,
                        "{}'s client was not told {id} ended",
                        NAMES[u]
                    ),
                }
            }
            if let Some(c) = current {
                let seen = last_states(&session.client)
                    .into_iter()
                    .any(|(id, _)| id == c.id);
                assert!(
                    seen,
                    "{}'s client was never told of its call {}",
                    NAMES[u], c.id
                );
            }
        }
        for (channel, (_, m)) in &self.channels {
            for (user, member) in m.view().members {
                let s = &self.users[index_of(&user)];
                let knows =
                    !s.machine.is_closed() && s.machine.channels().any(|(c, _)| c == channel);
                assert!(
                    knows,
                    "{channel} has {user} as a member, who does not know it"
                );
                if member.publish == PublishState::Paused {
                    let by_running_call = self.calls.values().any(|c| {
                        !c.machine.is_ended() && c.paused.contains(&(channel.clone(), user.clone()))
                    });
                    assert!(
                        by_running_call,
                        "{channel}: {user} stays paused after its call"
                    );
                }
            }
        }
        for (u, s) in self
            .users
            .iter()
            .enumerate()
            .filter(|(u, _)| self.alive(*u))
        {
            for (channel, _) in s.machine.channels() {
                let member = self
                    .channels
                    .get(channel)
                    .and_then(|(_, m)| m.member(&uid(u)));
                assert!(member.is_some(), "{} believes it is in {channel}", NAMES[u]);
            }
        }
    }

    /// Fire every pending timer in order (tokens expire, so every session and call ends), then check the
    /// end state of everything.
    fn finish(&mut self) {
        self.drain();
        self.check_agreement();
        while !self.timers.is_empty() {
            self.fire(0);
            self.drain();
            self.check_agreement();
        }
        for (u, s) in self.users.iter().enumerate() {
            assert!(s.machine.is_closed(), "{}'s token expired", NAMES[u]);
        }
        for (id, slot) in &self.calls {
            assert!(slot.machine.is_ended(), "{id} never ended");
            assert_eq!(slot.records.len(), 1, "{id}: exactly one record");
            let (mut paused, mut resumed) = (slot.paused.clone(), slot.resumed.clone());
            paused.sort();
            resumed.sort();
            assert_eq!(paused, resumed, "{id}: every pause is resumed once");
        }
        for (channel, (_, m)) in &self.channels {
            assert!(
                m.view().members.is_empty(),
                "{channel} keeps members after everyone left"
            );
        }
        let logs = self
            .users
            .iter()
            .enumerate()
            .chain(self.archive.iter().map(|(u, s)| (*u, s)));
        for (u, session) in logs {
            self.check_client_log(u, &session.client);
        }
    }

    /// A client sees at most one final state per call; its reason matches how the call ended.
    fn check_client_log(&self, u: usize, log: &[Pushed]) {
        let mut finals: BTreeMap<CallId, usize> = BTreeMap::new();
        for pushed in log {
            let ClientEvent::Call { call_id, update } = &pushed.event else {
                continue;
            };
            if call_id.as_str().is_empty() {
                // `prepared` after PrepareForCall belongs to no call.
                continue;
            }
            let after_final = finals.get(call_id).copied().unwrap_or(0);
            let CallUpdate::State { state, reason, .. } = update else {
                continue;
            };
            assert_eq!(
                after_final, 0,
                "{} saw {call_id} change after it ended: {update:?}",
                NAMES[u]
            );
            if *state != CallState::Prepared {
                continue;
            }
            *finals.entry(call_id.clone()).or_default() += 1;
            let slot = &self.calls[call_id];
            let record = &slot.records[0];
            let side = slot.machine.side_of(&uid(u)).expect("a party");
            let gave_way = slot.gave_way.contains(&uid(u)) && *reason == StateReason::GlareResolved;
            // A session whose token expired ends its call for its client itself, whatever else ended
            // the call at the same moment.
            let expired = *reason == StateReason::TokenExpired && token_expired(log);
            assert!(
                gave_way || expired || matches_cause(&record.cause, side, &uid(u), *reason),
                "{} ({side:?}) ended {call_id} with {reason:?} but the record says {:?}",
                NAMES[u],
                record.cause
            );
        }
    }
}

/// Whether this client's session was closed because its token expired.
fn token_expired(log: &[Pushed]) -> bool {
    log.iter().any(|p| {
        p.event
            == ClientEvent::SessionClosed {
                reason: CloseReason::TokenExpired,
            }
    })
}

/// The last state each call showed this client, by call.
fn last_states(log: &[Pushed]) -> Vec<(CallId, CallState)> {
    let mut last: BTreeMap<CallId, CallState> = BTreeMap::new();
    for pushed in log {
        if let ClientEvent::Call {
            call_id,
            update: CallUpdate::State { state, .. },
        } = &pushed.event
            && !call_id.as_str().is_empty()
        {
            last.insert(call_id.clone(), *state);
        }
    }
    last.into_iter().collect()
}

/// The final reason a party may be shown for a call that ended with `cause`.
fn matches_cause(cause: &EndCause, side: Side, user: &UserId, reason: StateReason) -> bool {
    use StateReason as R;
    let caller = side == Side::Caller;
    let expected: &[StateReason] = match cause {
        EndCause::Cancelled if caller => &[R::LocalCancelled],
        EndCause::Cancelled => &[R::RemoteCancelled],
        EndCause::Rejected { .. } if caller => &[R::RemoteRejected],
        EndCause::Rejected { .. } => &[R::LocalRejected],
        EndCause::Busy if caller => &[R::RemoteCallBusy],
        EndCause::Offline if caller => &[R::RemoteOffline],
        EndCause::Busy | EndCause::Offline => &[], // the callee never rang
        EndCause::Glare if caller => &[R::GlareResolved],
        EndCause::Glare => &[R::RemoteCancelled, R::RemoteHangup],
        EndCause::Hangup { by, .. } if by == user => &[R::LocalHangup],
        EndCause::Hangup { .. } => &[R::RemoteHangup],
        EndCause::Timeout if caller => &[R::CallingTimeout],
        EndCause::Timeout => &[R::RemoteCallingTimeout],
        EndCause::SessionEnded { user: who, how } if who == user => match how {
            SessionEnd::LoggedOut => &[R::LocalHangup],
            SessionEnd::TokenExpired => &[R::TokenExpired],
            SessionEnd::Gone => &[R::LocalLeft],
        },
        EndCause::SessionEnded {
            how: SessionEnd::Gone,
            ..
        } => &[R::RemoteLeft],
        EndCause::SessionEnded { .. } => &[R::RemoteLoggedOut],
        EndCause::Terminated { .. } | EndCause::NodeLost => &[R::EndedByServer],
        EndCause::Refused { .. } if caller => &[R::RefusedByPolicy],
        EndCause::Refused { .. } => &[], // the callee never rang
    };
    expected.contains(&reason)
}

/// One step; whenever everything is delivered, everyone must agree.
fn step(world: &mut World, op: Op) {
    world.apply(&op);
    if world.quiet() {
        world.check_agreement();
    }
}

fn run(pause_at: PauseAt, ops: Vec<Op>) {
    let mut world = World::new(pause_at);
    for op in ops {
        step(&mut world, op);
    }
    world.finish();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_ends_every_call_once_with_both_sides_agreeing(
        pause_at_ringing in any::<bool>(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let pause_at = if pause_at_ringing { PauseAt::Ringing } else { PauseAt::Accept };
        run(pause_at, ops);
    }
}

/// The states `user`'s client saw for `call`, as `state reason` lines, and its other updates.
fn seen(world: &World, u: usize, call: &str) -> Vec<String> {
    let log = &world.users[u].client;
    let of_call = log.iter().filter_map(|p| match &p.event {
        ClientEvent::Call { call_id, update } if call_id.as_str() == call => Some(update),
        _ => None,
    });
    of_call
        .map(|update| match update {
            CallUpdate::State { state, reason, .. } => format!("state {state:?} {reason:?}"),
            CallUpdate::Event { event, .. } => format!("event {event:?}"),
            CallUpdate::Connected { .. } => "connected".into(),
            CallUpdate::Disconnected { duration_ms, .. } => {
                format!("disconnected after {duration_ms}")
            }
        })
        .collect()
}

/// `Op::Command` codes (see `Op`).
const CANCEL: u8 = 0;
const ACCEPT: u8 = 1;
const HANGUP: u8 = 4;

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;

fn call(world: &mut World, from: usize, to: usize, timeout: bool) {
    step(world, Op::Call { from, to, timeout });
}

/// A command for the user's current call.
fn command(world: &mut World, who: usize, cmd: u8) {
    step(
        world,
        Op::Command {
            who,
            cmd,
            stale: false,
        },
    );
}

fn drain_all(world: &mut World) {
    world.drain();
    world.check_agreement();
}

#[test]
fn a_connected_call_hung_up_tells_both_clients_the_state_the_event_and_the_disconnect() {
    let mut w = World::new(PauseAt::Accept);
    call(&mut w, ALICE, BOB, true);
    drain_all(&mut w);
    command(&mut w, BOB, ACCEPT);
    step(&mut w, Op::JoinCall(ALICE));
    step(&mut w, Op::JoinCall(BOB));
    drain_all(&mut w);
    step(&mut w, Op::Wait(5_000));
    command(&mut w, ALICE, HANGUP);
    drain_all(&mut w);
    let bob = seen(&w, BOB, "c1");
    let tail = [
        "state Prepared RemoteHangup",
        "event RemoteHangup",
        "disconnected after 5000",
    ];
    assert_eq!(bob[bob.len() - 3..], tail, "bob saw {bob:?}");
    let alice = seen(&w, ALICE, "c1");
    assert_eq!(
        alice[alice.len() - 3..],
        [
            "state Prepared LocalHangup",
            "event LocalHangup",
            "disconnected after 5000"
        ]
    );
    w.finish();
}

#[test]
fn a_busy_callee_answers_a_third_caller_at_once() {
    let mut w = World::new(PauseAt::Accept);
    call(&mut w, ALICE, BOB, true);
    drain_all(&mut w);
    call(&mut w, CAROL, BOB, true);
    drain_all(&mut w);
    let carol = seen(&w, CAROL, "c2");
    assert_eq!(
        carol[carol.len() - 2..],
        ["state Prepared RemoteCallBusy", "event RemoteCallBusy"]
    );
    assert!(
        seen(&w, BOB, "c2").is_empty(),
        "bob never hears of carol's call"
    );
    w.finish();
}

#[test]
fn glare_loser_with_a_stale_view_still_ends_the_call_it_gave_way() {
    // alice calls bob (c1) and cancels before bob's actor has read the ring. bob then calls alice (c2); alice
    // is free, rings and accepts. Only now does bob read alice's old ring: his own call still looks
    // "calling" to him and alice's id is smaller, so he gives way — to a call alice has already accepted.
    let mut w = World::new(PauseAt::Accept);
    call(&mut w, ALICE, BOB, false);
    command(&mut w, ALICE, CANCEL);
    step(&mut w, Op::DrainCall("c1"));
    step(&mut w, Op::DrainUser(ALICE));
    call(&mut w, BOB, ALICE, false);
    step(&mut w, Op::DrainUser(ALICE));
    step(&mut w, Op::DrainCall("c2"));
    step(&mut w, Op::DrainUser(ALICE));
    command(&mut w, ALICE, ACCEPT);
    step(&mut w, Op::DrainCall("c2"));
    drain_all(&mut w);
    assert!(
        w.calls[&CallId::from("c2")].machine.is_ended(),
        "alice is not left alone in c2"
    );
    let alice = seen(&w, ALICE, "c2");
    assert_eq!(
        alice[alice.len() - 2..],
        ["state Prepared RemoteHangup", "event RemoteHangup"]
    );
    let bob = seen(&w, BOB, "c2");
    assert_eq!(
        bob.last().map(String::as_str),
        Some("state Prepared GlareResolved")
    );
    w.finish();
}

#[test]
fn a_session_that_ends_while_its_join_is_in_flight_leaves_no_ghost_in_the_room() {
    let mut w = World::new(PauseAt::Accept);
    step(&mut w, Op::GoLive(BOB));
    step(&mut w, Op::Logout(BOB));
    drain_all(&mut w);
    assert!(
        w.channels
            .get(&live_room(BOB))
            .is_none_or(|(_, m)| m.view().members.is_empty())
    );
    step(&mut w, Op::Login(BOB));
    step(&mut w, Op::GoLive(BOB));
    drain_all(&mut w);
    w.finish();
}
