//! Frames out of an [`RtpProbe`](showcall_sdk::RtpProbe)'s packet records, so a light receiver is
//! counted like a decoding one: the fanout bench's loss and latency are per frame whichever receiver
//! the audience uses.
//!
//! A probe does not depacketize, so a frame is judged from its packets: all packets of one SSRC with one
//! RTP time. A video frame is whole when its sequence numbers form one run with no hole, the run ends on
//! the marker bit (the frame's last packet), and the packet before the run belongs to another frame (so
//! the run is not missing its start; a whole frame right after a lost last packet is therefore not
//! counted — an undercount of at most one frame per unrepaired loss). An audio frame (Opus) is one
//! packet. A frame arrived when its last packet did — retransmissions included, which is when a
//! depacketizer could emit it.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use showcall_sdk::{RtpRecord, TrackKind};

/// One whole frame a probe received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProbeFrame {
    pub kind: TrackKind,
    pub rtp_time: u64,
    /// When its last packet arrived.
    pub arrived: Instant,
    /// Payload bytes of its packets (the frame plus each packet's payload descriptor).
    pub bytes: u64,
}

/// The whole frames among `records` (any order; duplicates by sequence number are ignored).
pub(super) fn whole_frames(records: &[RtpRecord]) -> Vec<ProbeFrame> {
    // Per SSRC, packets by extended sequence number.
    let mut streams: BTreeMap<u32, BTreeMap<u64, &RtpRecord>> = BTreeMap::new();
    for r in records {
        streams
            .entry(r.ssrc)
            .or_default()
            .entry(r.ext_seq)
            .or_insert(r);
    }
    let mut frames = Vec::new();
    for packets in streams.values() {
        // Runs of packets with one RTP time, in sequence order; a hole or a new RTP time ends a run.
        let mut run: Vec<&RtpRecord> = Vec::new();
        let mut video_starts: HashSet<u64> = HashSet::new();
        let mut prev: Option<&RtpRecord> = None;
        for &p in packets.values() {
            let follows = prev.is_some_and(|q| q.ext_seq + 1 == p.ext_seq);
            let same_frame = follows && prev.is_some_and(|q| q.rtp_time == p.rtp_time);
            if !same_frame {
                flush(&mut run, &video_starts, &mut frames);
                // The run starting here has its first packet when the packet before it is present and of
                // another frame.
                if follows {
                    video_starts.insert(p.ext_seq);
                }
            }
            run.push(p);
            prev = Some(p);
        }
        flush(&mut run, &video_starts, &mut frames);
    }
    frames
}

fn flush(run: &mut Vec<&RtpRecord>, video_starts: &HashSet<u64>, frames: &mut Vec<ProbeFrame>) {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return;
    };
    let whole = match first.kind {
        TrackKind::Audio => true,
        TrackKind::Video => last.marker && video_starts.contains(&first.ext_seq),
    };
    if whole {
        frames.push(ProbeFrame {
            kind: first.kind,
            rtp_time: first.rtp_time,
            arrived: run.iter().map(|p| p.arrived).max().unwrap_or(last.arrived),
            bytes: run.iter().map(|p| p.payload_len as u64).sum(),
        });
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn packet(kind: TrackKind, seq: u64, rtp_time: u64, marker: bool, at: Instant) -> RtpRecord {
        RtpRecord {
            mid: Arc::from("0"),
            kind,
            ssrc: 1,
            seq: seq as u16,
            ext_seq: seq,
            rtp_timestamp: rtp_time as u32,
            rtp_time,
            marker,
            payload_len: 100,
            arrived: at,
        }
    }

    #[test]
    fn whole_video_frames_are_found_and_holed_or_headless_ones_are_not() {
        let t0 = Instant::now();
        let v = |seq, time, marker| packet(TrackKind::Video, seq, time, marker, t0);
        let records = vec![
            // A frame whose start is not known (the first run): not counted.
            v(10, 0, true),
            // 3000: whole, three packets.
            v(11, 3000, false),
            v(12, 3000, false),
            v(13, 3000, true),
            // 6000: its middle packet is missing.
            v(14, 6000, false),
            v(16, 6000, true),
            // 9000: whole — the packet before it (16) is present and ends another frame.
            v(17, 9000, true),
            // 12000: whole, one packet.
            v(18, 12000, true),
            // 15000: no marker yet.
            v(19, 15000, false),
        ];
        let times: Vec<u64> = whole_frames(&records).iter().map(|f| f.rtp_time).collect();
        assert_eq!(times, [3000, 9000, 12000]);
    }

    #[test]
    fn a_frame_arrives_with_its_last_packet_even_a_retransmitted_one() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(40);
        let records = vec![
            packet(TrackKind::Video, 1, 0, true, t0),
            packet(TrackKind::Video, 2, 3000, false, t0),
            // Resent: arrives after the marker packet but fills the run.
            packet(TrackKind::Video, 3, 3000, false, later),
            packet(TrackKind::Video, 4, 3000, true, t0),
        ];
        let frames = whole_frames(&records);
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].arrived, frames[0].bytes), (later, 300));
    }

    #[test]
    fn every_audio_packet_is_a_frame() {
        let t0 = Instant::now();
        let records: Vec<_> = [1u64, 2, 4]
            .iter()
            .map(|&s| packet(TrackKind::Audio, s, s * 960, true, t0))
            .collect();
        assert_eq!(whole_frames(&records).len(), 3);
    }
}
