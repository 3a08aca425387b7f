//! Billing ticks: while a call is connected, a tick every
//! [`CallSetup::billing_tick_ms`](super::CallSetup::billing_tick_ms), so the business server can charge as
//! the call goes (per minute) and end it (admin `EndCall`) when the viewer's balance runs out.
//!
//! Tick `n` is due `n` × the tick after the connect and carries the time connected when it fired. Each tick
//! is scheduled from the connect time, not from the previous tick, so late timers do not add up; a tick
//! that fires late still comes in order and the next one is due at its own mark. The call's end cancels
//! the timer: no tick follows the call record.
//!
//! Takeover: a restored call re-arms the tick at `Adopt`, aligned to the original connect: the next tick is
//! the first whose mark is still ahead, with its number counted from the connect. Ticks whose mark passed
//! while the call had no node (its node died and the lease had to expire) are not sent again — the old node
//! may have sent them already, and a duplicate would be charged twice — so the numbers jump. A business
//! server should charge by `tick` (or by `connected_ms`), not by counting events; the call record's
//! connected duration is exact either way.

use super::{CallEffect, CallError, CallMachine, CallTimer, Phase};
use crate::types::Millis;

impl CallMachine {
    /// The tick period, when ticks are on.
    pub(super) fn billing_tick(&self) -> Option<u64> {
        self.setup.billing_tick_ms.filter(|ms| *ms > 0)
    }

    /// Arms the timer for tick `next_tick` of a connected call, aligned to the connect time.
    pub(super) fn arm_billing_tick(&self, fx: &mut Vec<CallEffect>) {
        let (Some(period), Phase::Connected { since }) = (self.billing_tick(), self.phase) else {
            return;
        };
        let due = since.saturating_add(self.next_tick.saturating_mul(period));
        fx.push(CallEffect::SetTimer {
            timer: CallTimer::BillingTick,
            at: due,
        });
    }

    /// A restored call: skip the ticks whose mark has passed, then arm the next one.
    pub(super) fn resume_billing_ticks(&mut self, now: Millis, fx: &mut Vec<CallEffect>) {
        let (Some(period), Phase::Connected { since }) = (self.billing_tick(), self.phase) else {
            return;
        };
        self.next_tick = now.saturating_sub(since) / period + 1;
        self.arm_billing_tick(fx);
    }

    pub(super) fn billing_tick_fired(
        &mut self,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        let Phase::Connected { since } = self.phase else {
            return Err(self.unexpected("billing tick"));
        };
        if self.billing_tick().is_none() {
            return Err(self.unexpected("billing tick"));
        }
        fx.push(CallEffect::BillingTick {
            tick: self.next_tick,
            connected_ms: now.saturating_sub(since),
        });
        self.next_tick += 1;
        self.arm_billing_tick(fx);
        Ok(())
    }
}
