//! Admission: the app's business server decides whether a call may ring.
//!
//! When an app is configured for admission, its calls are created with
//! [`CallSetup::admission_timeout_ms`](super::CallSetup::admission_timeout_ms) set and start in the
//! `Authorizing` phase. On `Start` the caller is told `calling` exactly as for any call (apps need no
//! change), the machine asks for a verdict ([`CallEffect::Authorize`]) and arms the admission timer.
//!
//! - Allowed: the call goes on as a call without admission would at `Start` — the call channel opens, the
//!   callee rings, the calling timeout starts (it counts from the ring, not from the call: the time spent
//!   authorizing is bounded by its own timer), and a caller that pauses its live room at ringing pauses now.
//! - Refused, or the admission timer fires first: the call ends for the caller only, with
//!   `refusedByPolicy` and the business server's reason (or [`ADMISSION_TIMED_OUT`]) as the event reason.
//!   The callee never rang and is never told; no channel was opened, nothing was paused. The record's
//!   cause is [`EndCause::Refused`].
//! - The caller may cancel while the call is authorizing (`localCancelled`; the callee never hears of it),
//!   and a terminate, glare or a session end ends it as in any phase. A verdict that arrives after the call
//!   ended is refused with [`CallError::Ended`] and dropped by the actor.
//!
//! There is no `CallEvent` for a refusal: the state reason and its text say it all, as for `glareResolved`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CallEffect, CallError, CallMachine, CallTimer, EndCause, Phase};
use crate::types::{CallId, CallType, Millis, StateReason, UserId};

/// The event reason a caller sees when the business server did not answer in time.
pub const ADMISSION_TIMED_OUT: &str = "admission timed out";

/// What the business server is asked about a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionRequest {
    pub call_id: CallId,
    pub caller: UserId,
    pub callee: UserId,
    pub call_type: CallType,
    /// The caller's user extension merged with the call extension (what the callee would be shown).
    pub extension: BTreeMap<String, String>,
}

impl CallMachine {
    /// Start of an authorizing call: the request and its deadline.
    pub(super) fn ask_admission(&self, now: Millis, fx: &mut Vec<CallEffect>) {
        fx.push(CallEffect::Authorize(AdmissionRequest {
            call_id: self.setup.id.clone(),
            caller: self.setup.caller.clone(),
            callee: self.setup.callee.clone(),
            call_type: self.setup.call_type,
            extension: self.setup.extension.clone(),
        }));
        fx.push(CallEffect::SetTimer {
            timer: CallTimer::Admission,
            at: now + self.setup.admission_timeout_ms.unwrap_or_default(),
        });
    }

    pub(super) fn authorized(
        &mut self,
        allowed: bool,
        reason: String,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        if self.phase != (Phase::Authorizing { asked: true }) {
            return Err(self.unexpected("authorized"));
        }
        if !allowed {
            self.refuse(reason, now, fx);
            return Ok(());
        }
        fx.push(CallEffect::CancelTimer {
            timer: CallTimer::Admission,
        });
        self.phase = Phase::Ringing { delivered: false };
        self.open_channel(fx);
        self.ring(now, fx);
        Ok(())
    }

    pub(super) fn admission_timeout(
        &mut self,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        if self.phase != (Phase::Authorizing { asked: true }) {
            return Err(self.unexpected("admission timeout"));
        }
        self.refuse(ADMISSION_TIMED_OUT.to_owned(), now, fx);
        Ok(())
    }

    fn refuse(&mut self, reason: String, now: Millis, fx: &mut Vec<CallEffect>) {
        let caller_view = (StateReason::RefusedByPolicy, None, reason.clone());
        // The callee never rang: `end` skips it (callee_involved is false while authorizing).
        let unused = (StateReason::None, None, String::new());
        self.end(
            now,
            EndCause::Refused { reason },
            [caller_view, unused],
            None,
            fx,
        );
    }
}
