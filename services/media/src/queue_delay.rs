//! A receiver's path filling up, read from its round trip: the backstop beside GoogCC's delay trend.
//!
//! str0m's `PeerStats::rtt` is the time from sending a packet to the TWCC feedback that reports it, so
//! it holds the queue in front of the path's narrowest link. [`QueueDelay`] keeps the path's floor (the
//! least round trip of the last [`FLOOR_WINDOW`], the path with no queue) and says once that the queue
//! has built when a round trip stands [`QUEUE_BUILT`] over it; it says so again only after the queue
//! has drained (under half that).
//!
//! Why a second sign beside GoogCC: GoogCC usually calls the overuse when a filling queue is 30–60 ms
//! deep, but on the bandwidth benchmark's narrowed link it sometimes called it 0.2–0.4 s after the
//! round trip already showed the queue 85–210 ms deep (BENCHMARKS.md, `bandwidth` run 6; why, str0m
//! does not say: its trend test adapts its threshold to earlier jitter). A queue that deep is the
//! path's, whatever the trend says. One sample is enough: waiting for a second (200 ms later, at the stats interval of then) gave back
//! most of the gain in that benchmark, though one long round trip may also be a stall of either end.
//! Why not lower: on an open path on this project's shared test machines the round trip wanders up to
//! ≈ 20 ms over its floor with scheduling alone; [`QUEUE_BUILT`] leaves room for four times that, so
//! the backstop fires only where GoogCC is late, not in its place. Pure: round trips and the time in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far over the path's floor a round trip must stand to say the queue has built.
pub const QUEUE_BUILT: Duration = Duration::from_millis(80);
/// How long the least round trip stays the floor: longer than any congestion the allocation answers
/// (a queue standing this long is the path's new floor, and GoogCC's estimate has long taken it in).
pub const FLOOR_WINDOW: Duration = Duration::from_secs(10);

/// See the module docs.
#[derive(Debug, Default)]
pub struct QueueDelay {
    /// Round trips that may still become the floor, oldest first, each less than those after it (the
    /// front is the floor).
    floor: VecDeque<(Instant, Duration)>,
    /// The queue was said to have built and has not drained since.
    built: bool,
}

impl QueueDelay {
    /// Takes a round trip measured at `now`; `true` when it says the path's queue has built (once per
    /// filling: not again until it drained).
    pub fn observe(&mut self, rtt: Duration, now: Instant) -> bool {
        while self
            .floor
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > FLOOR_WINDOW)
        {
            self.floor.pop_front();
        }
        while self.floor.back().is_some_and(|(_, r)| *r >= rtt) {
            self.floor.pop_back();
        }
        self.floor.push_back((now, rtt));
        let floor = self.floor.front().map_or(rtt, |(_, r)| *r);
        let queue = rtt.saturating_sub(floor);
        if queue < QUEUE_BUILT / 2 {
            self.built = false;
            return false;
        }
        if self.built || queue < QUEUE_BUILT {
            return false;
        }
        self.built = true;
        true
    }

    /// The path changed (an ICE restart): its old floor says nothing of the new one.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds round trips (ms) 200 ms apart from `t0`; what each said.
    fn feed(q: &mut QueueDelay, t0: Instant, rtts: &[u64]) -> Vec<bool> {
        rtts.iter()
            .enumerate()
            .map(|(i, r)| q.observe(MS * *r as u32, t0 + MS * (200 * i as u32)))
            .collect()
    }

    #[test]
    fn an_open_path_wandering_with_its_scheduling_is_not_a_queue() {
        let mut q = QueueDelay::default();
        let said = feed(&mut q, Instant::now(), &[2, 9, 21, 4, 16, 2, 22, 70, 3]);
        assert!(said.iter().all(|s| !s), "{said:?}");
    }

    #[test]
    fn a_queue_standing_over_the_floor_is_said_once_until_it_drains() {
        let mut q = QueueDelay::default();
        let said = feed(
            &mut q,
            Instant::now(),
            // Open, then the link narrows: the queue builds, stays, drains; then builds again.
            &[8, 5, 10, 144, 189, 213, 120, 60, 30, 6, 95],
        );
        let at: Vec<usize> = said
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(at, vec![3, 10]);
    }

    #[test]
    fn the_floor_is_the_least_round_trip_of_its_window() {
        let t0 = Instant::now();
        // 85 ms over a floor of 5: said at the first sample.
        let mut q = QueueDelay::default();
        assert!(!q.observe(MS * 5, t0));
        assert!(q.observe(MS * 90, t0 + MS * 100));
        // Once the 5 ms has aged out of the window, a longer path (a route change) is the floor: 130
        // is 70 over its 60, not yet a queue; 141 is.
        let mut q = QueueDelay::default();
        assert!(!q.observe(MS * 5, t0));
        assert!(!q.observe(MS * 60, t0 + FLOOR_WINDOW + MS * 100));
        assert!(!q.observe(MS * 130, t0 + FLOOR_WINDOW + MS * 300));
        assert!(q.observe(MS * 141, t0 + FLOOR_WINDOW + MS * 500));
    }

    #[test]
    fn a_reset_forgets_the_old_path() {
        let t0 = Instant::now();
        let mut q = QueueDelay::default();
        assert!(!q.observe(MS * 2, t0));
        q.reset();
        // A farther path after a network change: its first round trips are its floor, not a queue.
        assert!(!q.observe(MS * 120, t0 + MS * 200));
        assert!(!q.observe(MS * 125, t0 + MS * 400));
    }
}
