//! Every cell of `CallMachine`'s (phase × input) table.
//!
//! The phases are the ones the module docs name: authorizing (a call of an app that requires admission),
//! ringing before the ring is delivered, ringing, connecting, connected and ended. Every input variant is tried in each, with the caller (A = alice), the callee
//! (B = bob) and a stranger (C = carol) wherever an input names a user. A cell either lists exactly what
//! the machine does — who is told which state/reason/event, in order, plus timers, live pause/resume, the
//! channel close and the single call record — or names the typed error; a refused input must leave the
//! machine exactly as it was and still take the next legal input.
//!
//! Effects are written in a small text form, what one party sees on one line, so each cell reads like
//! what the two apps see: `A state Prepared LocalCancelled` is a CallUpdate::State to alice;
//! `ended cancelled after 0` is the call record with its cause and connected milliseconds.

mod support;

use std::collections::BTreeSet;

use showcall_machines::call::{SessionEnd, Undeliverable};
use showcall_machines::{
    CallEffect, CallError, CallInput, CallMachine, CallState, CallUpdate, Millis, Side, UserId,
};
use support::{A, B, C, admission_setup, delivered, lines, must, setup, show};

/// The clock of the driven history: created and rung at 1 s, accepted at 2 s, caller joined at 2.5 s,
/// callee joined (connected) at 3 s; every tested input arrives at 10 s.
const T_CREATE: Millis = 1_000;
const T_DELIVER: Millis = 1_100;
const T_ACCEPT: Millis = 2_000;
const T_CALLER_JOIN: Millis = 2_500;
const T_CONNECT: Millis = 3_000;
const T_ENDED: Millis = 5_000;
const NOW: Millis = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Authorizing,
    NotDelivered,
    Ringing,
    Connecting,
    Connected,
    Ended,
}

impl Phase {
    /// The phase as the machine names it in its errors.
    fn name(self) -> &'static str {
        match self {
            Phase::Authorizing => "authorizing",
            Phase::NotDelivered => "ringing (not yet delivered)",
            Phase::Ringing => "ringing",
            Phase::Connecting => "connecting",
            Phase::Connected => "connected",
            Phase::Ended => "ended",
        }
    }
}

/// A call driven through its usual history up to `phase`.
fn drive(phase: Phase) -> CallMachine {
    if phase == Phase::Authorizing {
        let mut m = CallMachine::new(admission_setup(), T_CREATE);
        must(&mut m, CallInput::Start, T_CREATE);
        return m;
    }
    let mut m = CallMachine::new(setup(), T_CREATE);
    must(&mut m, CallInput::Start, T_CREATE);
    if phase == Phase::NotDelivered {
        return m;
    }
    must(&mut m, delivered(), T_DELIVER);
    match phase {
        Phase::Ringing => return m,
        Phase::Ended => {
            must(&mut m, CallInput::Cancel { by: A.into() }, T_ENDED);
            return m;
        }
        _ => {}
    }
    must(&mut m, CallInput::Accept { by: B.into() }, T_ACCEPT);
    if phase == Phase::Connecting {
        return m;
    }
    must(
        &mut m,
        CallInput::ChannelJoined {
            user: A.into(),
            media: false,
        },
        T_CALLER_JOIN,
    );
    must(
        &mut m,
        CallInput::ChannelJoined {
            user: B.into(),
            media: false,
        },
        T_CONNECT,
    );
    m
}

/// The input every phase's table must answer, by label.
fn inputs() -> Vec<(String, CallInput)> {
    let mut v: Vec<(String, CallInput)> = vec![
        ("start".into(), CallInput::Start),
        ("delivered".into(), delivered()),
        (
            "undeliverable offline".into(),
            CallInput::Undeliverable(Undeliverable::Offline),
        ),
        (
            "undeliverable busy".into(),
            CallInput::Undeliverable(Undeliverable::Busy),
        ),
        (
            "undeliverable glare".into(),
            CallInput::Undeliverable(Undeliverable::Glare),
        ),
    ];
    for (tag, u) in [("A", A), ("B", B), ("C", C)] {
        let by: UserId = u.into();
        v.push((
            format!("cancel {tag}"),
            CallInput::Cancel { by: by.clone() },
        ));
        v.push((
            format!("accept {tag}"),
            CallInput::Accept { by: by.clone() },
        ));
        v.push((
            format!("reject {tag}"),
            CallInput::Reject {
                by: by.clone(),
                reason: "no thanks".into(),
            },
        ));
        v.push((
            format!("hangup {tag}"),
            CallInput::Hangup {
                by: by.clone(),
                reason: "bye".into(),
            },
        ));
        v.push((
            format!("join {tag}"),
            CallInput::ChannelJoined {
                user: by.clone(),
                media: false,
            },
        ));
        v.push((
            format!("left {tag}"),
            CallInput::ChannelLeft { user: by.clone() },
        ));
        v.push((
            format!("away {tag}"),
            CallInput::PeerAway { user: by.clone() },
        ));
        v.push((
            format!("back {tag}"),
            CallInput::PeerBack { user: by.clone() },
        ));
        for (how_tag, how) in [
            ("logged-out", SessionEnd::LoggedOut),
            ("token-expired", SessionEnd::TokenExpired),
            ("gone", SessionEnd::Gone),
        ] {
            let input = CallInput::SessionEnded {
                user: by.clone(),
                how,
            };
            v.push((format!("session {tag} {how_tag}"), input));
        }
        v.push((
            format!("frame {tag}"),
            CallInput::MediaFlowing { from: by.clone() },
        ));
        v.push((format!("gave-way {tag}"), CallInput::GaveWay { by }));
    }
    v.push(("calling-timeout".into(), CallInput::CallingTimeout));
    v.push(("adopt".into(), CallInput::Adopt));
    for present in [true, false] {
        let tag = if present { "present" } else { "absent" };
        for (user_tag, user) in [("A", A), ("B", B), ("C", C)] {
            let input = CallInput::PartyPresent {
                user: user.into(),
                present,
            };
            v.push((format!("{tag} {user_tag}"), input));
        }
        v.push((
            format!("channel {tag}"),
            CallInput::ChannelPresent { present },
        ));
    }
    v.push(("adoption-timeout".into(), CallInput::AdoptionTimeout));
    v.push((
        "authorized allow".into(),
        CallInput::Authorized {
            allowed: true,
            reason: String::new(),
        },
    ));
    v.push((
        "authorized refuse".into(),
        CallInput::Authorized {
            allowed: false,
            reason: "no credit".into(),
        },
    ));
    v.push(("admission-timeout".into(), CallInput::AdmissionTimeout));
    v.push(("billing-tick".into(), CallInput::BillingTick));
    v.push((
        "terminate".into(),
        CallInput::Terminate {
            reason: "ops".into(),
        },
    ));
    v.push(("channel-lost".into(), CallInput::ChannelLost));
    v.push((
        "move-channel".into(),
        CallInput::MoveChannel {
            to: "call-c2".into(),
        },
    ));
    v
}

/// No wildcard: a new `CallInput` variant does not compile until it is named here, and
/// `inputs_cover_every_variant` then fails until the tables answer it.
fn variant(input: &CallInput) -> &'static str {
    match input {
        CallInput::Start => "Start",
        CallInput::Delivered { .. } => "Delivered",
        CallInput::Undeliverable(_) => "Undeliverable",
        CallInput::Cancel { .. } => "Cancel",
        CallInput::Accept { .. } => "Accept",
        CallInput::Reject { .. } => "Reject",
        CallInput::Hangup { .. } => "Hangup",
        CallInput::ChannelJoined { .. } => "ChannelJoined",
        CallInput::MediaFlowing { .. } => "MediaFlowing",
        CallInput::ChannelLeft { .. } => "ChannelLeft",
        CallInput::PeerAway { .. } => "PeerAway",
        CallInput::PeerBack { .. } => "PeerBack",
        CallInput::SessionEnded { .. } => "SessionEnded",
        CallInput::GaveWay { .. } => "GaveWay",
        CallInput::CallingTimeout => "CallingTimeout",
        CallInput::Terminate { .. } => "Terminate",
        CallInput::ChannelLost => "ChannelLost",
        CallInput::MoveChannel { .. } => "MoveChannel",
        CallInput::Adopt => "Adopt",
        CallInput::PartyPresent { .. } => "PartyPresent",
        CallInput::ChannelPresent { .. } => "ChannelPresent",
        CallInput::AdoptionTimeout => "AdoptionTimeout",
        CallInput::Authorized { .. } => "Authorized",
        CallInput::AdmissionTimeout => "AdmissionTimeout",
        CallInput::BillingTick => "BillingTick",
    }
}

#[test]
fn inputs_cover_every_variant() {
    let seen: BTreeSet<&str> = inputs().iter().map(|(_, i)| variant(i)).collect();
    assert_eq!(
        seen.len(),
        25,
        "every CallInput variant is in the table: {seen:?}"
    );
}

/// What a cell expects.
enum Cell {
    /// These effects, one per line.
    Fx(&'static str),
    NotAllowed(&'static str, Side),
    Unexpected(&'static str),
    NotParticipant,
}
use Cell::{Fx, NotAllowed, NotParticipant, Unexpected};
use Side::{Callee, Caller};

type Row = (&'static str, Cell);

/// A row that succeeds: `"label => effect lines"`.
fn ok(row: &'static str) -> Row {
    let (label, fx) = row
        .split_once("=>")
        .expect("ok rows read `label => effects`");
    (label.trim(), Fx(fx))
}

/// The next legal step from each phase, used to prove a refused input left the machine working.
fn follow_up(phase: Phase) -> Option<CallInput> {
    let (a, b, reason) = (A.into(), B.into(), "later".to_owned());
    match phase {
        Phase::Authorizing => Some(CallInput::Authorized {
            allowed: true,
            reason: String::new(),
        }),
        Phase::NotDelivered => Some(delivered()),
        Phase::Ringing => Some(CallInput::Accept { by: b }),
        Phase::Connecting => Some(CallInput::Hangup { by: a, reason }),
        Phase::Connected => Some(CallInput::Hangup { by: b, reason }),
        Phase::Ended => None,
    }
}

fn last_state_to(fx: &[CallEffect], user: &str) -> Option<CallState> {
    fx.iter().rev().find_map(|e| match e {
        CallEffect::Notify {
            to,
            update: CallUpdate::State { state, .. },
        } if to.as_str() == user => Some(*state),
        _ => None,
    })
}

fn check_cell(phase: Phase, label: &str, input: CallInput, cell: &Cell) {
    let at = format!("[{phase:?} / {label}]");
    let mut m = drive(phase);
    let before = m.clone();
    let got = m.handle(input, NOW);
    let (command, input, phase_name) = match cell {
        Fx(text) => return check_effects(&at, &before, &mut m, got, text),
        NotAllowed(command, _) => (*command, "", phase.name()),
        Unexpected(input) => ("", *input, phase.name()),
        NotParticipant => ("", "", ""),
    };
    let want = match cell {
        NotAllowed(_, side) => CallError::NotAllowed {
            command,
            side: *side,
            phase: phase_name,
        },
        Unexpected(_) => CallError::Unexpected {
            input,
            phase: phase_name,
        },
        _ => CallError::NotParticipant,
    };
    assert_eq!(got, Err(want), "{at} error");
    assert_eq!(
        format!("{m:?}"),
        format!("{before:?}"),
        "{at} a refused input changed the machine"
    );
    for side in [Caller, Callee] {
        assert_eq!(m.state_of(side), before.state_of(side), "{at} {side:?}");
    }
    assert_eq!(m.is_ended(), before.is_ended(), "{at}");
    if let Some(next) = follow_up(phase) {
        let want = before.clone().handle(next.clone(), NOW + 1);
        assert!(want.is_ok(), "{at} the follow-up must be legal");
        assert_eq!(
            m.handle(next, NOW + 1),
            want,
            "{at} follow-up after the refusal"
        );
    }
}

fn check_effects(
    at: &str,
    before: &CallMachine,
    m: &mut CallMachine,
    got: Result<Vec<CallEffect>, CallError>,
    text: &str,
) {
    let fx = got.unwrap_or_else(|e| panic!("{at} refused: {e}"));
    assert_eq!(show(&fx), lines(text), "{at} effects");
    let records: Vec<_> = fx
        .iter()
        .filter_map(|e| {
            if let CallEffect::Ended(r) = e {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    assert!(records.len() <= 1, "{at} at most one record");
    assert_eq!(m.is_ended(), records.len() == 1, "{at} ended iff a record");
    for (side, user) in [(Caller, A), (Callee, B)] {
        let want = match m.is_ended() {
            true => CallState::Prepared,
            false => last_state_to(&fx, user).unwrap_or(before.state_of(side)),
        };
        assert_eq!(m.state_of(side), want, "{at} state of the {side:?}");
    }
    if let Some(r) = records.first() {
        let ids = (
            r.id.as_str(),
            r.channel.as_str(),
            r.caller.as_str(),
            r.callee.as_str(),
        );
        assert_eq!(ids, ("c1", "call-c1", A, B), "{at} record");
        assert_eq!((r.created_at, r.ended_at), (T_CREATE, NOW), "{at} record");
        let again = CallInput::Terminate {
            reason: "again".into(),
        };
        assert_eq!(
            m.handle(again, NOW + 1),
            Err(CallError::Ended),
            "{at} ends once"
        );
    }
}

fn check_phase(phase: Phase, table: &[Row]) {
    let inputs = inputs();
    for (label, _) in table {
        let known = inputs.iter().any(|(l, _)| l == label);
        assert!(known, "[{phase:?}] row {label} names no input");
    }
    for (label, input) in inputs {
        let rows: Vec<_> = table.iter().filter(|(l, _)| *l == label).collect();
        assert_eq!(rows.len(), 1, "[{phase:?}] exactly one row for {label}");
        check_cell(phase, &label, input, &rows[0].1);
    }
}

/// A call that was not restored from a snapshot refuses the takeover inputs in every phase (restored calls:
/// `call_takeover.rs`).
fn not_restored() -> Vec<Row> {
    vec![
        ("adopt", Unexpected("adopt")),
        ("present A", Unexpected("party present")),
        ("present B", Unexpected("party present")),
        ("present C", NotParticipant),
        ("absent A", Unexpected("party present")),
        ("absent B", Unexpected("party present")),
        ("absent C", NotParticipant),
        ("channel present", Unexpected("channel present")),
        ("channel absent", Unexpected("channel present")),
        ("adoption-timeout", Unexpected("adoption timeout")),
    ]
}

/// A call past admission (or without it), and without billing ticks (`call_billing_ticks.rs` has them),
/// refuses the admission answers and ticks.
fn admitted() -> Vec<Row> {
    vec![
        ("authorized allow", Unexpected("authorized")),
        ("authorized refuse", Unexpected("authorized")),
        ("admission-timeout", Unexpected("admission timeout")),
        ("billing-tick", Unexpected("billing tick")),
    ]
}

/// Waiting for the business server's verdict: the callee does not know of the call, and there is no
/// call channel yet. (`call_admission.rs` tells the stories and checks the texts.)
#[test]
fn authorizing() {
    let mut table = vec![
        ("start", Unexpected("start")),
        ("delivered", Unexpected("delivered")),
        ("undeliverable offline", Unexpected("undeliverable")),
        ("undeliverable busy", Unexpected("undeliverable")),
        ("undeliverable glare", Unexpected("undeliverable")),
        // The caller may give up while waiting; the callee never hears of the call.
        ok("cancel A =>
            cancel timer
            A state Prepared LocalCancelled; A event LocalCancelled
            ended cancelled after 0"),
        ("cancel B", NotAllowed("cancel", Callee)),
        ("cancel C", NotParticipant),
        ("accept A", NotAllowed("accept", Caller)),
        ("accept B", NotAllowed("accept", Callee)),
        ("accept C", NotParticipant),
        ("reject A", NotAllowed("reject", Caller)),
        ("reject B", NotAllowed("reject", Callee)),
        ("reject C", NotParticipant),
        ("hangup A", NotAllowed("hangup", Caller)),
        ("hangup B", NotAllowed("hangup", Callee)),
        ("hangup C", NotParticipant),
        // No call channel exists yet: nothing can happen in it.
        ("join A", Unexpected("channel joined")),
        ("join B", Unexpected("channel joined")),
        ("join C", NotParticipant),
        ("left A", Unexpected("channel left")),
        ("left B", Unexpected("channel left")),
        ("left C", NotParticipant),
        ("frame A", Unexpected("media flowing")),
        ("frame B", Unexpected("media flowing")),
        ("frame C", NotParticipant),
        // Presence as before the ring is delivered: the callee hears nothing.
        ok("away A => "),
        ok("away B => A event RemoteLeft"),
        ("away C", NotParticipant),
        ok("back A => "),
        ok("back B => A event RemoteReconnected"),
        ("back C", NotParticipant),
        ok("session A logged-out =>
            cancel timer
            A state Prepared LocalHangup
            ended session of A LoggedOut after 0"),
        ok("session A token-expired =>
            cancel timer
            A state Prepared TokenExpired
            ended session of A TokenExpired after 0"),
        ok("session A gone =>
            cancel timer
            A state Prepared LocalLeft
            ended session of A Gone after 0"),
        ok("session B logged-out =>
            cancel timer
            A state Prepared RemoteLoggedOut; A event RemoteLeft
            ended session of B LoggedOut after 0"),
        ok("session B token-expired =>
            cancel timer
            A state Prepared RemoteLoggedOut; A event RemoteLeft
            ended session of B TokenExpired after 0"),
        ok("session B gone =>
            cancel timer
            A state Prepared RemoteLeft; A event RemoteLeft
            ended session of B Gone after 0"),
        ("session C logged-out", NotParticipant),
        ("session C token-expired", NotParticipant),
        ("session C gone", NotParticipant),
        ok("gave-way A =>
            cancel timer
            A state Prepared GlareResolved
            ended glare after 0"),
        ok("gave-way B =>
            cancel timer
            A state Prepared GlareResolved
            ended glare after 0"),
        ("gave-way C", NotParticipant),
        ("calling-timeout", Unexpected("calling timeout")),
        ok("terminate =>
            cancel timer
            A state Prepared EndedByServer
            ended terminated (ops) after 0"),
        ok("channel-lost =>
            cancel timer
            A state Prepared EndedByServer
            ended node lost after 0"),
        ("move-channel", Unexpected("move channel")),
        // Allowed: what a call without admission does at Start, but the caller already saw `calling`.
        ok("authorized allow =>
            cancel timer
            open call-c1 for A B
            ring B
            set timer at 25000"),
        ok("authorized refuse =>
            cancel timer
            A state Prepared RefusedByPolicy
            ended refused (no credit) after 0"),
        ok("admission-timeout =>
            cancel timer
            A state Prepared RefusedByPolicy
            ended refused (admission timed out) after 0"),
        ("billing-tick", Unexpected("billing tick")),
    ];
    table.extend(not_restored());
    check_phase(Phase::Authorizing, &table);
}

/// Ringing, and the ring's delivery does not matter: every refusal and every session end.
fn refusals_while_ringing(phase: Phase) -> Vec<Row> {
    vec![
        ("start", Unexpected("start")),
        ("cancel B", NotAllowed("cancel", Callee)),
        ("cancel C", NotParticipant),
        ("accept A", NotAllowed("accept", Caller)),
        ("accept C", NotParticipant),
        ("reject A", NotAllowed("reject", Caller)),
        ("reject C", NotParticipant),
        ("hangup A", NotAllowed("hangup", Caller)),
        ("hangup B", NotAllowed("hangup", Callee)),
        ("hangup C", NotParticipant),
        ("join C", NotParticipant),
        // Nobody is in the call channel yet: leaving it is a no-op.
        ok("left A => "),
        ok("left B => "),
        ("left C", NotParticipant),
        ("away C", NotParticipant),
        ok("back B => A event RemoteReconnected"),
        ("back C", NotParticipant),
        ("session C logged-out", NotParticipant),
        ("session C token-expired", NotParticipant),
        ("session C gone", NotParticipant),
        ("gave-way C", NotParticipant),
        ("frame C", NotParticipant),
        // A callee that joined early (canJoinRtcOnCalling) may send media while ringing.
        ok("frame B => A event RecvRemoteFirstFrame"),
        ok("away B => A event RemoteLeft"),
        ok("cancel A =>
            cancel timer
            A state Prepared LocalCancelled; A event LocalCancelled
            B state Prepared RemoteCancelled; B event RemoteCancelled
            close call-c1
            ended cancelled after 0"),
        ok("session A logged-out =>
            cancel timer
            A state Prepared LocalHangup
            B state Prepared RemoteLoggedOut; B event RemoteLeft
            close call-c1
            ended session of A LoggedOut after 0"),
        ok("session A token-expired =>
            cancel timer
            A state Prepared TokenExpired
            B state Prepared RemoteLoggedOut; B event RemoteLeft
            close call-c1
            ended session of A TokenExpired after 0"),
        ok("session A gone =>
            cancel timer
            A state Prepared LocalLeft
            B state Prepared RemoteLeft; B event RemoteLeft
            close call-c1
            ended session of A Gone after 0"),
        ok("session B logged-out =>
            cancel timer
            A state Prepared RemoteLoggedOut; A event RemoteLeft
            B state Prepared LocalHangup
            close call-c1
            ended session of B LoggedOut after 0"),
        ok("session B token-expired =>
            cancel timer
            A state Prepared RemoteLoggedOut; A event RemoteLeft
            B state Prepared TokenExpired
            close call-c1
            ended session of B TokenExpired after 0"),
        ok("session B gone =>
            cancel timer
            A state Prepared RemoteLeft; A event RemoteLeft
            B state Prepared LocalLeft
            close call-c1
            ended session of B Gone after 0"),
        // The caller's user actor withdrew its call for the peer's (glare).
        ok("gave-way A =>
            cancel timer
            A state Prepared GlareResolved
            B state Prepared RemoteCancelled; B event RemoteCancelled
            close call-c1
            ended glare after 0"),
        // The callee's own Call to the caller arrived while this call rang it, and the callee's id is the
        // smaller: this call gives way all the same, and its caller sees the glare.
        ok("gave-way B =>
            cancel timer
            A state Prepared GlareResolved
            B state Prepared RemoteCancelled; B event RemoteCancelled
            close call-c1
            ended glare after 0"),
        ok("calling-timeout =>
            cancel timer
            A state Prepared CallingTimeout; A event CallingTimeout
            B state Prepared RemoteCallingTimeout; B event RemoteCallingTimeout
            close call-c1
            ended timeout after 0"),
        ok("terminate =>
            cancel timer
            A state Prepared EndedByServer
            B state Prepared EndedByServer
            close call-c1
            ended terminated (ops) after 0"),
        ok("channel-lost =>
            cancel timer
            A state Prepared EndedByServer
            B state Prepared EndedByServer
            close call-c1
            ended node lost after 0"),
        ("move-channel", Unexpected("move channel")),
    ]
    .into_iter()
    .chain(if phase == Phase::NotDelivered {
        vec![]
    } else {
        vec![("delivered", Unexpected("delivered"))]
    })
    .collect()
}

#[test]
fn ringing_not_yet_delivered() {
    let mut table = refusals_while_ringing(Phase::NotDelivered);
    table.extend([
        // The callee does not know of the call yet: it hears nothing of the caller's media.
        ok("frame A => "),
        ok("delivered =>
            B state Calling RemoteVideoCall; B event RemoteVideoCall
            A event RemoteUserRecvCall"),
        // The callee never rang: only the caller hears, at once, with the reason.
        ok("undeliverable offline =>
            cancel timer
            A state Prepared RemoteOffline; A event RemoteOffline
            close call-c1
            ended offline after 0"),
        ok("undeliverable busy =>
            cancel timer
            A state Prepared RemoteCallBusy; A event RemoteCallBusy
            close call-c1
            ended busy after 0"),
        ok("undeliverable glare =>
            cancel timer
            A state Prepared GlareResolved
            close call-c1
            ended glare after 0"),
        // The callee does not know of the call yet: it may not accept or reject, and hears of nothing the
        // caller does in the meantime.
        ("accept B", NotAllowed("accept", Callee)),
        ("reject B", NotAllowed("reject", Callee)),
        ok("join A => A event LocalJoined"),
        ok("join B => B event LocalJoined; A event RemoteJoined"),
        ok("away A => "),
        ok("back A => "),
    ]);
    table.extend(not_restored());
    table.extend(admitted());
    check_phase(Phase::NotDelivered, &table);
}

#[test]
fn ringing() {
    let mut table = refusals_while_ringing(Phase::Ringing);
    table.extend([
        ok("frame A => B event RecvRemoteFirstFrame"),
        ("undeliverable offline", Unexpected("undeliverable")),
        ("undeliverable busy", Unexpected("undeliverable")),
        ("undeliverable glare", Unexpected("undeliverable")),
        // Pausing waits for the accept by default: a rejected call never interrupts the live room.
        ok("accept B =>
            B state Connecting LocalAccepted; B event LocalAccepted
            A state Connecting RemoteAccepted; A event RemoteAccepted
            pause live-alice A; pause live-bob B"),
        ok("reject B =>
            cancel timer
            A state Prepared RemoteRejected; A event RemoteRejected
            B state Prepared LocalRejected; B event LocalRejected
            close call-c1
            ended rejected (no thanks) after 0"),
        ok("join A => A event LocalJoined; B event RemoteJoined"),
        ok("join B => B event LocalJoined; A event RemoteJoined"),
        ok("away A => B event RemoteLeft"),
        ok("back A => B event RemoteReconnected"),
    ]);
    table.extend(not_restored());
    table.extend(admitted());
    check_phase(Phase::Ringing, &table);
}

/// Accepted (connecting or connected): the refusals and the presence events both phases share.
fn accepted_common() -> Vec<Row> {
    vec![
        ("start", Unexpected("start")),
        ("delivered", Unexpected("delivered")),
        ("undeliverable offline", Unexpected("undeliverable")),
        ("undeliverable busy", Unexpected("undeliverable")),
        ("undeliverable glare", Unexpected("undeliverable")),
        ("cancel A", NotAllowed("cancel", Caller)),
        ("cancel B", NotAllowed("cancel", Callee)),
        ("cancel C", NotParticipant),
        ("accept A", NotAllowed("accept", Caller)),
        ("accept B", NotAllowed("accept", Callee)),
        ("accept C", NotParticipant),
        ("reject A", NotAllowed("reject", Caller)),
        ("reject B", NotAllowed("reject", Callee)),
        ("reject C", NotParticipant),
        ("hangup C", NotParticipant),
        ("join C", NotParticipant),
        ("left C", NotParticipant),
        // First frames are reported; with signaling-only joins they do not decide `connected`.
        ok("frame A => B event RecvRemoteFirstFrame"),
        ok("frame B => A event RecvRemoteFirstFrame"),
        ("frame C", NotParticipant),
        ok("away A => B event RemoteLeft"),
        ok("away B => A event RemoteLeft"),
        ("away C", NotParticipant),
        ok("back A => B event RemoteReconnected"),
        ok("back B => A event RemoteReconnected"),
        ("back C", NotParticipant),
        ("session C logged-out", NotParticipant),
        ("session C token-expired", NotParticipant),
        ("session C gone", NotParticipant),
        ("gave-way C", NotParticipant),
    ]
}

#[test]
fn connecting() {
    let mut table = accepted_common();
    table.extend([
        ok("join A => A event LocalJoined; B event RemoteJoined"),
        ok("join B => B event LocalJoined; A event RemoteJoined"),
        ok("left A => "),
        ok("left B => "),
        ok("hangup A =>
            cancel timer
            A state Prepared LocalHangup; A event LocalHangup
            B state Prepared RemoteHangup; B event RemoteHangup
            resume live-alice A; resume live-bob B; close call-c1
            ended hangup by A (bye) after 0"),
        ok("hangup B =>
            cancel timer
            A state Prepared RemoteHangup; A event RemoteHangup
            B state Prepared LocalHangup; B event LocalHangup
            resume live-alice A; resume live-bob B; close call-c1
            ended hangup by B (bye) after 0"),
        ok("session A logged-out =>
            cancel timer
            A state Prepared LocalHangup
            B state Prepared RemoteLoggedOut; B event RemoteLeft
            resume live-alice A; resume live-bob B; close call-c1
            ended session of A LoggedOut after 0"),
        ok("session A token-expired =>
            cancel timer
            A state Prepared TokenExpired
            B state Prepared RemoteLoggedOut; B event RemoteLeft
            resume live-alice A; resume live-bob B; close call-c1
            ended session of A TokenExpired after 0"),
        ok("session A gone =>
            cancel timer
            A state Prepared LocalLeft
            B state Prepared RemoteLeft; B event RemoteLeft
            resume live-alice A; resume live-bob B; close call-c1
            ended session of A Gone after 0"),
        ok("session B logged-out =>
            cancel timer
            A state Prepared RemoteLoggedOut; A event RemoteLeft
            B state Prepared LocalHangup
            resume live-alice A; resume live-bob B; close call-c1
            ended session of B LoggedOut after 0"),
        ok("session B token-expired =>
            cancel timer
            A state Prepared RemoteLoggedOut; A event RemoteLeft
            B state Prepared TokenExpired
            resume live-alice A; resume live-bob B; close call-c1
            ended session of B TokenExpired after 0"),
        ok("session B gone =>
            cancel timer
            A state Prepared RemoteLeft; A event RemoteLeft
            B state Prepared LocalLeft
            resume live-alice A; resume live-bob B; close call-c1
            ended session of B Gone after 0"),
        // The caller's user actor saw its call still ringing when the peer's call rang, and already told its
        // client the call gave way: the call must end, or the callee would wait in it alone.
        ok("gave-way A =>
            cancel timer
            A state Prepared GlareResolved
            B state Prepared RemoteHangup; B event RemoteHangup
            resume live-alice A; resume live-bob B; close call-c1
            ended glare after 0"),
        // The callee's user actor had not yet heard of its own accept when its Call to the caller arrived.
        ok("gave-way B =>
            cancel timer
            A state Prepared GlareResolved
            B state Prepared RemoteHangup; B event RemoteHangup
            resume live-alice A; resume live-bob B; close call-c1
            ended glare after 0"),
        // One timer covers calling + connecting.
        ok("calling-timeout =>
            cancel timer
            A state Prepared CallingTimeout; A event CallingTimeout
            B state Prepared RemoteCallingTimeout; B event RemoteCallingTimeout
            resume live-alice A; resume live-bob B; close call-c1
            ended timeout after 0"),
        ok("terminate =>
            cancel timer
            A state Prepared EndedByServer
            B state Prepared EndedByServer
            resume live-alice A; resume live-bob B; close call-c1
            ended terminated (ops) after 0"),
        ok("channel-lost =>
            cancel timer
            A state Prepared EndedByServer
            B state Prepared EndedByServer
            resume live-alice A; resume live-bob B; close call-c1
            ended node lost after 0"),
        ("move-channel", Unexpected("move channel")),
    ]);
    table.extend(not_restored());
    table.extend(admitted());
    check_phase(Phase::Connecting, &table);
}

#[test]
fn connected() {
    let mut table = accepted_common();
    table.extend([
        // Already in: joining again tells nobody.
        ok("join A => "),
        ok("join B => "),
        // Leaving the channel does not end the call; the party may rejoin.
        ok("left A => A event LocalLeft; B event RemoteLeft"),
        ok("left B => B event LocalLeft; A event RemoteLeft"),
        ("calling-timeout", Unexpected("calling timeout")),
        ok("hangup A =>
            A state Prepared LocalHangup; A event LocalHangup; A disconnected by A after 7000
            B state Prepared RemoteHangup; B event RemoteHangup; B disconnected by A after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended hangup by A (bye) after 7000"),
        ok("hangup B =>
            A state Prepared RemoteHangup; A event RemoteHangup; A disconnected by B after 7000
            B state Prepared LocalHangup; B event LocalHangup; B disconnected by B after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended hangup by B (bye) after 7000"),
        ok("session A logged-out =>
            A state Prepared LocalHangup; A disconnected by A after 7000
            B state Prepared RemoteLoggedOut; B event RemoteLeft; B disconnected by A after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended session of A LoggedOut after 7000"),
        ok("session A token-expired =>
            A state Prepared TokenExpired; A disconnected by A after 7000
            B state Prepared RemoteLoggedOut; B event RemoteLeft; B disconnected by A after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended session of A TokenExpired after 7000"),
        ok("session A gone =>
            A state Prepared LocalLeft; A disconnected by A after 7000
            B state Prepared RemoteLeft; B event RemoteLeft; B disconnected by A after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended session of A Gone after 7000"),
        ok("session B logged-out =>
            A state Prepared RemoteLoggedOut; A event RemoteLeft; A disconnected by B after 7000
            B state Prepared LocalHangup; B disconnected by B after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended session of B LoggedOut after 7000"),
        ok("session B token-expired =>
            A state Prepared RemoteLoggedOut; A event RemoteLeft; A disconnected by B after 7000
            B state Prepared TokenExpired; B disconnected by B after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended session of B TokenExpired after 7000"),
        ok("session B gone =>
            A state Prepared RemoteLeft; A event RemoteLeft; A disconnected by B after 7000
            B state Prepared LocalLeft; B disconnected by B after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended session of B Gone after 7000"),
        ok("gave-way A =>
            A state Prepared GlareResolved; A disconnected by A after 7000
            B state Prepared RemoteHangup; B event RemoteHangup; B disconnected by A after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended glare after 7000"),
        ok("gave-way B =>
            A state Prepared GlareResolved; A disconnected by B after 7000
            B state Prepared RemoteHangup; B event RemoteHangup; B disconnected by B after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended glare after 7000"),
        ok("terminate =>
            A state Prepared EndedByServer; A disconnected by - after 7000
            B state Prepared EndedByServer; B disconnected by - after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended terminated (ops) after 7000"),
        ok("channel-lost =>
            A state Prepared EndedByServer; A disconnected by - after 7000
            B state Prepared EndedByServer; B disconnected by - after 7000
            resume live-alice A; resume live-bob B; close call-c1
            ended node lost after 7000"),
        ok("move-channel =>
            open call-c2 for A B
            A state Connected MediaMoved
            B state Connected MediaMoved
            persist connected at 3000"),
    ]);
    table.extend(not_restored());
    table.extend(admitted());
    check_phase(Phase::Connected, &table);
}

#[test]
fn ended_refuses_everything() {
    for (label, input) in inputs() {
        let mut m = drive(Phase::Ended);
        let before = format!("{m:?}");
        assert_eq!(
            m.handle(input, NOW),
            Err(CallError::Ended),
            "[Ended / {label}]"
        );
        assert_eq!(format!("{m:?}"), before, "[Ended / {label}] changed");
        assert!(m.is_ended());
        assert_eq!(
            (m.state_of(Caller), m.state_of(Callee)),
            (CallState::Prepared, CallState::Prepared)
        );
    }
}
