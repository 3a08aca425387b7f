//! Per-receiver bandwidth allocation: from a receiver's estimated bandwidth and the bitrate of each
//! simulcast layer of a publisher, the best layer the receiver may get of it — or no video at all.
//! Pure ([`BandwidthAllocator`]: estimate, layer bitrates and the time in, an [`Allowance`] out); the
//! engine feeds it each receiver's send-side estimate (str0m's GoogCC over TWCC feedback) and hands
//! the allowance to [`crate::simulcast::LayerSelector`] as a cap, beside the viewer's own.
//!
//! - **The budget** is what the estimate leaves for this publisher's video: the estimate minus the
//!   audio the receiver gets, shared equally between the publishers it gets video from (the engine
//!   computes it). Bitrates are RTP payload bytes, as str0m's estimate counts them.
//! - **Down at once.** When the layer the receiver is on no longer fits the budget (congestion: the
//!   estimate fell), the allowance drops on that very estimate to the best flowing layer that fits
//!   comfortably ([`FIT_UP`] of the budget; the lowest that fits at all if none does), so one step
//!   down is enough; the switch itself happens at that layer's next keyframe. Meanwhile the layer
//!   the receiver is on is frozen, and that keyframe asked for once the path's queue has drained
//!   (the engine: [`crate::simulcast::LayerSelector::freeze`]).
//! - **Up after a while.** A better layer is allowed once it has fitted comfortably for [`UP_HOLD`]
//!   without a break, so an estimate that wobbles around a layer's bitrate does not flap the
//!   receiver between two layers (each switch costs a keyframe). The margin between "fits" (the
//!   whole budget) and "fits comfortably" is the hysteresis band.
//! - **Probing.** An estimate only grows when more is sent than the receiver gets (GoogCC raises it
//!   on what is acknowledged): [`BandwidthAllocator::probe_targets`] says what to ask str0m to
//!   discover — the next better layer's comfortable budget as the minimum to sustain (str0m pads up
//!   to it, never above its estimate) and the top layer's as the desired rate (it probes towards it).
//!   Not for [`DRAIN`] after a step down for congestion: str0m pads whenever its queue is empty, and
//!   padding then would refill the path's queue that the lower layer's keyframe waits behind.
//! - **Congestion before the estimate.** str0m reports its estimate averaged over 3 s (and only when
//!   it moved by 5 %), so a path that narrows shows in it 1.5–2.5 s late. Two earlier signs step the
//!   receiver down before it, and hold it there for [`CONGESTION_HOLD`] while the average catches up:
//!   - the unaveraged estimate (str0m's GoogCC as it stands, in its stats events):
//!     [`BandwidthAllocator::unaveraged`] steps down when it has stayed short of the receiver's layer
//!     for [`SHORT_FOR`] — one low value is not enough, as GoogCC's raw estimate dips
//!     on a keyframe's burst — or at once when it fell [`DEEP_SHORT`] under the layer, and never to no
//!     video (a dip under the lowest layer may be as short, and a pause costs the member a notice and
//!     a keyframe to resume). Why a deep fall needs no second look: GoogCC's overuse sets its
//!     estimate to 0.85 × the throughput the receiver acknowledged; on a path that carries what it is
//!     sent, that is 0.85 × at least the layer and the audio, which leaves a budget of about 0.8 of
//!     the layer or more (0.85 of it, less 0.15 of the audio: 0.83 of the sample's top layer, 0.79 of
//!     its medium one); a budget under [`DEEP_SHORT`] of it means the path acknowledged less than it
//!     was sent — it narrowed. Waiting for a second look cost 200 ms, and while waiting the
//!     pacer (which sends at the unaveraged estimate) queued the layer's video in front of the lower
//!     layer's keyframe. A deep fall goes straight to the lowest layer, not to the best that fits:
//!     the path is full of what it was sent, and the smallest keyframe gets through it soonest (and
//!     whole: a larger one's burst into a full tail-drop queue loses packets, which come only as
//!     resends, a queue's round trip each); the receiver climbs back by probing after the hold;
//!   - the receiver's queued video growing old (str0m's pacer sends at the unaveraged estimate):
//!     [`BandwidthAllocator::congested`], one layer down at once;
//!   - the path's own queue standing deep in its round trip ([`crate::queue_delay`], a backstop for
//!     the rounds where GoogCC calls the overuse late): [`BandwidthAllocator::queue_built`],
//!     straight to the lowest layer (a full path, as a deep fall) unless it just stepped down.
//! - **Below the lowest layer** the allowance is [`Allowance::Paused`]: the receiver keeps its audio
//!   and gets no video (the engine tells its member), until the lowest layer fits comfortably again
//!   for [`UP_HOLD`].
//!
//! A publisher without simulcast has one layer: the allocation is then only "video or not".

use std::time::{Duration, Instant};

use crate::simulcast::{Layer, MAX_LAYERS};

/// Share of the budget a layer must stay under to be moved up to (or landed on when stepping down).
pub const FIT_UP: f64 = 0.8;
/// How long a better allowance must fit comfortably before the receiver gets it.
pub const UP_HOLD: Duration = Duration::from_secs(2);
/// After a step down for congestion the estimate has not shown yet, how long before a better layer may
/// be considered: str0m reports its estimate averaged over 3 s, so it says "fits" for a while after
/// the path narrowed.
pub const CONGESTION_HOLD: Duration = Duration::from_secs(5);
/// How long unaveraged estimates must stay short of the receiver's layer before it steps down on them
/// ([`BandwidthAllocator::unaveraged`]): a sustained fall, not one dip. A time, not a count of samples,
/// so it means the same whatever the engine's stats interval.
pub const SHORT_FOR: Duration = Duration::from_millis(200);
/// An unaveraged budget under this share of the receiver's layer steps it down on one sample
/// ([`BandwidthAllocator::unaveraged`]): a fall that deep is the path's, not a keyframe's dip.
pub const DEEP_SHORT: f64 = 0.75;
/// After a step down for congestion, how long no padding is asked for towards a better layer
/// ([`BandwidthAllocator::probe_targets`]): while the path's queue and the pacer's drain, padding
/// would take the room the lower layer's keyframe needs (str0m pads whenever its queue is empty, up to
/// its estimate, and a frozen line's queue empties at once).
pub const DRAIN: Duration = Duration::from_secs(1);

/// The bitrate (bits/s) of each of a publisher's layers, best first; `None` for a layer that does not
/// flow (or is not measured yet).
pub type LayerRates = [Option<u64>; MAX_LAYERS];

/// What a receiver may get of one publisher's video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowance {
    /// Layers not better than this one (0: any).
    Video(Layer),
    /// No video: the budget does not carry the lowest layer.
    Paused,
}

/// One receiver's allowance of one publisher's video (see the module docs). Pure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandwidthAllocator {
    allowance: Allowance,
    /// A better allowance that fits comfortably, and since when.
    rising: Option<(Allowance, Instant)>,
    /// No better allowance before this (a step down for congestion, [`BandwidthAllocator::congested`]).
    held_until: Option<Instant>,
    /// Since when the unaveraged estimates have been short of the allowance they were taken at (a
    /// shortfall of another allowance, since changed by the averaged estimate, does not carry over).
    short: (Allowance, Option<Instant>),
    /// When it last stepped down for congestion (no padding towards a better layer for [`DRAIN`]).
    stepped_down_at: Option<Instant>,
}

impl Default for BandwidthAllocator {
    /// Any layer: a receiver starts at the top and steps down if its path says so (an estimate starts
    /// at a guess, and the top layer is what most receivers can take).
    fn default() -> Self {
        Self {
            allowance: Allowance::Video(0),
            rising: None,
            held_until: None,
            short: (Allowance::Video(0), None),
            stepped_down_at: None,
        }
    }
}

impl BandwidthAllocator {
    pub fn allowance(&self) -> Allowance {
        self.allowance
    }

    /// Takes a new budget (bits/s for this publisher's video) with the layers' bitrates now; returns
    /// the allowance, changed or not.
    pub fn update(&mut self, budget: u64, rates: &LayerRates, now: Instant) -> Allowance {
        let flowing: Vec<(Layer, u64)> = rated(rates).collect();
        let Some(&(lowest, lowest_rate)) = flowing.last() else {
            // Nothing flows (or nothing is measured yet): nothing to decide.
            self.rising = None;
            return self.allowance;
        };
        let comfortable = |rate: u64| rate as f64 <= budget as f64 * FIT_UP;
        let fits = |rate: u64| rate <= budget;
        // What the budget carries comfortably now.
        let carried = flowing
            .iter()
            .find(|(_, r)| comfortable(*r))
            .map_or(Allowance::Paused, |(l, _)| Allowance::Video(*l));

        let current = level(self.allowance, &flowing);
        if let Some((layer, rate)) = current
            && !fits(rate)
        {
            // Congestion: down at once, to where the budget is comfortable, or at least fits.
            self.allowance = flowing
                .iter()
                .filter(|(l, _)| *l > layer)
                .find(|(_, r)| comfortable(*r))
                .map(|(l, _)| Allowance::Video(*l))
                .or_else(|| {
                    (lowest > layer && fits(lowest_rate)).then_some(Allowance::Video(lowest))
                })
                .unwrap_or(Allowance::Paused);
            self.rising = None;
            self.stepped_down_at = Some(now);
            return self.allowance;
        }

        if self.held_until.is_some_and(|until| now < until) {
            self.rising = None;
            return self.allowance;
        }
        let better = match (level(carried, &flowing), current) {
            (Some(_), None) => true,
            (Some((want, _)), Some((have, _))) => want < have,
            (None, _) => false,
        };
        if !better {
            self.rising = None;
            return self.allowance;
        }
        match self.rising {
            Some((_, since)) if now.saturating_duration_since(since) >= UP_HOLD => {
                self.allowance = carried;
                self.rising = None;
            }
            // Still rising (perhaps to another layer than at first: the clock keeps running, as
            // something better fitted throughout).
            Some((_, since)) => self.rising = Some((carried, since)),
            None => self.rising = Some((carried, now)),
        }
        self.allowance
    }

    /// Takes a budget from the unaveraged estimate (the same share as [`update`](Self::update)'s): only
    /// ever down, and only once the layer the receiver is on has not fitted it for [`SHORT_FOR`] — to
    /// the best lower layer that fits it comfortably, else the lowest — or once by far
    /// ([`DEEP_SHORT`]) — to the lowest; never to no video; and no better layer for
    /// [`CONGESTION_HOLD`], while the averaged estimate catches up.
    pub fn unaveraged(&mut self, budget: u64, rates: &LayerRates, now: Instant) -> Allowance {
        let flowing: Vec<(Layer, u64)> = rated(rates).collect();
        let Some((layer, rate)) = level(self.allowance, &flowing) else {
            return self.allowance;
        };
        if rate <= budget {
            self.short = (self.allowance, None);
            return self.allowance;
        }
        let since = match self.short {
            (at, Some(since)) if at == self.allowance => since,
            _ => now,
        };
        self.short = (self.allowance, Some(since));
        let deep = (budget as f64) < rate as f64 * DEEP_SHORT;
        if now.saturating_duration_since(since) < SHORT_FOR && !deep {
            return self.allowance;
        }
        let mut lower = flowing.iter().filter(|(l, _)| *l > layer);
        let to = if deep {
            // The path delivered less than it was sent: straight to the lowest layer, whose keyframe
            // is the smallest to get through a path still full of what it was sent, and up from
            // there by the usual probing once the hold is over.
            lower.next_back()
        } else {
            lower
                .clone()
                .find(|(_, r)| *r as f64 <= budget as f64 * FIT_UP)
                .or(lower.next_back())
        };
        if let Some(&(to, _)) = to {
            self.step_down_before_the_estimate(to, now);
        }
        self.allowance
    }

    /// The receiver's path carries less than it is sent now, before its estimate says so (its queued
    /// video is growing old): one layer down at once, and no better one for [`CONGESTION_HOLD`]. Never
    /// to no video: pausing is left to the estimate, as a backlog of a publisher's only layer may be a
    /// keyframe's burst.
    pub fn congested(&mut self, rates: &LayerRates, now: Instant) -> Allowance {
        let flowing: Vec<(Layer, u64)> = rated(rates).collect();
        if let Some((layer, _)) = level(self.allowance, &flowing)
            && let Some((lower, _)) = flowing.iter().find(|(l, _)| *l > layer)
        {
            self.step_down_before_the_estimate(*lower, now);
        }
        self.allowance
    }

    /// The receiver's path queued [`crate::queue_delay::QUEUE_BUILT`] over its floor
    /// ([`crate::queue_delay`]): straight to the lowest layer, as a deep fall of the unaveraged
    /// estimate goes (the path is full of what it was sent, and the smallest keyframe gets through it
    /// soonest), never to no video, with no better layer for [`CONGESTION_HOLD`] — unless a step down
    /// for congestion came within [`DRAIN`], whose queue this may still be (the round trip stays long
    /// while a queue drains).
    pub fn queue_built(&mut self, rates: &LayerRates, now: Instant) -> Allowance {
        if self
            .stepped_down_at
            .is_some_and(|at| now.saturating_duration_since(at) < DRAIN)
        {
            return self.allowance;
        }
        let flowing: Vec<(Layer, u64)> = rated(rates).collect();
        if let Some((layer, _)) = level(self.allowance, &flowing)
            && let Some(&(lowest, _)) = flowing.last()
            && lowest > layer
        {
            self.step_down_before_the_estimate(lowest, now);
        }
        self.allowance
    }

    /// A step down for congestion the averaged estimate has not shown yet: to `layer`, with no better
    /// one for [`CONGESTION_HOLD`] while the average catches up.
    fn step_down_before_the_estimate(&mut self, layer: Layer, now: Instant) {
        self.allowance = Allowance::Video(layer);
        self.rising = None;
        self.held_until = Some(now + CONGESTION_HOLD);
        self.stepped_down_at = Some(now);
    }

    /// What to ask the receiver's estimator for (bits/s of this publisher's video): the minimum to
    /// sustain (padding up to the next better layer's comfortable budget, 0 at the top) and the desired
    /// rate (the top layer's comfortable budget). `None` when nothing flows.
    pub fn probe_targets(&self, rates: &LayerRates, now: Instant) -> Option<(u64, u64)> {
        let flowing: Vec<(Layer, u64)> = rated(rates).collect();
        let &(_, top) = flowing.first()?;
        let room = |rate: u64| (rate as f64 / FIT_UP) as u64;
        let draining = self
            .stepped_down_at
            .is_some_and(|at| now.saturating_duration_since(at) < DRAIN);
        if draining {
            return Some((0, room(top)));
        }
        let next = match level(self.allowance, &flowing) {
            None => flowing.last().map(|(_, r)| *r),
            Some((layer, _)) => flowing
                .iter()
                .rev()
                .find(|(l, _)| *l < layer)
                .map(|(_, r)| *r),
        };
        Some((next.map_or(0, room), room(top)))
    }
}

/// The layers that flow with their bitrates, best first.
fn rated(rates: &LayerRates) -> impl Iterator<Item = (Layer, u64)> + '_ {
    rates
        .iter()
        .enumerate()
        .filter_map(|(l, r)| Some((l as Layer, (*r)?)))
}

/// The flowing layer an allowance puts the receiver on, with its bitrate (the way
/// [`crate::simulcast::target`] picks it): the best not above the cap, else the worst of the better
/// ones. `None` for no video.
fn level(allowance: Allowance, flowing: &[(Layer, u64)]) -> Option<(Layer, u64)> {
    let Allowance::Video(cap) = allowance else {
        return None;
    };
    flowing
        .iter()
        .find(|(l, _)| *l >= cap)
        .or(flowing.last())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust SDK's sample as its three layers send it (payload bits/s).
    const SAMPLE: LayerRates = [Some(212_000), Some(91_000), Some(40_000)];
    const MS: Duration = Duration::from_millis(1);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + MS * ms as u32
    }

    #[test]
    fn a_wide_path_keeps_the_top_layer() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        assert_eq!(a.update(2_000_000, &SAMPLE, t0), Allowance::Video(0));
        // Just enough for the top layer to fit, though not comfortably: it stays.
        assert_eq!(a.update(220_000, &SAMPLE, at(t0, 100)), Allowance::Video(0));
        assert_eq!(a.probe_targets(&SAMPLE, at(t0, 60_000)), Some((0, 265_000)));
    }

    #[test]
    fn congestion_steps_down_at_once_to_where_the_budget_is_comfortable() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        // 150 kbit/s: the medium layer fits comfortably (91 ≤ 120).
        assert_eq!(a.update(150_000, &SAMPLE, t0), Allowance::Video(1));
        // Padding is to sustain what the top layer would need comfortably.
        assert_eq!(
            a.probe_targets(&SAMPLE, at(t0, 60_000)),
            Some((265_000, 265_000))
        );
        // Worse: straight to the low layer.
        assert_eq!(a.update(60_000, &SAMPLE, at(t0, 100)), Allowance::Video(2));
        assert_eq!(
            a.probe_targets(&SAMPLE, at(t0, 60_000)),
            Some((113_750, 265_000))
        );
    }

    #[test]
    fn no_padding_towards_a_better_layer_while_a_congested_path_drains() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        assert_eq!(a.unaveraged(175_000, &SAMPLE, t0), Allowance::Video(0));
        assert_eq!(
            a.unaveraged(175_000, &SAMPLE, at(t0, 200)),
            Allowance::Video(1)
        );
        // Nothing to sustain beyond what is sent while the path's queue drains; still the top as
        // the desired rate.
        assert_eq!(a.probe_targets(&SAMPLE, at(t0, 700)), Some((0, 265_000)));
        assert_eq!(
            a.probe_targets(&SAMPLE, at(t0, 1_200)),
            Some((265_000, 265_000))
        );
        // The same after a step down on the averaged estimate, or for a backed-up queue.
        let mut b = BandwidthAllocator::default();
        assert_eq!(b.update(150_000, &SAMPLE, t0), Allowance::Video(1));
        assert_eq!(b.probe_targets(&SAMPLE, t0), Some((0, 265_000)));
        let mut c = BandwidthAllocator::default();
        assert_eq!(c.congested(&SAMPLE, t0), Allowance::Video(1));
        assert_eq!(c.probe_targets(&SAMPLE, t0), Some((0, 265_000)));
        // A receiver that never stepped down pads as before.
        assert_eq!(
            BandwidthAllocator::default().probe_targets(&SAMPLE, t0),
            Some((0, 265_000))
        );
        let mut d = BandwidthAllocator::default();
        assert_eq!(d.update(60_000, &SAMPLE, t0), Allowance::Video(2));
        assert_eq!(
            d.probe_targets(&SAMPLE, at(t0, 1_000)),
            Some((113_750, 265_000))
        );
    }

    #[test]
    fn a_step_down_lands_on_a_layer_that_fits_even_if_not_comfortably() {
        let mut a = BandwidthAllocator::default();
        // 45 kbit/s: the low layer (40) fits, not comfortably (36); still better than nothing.
        assert_eq!(
            a.update(45_000, &SAMPLE, Instant::now()),
            Allowance::Video(2)
        );
    }

    #[test]
    fn below_the_lowest_layer_video_pauses_and_resumes_after_the_hold() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        assert_eq!(a.update(30_000, &SAMPLE, t0), Allowance::Paused);
        assert_eq!(
            a.probe_targets(&SAMPLE, at(t0, 60_000)),
            Some((50_000, 265_000))
        );
        // The lowest layer fits comfortably again (40 ≤ 48): not before the hold.
        assert_eq!(a.update(60_000, &SAMPLE, at(t0, 100)), Allowance::Paused);
        assert_eq!(a.update(60_000, &SAMPLE, at(t0, 1_000)), Allowance::Paused);
        assert_eq!(
            a.update(60_000, &SAMPLE, at(t0, 2_100)),
            Allowance::Video(2)
        );
    }

    #[test]
    fn a_better_layer_waits_for_the_hold_and_a_dip_restarts_it() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        assert_eq!(a.update(60_000, &SAMPLE, t0), Allowance::Video(2));
        // The link lifted: the top layer fits comfortably (212 ≤ 240).
        assert_eq!(a.update(300_000, &SAMPLE, at(t0, 100)), Allowance::Video(2));
        assert_eq!(
            a.update(300_000, &SAMPLE, at(t0, 1_500)),
            Allowance::Video(2)
        );
        // A dip below comfortable for the top but still fine for the low layer: the hold starts over.
        assert_eq!(
            a.update(100_000, &SAMPLE, at(t0, 1_600)),
            Allowance::Video(2)
        );
        assert_eq!(
            a.update(300_000, &SAMPLE, at(t0, 2_000)),
            Allowance::Video(2)
        );
        assert_eq!(
            a.update(300_000, &SAMPLE, at(t0, 3_900)),
            Allowance::Video(2)
        );
        assert_eq!(
            a.update(300_000, &SAMPLE, at(t0, 4_000)),
            Allowance::Video(0)
        );
    }

    #[test]
    fn rising_to_a_middle_layer_then_higher_keeps_the_clock() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        assert_eq!(a.update(60_000, &SAMPLE, t0), Allowance::Video(2));
        assert_eq!(a.update(120_000, &SAMPLE, at(t0, 100)), Allowance::Video(2));
        assert_eq!(
            a.update(300_000, &SAMPLE, at(t0, 1_000)),
            Allowance::Video(2)
        );
        // Something better fitted for the whole hold: up to what fits now.
        assert_eq!(
            a.update(300_000, &SAMPLE, at(t0, 2_100)),
            Allowance::Video(0)
        );
    }

    #[test]
    fn the_estimate_wobbling_inside_the_band_does_not_flap() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        assert_eq!(a.update(200_000, &SAMPLE, t0), Allowance::Video(1));
        // Between 212 (top fits) and 265 (top fits comfortably): the medium layer stays for good.
        for i in 1..100 {
            let budget = if i % 2 == 0 { 215_000 } else { 260_000 };
            assert_eq!(
                a.update(budget, &SAMPLE, at(t0, 100 * i)),
                Allowance::Video(1)
            );
        }
    }

    #[test]
    fn a_queue_built_on_the_path_steps_down_to_the_lowest_layer_unless_it_just_stepped_down() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        // GoogCC late: the queue takes the receiver to the lowest layer, held there meanwhile.
        assert_eq!(a.queue_built(&SAMPLE, t0), Allowance::Video(2));
        assert_eq!(
            a.update(2_000_000, &SAMPLE, at(t0, 100)),
            Allowance::Video(2)
        );
        assert_eq!(a.queue_built(&SAMPLE, at(t0, 2_000)), Allowance::Video(2));
        // GoogCC first (its unaveraged estimate short twice: the medium layer), then the queue it
        // already answered: no second step for it.
        let mut b = BandwidthAllocator::default();
        assert_eq!(b.unaveraged(180_000, &SAMPLE, t0), Allowance::Video(0));
        assert_eq!(
            b.unaveraged(180_000, &SAMPLE, at(t0, 200)),
            Allowance::Video(1)
        );
        assert_eq!(b.queue_built(&SAMPLE, at(t0, 400)), Allowance::Video(1));
        // The same after the averaged estimate's step; a queue building again once the drain is over
        // is a new congestion: down again.
        let mut c = BandwidthAllocator::default();
        assert_eq!(c.update(150_000, &SAMPLE, t0), Allowance::Video(1));
        assert_eq!(c.queue_built(&SAMPLE, at(t0, 400)), Allowance::Video(1));
        assert_eq!(
            c.queue_built(&SAMPLE, at(t0, 400) + DRAIN),
            Allowance::Video(2)
        );
    }

    #[test]
    fn congestion_before_the_estimate_steps_one_layer_down_and_holds_there() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        assert_eq!(a.congested(&SAMPLE, t0), Allowance::Video(1));
        // The estimate still says the top layer fits: not until the hold is over.
        assert_eq!(
            a.update(2_000_000, &SAMPLE, at(t0, 100)),
            Allowance::Video(1)
        );
        assert_eq!(
            a.update(2_000_000, &SAMPLE, at(t0, 4_900)),
            Allowance::Video(1)
        );
        // A lower estimate still steps down meanwhile.
        assert_eq!(
            a.update(60_000, &SAMPLE, at(t0, 4_950)),
            Allowance::Video(2)
        );
        // At the lowest layer congestion pauses nothing.
        assert_eq!(a.congested(&SAMPLE, at(t0, 5_000)), Allowance::Video(2));
        let single = [Some(500_000), None, None];
        assert_eq!(
            BandwidthAllocator::default().congested(&single, t0),
            Allowance::Video(0)
        );
        // After the hold, up again once a better layer has fitted for the usual hold.
        assert_eq!(
            a.update(2_000_000, &SAMPLE, at(t0, 10_000)),
            Allowance::Video(2)
        );
        assert_eq!(
            a.update(2_000_000, &SAMPLE, at(t0, 12_000)),
            Allowance::Video(0)
        );
    }

    #[test]
    fn an_unaveraged_estimate_steps_down_only_when_it_stays_short() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        // One shallow dip (a keyframe's burst: 175 of 212, over the deep share): nothing; the next
        // fits again, so the shortfall starts over.
        assert_eq!(a.unaveraged(175_000, &SAMPLE, t0), Allowance::Video(0));
        assert_eq!(
            a.unaveraged(1_000_000, &SAMPLE, at(t0, 200)),
            Allowance::Video(0)
        );
        assert_eq!(
            a.unaveraged(175_000, &SAMPLE, at(t0, 400)),
            Allowance::Video(0)
        );
        // Still short, but not yet for long enough (samples come every 50 ms).
        assert_eq!(
            a.unaveraged(175_000, &SAMPLE, at(t0, 550)),
            Allowance::Video(0)
        );
        // Short for 200 ms: down to where it is comfortable (91 ≤ 140).
        assert_eq!(
            a.unaveraged(175_000, &SAMPLE, at(t0, 600)),
            Allowance::Video(1)
        );
        // Held while the averaged estimate still says the top fits.
        assert_eq!(
            a.update(2_000_000, &SAMPLE, at(t0, 3_000)),
            Allowance::Video(1)
        );
        assert_eq!(
            a.update(2_000_000, &SAMPLE, at(t0, 5_500)),
            Allowance::Video(1)
        );
        // Never up on it.
        assert_eq!(
            a.unaveraged(2_000_000, &SAMPLE, at(t0, 5_600)),
            Allowance::Video(1)
        );
    }

    #[test]
    fn a_deep_fall_of_the_unaveraged_estimate_steps_down_at_once() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        // A path that carries its stream: GoogCC's overuse puts the estimate at 0.85 × what was
        // acknowledged (the top layer and 35 kbit/s of audio), 175 kbit/s for the video: a first
        // shortfall is not enough.
        assert_eq!(a.unaveraged(175_000, &SAMPLE, t0), Allowance::Video(0));
        // A path narrowed to 200 kbit/s: 0.85 × 200 less the audio, 135 kbit/s (under 0.75 × 212):
        // down at once, straight to the lowest layer (though the medium one would fit), and held
        // there.
        let mut b = BandwidthAllocator::default();
        assert_eq!(b.unaveraged(135_000, &SAMPLE, t0), Allowance::Video(2));
        assert_eq!(
            b.update(2_000_000, &SAMPLE, at(t0, 3_000)),
            Allowance::Video(2)
        );
        // Back up by the usual way once the hold is over: what fits comfortably, after the up hold.
        assert_eq!(
            b.update(150_000, &SAMPLE, at(t0, 5_000)),
            Allowance::Video(2)
        );
        assert_eq!(
            b.probe_targets(&SAMPLE, at(t0, 5_000)),
            Some((113_750, 265_000))
        );
        assert_eq!(
            b.update(150_000, &SAMPLE, at(t0, 7_000)),
            Allowance::Video(1)
        );
    }

    #[test]
    fn an_unaveraged_estimate_never_pauses_video() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        // A deep fall, so at once; nothing lower fits: the lowest layer, not a pause.
        assert_eq!(a.unaveraged(20_000, &SAMPLE, t0), Allowance::Video(2));
        assert_eq!(
            a.unaveraged(20_000, &SAMPLE, at(t0, 200)),
            Allowance::Video(2)
        );
        assert_eq!(
            a.unaveraged(20_000, &SAMPLE, at(t0, 400)),
            Allowance::Video(2)
        );
        assert_eq!(
            a.unaveraged(20_000, &SAMPLE, at(t0, 600)),
            Allowance::Video(2)
        );
        // The averaged estimate pauses, as before.
        assert_eq!(a.update(30_000, &SAMPLE, at(t0, 700)), Allowance::Paused);
        assert_eq!(
            a.unaveraged(20_000, &SAMPLE, at(t0, 800)),
            Allowance::Paused
        );
    }

    #[test]
    fn a_shortfall_does_not_carry_over_a_change_of_layer() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        // Short of the top layer once, then the averaged estimate steps down to the medium one.
        assert_eq!(a.unaveraged(180_000, &SAMPLE, t0), Allowance::Video(0));
        assert_eq!(a.update(150_000, &SAMPLE, at(t0, 100)), Allowance::Video(1));
        // Short of the medium layer (80 of 91: not deep): a first time, so nothing yet.
        assert_eq!(
            a.unaveraged(80_000, &SAMPLE, at(t0, 200)),
            Allowance::Video(1)
        );
        assert_eq!(
            a.unaveraged(80_000, &SAMPLE, at(t0, 400)),
            Allowance::Video(2)
        );
    }

    #[test]
    fn layers_that_do_not_flow_are_not_allocated() {
        let t0 = Instant::now();
        let mut a = BandwidthAllocator::default();
        // Chromium with a small camera: no low layer. Below the medium one: no video.
        let two = [Some(900_000), Some(300_000), None];
        assert_eq!(a.update(250_000, &two, t0), Allowance::Paused);
        assert_eq!(
            a.probe_targets(&two, at(t0, 60_000)),
            Some((375_000, 1_125_000))
        );
        // Nothing measured: the allowance stays as it is.
        assert_eq!(
            a.update(0, &[None; MAX_LAYERS], at(t0, 10)),
            Allowance::Paused
        );
        // A publisher without simulcast: video or not.
        let mut one = BandwidthAllocator::default();
        let single = [Some(500_000), None, None];
        assert_eq!(one.update(1_000_000, &single, t0), Allowance::Video(0));
        assert_eq!(one.update(400_000, &single, at(t0, 10)), Allowance::Paused);
    }
}
