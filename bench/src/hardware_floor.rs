//! The hardware floor: what one core does when all it has to do for a live room's audience is seal the
//! broadcaster's packets for each receiver and hand them to the kernel.
//!
//! One thread (whose CPU time is measured, [`cpu`]) plays the fan-out bench's broadcaster × N: on the
//! clip's real-time schedule (30 video frames and 50 audio packets a second, [`clip::scaled`]'s frames),
//! each frame is cut into RTP packets of the sizes str0m sends and, for each of N receivers, every packet
//! is built (RTP header, a copy of its payload) and sealed with SRTP's AEAD_AES_128_GCM (RFC 7714: 12-byte
//! IV from the salt, SSRC and index; the RTP header as associated data; a 16-byte tag) under that
//! receiver's key, with aws-lc-rs, the crypto str0m uses here. A turn's packets go out through the
//! router's own [`Egress`] (`sendmmsg` across receivers, UDP GSO per receiver) to N loopback sockets,
//! which a reader thread drains and counts.
//!
//! So this is the router's egress with str0m removed: no session bookkeeping, no pacer, no RTX cache, no
//! ingress. Measured: packets per CPU-second of the sending thread. As for the router, loopback charges
//! the receivers' side of delivery (the softirq that queues each datagram on its socket) to the sender,
//! so the absolute numbers are lower than a NIC's would be; the ratio to the router is like for like.
//!
//! Sizes: str0m aims at 1,150-byte datagrams; an RTP packet is at most 1,150 − 16 (tag) rounded down to
//! a multiple of 16 = 1,120 bytes, a 28-byte header (12 fixed + 16 of one-byte header extensions: mid,
//! abs-send-time, transport-wide sequence number) and for video a 3-byte VP8 descriptor, so a frame is
//! cut into 1,089-byte pieces and a shorter last one. The frame's bytes are the clip's.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use showcall_media::egress::{Egress, Flushed};
use showcall_sdk::MediaSource;

use super::{clip, cpu};

/// Largest RTP packet (before the tag) str0m sends: see the module docs.
const RTP_MAX: usize = 1120;
/// RTP header with str0m's usual one-byte header extensions.
const HEADER: usize = 28;
const VP8_DESCRIPTOR: usize = 3;
/// Video payload per packet.
const VIDEO_CHUNK: usize = RTP_MAX - HEADER - VP8_DESCRIPTOR;
const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 111;

/// What the floor measured.
pub(super) struct HardwareFloor {
    pub receivers: usize,
    pub seconds: f64,
    pub cpu_seconds: f64,
    /// Times the sending thread slept.
    pub wakeups: u64,
    pub sent: Flushed,
    /// Datagrams the receivers read.
    pub received: u64,
    /// Whether the egress used GSO (false on a kernel without it).
    pub gso: bool,
}

impl HardwareFloor {
    pub fn packets_per_cpu_second(&self) -> f64 {
        self.sent.datagrams as f64 / self.cpu_seconds
    }

    pub fn json(&self) -> serde_json::Value {
        let s = &self.sent;
        serde_json::json!({
            "receivers": self.receivers,
            "seconds": self.seconds,
            "gso": self.gso,
            "packets_per_s": s.datagrams as f64 / self.seconds,
            "cpu_s": self.cpu_seconds,
            "cpu_utilization": self.cpu_seconds / self.seconds,
            "packets_per_cpu_s": self.packets_per_cpu_second(),
            "packets_per_syscall": s.datagrams as f64 / s.syscalls.max(1) as f64,
            "gso_batches_per_s": s.gso_batches as f64 / self.seconds,
            "dropped": s.dropped,
            "received_fraction": self.received as f64 / s.datagrams.max(1) as f64,
            "wakeups_per_s": self.wakeups as f64 / self.seconds,
        })
    }
}

/// One receiver's SRTP sender: its key and salt, its SSRCs and sequence numbers.
struct Receiver {
    destination: SocketAddr,
    key: LessSafeKey,
    salt: [u8; 12],
    video: (u32, u16),
    audio: (u32, u16),
}

impl Receiver {
    fn new(i: usize, destination: SocketAddr) -> anyhow::Result<Self> {
        // Distinct keys per receiver, as DTLS would give; their value does not matter to the cost.
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).context("AES key")?);
        let mut salt = [0x5a; 12];
        salt[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let ssrc = 0x1000_0000 + 2 * i as u32;
        Ok(Self {
            destination,
            key,
            salt,
            video: (ssrc, 0),
            audio: (ssrc + 1, 0),
        })
    }

    /// One SRTP packet: header, `prefix` then `payload` sealed, tag.
    fn seal(
        &mut self,
        video: bool,
        marker: bool,
        timestamp: u32,
        prefix: &[u8],
        payload: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        let (pt, (ssrc, seq)) = if video {
            (VIDEO_PT, &mut self.video)
        } else {
            (AUDIO_PT, &mut self.audio)
        };
        *seq = seq.wrapping_add(1);
        let mut packet = Vec::with_capacity(HEADER + prefix.len() + payload.len() + 16);
        packet.extend_from_slice(&[0x90, pt | (u8::from(marker) << 7)]);
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&ssrc.to_be_bytes());
        // One-byte header extensions (RFC 8285): 4 words of them.
        packet.extend_from_slice(&[0xbe, 0xde, 0, 4]);
        packet.extend_from_slice(&[0x10, b'0', 0x22, 1, 2, 3, 0x31, 0, 7, 0, 0, 0]);
        packet.extend_from_slice(prefix);
        packet.extend_from_slice(payload);
        // RFC 7714 § 8.1: IV = salt XOR (0x0000 ‖ SSRC ‖ ROC ‖ SEQ); the ROC stays 0 here.
        let mut iv = self.salt;
        for (b, x) in iv[2..6].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= x;
        }
        for (b, x) in iv[10..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= x;
        }
        let (header, body) = packet.split_at_mut(HEADER);
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(&*header), body)
            .context("seal")?;
        packet.extend_from_slice(tag.as_ref());
        Ok(packet)
    }
}

/// Drains `sockets` until `stop`, counting datagrams.
fn drain(sockets: Vec<UdpSocket>, stop: Arc<AtomicBool>, received: Arc<AtomicU64>) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let mut got = 0;
        for s in &sockets {
            while s.recv(&mut buf).is_ok() {
                got += 1;
            }
        }
        received.fetch_add(got, Ordering::Relaxed);
        if got == 0 {
            // The receive buffers hold far more than a millisecond of a turn.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Sends `source` on its real-time schedule to `n` receivers for `seconds`. Blocks; run it on a thread
/// of its own (its CPU time is what is measured).
pub(super) fn run(
    n: usize,
    seconds: f64,
    source: Arc<MediaSource>,
) -> anyhow::Result<HardwareFloor> {
    run_with(n, seconds, source, true)
}

/// [`run`], with GSO or `sendmmsg` alone.
fn run_with(
    n: usize,
    seconds: f64,
    source: Arc<MediaSource>,
    gso: bool,
) -> anyhow::Result<HardwareFloor> {
    let mut sockets = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for i in 0..n {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.set_nonblocking(true)?;
        receivers.push(Receiver::new(i, s.local_addr()?)?);
        sockets.push(s);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, received) = (stop.clone(), received.clone());
        std::thread::spawn(move || drain(sockets, stop, received))
    };
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_nonblocking(true)?;
    let mut egress = if gso {
        Egress::new(socket)
    } else {
        Egress::without_gso(socket)
    };

    let frames = source.video_frames();
    let packets = source.audio_packets();
    let tid = cpu::current_thread_id()?;
    let cpu_before = cpu::thread_seconds(tid)?;
    let wakeups_before = cpu::thread_wakeups(tid)?;
    let mut sent = Flushed::default();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let (mut video_n, mut audio_n) = (0u64, 0u64);
    let due =
        |n: u64, per_second: u64| start + Duration::from_nanos(n * 1_000_000_000 / per_second);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= due(video_n, 30) {
            let frame = &frames[video_n as usize % frames.len()].data;
            let timestamp = (video_n * 3000) as u32;
            let pieces = frame.len().div_ceil(VIDEO_CHUNK);
            for r in &mut receivers {
                for (k, piece) in frame.chunks(VIDEO_CHUNK).enumerate() {
                    // VP8 descriptor: X=1, S=1 on the first piece, then a 7-bit picture id.
                    let descriptor = [0x80 | (u8::from(k == 0) << 4), 0x80, video_n as u8];
                    let packet = r.seal(true, k + 1 == pieces, timestamp, &descriptor, piece)?;
                    egress.queue(r.destination, packet);
                }
            }
            sent.add(egress.flush());
            video_n += 1;
        }
        if now >= due(audio_n, 50) {
            let packet = &packets[audio_n as usize % packets.len()];
            let timestamp = (audio_n * 960) as u32;
            for r in &mut receivers {
                let sealed = r.seal(false, false, timestamp, &[], packet)?;
                egress.queue(r.destination, sealed);
            }
            sent.add(egress.flush());
            audio_n += 1;
        }
        let wake = due(video_n, 30).min(due(audio_n, 50)).min(end);
        let now = Instant::now();
        if wake > now {
            std::thread::sleep(wake - now);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_seconds = cpu::thread_seconds(tid)? - cpu_before;
    let wakeups = cpu::thread_wakeups(tid)? - wakeups_before;
    // Let the reader take what is still queued.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    Ok(HardwareFloor {
        receivers: n,
        seconds: elapsed,
        cpu_seconds,
        wakeups,
        sent,
        received: received.load(Ordering::Relaxed),
        gso: egress.gso(),
    })
}

/// `showcall-bench floor`: the floor alone, printed as JSON.
pub(super) async fn bench(
    receivers: usize,
    seconds: u64,
    video_scale: usize,
    gso: bool,
) -> anyhow::Result<()> {
    let source = clip::scaled(video_scale)?;
    let (video_kbps, audio_kbps) = clip::kbit_per_second(&source);
    let floor =
        tokio::task::spawn_blocking(move || run_with(receivers, seconds as f64, source, gso))
            .await??;
    let result = serde_json::json!({
        "bench": "floor",
        "video_scale": video_scale,
        "clip_kbit_s": { "video": video_kbps, "audio": audio_kbps },
        "floor": floor.json(),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_packet_opens_with_the_receivers_key_and_has_srtp_sizes() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut r = Receiver::new(3, to).unwrap();
        let payload = vec![7u8; VIDEO_CHUNK];
        let mut packet = r
            .seal(true, true, 90_000, &[0x90, 0x80, 1], &payload)
            .unwrap();
        assert_eq!(packet.len(), RTP_MAX + 16);
        let (ssrc, seq) = r.video;
        let mut iv = r.salt;
        for (b, x) in iv[2..6].iter_mut().zip(ssrc.to_be_bytes()) {
            *b ^= x;
        }
        for (b, x) in iv[10..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= x;
        }
        let (header, body) = packet.split_at_mut(HEADER);
        let plain = r
            .key
            .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(&*header), body)
            .unwrap();
        assert_eq!(&plain[3..], &payload[..]);
    }
}
