//! The edge hands the origin's packets to its workers in the order the origin sent them
//! ([`crate::relay_node`]): a packet after a gap waits until the gap is repaired (NACK,
//! [`crate::relay_gaps`]) or for at most [`HOLD_MAX`]. Pure: time is passed in.
//!
//! Why wait: the edge's workers treat the origin's stream as a publisher's, and a line waiting for a
//! keyframe starts at the first keyframe packet it is given. Were a keyframe's first packet repaired
//! after the packets behind it had been handed over, those would already have been dropped for
//! viewers waiting on it, and the viewers' numbering would keep holes nothing can fill. In order,
//! the edge sees what the origin saw, a repair round trip late. Past [`HOLD_MAX`] (a repair that takes
//! several tries) the held packets go on with the gap, and the late packet, if it comes, goes on
//! alone, as a packet reordered on the way would. At most [`MAX_HELD`] packets wait: more releases the
//! oldest gap at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The longest a packet waits behind a gap (a few NACK round trips inside a region, well inside a
/// viewer's jitter buffer).
pub const HOLD_MAX: Duration = Duration::from_millis(200);
/// Packets held at most (≈ 1 s of a 3 Mbit/s publisher).
pub const MAX_HELD: usize = 1024;

/// Packets waiting for the gap before them.
#[derive(Debug)]
pub struct ReorderBuffer<T> {
    /// The next sequence number to hand over (None: nothing arrived yet).
    next: Option<u64>,
    held: BTreeMap<u64, (T, Instant)>,
}

impl<T> Default for ReorderBuffer<T> {
    fn default() -> Self {
        Self {
            next: None,
            held: BTreeMap::new(),
        }
    }
}

impl<T> ReorderBuffer<T> {
    /// A packet not seen before ([`crate::relay_gaps::Arrival::New`]): what may be handed over now, in
    /// order (it, and what waited behind it; nothing while a gap is before it).
    pub fn push(&mut self, seq: u64, item: T, now: Instant) -> Vec<T> {
        let next = *self.next.get_or_insert(seq);
        if seq < next {
            // Behind what was handed over already (its gap was passed): on its own, late.
            return vec![item];
        }
        self.held.insert(seq, (item, now));
        let mut ready = self.release();
        if self.held.len() > MAX_HELD {
            ready.extend(self.skip_gap());
        }
        ready
    }

    /// What has waited too long goes on, past its gap.
    pub fn poll(&mut self, now: Instant) -> Vec<T> {
        let mut ready = Vec::new();
        while self
            .held
            .first_key_value()
            .is_some_and(|(_, (_, at))| now.saturating_duration_since(*at) >= HOLD_MAX)
        {
            ready.extend(self.skip_gap());
        }
        ready
    }

    /// Packets waiting now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Hands over what follows `next` without a gap.
    fn release(&mut self) -> Vec<T> {
        let mut ready = Vec::new();
        while let Some(next) = self.next
            && let Some((item, _)) = self.held.remove(&next)
        {
            ready.push(item);
            self.next = Some(next + 1);
        }
        ready
    }

    /// Gives the first gap up: hands over from the first packet held.
    fn skip_gap(&mut self) -> Vec<T> {
        match self.held.first_key_value() {
            Some((first, _)) => {
                self.next = Some(*first);
                self.release()
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_behind_a_gap_wait_for_its_repair() {
        let t0 = Instant::now();
        let mut buffer = ReorderBuffer::default();
        assert_eq!(buffer.push(10, 10, t0), vec![10]);
        assert_eq!(buffer.push(12, 12, t0), Vec::<u64>::new());
        assert_eq!(buffer.push(13, 13, t0), Vec::<u64>::new());
        assert_eq!(buffer.held(), 2);
        assert_eq!(buffer.poll(t0 + HOLD_MAX / 2), Vec::<u64>::new());
        assert_eq!(buffer.push(11, 11, t0), vec![11, 12, 13]);
        assert_eq!(buffer.push(14, 14, t0), vec![14]);
    }

    #[test]
    fn a_gap_not_repaired_in_time_is_passed_and_its_packet_goes_alone() {
        let t0 = Instant::now();
        let mut buffer = ReorderBuffer::default();
        buffer.push(1, 1, t0);
        buffer.push(3, 3, t0);
        buffer.push(5, 5, t0 + HOLD_MAX / 2);
        // 3 waited long enough: it goes, and 5 waits for 4 (its own time).
        assert_eq!(buffer.poll(t0 + HOLD_MAX), vec![3]);
        assert_eq!(buffer.push(2, 2, t0 + HOLD_MAX), vec![2]);
        assert_eq!(buffer.poll(t0 + HOLD_MAX + HOLD_MAX / 2), vec![5]);
        assert_eq!(buffer.held(), 0);
    }

    #[test]
    fn too_many_held_passes_the_oldest_gap() {
        let t0 = Instant::now();
        let mut buffer = ReorderBuffer::default();
        buffer.push(0, 0, t0);
        for seq in 2..(MAX_HELD as u64 + 2) {
            assert!(buffer.push(seq, seq, t0).is_empty());
        }
        let ready = buffer.push(MAX_HELD as u64 + 2, 0, t0);
        assert_eq!(ready.len(), MAX_HELD + 1);
        assert_eq!(buffer.held(), 0);
    }
}
