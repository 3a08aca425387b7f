//! Keyframes at the RTP level: which packet starts one, and each publisher's latest, kept whole.
//!
//! A receiver can only start decoding a video stream at a keyframe. Asking the publisher for one costs a
//! round trip plus an encode, and publishers throttle how often they answer; so the router keeps each
//! publisher's latest keyframe (its packets, payloads shared with everything else that holds them) and a
//! receiver that starts (joins, or the publisher resumes) gets it at once. The packets that followed that
//! keyframe are not replayed: the receiver waits, showing the keyframe, for the fresh one the router asks
//! for at the same moment, and continues from there (a delta frame decoded against a keyframe it does not
//! follow would show garbage).
//!
//! A keyframe is "fresh" while its publisher keeps sending: one whose stream went quiet (a publisher that
//! stopped sending during a pause) is a picture of the past and is not served. Pure: no IO.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::PayloadParams;
use str0m::rtp::Vp8Descriptor;

/// The video codecs the router recognises keyframes of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    H264,
    /// Anything else: no packet is taken for a keyframe start, so receivers wait for the publisher.
    Other,
}

/// Whether an RTP payload is the first packet of a keyframe.
pub fn starts_keyframe(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload)),
        VideoCodec::H264 => h264_starts_keyframe(payload),
        VideoCodec::Other => false,
    }
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

/// An H.264 payload (RFC 6184) that carries an IDR slice or a sequence parameter set: encoders put the
/// SPS (and PPS) first in a keyframe, in one aggregation packet or alone, so the frame's first packet has
/// one of the two.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(first) = payload.first() else {
        return false;
    };
    let key_nal = |t: u8| t == NAL_IDR || t == NAL_SPS;
    match first & 0x1F {
        NAL_STAP_A => {
            let mut at = 1;
            while at + 2 <= payload.len() {
                let size = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
                at += 2;
                match payload.get(at) {
                    Some(nal) if at + size <= payload.len() => {
                        if key_nal(nal & 0x1F) {
                            return true;
                        }
                    }
                    _ => return false,
                }
                at += size;
            }
            false
        }
        NAL_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && key_nal(fu & 0x1F)),
        t => key_nal(t),
    }
}

/// One packet of a kept keyframe, as it came from the publisher.
#[derive(Clone, Debug)]
pub struct KeptPacket {
    pub seq: u64,
    pub time: u32,
    pub marker: bool,
    pub payload: Arc<[u8]>,
}

/// A keyframe bigger than this is not kept (≈ 1.4 MB: more than any keyframe a live room sends).
const MAX_PACKETS: usize = 1200;

/// A kept keyframe is served only while its publisher's stream is this recent.
pub const FRESH: Duration = Duration::from_secs(1);

/// A publisher's latest complete keyframe, and the one arriving.
#[derive(Debug, Default)]
pub struct KeyframeCache {
    latest: Vec<KeptPacket>,
    /// The keyframe arriving: its RTP time and its packets so far.
    arriving: Option<(u32, Vec<KeptPacket>)>,
    /// When the publisher's last video packet arrived.
    last_packet_at: Option<Instant>,
}

impl KeyframeCache {
    /// Looks at one of the publisher's video packets (in arrival order); `starts` says whether it begins a
    /// keyframe.
    pub fn observe(&mut self, packet: KeptPacket, starts: bool, now: Instant) {
        self.last_packet_at = Some(now);
        if starts {
            self.arriving = Some((packet.time, Vec::new()));
        }
        let Some((time, packets)) = self.arriving.as_mut() else {
            return;
        };
        if packet.time != *time {
            // The next frame began before this keyframe's last packet: it is incomplete.
            self.arriving = None;
            return;
        }
        let marker = packet.marker;
        packets.push(packet);
        if packets.len() > MAX_PACKETS {
            self.arriving = None;
        } else if marker {
            let (_, mut packets) = self.arriving.take().expect("matched above");
            packets.sort_by_key(|p| p.seq);
            let contiguous = packets.windows(2).all(|w| w[1].seq == w[0].seq + 1);
            if contiguous {
                self.latest = packets;
            }
        }
    }

    /// The latest keyframe's packets, if the publisher's stream is fresh.
    pub fn fresh(&self, now: Instant) -> Option<&[KeptPacket]> {
        let recent = self
            .last_packet_at
            .is_some_and(|t| now.saturating_duration_since(t) < FRESH);
        (recent && !self.latest.is_empty()).then_some(self.latest.as_slice())
    }
}

/// A publisher's kept keyframe with what sending it takes: the SSRC it came on and what its payload type
/// stands for.
#[derive(Debug, Default)]
pub struct PublisherKeyframes {
    pub cache: KeyframeCache,
    pub ssrc: u32,
    pub params: Option<PayloadParams>,
}

impl PublisherKeyframes {
    /// Looks at one of the publisher's video packets. A stream the kept keyframe did not come on is
    /// ignored until one of its keyframes starts (a publisher switching streams).
    pub fn observe(
        &mut self,
        ssrc: u32,
        params: PayloadParams,
        packet: KeptPacket,
        starts: bool,
        now: Instant,
    ) {
        if starts {
            self.ssrc = ssrc;
            self.params = Some(params);
        }
        if starts || self.ssrc == ssrc {
            self.cache.observe(packet, starts, now);
        }
    }

    /// The latest keyframe with its SSRC and payload meaning, if fresh.
    pub fn fresh(&self, now: Instant) -> Option<(Vec<KeptPacket>, u32, PayloadParams)> {
        let packets = self.cache.fresh(now)?;
        Some((packets.to_vec(), self.ssrc, self.params?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u64, time: u32, marker: bool) -> KeptPacket {
        KeptPacket {
            seq,
            time,
            marker,
            payload: Arc::from(vec![0u8; 4]),
        }
    }

    #[test]
    fn vp8_keyframe_starts_are_recognised() {
        // Descriptor: S=1, PID=0, no extensions; VP8 header with P=0 (key) or P=1 (delta).
        assert!(starts_keyframe(VideoCodec::Vp8, &[0x10, 0x00, 0x00, 0x9d]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x10, 0x01, 0x00, 0x9d]));
        // A continuation packet (S=0) starts nothing.
        assert!(!starts_keyframe(VideoCodec::Vp8, &[0x00, 0x00, 0x00, 0x9d]));
        assert!(!starts_keyframe(VideoCodec::Vp8, &[]));
    }

    #[test]
    fn h264_keyframe_starts_are_recognised() {
        // STAP-A with SPS (7) and PPS (8).
        let stap = [24, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce];
        assert!(starts_keyframe(VideoCodec::H264, &stap));
        // FU-A start of an IDR slice; the same fragment without its start bit is not a start.
        assert!(starts_keyframe(VideoCodec::H264, &[0x7c, 0x85, 0xaa]));
        assert!(!starts_keyframe(VideoCodec::H264, &[0x7c, 0x05, 0xaa]));
        // A non-IDR slice.
        assert!(!starts_keyframe(VideoCodec::H264, &[0x41, 0x9a]));
        // A STAP-A that lies about its sizes is not trusted.
        assert!(!starts_keyframe(VideoCodec::H264, &[24, 0, 9, 0x67]));
        assert!(!starts_keyframe(VideoCodec::Other, &[0x65]));
    }

    #[test]
    fn a_complete_keyframe_is_kept_and_served_while_the_stream_is_fresh() {
        let t0 = Instant::now();
        let mut cache = KeyframeCache::default();
        assert!(cache.fresh(t0).is_none());
        // One missing at its last packet (lost, or still on its way) and it is not kept.
        cache.observe(packet(10, 900, false), true, t0);
        cache.observe(packet(12, 900, true), false, t0);
        assert!(cache.fresh(t0).is_none(), "11 is missing");
        cache.observe(packet(20, 1800, false), true, t0);
        cache.observe(packet(21, 1800, false), false, t0);
        cache.observe(packet(22, 1800, true), false, t0);
        let kept: Vec<u64> = cache.fresh(t0).unwrap().iter().map(|p| p.seq).collect();
        assert_eq!(kept, vec![20, 21, 22]);
        // Deltas after it leave it in place.
        cache.observe(packet(23, 4800, true), false, t0);
        assert_eq!(cache.fresh(t0).unwrap().len(), 3);
        // A quiet stream's keyframe is the past.
        assert!(cache.fresh(t0 + FRESH).is_none());
    }

    #[test]
    fn a_keyframe_cut_short_by_the_next_frame_is_not_kept() {
        let t0 = Instant::now();
        let mut cache = KeyframeCache::default();
        cache.observe(packet(1, 100, false), true, t0);
        cache.observe(packet(2, 200, true), false, t0);
        assert!(cache.fresh(t0).is_none());
    }
}
