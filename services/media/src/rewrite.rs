//! One receiver's view of a forwarded stream: the sequence numbers and RTP times it sees.
//!
//! The router forwards publishers' RTP packets as they are, on the receiver's own outgoing stream (its own
//! SSRC, negotiated with that receiver). What it rewrites is where each packet sits in that stream, so the
//! receiver sees one continuous stream whatever happens upstream:
//!
//! - **Sequence numbers** are the publisher's shifted by an offset fixed for an *epoch* (a run of packets
//!   forwarded without a break). Within an epoch a gap upstream stays a gap (the receiver asks for the
//!   missing packet, and a retransmission still lands in its place); across epochs there is never one:
//!   an epoch starts right after the last number the receiver saw.
//! - **RTP time** is the publisher's shifted by an offset kept for as long as the source is the same
//!   publisher stream (a pause, or packets skipped while waiting for a keyframe, is a pause in the same
//!   timeline, and the publisher's own times already say how long it was). When the source changes (a
//!   different publisher, or the publisher's stream restarted with another SSRC), the new source's first
//!   packet is placed the wall-clock time since the last packet after it, so playout neither jumps back
//!   nor stalls.
//!
//! A new epoch starts when the receiver is switched to a source, at a resume after a pause, and where a
//! video receiver starts again at a keyframe after skipping packets. A packet older than its epoch's first
//! (reordered across the switch) has no place in the receiver's stream and is dropped.
//!
//! The first epoch keeps the publisher's RTP times unchanged (offset 0), which the benchmarks use to time
//! frames end to end. Pure: no IO, time is passed in.

use std::time::Instant;

/// A publisher's stream, as the router identifies it: the session and the SSRC it sends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    pub session: u64,
    pub ssrc: u32,
}

/// Where a receiver's outgoing stream stands.
#[derive(Clone, Debug)]
pub struct Rewriter {
    /// RTP clock rate of the stream (90 kHz video, 48 kHz Opus).
    clock_rate: u32,
    epoch: Option<Epoch>,
    /// The last sequence number and RTP time written, and when.
    last: Option<Written>,
}

#[derive(Clone, Copy, Debug)]
struct Epoch {
    source: Source,
    /// The first upstream sequence number of the epoch (older ones are dropped).
    first_seq: u64,
    /// Added to upstream sequence numbers (wrapping: the receiver's numbers may sit below the publisher's).
    seq_offset: u64,
    /// Added to upstream RTP times (wrapping, as RTP time does).
    time_offset: u32,
}

#[derive(Clone, Copy, Debug)]
struct Written {
    seq: u64,
    time: u32,
    at: Instant,
}

/// Sequence number of a receiver's first packet: low, so the SRTP rollover counter starts at 0 (what a
/// receiver assumes when nothing was signalled).
const FIRST_SEQ: u64 = 1;

impl Rewriter {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            epoch: None,
            last: None,
        }
    }

    /// The source of the current epoch.
    pub fn source(&self) -> Option<Source> {
        self.epoch.map(|e| e.source)
    }

    /// Starts an epoch at the upstream packet (`seq`, `time`) of `source`: it becomes the number after the
    /// last one written.
    pub fn start_epoch(&mut self, source: Source, seq: u64, time: u32, now: Instant) {
        let next_seq = self.last.map_or(FIRST_SEQ, |l| l.seq + 1);
        let time_offset = match (self.epoch, self.last) {
            // The same stream: its own times carry the pause.
            (Some(epoch), _) if epoch.source == source => epoch.time_offset,
            // Another stream: its first packet goes after the last one by the wall-clock time between.
            (_, Some(last)) => {
                let elapsed = now.saturating_duration_since(last.at);
                let ticks = (elapsed.as_secs_f64() * f64::from(self.clock_rate)) as u64;
                let placed = last
                    .time
                    .wrapping_add(ticks.clamp(1, u64::from(u32::MAX)) as u32);
                placed.wrapping_sub(time)
            }
            (_, None) => 0,
        };
        self.epoch = Some(Epoch {
            source,
            first_seq: seq,
            seq_offset: next_seq.wrapping_sub(seq),
            time_offset,
        });
    }

    /// Where an upstream packet of the current epoch goes in the receiver's stream: its sequence number
    /// and RTP time, or `None` when it belongs to no epoch (another source, or older than the epoch).
    pub fn rewrite(
        &mut self,
        source: Source,
        seq: u64,
        time: u32,
        now: Instant,
    ) -> Option<(u64, u32)> {
        let epoch = self.epoch.filter(|e| e.source == source)?;
        if seq < epoch.first_seq {
            return None;
        }
        let out_seq = seq.wrapping_add(epoch.seq_offset);
        let out_time = time.wrapping_add(epoch.time_offset);
        // A retransmission lands in its old place and moves nothing on.
        if self.last.is_none_or(|l| out_seq > l.seq) {
            self.last = Some(Written {
                seq: out_seq,
                time: out_time,
                at: now,
            });
        }
        Some((out_seq, out_time))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const A: Source = Source {
        session: 1,
        ssrc: 111,
    };
    const B: Source = Source {
        session: 2,
        ssrc: 222,
    };

    #[test]
    fn the_first_epoch_keeps_rtp_time_and_starts_numbering_low() {
        let now = Instant::now();
        let mut r = Rewriter::new(90_000);
        r.start_epoch(A, 40_000, 123_456, now);
        assert_eq!(r.rewrite(A, 40_000, 123_456, now), Some((1, 123_456)));
        assert_eq!(r.rewrite(A, 40_001, 126_456, now), Some((2, 126_456)));
        // A gap upstream stays a gap: the receiver asks for it and a retransmission fills it.
        assert_eq!(r.rewrite(A, 40_003, 129_456, now), Some((4, 129_456)));
        assert_eq!(r.rewrite(A, 40_002, 129_456, now), Some((3, 129_456)));
        assert_eq!(r.rewrite(A, 40_004, 132_456, now), Some((5, 132_456)));
    }

    #[test]
    fn a_resume_continues_the_numbers_and_keeps_the_streams_timeline() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        r.start_epoch(A, 100, 1_000, t0);
        assert_eq!(r.rewrite(A, 100, 1_000, t0), Some((1, 1_000)));
        assert_eq!(r.rewrite(A, 101, 4_000, t0), Some((2, 4_000)));
        // Paused for 500 packets; the publisher's clock ran on meanwhile.
        let t1 = t0 + Duration::from_secs(2);
        r.start_epoch(A, 600, 184_000, t1);
        assert_eq!(r.rewrite(A, 600, 184_000, t1), Some((3, 184_000)));
        // Something from before the resume, reordered, has no place any more.
        assert_eq!(r.rewrite(A, 599, 181_000, t1), None);
    }

    #[test]
    fn another_source_follows_after_the_wall_clock_gap() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        r.start_epoch(A, 10, 5_000, t0);
        r.rewrite(A, 10, 5_000, t0);
        let t1 = t0 + Duration::from_millis(100);
        r.start_epoch(B, 60_000, 4_000_000_000, t1);
        let (seq, time) = r.rewrite(B, 60_000, 4_000_000_000, t1).unwrap();
        assert_eq!(seq, 2);
        assert_eq!(
            time,
            5_000 + 9_000,
            "100 ms at 90 kHz after the last packet"
        );
        // The old source's stragglers are not the receiver's stream any more.
        assert_eq!(r.rewrite(A, 11, 8_000, t1), None);
        // RTP time wraps as upstream does.
        let (_, time) = r
            .rewrite(B, 60_001, 4_000_000_000u32.wrapping_add(300_000_000), t1)
            .unwrap();
        assert_eq!(time, 14_000u32.wrapping_add(300_000_000));
    }

    #[test]
    fn numbers_continue_across_upstream_wraparound() {
        let now = Instant::now();
        let mut r = Rewriter::new(48_000);
        // Extended upstream numbers carry the rollover, so the receiver's keep counting.
        r.start_epoch(A, 65_534, 0, now);
        assert_eq!(r.rewrite(A, 65_534, 0, now).unwrap().0, 1);
        assert_eq!(r.rewrite(A, 65_535, 960, now).unwrap().0, 2);
        assert_eq!(r.rewrite(A, 65_536, 1_920, now).unwrap().0, 3);
    }
}
