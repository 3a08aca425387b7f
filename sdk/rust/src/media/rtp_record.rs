//! What an [`RtpProbe`](super::RtpProbe) keeps of the RTP packets it receives: a record per packet in a
//! ring of bounded size (the last N), and a summary per SSRC that is never dropped (its counters and the
//! sequence-number gaps seen, so loss is known even when the records have wrapped).
//!
//! The bound is what lets a benchmark run a thousand probes: memory per probe is fixed at
//! `keep_packets` records whatever the stream's length. Sequence numbers are read as the wire's 16-bit
//! ones, because what a receiver must see is "each next = previous + 1 mod 2^16".

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::TrackKind;

/// One received RTP packet (after SRTP decryption; a retransmission appears with the sequence number of
/// the packet it repairs, as str0m unwraps RTX).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpRecord {
    /// The media line (`a=mid`) it arrived on.
    pub mid: Arc<str>,
    pub kind: TrackKind,
    pub ssrc: u32,
    /// The sequence number on the wire.
    pub seq: u16,
    /// The sequence number extended by str0m's rollover counter (for ordering across wraps).
    pub ext_seq: u64,
    /// The RTP timestamp on the wire.
    pub rtp_timestamp: u32,
    /// The RTP timestamp extended by str0m, in the codec's clock (90 kHz video, 48 kHz audio); what the
    /// SDK's frames call `rtp_time`.
    pub rtp_time: u64,
    /// The marker bit (the last packet of a video frame).
    pub marker: bool,
    /// Payload bytes (no RTP header, no padding).
    pub payload_len: usize,
    pub arrived: Instant,
}

/// The packets of one SSRC, summarised from the first to the last (never bounded away).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    pub ssrc: u32,
    pub mid: Arc<str>,
    pub kind: TrackKind,
    pub packets: u64,
    pub first_seq: u16,
    pub last_seq: u16,
    /// Times the next sequence number skipped ahead (`next − previous` in 2..2^15, mod 2^16).
    pub gaps: u64,
    /// Sequence numbers skipped by those gaps (packets never seen at their turn: lost, or late).
    pub skipped: u64,
    /// Times a sequence number was at or behind the previous one (a reorder or a late retransmission).
    pub backwards: u64,
}

impl StreamSummary {
    /// Whether every packet followed the one before it by exactly one.
    pub fn continuous(&self) -> bool {
        self.gaps == 0 && self.backwards == 0
    }
}

/// The records and summaries of one probe.
#[derive(Debug)]
pub(crate) struct Records {
    keep: usize,
    ring: VecDeque<RtpRecord>,
    streams: HashMap<u32, StreamSummary>,
}

impl Records {
    pub(crate) fn new(keep: usize) -> Self {
        Self {
            keep,
            // Grows to `keep` only as packets come: an idle probe costs nothing.
            ring: VecDeque::new(),
            streams: HashMap::new(),
        }
    }

    pub(crate) fn push(&mut self, record: RtpRecord) {
        self.streams
            .entry(record.ssrc)
            .and_modify(|s| {
                // Mod 2^16: 1 is in order, 2..2^15 a skip forward, anything else (0, or "negative") a
                // step back.
                match record.seq.wrapping_sub(s.last_seq) {
                    1 => {}
                    d if d < 0x8000 && d != 0 => {
                        s.gaps += 1;
                        s.skipped += u64::from(d - 1);
                    }
                    _ => s.backwards += 1,
                }
                s.packets += 1;
                s.last_seq = record.seq;
            })
            .or_insert_with(|| StreamSummary {
                ssrc: record.ssrc,
                mid: record.mid.clone(),
                kind: record.kind,
                packets: 1,
                first_seq: record.seq,
                last_seq: record.seq,
                gaps: 0,
                skipped: 0,
                backwards: 0,
            });
        if self.keep == 0 {
            return;
        }
        if self.ring.len() == self.keep {
            self.ring.pop_front();
        }
        self.ring.push_back(record);
    }

    pub(crate) fn packets(&self) -> Vec<RtpRecord> {
        self.ring.iter().cloned().collect()
    }

    pub(crate) fn streams(&self) -> Vec<StreamSummary> {
        let mut streams: Vec<_> = self.streams.values().cloned().collect();
        streams.sort_by_key(|s| s.ssrc);
        streams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ssrc: u32, seq: u16) -> RtpRecord {
        RtpRecord {
            mid: Arc::from("1"),
            kind: TrackKind::Video,
            ssrc,
            seq,
            ext_seq: u64::from(seq),
            rtp_timestamp: 0,
            rtp_time: 0,
            marker: false,
            payload_len: 100,
            arrived: Instant::now(),
        }
    }

    #[test]
    fn only_the_last_n_records_are_kept_but_every_packet_is_summarised() {
        let mut r = Records::new(3);
        for seq in 10..20 {
            r.push(record(7, seq));
        }
        let seqs: Vec<u16> = r.packets().iter().map(|p| p.seq).collect();
        assert_eq!(seqs, [17, 18, 19]);
        let s = &r.streams()[0];
        assert_eq!((s.packets, s.first_seq, s.last_seq), (10, 10, 19));
        assert!(s.continuous());
    }

    #[test]
    fn a_wrap_of_the_sequence_number_is_continuous() {
        let mut r = Records::new(0);
        for seq in [65534, 65535, 0, 1] {
            r.push(record(1, seq));
        }
        assert!(r.streams()[0].continuous(), "{:?}", r.streams());
        assert!(r.packets().is_empty(), "keep 0 records nothing");
    }

    #[test]
    fn gaps_and_steps_back_are_counted_per_ssrc() {
        let mut r = Records::new(16);
        for seq in [1, 2, 5, 4, 6] {
            r.push(record(1, seq));
        }
        r.push(record(2, 100));
        let streams = r.streams();
        assert_eq!(streams.len(), 2);
        let s = &streams[0];
        // 2 → 5 skips 3 and 4; 5 → 4 is back; 4 → 6 skips 5 again (it came already).
        assert_eq!((s.gaps, s.skipped, s.backwards), (2, 3, 1));
        assert!(streams[1].continuous());
    }
}
