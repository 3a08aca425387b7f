//! Takeover: a connected call goes on when the node running its actor dies.
//!
//! When a call connects its actor writes a [`CallSnapshot`] (the cluster keeps it as the call record,
//! outside any node's lease). If that node dies, the new owner of the call's partition restores the machine
//! from the snapshot ([`CallMachine::restore`]) and feeds it [`CallInput::Adopt`]: the machine asks both
//! parties' user actors and the call channel whether they still hold this call. When all three say yes the
//! call simply goes on — the parties see nothing. When any says no (its actor died too, or already gave up
//! on the call), or not all have answered within [`ADOPTION_TIMEOUT_MS`], the call ends for both parties
//! with `endedByServer` and an accurate duration (from the snapshot's connect time), and the record is
//! emitted — exactly once, as for every other end.
//!
//! A restored call's billing ticks resume aligned to the original connect (see [`billing`](super::billing)).
//!
//! Calls that had not connected are not written (they hold no billing value and end quickly): when their
//! actor dies the parties end them on their own (see `UserInput::CallLost`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CallEffect, CallError, CallMachine, CallSetup, CallTimer, EndCause, Phase};
use crate::types::{ChannelName, Millis, StateReason, UserId};

/// How long a restored call waits for its parties and channel to answer before it gives up.
pub const ADOPTION_TIMEOUT_MS: u64 = 5_000;

/// What a connected call's new owner needs to go on with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSnapshot {
    pub setup: CallSetup,
    pub created_at: Millis,
    pub accepted_at: Option<Millis>,
    pub connected_at: Millis,
    /// The callee's user extension, shown to the caller.
    pub callee_extension: BTreeMap<String, String>,
    /// Live channels paused for this call (resumed when it ends).
    pub paused: Vec<(ChannelName, UserId)>,
    pub timing: BTreeMap<String, Millis>,
    /// The next billing tick to send. Set in a handoff (the call goes on where it was); a record kept
    /// for a crash leaves it out, and the next mark still ahead is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_tick: Option<u64>,
}

/// Which of the call's holders have confirmed a restored call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Adoption {
    started: bool,
    parties: [bool; 2],
    channel: bool,
}

const LOST: &str = "the node running this call was lost and the call could not go on";
const MEDIA_LOST: &str = "the node carrying this call's media left";
const MEDIA_MOVED: &str = "the call's media moved to another node: join the call channel again";

impl CallMachine {
    /// The snapshot to persist, once the call is connected.
    pub fn snapshot(&self) -> Option<CallSnapshot> {
        let Phase::Connected { since } = self.phase else {
            return None;
        };
        Some(CallSnapshot {
            setup: self.setup.clone(),
            created_at: self.created_at,
            accepted_at: self.accepted_at,
            connected_at: since,
            callee_extension: self.callee_extension.clone(),
            paused: self.paused.clone(),
            timing: self.timing.clone(),
            next_tick: None,
        })
    }

    /// The snapshot of a connected call that moves to another node while it runs (a partition
    /// handoff): the same as a record, with where its billing ticks stand.
    pub fn handoff_snapshot(&self) -> Option<CallSnapshot> {
        let mut snapshot = self.snapshot()?;
        snapshot.next_tick = Some(self.next_tick);
        Some(snapshot)
    }

    /// A connected call handed over by the node that ran it (a graceful handoff, not a crash): its
    /// parties and channel were fine a moment ago, so nothing is asked — it simply goes on. Arm
    /// [`CallMachine::resumed_timers`] next.
    pub fn resume(snapshot: CallSnapshot) -> Self {
        let next_tick = snapshot.next_tick;
        let mut machine = Self::restore(snapshot);
        machine.adoption = None;
        if let Some(next) = next_tick {
            machine.next_tick = next;
        }
        machine
    }

    /// The timers a resumed call needs: its next billing tick, at its mark (at once when the mark
    /// passed during the handoff).
    pub fn resumed_timers(&self) -> Vec<CallEffect> {
        let mut fx = Vec::new();
        self.arm_billing_tick(&mut fx);
        fx
    }

    /// A connected call restored on a new node; feed it [`CallInput::Adopt`](super::CallInput::Adopt) next.
    pub fn restore(snapshot: CallSnapshot) -> Self {
        Self {
            setup: snapshot.setup,
            phase: Phase::Connected {
                since: snapshot.connected_at,
            },
            created_at: snapshot.created_at,
            accepted_at: snapshot.accepted_at,
            // It was connected: both parties were in the channel, and media rules no longer matter.
            joined: [true; 2],
            media: [true; 2],
            flowed: [true; 2],
            callee_extension: snapshot.callee_extension,
            callee_live: Vec::new(),
            paused: snapshot.paused,
            timing: snapshot.timing,
            callee_involved: true,
            adoption: Some(Adoption::default()),
            // Set at `Adopt`, aligned to the connect (see `billing`).
            next_tick: 1,
        }
    }

    /// True while a restored call waits for its parties and channel.
    pub fn is_adopting(&self) -> bool {
        self.adoption.is_some()
    }

    pub(super) fn adopt(&mut self, now: Millis, fx: &mut Vec<CallEffect>) -> Result<(), CallError> {
        match &mut self.adoption {
            Some(adoption) if !adoption.started => adoption.started = true,
            _ => return Err(self.unexpected("adopt")),
        }
        for user in [self.setup.caller.clone(), self.setup.callee.clone()] {
            fx.push(CallEffect::AskParty { user });
        }
        fx.push(CallEffect::AskChannel {
            channel: self.setup.channel.clone(),
        });
        fx.push(CallEffect::SetTimer {
            timer: CallTimer::Adoption,
            at: now + ADOPTION_TIMEOUT_MS,
        });
        self.resume_billing_ticks(now, fx);
        Ok(())
    }

    pub(super) fn party_present(
        &mut self,
        user: UserId,
        present: bool,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        let side = self.participant(&user)?;
        let Some(adoption) = &mut self.adoption else {
            return Err(self.unexpected("party present"));
        };
        if present {
            adoption.parties[side.index()] = true;
            self.settle(fx);
        } else {
            self.lost(now, fx);
        }
        Ok(())
    }

    pub(super) fn channel_present(
        &mut self,
        present: bool,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        let Some(adoption) = &mut self.adoption else {
            return Err(self.unexpected("channel present"));
        };
        if present {
            adoption.channel = true;
            self.settle(fx);
        } else {
            // No channel, no media: say so (the parties may well still be there).
            self.channel_lost(now, fx);
        }
        Ok(())
    }

    pub(super) fn adoption_timeout(
        &mut self,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        if self.adoption.is_none() {
            return Err(self.unexpected("adoption timeout"));
        }
        self.lost(now, fx);
        Ok(())
    }

    /// Everyone confirmed: the call goes on as if nothing happened.
    fn settle(&mut self, fx: &mut Vec<CallEffect>) {
        if let Some(Adoption {
            parties: [true, true],
            channel: true,
            ..
        }) = self.adoption
        {
            self.adoption = None;
            fx.push(CallEffect::CancelTimer {
                timer: CallTimer::Adoption,
            });
        }
    }

    /// A connected call's channel moves to `to` (its node is leaving): opened there for the same two
    /// parties, both told (`connected`, `mediaMoved`, the new channel in their info) so they join it
    /// again, and the call's record rewritten with it. The call stays connected throughout.
    pub(super) fn move_channel(
        &mut self,
        to: ChannelName,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        if !matches!(self.phase, Phase::Connected { .. }) || self.adoption.is_some() {
            return Err(self.unexpected("move channel"));
        }
        self.setup.channel = to;
        self.open_channel(fx);
        for side in [super::Side::Caller, super::Side::Callee] {
            self.state(
                side,
                super::CallState::Connected,
                StateReason::MediaMoved,
                MEDIA_MOVED,
                fx,
            );
        }
        if let Some(snapshot) = self.snapshot() {
            fx.push(CallEffect::Persist(snapshot));
        }
        Ok(())
    }

    /// The call's channel died with its node (see `CallInput::ChannelLost`).
    pub(super) fn channel_lost(&mut self, now: Millis, fx: &mut Vec<CallEffect>) {
        let view = (StateReason::EndedByServer, None, MEDIA_LOST.to_owned());
        self.end(now, EndCause::NodeLost, [view.clone(), view], None, fx);
    }

    fn lost(&mut self, now: Millis, fx: &mut Vec<CallEffect>) {
        let view = (StateReason::EndedByServer, None, LOST.to_owned());
        self.end(now, EndCause::NodeLost, [view.clone(), view], None, fx);
    }
}
