//! The edge's side of loss repair on a node-to-node relay ([`crate::relay_node`]): which relay sequence
//! numbers are missing, and when to ask the origin for them again (NACK). Pure: time is passed in.
//!
//! A packet past the highest seen opens a gap of the numbers between; each missing number is NACKed
//! at the next poll, then every [`NACK_RETRY`] until it arrives, for at most [`NACK_TRIES`] times or
//! [`GIVE_UP_AFTER`] (the origin keeps only its last 1,024 packets, and a packet that late is of no use
//! to a viewer: its keyframe cache and the next keyframe are). At most [`MAX_MISSING`] numbers are
//! tracked: a wider gap (an outage) gives the oldest up at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Time between two NACKs of one packet (a few round trips inside a data centre or region).
pub const NACK_RETRY: Duration = Duration::from_millis(40);
/// NACKs of one packet before it is given up.
pub const NACK_TRIES: u8 = 5;
/// Age after which a missing packet is given up whatever its tries.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(1);
/// Missing packets tracked at once.
pub const MAX_MISSING: usize = 512;
/// A packet this far behind the highest is from an earlier life of the relay (the origin started its
/// numbering over): the tracker starts over with it.
const RESET_DISTANCE: u64 = 1 << 16;

/// How a relay packet stands against what came before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Not seen before (new, or a missing one repaired): deliver it.
    New,
    /// Seen before, or given up on: drop it.
    Duplicate,
}

#[derive(Clone, Copy, Debug)]
struct Missing {
    since: Instant,
    last_nack: Option<Instant>,
    tries: u8,
}

/// One relay's missing packets.
#[derive(Debug, Default)]
pub struct GapTracker {
    /// The highest relay sequence number seen.
    highest: Option<u64>,
    missing: BTreeMap<u64, Missing>,
    /// Packets given up on since the last [`GapTracker::take_given_up`].
    given_up: u64,
}

impl GapTracker {
    /// Notes the arrival of relay packet `seq`.
    pub fn observe(&mut self, seq: u64, now: Instant) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            return Arrival::New;
        };
        if seq > highest {
            let first_missing = (highest + 1).max(seq.saturating_sub(MAX_MISSING as u64));
            self.given_up += first_missing - (highest + 1);
            for missing in first_missing..seq {
                self.missing.insert(
                    missing,
                    Missing {
                        since: now,
                        last_nack: None,
                        tries: 0,
                    },
                );
            }
            self.highest = Some(seq);
            self.trim();
            return Arrival::New;
        }
        if highest - seq >= RESET_DISTANCE {
            self.given_up += self.missing.len() as u64;
            self.missing.clear();
            self.highest = Some(seq);
            return Arrival::New;
        }
        match self.missing.remove(&seq) {
            Some(_) => Arrival::New,
            None => Arrival::Duplicate,
        }
    }

    /// The origin says it has sent every packet up to `last`: those not seen are missing (a loss at
    /// the tail of a burst, which no later packet reveals).
    pub fn sent_up_to(&mut self, last: u64, now: Instant) {
        let Some(highest) = self.highest else {
            // Nothing seen yet: the relay starts at what comes next.
            self.highest = Some(last);
            return;
        };
        if last <= highest || last - highest >= RESET_DISTANCE {
            return;
        }
        let first_missing = (highest + 1).max((last + 1).saturating_sub(MAX_MISSING as u64));
        self.given_up += first_missing - (highest + 1);
        for missing in first_missing..=last {
            self.missing.insert(
                missing,
                Missing {
                    since: now,
                    last_nack: None,
                    tries: 0,
                },
            );
        }
        self.highest = Some(last);
        self.trim();
    }

    fn trim(&mut self) {
        while self.missing.len() > MAX_MISSING {
            self.missing.pop_first();
            self.given_up += 1;
        }
    }

    /// The numbers to NACK now (at most `limit`, oldest first); those past their tries or age are
    /// given up.
    pub fn due(&mut self, now: Instant, limit: usize) -> Vec<u64> {
        let before = self.missing.len();
        self.missing.retain(|_, m| {
            m.tries < NACK_TRIES && now.saturating_duration_since(m.since) < GIVE_UP_AFTER
        });
        self.given_up += (before - self.missing.len()) as u64;
        let mut due = Vec::new();
        for (seq, m) in self.missing.iter_mut() {
            if due.len() >= limit {
                break;
            }
            if m.last_nack
                .is_none_or(|t| now.saturating_duration_since(t) >= NACK_RETRY)
            {
                m.last_nack = Some(now);
                m.tries += 1;
                due.push(*seq);
            }
        }
        due
    }

    /// Packets missing now.
    #[cfg(test)]
    pub fn missing(&self) -> usize {
        self.missing.len()
    }

    /// Packets given up on since the last call.
    pub fn take_given_up(&mut self) -> u64 {
        std::mem::take(&mut self.given_up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_is_nacked_until_repaired() {
        let t0 = Instant::now();
        let mut gaps = GapTracker::default();
        assert_eq!(gaps.observe(10, t0), Arrival::New);
        assert_eq!(gaps.observe(11, t0), Arrival::New);
        assert_eq!(gaps.observe(14, t0), Arrival::New);
        assert_eq!(gaps.due(t0, 128), vec![12, 13]);
        // Not again before the retry time.
        assert_eq!(gaps.due(t0 + NACK_RETRY / 2, 128), Vec::<u64>::new());
        assert_eq!(gaps.observe(12, t0), Arrival::New);
        assert_eq!(gaps.observe(12, t0), Arrival::Duplicate);
        assert_eq!(gaps.observe(11, t0), Arrival::Duplicate);
        assert_eq!(gaps.due(t0 + NACK_RETRY, 128), vec![13]);
        assert_eq!(gaps.observe(13, t0), Arrival::New);
        assert_eq!(gaps.missing(), 0);
        assert_eq!(gaps.take_given_up(), 0);
    }

    #[test]
    fn a_packet_that_never_comes_is_given_up_after_its_tries() {
        let t0 = Instant::now();
        let mut gaps = GapTracker::default();
        gaps.observe(1, t0);
        gaps.observe(3, t0);
        let mut now = t0;
        for _ in 0..NACK_TRIES {
            assert_eq!(gaps.due(now, 128), vec![2]);
            now += NACK_RETRY;
        }
        assert_eq!(gaps.due(now, 128), Vec::<u64>::new());
        assert_eq!(gaps.take_given_up(), 1);
        // It arrives after all: too late, dropped.
        assert_eq!(gaps.observe(2, now), Arrival::Duplicate);
    }

    #[test]
    fn a_loss_at_a_bursts_tail_is_found_from_what_the_origin_says_it_sent() {
        let t0 = Instant::now();
        let mut gaps = GapTracker::default();
        gaps.observe(1, t0);
        gaps.observe(2, t0);
        gaps.sent_up_to(4, t0);
        assert_eq!(gaps.due(t0, 128), vec![3, 4]);
        assert_eq!(gaps.observe(4, t0), Arrival::New);
        // Said again, or behind: nothing new.
        gaps.sent_up_to(4, t0);
        gaps.sent_up_to(2, t0);
        assert_eq!(gaps.missing(), 1);
        // Before any packet: the relay starts after what was sent.
        let mut fresh = GapTracker::default();
        fresh.sent_up_to(9, t0);
        assert_eq!(fresh.observe(10, t0), Arrival::New);
        assert_eq!(fresh.missing(), 0);
    }

    #[test]
    fn old_gaps_are_given_up_by_age() {
        let t0 = Instant::now();
        let mut gaps = GapTracker::default();
        gaps.observe(1, t0);
        gaps.observe(3, t0);
        assert_eq!(gaps.due(t0 + GIVE_UP_AFTER, 128), Vec::<u64>::new());
        assert_eq!(gaps.take_given_up(), 1);
    }

    #[test]
    fn a_wide_gap_tracks_only_the_newest_and_nacks_are_limited() {
        let t0 = Instant::now();
        let mut gaps = GapTracker::default();
        gaps.observe(0, t0);
        gaps.observe(10_001, t0);
        assert_eq!(gaps.missing(), MAX_MISSING);
        assert_eq!(gaps.take_given_up(), 10_000 - MAX_MISSING as u64);
        let due = gaps.due(t0, 128);
        assert_eq!(due.len(), 128);
        assert_eq!(due[0], 10_001 - MAX_MISSING as u64);
    }

    #[test]
    fn numbering_that_starts_over_starts_the_tracker_over() {
        let t0 = Instant::now();
        let mut gaps = GapTracker::default();
        gaps.observe(1_000_000, t0);
        assert_eq!(gaps.observe(0, t0), Arrival::New);
        assert_eq!(gaps.observe(1, t0), Arrival::New);
        assert_eq!(gaps.missing(), 0);
    }
}
