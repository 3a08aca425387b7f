//! The node-to-node relay's datagrams ([`crate::relay_node`]): their layout, and turning them into
//! [`Message`]s and back. Pure.
//!
//! ```text
//! clear header (18 bytes, the AEAD's associated data):
//!   0      version            1 (a datagram of another version is dropped)
//!   1      type               1 packet, 2 state (origin → edge); 3 nack, 4 want-keyframe, 5 keepalive
//!                             (edge → origin)
//!   2..10  counter            u64: the sender's datagram counter, the AEAD nonce's low 64 bits
//!   10..18 relay id           u64: which relay (channel) of the two nodes ([`relay_id`])
//! sealed body (AES-128-GCM, then its 16-byte tag):
//!   packet   relay seq u64 · publisher u64 · ssrc u32 · flags u8 (video, marker, keyframe start,
//!            retransmission, has resend pt) · layer u8 · seq u64 · RTP time u32 ·
//!            payload type u8 · resend pt u8 · clock rate u32 · channels u8 (0: none) ·
//!            codec name (u8 length + bytes) · format params (u16 presence bits, then each present
//!            one: u8, or u32 for the H.264 profile-level-id and the VP9 profile) ·
//!            extensions (u8 presence bits: audio level i8, voice activity u8, video orientation u8) ·
//!            the RTP payload (the rest)
//!   state    next relay seq u64 · u16 count · per publisher: publisher u64 · user (u16 length + UTF-8) · kinds u8
//!            (bit 0 audio, bit 1 video) · paused u8
//!   nack     u16 count · relay seq u64 each
//!   want-keyframe  publisher u64 · layers u8 (bit per simulcast layer)
//!   keepalive      empty
//! ```
//! A packet costs 80–90 bytes over its RTP payload (the header, the fields above, the tag): a
//! browser's full-size packet (≤ 1,200 bytes of payload) stays under a 1,500-byte MTU, and under the
//! relay's 2,048-byte receive buffer. Integers are big-endian. Multi-byte lengths are checked against what is left: a datagram that is
//! too short, has an unknown version or type, or a body that does not parse is refused
//! ([`WireError`]), never trusted in part.
//!
//! What a packet carries is what a worker hands another ([`crate::relay::Forwarded`]) less what only
//! makes sense on one node (the wall-clock arrival time, which the edge sets to its own). H.265/H.266
//! format parameters are not carried (the router negotiates neither).

use std::sync::Arc;

use str0m::format::{Codec, CodecSpec, FormatParams, PayloadParams};
use str0m::media::{Frequency, Pt};
use str0m::rtp::{ExtensionValues, VideoOrientation};

use crate::protocol::Kind;
use crate::relay_crypto::{Cipher, Direction, TAG_LEN};
use crate::simulcast::{Layer, LayerSet};

/// The wire format's version: the first byte of every datagram.
pub const VERSION: u8 = 1;
/// Bytes of the clear header.
pub const HEADER_LEN: usize = 18;
/// Relay sequence numbers one NACK datagram lists at most.
pub const MAX_NACKS: usize = 128;
/// Publishers one state datagram lists at most (a live room has one or two).
pub const MAX_PUBLISHERS: usize = 32;

const TYPE_PACKET: u8 = 1;
const TYPE_STATE: u8 = 2;
const TYPE_NACK: u8 = 3;
const TYPE_WANT_KEYFRAME: u8 = 4;
const TYPE_KEEPALIVE: u8 = 5;

const FLAG_VIDEO: u8 = 1;
const FLAG_MARKER: u8 = 2;
const FLAG_STARTS: u8 = 4;
const FLAG_RETRANSMISSION: u8 = 8;
const FLAG_RESEND: u8 = 16;

/// The id of the relay that carries `app`/`channel` between two nodes (FNV-1a of both names): the
/// datagram says which of the nodes' relays it belongs to, and its key then proves it.
pub fn relay_id(app: &str, channel: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in app.bytes().chain([0]).chain(channel.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A publisher's RTP packet on the relay.
#[derive(Clone, Debug, PartialEq)]
pub struct RelayPacket {
    /// The relay's own sequence number (one per packet sent on this relay; NACKs name it).
    pub relay_seq: u64,
    /// The publisher's session on the origin (its identity on this relay).
    pub publisher: u64,
    pub ssrc: u32,
    pub kind: Kind,
    /// The publisher's payload type and what it stands for.
    pub params: PayloadParams,
    /// The publisher's extended sequence number.
    pub seq: u64,
    pub time: u32,
    pub marker: bool,
    /// Whether it begins a keyframe.
    pub starts: bool,
    /// Whether this is a resend answering a NACK.
    pub retransmission: bool,
    pub layer: Layer,
    pub payload: Arc<[u8]>,
    /// The extensions that describe the media (audio level, voice activity, orientation).
    pub ext: ExtensionValues,
}

/// One publisher of the channel as the origin has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublisherState {
    pub publisher: u64,
    pub user: String,
    pub kinds: Vec<Kind>,
    /// Held back on the origin (the host is in a private call).
    pub paused: bool,
}

/// What a relay datagram says.
// A message is built to be sealed, or opened to be handled, one at a time: never held in bulk (the
// origin's history holds `RelayPacket`s), so boxing the large variant would only add an allocation per
// packet.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Packet(RelayPacket),
    /// Every publisher of the channel (idempotent: the whole set each time), and the relay sequence
    /// number the origin's next packet to this edge will carry (so the edge learns of a loss at the
    /// tail of a burst, which no later packet reveals).
    State {
        next_seq: u64,
        publishers: Vec<PublisherState>,
    },
    /// Packets the edge lost, by relay sequence number.
    Nack(Vec<u64>),
    WantKeyframe {
        publisher: u64,
        layers: LayerSet,
    },
    Keepalive,
}

impl Message {
    /// Which end sends it.
    pub fn direction(&self) -> Direction {
        match self {
            Message::Packet(_) | Message::State { .. } => Direction::OriginToEdge,
            Message::Nack(_) | Message::WantKeyframe { .. } | Message::Keepalive => {
                Direction::EdgeToOrigin
            }
        }
    }

    fn type_byte(&self) -> u8 {
        match self {
            Message::Packet(_) => TYPE_PACKET,
            Message::State { .. } => TYPE_STATE,
            Message::Nack(_) => TYPE_NACK,
            Message::WantKeyframe { .. } => TYPE_WANT_KEYFRAME,
            Message::Keepalive => TYPE_KEEPALIVE,
        }
    }
}

/// Why a datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    TooShort,
    UnknownVersion(u8),
    UnknownType(u8),
    /// It did not authenticate under the relay's key (forged, corrupted, or another key).
    Forged,
    /// It authenticated but its counter was seen before.
    Replayed,
    /// It authenticated but its body does not parse.
    Malformed,
}

/// A datagram's clear header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub type_byte: u8,
    pub counter: u64,
    pub relay: u64,
}

impl Header {
    /// Who sent a datagram of this type.
    pub fn direction(&self) -> Direction {
        match self.type_byte {
            TYPE_PACKET | TYPE_STATE => Direction::OriginToEdge,
            _ => Direction::EdgeToOrigin,
        }
    }
}

/// Reads a datagram's clear header (nothing in it is trusted until the body opens).
pub fn header(datagram: &[u8]) -> Result<Header, WireError> {
    if datagram.len() < HEADER_LEN + TAG_LEN {
        return Err(WireError::TooShort);
    }
    if datagram[0] != VERSION {
        return Err(WireError::UnknownVersion(datagram[0]));
    }
    let type_byte = datagram[1];
    if !(TYPE_PACKET..=TYPE_KEEPALIVE).contains(&type_byte) {
        return Err(WireError::UnknownType(type_byte));
    }
    let mut counter = [0u8; 8];
    counter.copy_from_slice(&datagram[2..10]);
    let mut relay = [0u8; 8];
    relay.copy_from_slice(&datagram[10..18]);
    Ok(Header {
        type_byte,
        counter: u64::from_be_bytes(counter),
        relay: u64::from_be_bytes(relay),
    })
}

/// Seals `message` into a datagram of relay `relay`, its sender's `counter`-th.
pub fn seal(message: &Message, relay: u64, counter: u64, cipher: &Cipher) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body_len(message) + TAG_LEN);
    out.push(VERSION);
    out.push(message.type_byte());
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&relay.to_be_bytes());
    write_body(message, &mut out);
    cipher.seal(message.direction(), counter, &mut out, HEADER_LEN);
    out
}

/// Opens a datagram whose `header` was read: authenticates it under `cipher` and parses its body.
/// (The replay check is the caller's, once it authenticated.)
pub fn open(datagram: &mut [u8], header: &Header, cipher: &Cipher) -> Result<Message, WireError> {
    let (clear, sealed) = datagram.split_at_mut(HEADER_LEN);
    let body = cipher
        .open(header.direction(), header.counter, clear, sealed)
        .ok_or(WireError::Forged)?;
    read_body(header.type_byte, body).ok_or(WireError::Malformed)
}

fn body_len(message: &Message) -> usize {
    match message {
        Message::Packet(p) => 80 + p.payload.len(),
        Message::State { publishers, .. } => {
            10 + publishers.iter().map(|p| 12 + p.user.len()).sum::<usize>()
        }
        Message::Nack(n) => 2 + 8 * n.len(),
        Message::WantKeyframe { .. } => 9,
        Message::Keepalive => 0,
    }
}

fn write_body(message: &Message, out: &mut Vec<u8>) {
    match message {
        Message::Packet(p) => write_packet(p, out),
        Message::State {
            next_seq,
            publishers,
        } => {
            out.extend_from_slice(&next_seq.to_be_bytes());
            let publishers = &publishers[..publishers.len().min(MAX_PUBLISHERS)];
            out.extend_from_slice(&(publishers.len() as u16).to_be_bytes());
            for p in publishers {
                out.extend_from_slice(&p.publisher.to_be_bytes());
                let user = &p.user.as_bytes()[..p.user.len().min(usize::from(u16::MAX))];
                out.extend_from_slice(&(user.len() as u16).to_be_bytes());
                out.extend_from_slice(user);
                out.push(kinds_bits(&p.kinds));
                out.push(u8::from(p.paused));
            }
        }
        Message::Nack(seqs) => {
            let seqs = &seqs[..seqs.len().min(MAX_NACKS)];
            out.extend_from_slice(&(seqs.len() as u16).to_be_bytes());
            for s in seqs {
                out.extend_from_slice(&s.to_be_bytes());
            }
        }
        Message::WantKeyframe { publisher, layers } => {
            out.extend_from_slice(&publisher.to_be_bytes());
            out.push(layers.bits());
        }
        Message::Keepalive => {}
    }
}

fn kinds_bits(kinds: &[Kind]) -> u8 {
    kinds.iter().fold(0, |bits, k| {
        bits | match k {
            Kind::Audio => 1,
            Kind::Video => 2,
        }
    })
}

fn kinds_of(bits: u8) -> Vec<Kind> {
    let mut kinds = Vec::new();
    if bits & 1 != 0 {
        kinds.push(Kind::Audio);
    }
    if bits & 2 != 0 {
        kinds.push(Kind::Video);
    }
    kinds
}

fn write_packet(p: &RelayPacket, out: &mut Vec<u8>) {
    out.extend_from_slice(&p.relay_seq.to_be_bytes());
    out.extend_from_slice(&p.publisher.to_be_bytes());
    out.extend_from_slice(&p.ssrc.to_be_bytes());
    let resend = p.params.resend();
    let flags = [
        (p.kind == Kind::Video, FLAG_VIDEO),
        (p.marker, FLAG_MARKER),
        (p.starts, FLAG_STARTS),
        (p.retransmission, FLAG_RETRANSMISSION),
        (resend.is_some(), FLAG_RESEND),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .fold(0, |flags, (_, flag)| flags | flag);
    out.push(flags);
    out.push(p.layer);
    out.extend_from_slice(&p.seq.to_be_bytes());
    out.extend_from_slice(&p.time.to_be_bytes());
    let spec = p.params.spec();
    out.push(*p.params.pt());
    out.push(resend.map_or(0, |pt| *pt));
    out.extend_from_slice(&spec.clock_rate.get().to_be_bytes());
    out.push(spec.channels.unwrap_or(0));
    let codec = spec.codec.to_string().to_ascii_lowercase();
    out.push(codec.len() as u8);
    out.extend_from_slice(codec.as_bytes());
    write_format(&spec.format, out);
    let ext = &p.ext;
    let present = u8::from(ext.audio_level.is_some())
        | u8::from(ext.voice_activity.is_some()) << 1
        | u8::from(ext.video_orientation.is_some()) << 2;
    out.push(present);
    if let Some(level) = ext.audio_level {
        out.push(level as u8);
    }
    if let Some(active) = ext.voice_activity {
        out.push(u8::from(active));
    }
    if let Some(orientation) = ext.video_orientation {
        out.push(orientation as u8);
    }
    out.extend_from_slice(&p.payload);
}

/// The format parameters carried, in presence-bit order: the one-byte ones, then the two four-byte
/// ones.
fn write_format(f: &FormatParams, out: &mut Vec<u8>) {
    let bytes: [Option<u8>; 10] = [
        f.min_p_time,
        f.stereo.map(u8::from),
        f.sprop_stereo.map(u8::from),
        f.use_inband_fec.map(u8::from),
        f.use_dtx.map(u8::from),
        f.level_asymmetry_allowed.map(u8::from),
        f.packetization_mode,
        f.profile,
        f.level_idx,
        f.tier,
    ];
    let words: [Option<u32>; 2] = [f.profile_level_id, f.profile_id];
    let mut present = 0u16;
    for (i, b) in bytes.iter().enumerate() {
        present |= u16::from(b.is_some()) << i;
    }
    for (i, w) in words.iter().enumerate() {
        present |= u16::from(w.is_some()) << (bytes.len() + i);
    }
    out.extend_from_slice(&present.to_be_bytes());
    out.extend(bytes.iter().flatten());
    for w in words.iter().flatten() {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

/// A reader over a body that fails (None) rather than read past its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.take(8)?);
        Some(u64::from_be_bytes(bytes))
    }

    fn bool(&mut self) -> Option<bool> {
        self.u8().map(|b| b != 0)
    }

    fn done(&self) -> bool {
        self.rest.is_empty()
    }
}

fn read_body(type_byte: u8, body: &[u8]) -> Option<Message> {
    let mut r = Reader { rest: body };
    let message = match type_byte {
        TYPE_PACKET => return read_packet(r).map(Message::Packet),
        TYPE_STATE => {
            let next_seq = r.u64()?;
            let count = usize::from(r.u16()?);
            if count > MAX_PUBLISHERS {
                return None;
            }
            let mut publishers = Vec::with_capacity(count);
            for _ in 0..count {
                let publisher = r.u64()?;
                let len = usize::from(r.u16()?);
                let user = String::from_utf8(r.take(len)?.to_vec()).ok()?;
                let kinds = kinds_of(r.u8()?);
                let paused = r.bool()?;
                publishers.push(PublisherState {
                    publisher,
                    user,
                    kinds,
                    paused,
                });
            }
            Message::State {
                next_seq,
                publishers,
            }
        }
        TYPE_NACK => {
            let count = usize::from(r.u16()?);
            if count > MAX_NACKS {
                return None;
            }
            let seqs = (0..count).map(|_| r.u64()).collect::<Option<Vec<_>>>()?;
            Message::Nack(seqs)
        }
        TYPE_WANT_KEYFRAME => Message::WantKeyframe {
            publisher: r.u64()?,
            layers: LayerSet::from_bits(r.u8()?),
        },
        TYPE_KEEPALIVE => Message::Keepalive,
        _ => return None,
    };
    r.done().then_some(message)
}

fn read_packet(mut r: Reader<'_>) -> Option<RelayPacket> {
    let relay_seq = r.u64()?;
    let publisher = r.u64()?;
    let ssrc = r.u32()?;
    let flags = r.u8()?;
    let layer = r.u8()?;
    if usize::from(layer) >= crate::simulcast::MAX_LAYERS {
        return None;
    }
    let seq = r.u64()?;
    let time = r.u32()?;
    let pt = Pt::from(r.u8()?);
    let resend = Pt::from(r.u8()?);
    let clock_rate = Frequency::new(r.u32()?)?;
    let channels = Some(r.u8()?).filter(|c| *c != 0);
    let codec_len = usize::from(r.u8()?);
    let codec = Codec::from(std::str::from_utf8(r.take(codec_len)?).ok()?);
    if matches!(codec, Codec::Unknown | Codec::Null) {
        return None;
    }
    let format = read_format(&mut r)?;
    let present = r.u8()?;
    let mut ext = ExtensionValues::default();
    if present & 1 != 0 {
        ext.audio_level = Some(r.u8()? as i8);
    }
    if present & 2 != 0 {
        ext.voice_activity = Some(r.bool()?);
    }
    if present & 4 != 0 {
        ext.video_orientation = Some(VideoOrientation::from(r.u8()?));
    }
    let spec = CodecSpec {
        codec,
        clock_rate,
        channels,
        format,
    };
    let params = PayloadParams::new(pt, (flags & FLAG_RESEND != 0).then_some(resend), spec);
    Some(RelayPacket {
        relay_seq,
        publisher,
        ssrc,
        kind: if flags & FLAG_VIDEO != 0 {
            Kind::Video
        } else {
            Kind::Audio
        },
        params,
        seq,
        time,
        marker: flags & FLAG_MARKER != 0,
        starts: flags & FLAG_STARTS != 0,
        retransmission: flags & FLAG_RETRANSMISSION != 0,
        layer,
        payload: r.rest.into(),
        ext,
    })
}

fn read_format(r: &mut Reader<'_>) -> Option<FormatParams> {
    let present = r.u16()?;
    let mut byte = |i: u16| -> Option<Option<u8>> {
        if present & (1 << i) != 0 {
            r.u8().map(Some)
        } else {
            Some(None)
        }
    };
    let min_p_time = byte(0)?;
    let stereo = byte(1)?.map(|b| b != 0);
    let sprop_stereo = byte(2)?.map(|b| b != 0);
    let use_inband_fec = byte(3)?.map(|b| b != 0);
    let use_dtx = byte(4)?.map(|b| b != 0);
    let level_asymmetry_allowed = byte(5)?.map(|b| b != 0);
    let packetization_mode = byte(6)?;
    let profile = byte(7)?;
    let level_idx = byte(8)?;
    let tier = byte(9)?;
    let mut word = |i: u16| -> Option<Option<u32>> {
        if present & (1 << i) != 0 {
            r.u32().map(Some)
        } else {
            Some(None)
        }
    };
    let profile_level_id = word(10)?;
    let profile_id = word(11)?;
    Some(FormatParams {
        min_p_time,
        stereo,
        sprop_stereo,
        use_inband_fec,
        use_dtx,
        level_asymmetry_allowed,
        packetization_mode,
        profile_level_id,
        profile_id,
        profile,
        level_idx,
        tier,
        ..FormatParams::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay_crypto::RelayKey;

    fn vp8() -> PayloadParams {
        let spec = CodecSpec {
            codec: Codec::Vp8,
            clock_rate: Frequency::NINETY_KHZ,
            channels: None,
            format: FormatParams::default(),
        };
        PayloadParams::new(Pt::from(96), Some(Pt::from(97)), spec)
    }

    fn opus() -> PayloadParams {
        let spec = CodecSpec {
            codec: Codec::Opus,
            clock_rate: Frequency::FORTY_EIGHT_KHZ,
            channels: Some(2),
            format: FormatParams {
                min_p_time: Some(10),
                use_inband_fec: Some(true),
                ..FormatParams::default()
            },
        };
        PayloadParams::new(Pt::from(111), None, spec)
    }

    fn h264() -> PayloadParams {
        let spec = CodecSpec {
            codec: Codec::H264,
            clock_rate: Frequency::NINETY_KHZ,
            channels: None,
            format: FormatParams {
                level_asymmetry_allowed: Some(true),
                packetization_mode: Some(1),
                profile_level_id: Some(0x42e01f),
                ..FormatParams::default()
            },
        };
        PayloadParams::new(Pt::from(127), Some(Pt::from(121)), spec)
    }

    fn packet(params: PayloadParams, kind: Kind) -> RelayPacket {
        RelayPacket {
            relay_seq: 1 << 40,
            publisher: (3 << 48) | 17,
            ssrc: 0xdead_beef,
            kind,
            params,
            seq: 70_000,
            time: 123_456,
            marker: true,
            starts: kind == Kind::Video,
            retransmission: false,
            layer: 2,
            payload: vec![1, 2, 3, 4, 5].into(),
            ext: ExtensionValues {
                audio_level: (kind == Kind::Audio).then_some(-30),
                voice_activity: (kind == Kind::Audio).then_some(true),
                video_orientation: (kind == Kind::Video).then_some(VideoOrientation::Deg90),
                ..ExtensionValues::default()
            },
        }
    }

    fn round_trip(message: &Message) -> Result<Message, WireError> {
        let cipher = Cipher::new(&RelayKey::random());
        let mut datagram = seal(message, relay_id("app", "live"), 42, &cipher);
        let header = header(&datagram)?;
        assert_eq!(header.counter, 42);
        assert_eq!(header.relay, relay_id("app", "live"));
        open(&mut datagram, &header, &cipher)
    }

    #[test]
    fn every_message_round_trips() {
        let messages = [
            Message::Packet(packet(vp8(), Kind::Video)),
            Message::Packet(packet(opus(), Kind::Audio)),
            Message::Packet(packet(h264(), Kind::Video)),
            Message::State {
                next_seq: 77,
                publishers: vec![
                    PublisherState {
                        publisher: 5,
                        user: "host-ü".into(),
                        kinds: vec![Kind::Audio, Kind::Video],
                        paused: true,
                    },
                    PublisherState {
                        publisher: 6,
                        user: "guest".into(),
                        kinds: vec![Kind::Audio],
                        paused: false,
                    },
                ],
            },
            Message::State {
                next_seq: 0,
                publishers: Vec::new(),
            },
            Message::Nack(vec![1, 2, u64::MAX]),
            Message::WantKeyframe {
                publisher: 9,
                layers: LayerSet::NONE.with(0).with(2),
            },
            Message::Keepalive,
        ];
        for message in messages {
            assert_eq!(round_trip(&message), Ok(message.clone()));
        }
    }

    #[test]
    fn short_unknown_and_forged_datagrams_are_refused() {
        let cipher = Cipher::new(&RelayKey::random());
        let datagram = seal(&Message::Keepalive, 1, 1, &cipher);
        assert_eq!(header(&datagram[..HEADER_LEN]), Err(WireError::TooShort));
        assert_eq!(header(&[]), Err(WireError::TooShort));
        let mut other_version = datagram.clone();
        other_version[0] = 2;
        assert_eq!(header(&other_version), Err(WireError::UnknownVersion(2)));
        let mut other_type = datagram.clone();
        other_type[1] = 9;
        assert_eq!(header(&other_type), Err(WireError::UnknownType(9)));
        // Every single flipped byte after the version and type: forged.
        for i in 2..datagram.len() {
            let mut forged = datagram.clone();
            forged[i] ^= 0x40;
            let header = header(&forged).expect("the clear part still parses");
            assert_eq!(
                open(&mut forged, &header, &cipher),
                Err(WireError::Forged),
                "byte {i}"
            );
        }
        // A type flipped to another valid one: forged too (the header is authenticated).
        let mut retyped = datagram.clone();
        retyped[1] = TYPE_STATE;
        let h = header(&retyped).expect("parses");
        assert_eq!(open(&mut retyped, &h, &cipher), Err(WireError::Forged));
    }

    #[test]
    fn a_sealed_body_that_does_not_parse_is_malformed() {
        let cipher = Cipher::new(&RelayKey::random());
        // A nack claiming more entries than it carries.
        let mut out = vec![VERSION, TYPE_NACK];
        out.extend_from_slice(&3u64.to_be_bytes());
        out.extend_from_slice(&7u64.to_be_bytes());
        out.extend_from_slice(&5u16.to_be_bytes());
        out.extend_from_slice(&1u64.to_be_bytes());
        cipher.seal(Direction::EdgeToOrigin, 3, &mut out, HEADER_LEN);
        let h = header(&out).expect("parses");
        assert_eq!(open(&mut out, &h, &cipher), Err(WireError::Malformed));
    }

    #[test]
    fn relay_ids_tell_channels_apart() {
        assert_eq!(relay_id("app", "live"), relay_id("app", "live"));
        assert_ne!(relay_id("app", "live"), relay_id("app", "live2"));
        assert_ne!(relay_id("ap", "plive"), relay_id("app", "live"));
    }
}
