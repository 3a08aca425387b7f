//! Helpers shared by the machine tests: the cast of a call, and a text form of call effects that reads
//! like what each party sees.
#![allow(dead_code)] // each test crate uses its own subset

use std::collections::BTreeMap;

use showcall_machines::call::EndCause;
use showcall_machines::{
    CallEffect, CallInput, CallMachine, CallSetup, CallType, CallUpdate, Millis, PauseAt, UserId,
};

/// The caller.
pub const A: &str = "alice";
/// The callee.
pub const B: &str = "bob";
/// A stranger to the call.
pub const C: &str = "carol";

/// alice calls bob (video, 15 s timeout, pause at accept); alice broadcasts in live-alice.
pub fn setup() -> CallSetup {
    CallSetup {
        id: "c1".into(),
        channel: "call-c1".into(),
        caller: A.into(),
        callee: B.into(),
        call_type: CallType::Video,
        // alice's user extension with her call extension merged over it.
        extension: BTreeMap::from([
            ("nick".to_owned(), "Alice".to_owned()),
            ("gift".to_owned(), "rose".to_owned()),
        ]),
        call_extension: BTreeMap::from([("gift".to_owned(), "rose".to_owned())]),
        timeout_ms: Some(15_000),
        first_frame_waiting_disabled: false,
        pause_at: PauseAt::Accept,
        caller_live: vec!["live-alice".into()],
        admission_timeout_ms: None,
        billing_tick_ms: None,
    }
}

/// [`setup`] for an app that requires admission: the business server has 2 s to answer.
pub fn admission_setup() -> CallSetup {
    CallSetup {
        admission_timeout_ms: Some(2_000),
        ..setup()
    }
}

/// bob's user actor rang him: he broadcasts in live-bob. As a user of wire 1.5 answers: the call tells
/// bob's client it is being called.
pub fn delivered() -> CallInput {
    delivery(false)
}

/// [`delivered`], `announced`: whether bob's user actor told his client itself (wire 1.6).
pub fn delivery(announced: bool) -> CallInput {
    CallInput::Delivered {
        live_channels: vec!["live-bob".into()],
        extension: BTreeMap::from([("nick".to_owned(), "Bob".to_owned())]),
        announced,
    }
}

/// Feeds an input that must be accepted.
pub fn must(m: &mut CallMachine, input: CallInput, now: Millis) -> Vec<CallEffect> {
    let what = format!("{input:?}");
    m.handle(input, now)
        .unwrap_or_else(|e| panic!("{what} while driving: {e}"))
}

/// A, B or C.
pub fn who(u: &UserId) -> &'static str {
    match u.as_str() {
        A => "A",
        B => "B",
        C => "C",
        other => panic!("effect addressed to unknown user {other}"),
    }
}

pub fn cause(c: &EndCause) -> String {
    match c {
        EndCause::Cancelled => "cancelled".into(),
        EndCause::Rejected { reason } => format!("rejected ({reason})"),
        EndCause::Busy => "busy".into(),
        EndCause::Offline => "offline".into(),
        EndCause::Glare => "glare".into(),
        EndCause::Hangup { by, reason } => format!("hangup by {} ({reason})", who(by)),
        EndCause::Timeout => "timeout".into(),
        EndCause::SessionEnded { user, how } => format!("session of {} {how:?}", who(user)),
        EndCause::Terminated { reason } => format!("terminated ({reason})"),
        EndCause::NodeLost => "node lost".into(),
        EndCause::Refused { reason } => format!("refused ({reason})"),
    }
}

/// The text form of effects used by the tables.
/// Progress milestones are left out (`call_progress_events` shows them).
pub fn show(fx: &[CallEffect]) -> Vec<String> {
    fx.iter()
        .filter(|e| !matches!(e, CallEffect::Progress(_)))
        .map(|e| match e {
            CallEffect::OpenChannel { channel, members } => {
                format!(
                    "open {channel} for {} {}",
                    who(&members[0]),
                    who(&members[1])
                )
            }
            CallEffect::Ring { callee, .. } => format!("ring {}", who(callee)),
            CallEffect::Notify { to, update } => {
                let what = match update {
                    CallUpdate::State { state, reason, .. } => {
                        format!("state {state:?} {reason:?}")
                    }
                    CallUpdate::Event { event, .. } => format!("event {event:?}"),
                    CallUpdate::Connected { .. } => "connected".into(),
                    CallUpdate::Disconnected {
                        hangup_user,
                        duration_ms,
                        ..
                    } => format!(
                        "disconnected by {} after {duration_ms}",
                        hangup_user.as_ref().map_or("-", who)
                    ),
                };
                format!("{} {what}", who(to))
            }
            CallEffect::SetTimer { at, .. } => format!("set timer at {at}"),
            CallEffect::CancelTimer { .. } => "cancel timer".into(),
            CallEffect::Authorize(r) => {
                format!("authorize {} -> {}", who(&r.caller), who(&r.callee))
            }
            CallEffect::BillingTick { tick, connected_ms } => {
                format!("billing tick {tick} at {connected_ms}")
            }
            CallEffect::PauseLive { channel, host } => format!("pause {channel} {}", who(host)),
            CallEffect::ResumeLive { channel, host } => format!("resume {channel} {}", who(host)),
            CallEffect::CloseChannel { channel } => format!("close {channel}"),
            CallEffect::Persist(snapshot) => {
                format!("persist connected at {}", snapshot.connected_at)
            }
            CallEffect::AskParty { user } => format!("ask {}", who(user)),
            CallEffect::AskChannel { channel } => format!("ask {channel}"),
            CallEffect::Ended(r) => format!("ended {} after {}", cause(&r.cause), r.connected_ms),
            CallEffect::Progress(_) => unreachable!("filtered out above"),
        })
        .collect()
}

/// Effects are separated by new lines or `;` (the tables put what one party sees on one line).
pub fn lines(text: &str) -> Vec<String> {
    let lines = text.split(['\n', ';']).map(str::trim);
    lines.filter(|l| !l.is_empty()).map(str::to_owned).collect()
}
