//! `fanout`: one broadcaster, N audience members, one node, one process; what the router does per CPU
//! second, what the audience loses, and how late frames arrive.
//!
//! - The node is [`MediaNode`]: the normal wiring, with the router alone on a thread of its own so its
//!   CPU time can be read apart from the clients'.
//! - The broadcaster publishes the SDK's sample with each video frame `video_scale` times its size
//!   ([`clip::scaled`]), so it sends at a real live room's bitrate; the N audience members join
//!   receive-only, each a real str0m client on its own UDP socket: the SDK's `MediaSession`
//!   (`--receiver session`, depacketizing every frame), or a light `RtpProbe` (`--receiver probe`: ICE,
//!   DTLS, SRTP decryption and a bounded record of the packets, whole frames assembled from them after
//!   the window by `probe_frames`), so 300 to 1,000 members fit on the machine beside the node; or
//!   `--receiver session-tcp`: sessions over ICE-TCP only, each on a TCP connection to the router, to
//!   read a TCP viewer's cost against a UDP one's (run both, back to back).
//! - Probes offer no transport-wide congestion control (`ProbeOptions::transport_cc` off), so the router
//!   has no bandwidth estimate for them and forwards the whole stream: this measures forwarding. With
//!   feedback, probes starved of CPU on this box send it late, the estimator reads the delay as
//!   congestion and pauses their video (BENCHMARKS `fanout`, 12.7 % of frames); adaptation itself is
//!   measured by `bandwidth`.
//! - After everyone receives video and a warm-up of at least a second, a window of `seconds`: deltas of
//!   the router's counters (datagrams out = egress packets, frames forwarded), of the router thread's and
//!   the whole process's CPU time and wake-ups, and of the frames the broadcaster sent; each member
//!   counts the frames *sent* in the window that it received (loss) and each one's latency; and the
//!   kernel's receive-buffer drops on the router's, the broadcaster's and the members' sockets
//!   ([`udp_drops`]), which say where a loss happened.
//! - Latency = receive instant at the member − the frame's send instant at the broadcaster. The SDK
//!   stamps a frame's RTP time with its scheduled send instant since the session connected
//!   (`MediaStats::connected_at`), and the router forwards RTP time unchanged, so the send instant is
//!   `connected_at + rtp_time / clock rate`; the broadcaster writes the frame at that instant give or
//!   take its timer (≤ 1 ms). Everything is in one process, so the instants are comparable. This is the
//!   whole path: the broadcaster's packetizing and SRTP, loopback UDP, the router, the member's
//!   decrypting and depacketizing (a probe: decrypting, and the frame's last packet arriving).
//! - Then the floor, with the node and clients gone: [`srtp_floor`], the same frames protected and sent
//!   to N receivers with no routing, on a thread of its own; the ratio of egress packets per CPU second
//!   says what routing costs on top of the unavoidable per-receiver SRTP work. And the hardware floor
//!   ([`hardware_floor`]): sealing and batched sending alone, what one core allows (the goal is
//!   ≥ 0.8 of it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use showcall_media::RouterStats;
use showcall_node::config::NodeConfig;
use showcall_sdk::media::source::{AUDIO_PACKETS_PER_SECOND, VIDEO_FPS};
use showcall_sdk::{
    ChannelRole, MediaOptions, MediaSession, MediaSource, MediaStats, ProbeOptions, ReceivedFrame,
    RtpProbe, SignalClient, TrackKind,
};
use tokio::sync::broadcast::{self, error::RecvError};

use super::media_node::MediaNode;
use super::probe_frames::whole_frames;
use super::report::{histogram, percentiles, progress};
use super::sdk_user::{guarded, login, publish};
use super::tokens::token_factory;
use super::{clip, cpu, hardware_floor, srtp_floor, udp_drops};
use crate::cli::FanoutReceiver;

const ROOM: &str = "fanout_live";
/// Time for keyframe requests, RTCP and the router's first-frame bookkeeping to settle.
const WARMUP: Duration = Duration::from_secs(1);
/// How long after the window frames sent in it may still arrive.
pub(super) const LATE: Duration = Duration::from_secs(2);

/// What one member received of the frames sent in the window.
pub(super) struct Received {
    pub(super) video_latency: Histogram<u64>,
    audio_latency: Histogram<u64>,
    pub(super) video_frames: u64,
    audio_frames: u64,
    video_bytes: u64,
    audio_bytes: u64,
    /// Frames the subscription dropped for falling behind (the bench's reader, not the network).
    lagged: u64,
}

impl Received {
    fn new() -> Self {
        Self {
            video_latency: histogram(),
            audio_latency: histogram(),
            video_frames: 0,
            audio_frames: 0,
            video_bytes: 0,
            audio_bytes: 0,
            lagged: 0,
        }
    }

    /// Counts a frame received at `received_at` if it was *sent* in the window (so the frames in flight
    /// at either edge are counted once, like the broadcaster's counter).
    fn count(
        &mut self,
        window: &Window,
        kind: TrackKind,
        rtp_time: u64,
        received_at: Instant,
        bytes: u64,
    ) {
        let (clock, latency, count, total) = match kind {
            TrackKind::Video => (
                90_000,
                &mut self.video_latency,
                &mut self.video_frames,
                &mut self.video_bytes,
            ),
            TrackKind::Audio => (
                48_000,
                &mut self.audio_latency,
                &mut self.audio_frames,
                &mut self.audio_bytes,
            ),
        };
        let sent = window.epoch + Duration::from_nanos(rtp_time * 1_000_000_000 / clock);
        if sent < window.from || sent >= window.to {
            return;
        }
        let micros = received_at.saturating_duration_since(sent).as_micros();
        let _ = latency.record((micros as u64).max(1));
        *count += 1;
        *total += bytes;
    }
}

/// The measured window: frames sent in `[from, to)`, a frame's send instant being `epoch` + its RTP
/// time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) epoch: Instant,
    pub(super) from: Instant,
    pub(super) to: Instant,
}

/// Reads one session's frames and counts those sent in the window, waiting [`LATE`] past it for
/// stragglers.
async fn receive(mut frames: broadcast::Receiver<ReceivedFrame>, window: Window) -> Received {
    let mut r = Received::new();
    loop {
        let late = window.to + LATE;
        let frame = match tokio::time::timeout_at(late.into(), frames.recv()).await {
            Ok(Ok(f)) => f,
            Ok(Err(RecvError::Lagged(n))) => {
                r.lagged += n;
                continue;
            }
            Ok(Err(RecvError::Closed)) | Err(_) => break,
        };
        let bytes = frame.data.len() as u64;
        r.count(
            &window,
            frame.kind,
            frame.rtp_time,
            frame.received_at,
            bytes,
        );
    }
    r
}

/// Counts the whole frames among a probe's records (read [`LATE`] past the window) sent in the window.
/// Fails when the records no longer reach back to its start (the probe's ring was too small).
pub(super) fn receive_probe(probe: &RtpProbe, window: &Window) -> anyhow::Result<Received> {
    let records = probe.packets();
    if records.first().is_some_and(|r| r.arrived > window.from) {
        anyhow::bail!(
            "a probe's {} records do not reach back to the window's start: raise keep_packets",
            records.len()
        );
    }
    let mut r = Received::new();
    for f in whole_frames(&records) {
        r.count(window, f.kind, f.rtp_time, f.arrived, f.bytes);
    }
    Ok(r)
}

/// One audience member.
enum Member {
    Session(MediaSession),
    Probe(RtpProbe),
}

impl Member {
    async fn join(
        signal: &SignalClient,
        receiver: FanoutReceiver,
        keep_packets: usize,
    ) -> anyhow::Result<Self> {
        Ok(match receiver {
            FanoutReceiver::Session | FanoutReceiver::SessionTcp => {
                let over_tcp = receiver == FanoutReceiver::SessionTcp;
                let options = MediaOptions {
                    udp: !over_tcp,
                    ..MediaOptions::default()
                };
                let (media, _) =
                    MediaSession::join(signal, ROOM, ChannelRole::Audience, options).await?;
                Member::Session(media)
            }
            FanoutReceiver::Probe => {
                let opts = ProbeOptions {
                    keep_packets,
                    // Forwarding alone: no bandwidth adaptation (see the module docs).
                    transport_cc: false,
                    ..ProbeOptions::default()
                };
                Member::Probe(RtpProbe::join(signal, ROOM, opts).await?.0)
            }
        })
    }

    async fn first_video(&self) -> anyhow::Result<()> {
        match self {
            Member::Session(m) => {
                guarded("first video", m.wait_video_frames(1)).await??;
            }
            Member::Probe(p) => {
                guarded("first video", p.wait_packets(TrackKind::Video, 1)).await??;
            }
        }
        Ok(())
    }

    fn local_addr(&self) -> std::net::SocketAddr {
        match self {
            Member::Session(m) => m.local_addr(),
            Member::Probe(p) => p.local_addr(),
        }
    }
}

/// Records a probe keeps: the packets of the window and the late margin, three times over — estimated
/// from the clip as if every packet carried 1,000 payload bytes (str0m fills ≈ 1,020–1,050). The clip's
/// average is not what a probe gets under load: with 300 probes on two workers a probe received 1.5×
/// the estimate (8.3 packets per video frame against 6.3 with 20 probes, and more frames in the span:
/// 4,428 records in 12.1 s), which a margin of 1.5 only just held — the run failed about one time in
/// two with "records do not reach back". At ≈ 80 bytes a record, 300 probes keep ≈ 210 MB.
pub(super) fn probe_keep(source: &MediaSource, seconds: u64) -> usize {
    let frames = source.video_frames();
    let per_frame = frames
        .iter()
        .map(|f| f.data.len().div_ceil(1000))
        .sum::<usize>() as f64
        / frames.len().max(1) as f64;
    let per_second = per_frame * f64::from(VIDEO_FPS) + f64::from(AUDIO_PACKETS_PER_SECOND);
    let span = seconds as f64 + LATE.as_secs_f64();
    (per_second * span * 3.0).ceil() as usize
}

/// The router's and the broadcaster's counters at one instant.
struct Snapshot {
    at: Instant,
    router: RouterStats,
    router_cpu: f64,
    router_wakeups: u64,
    process_cpu: f64,
    sent: MediaStats,
    /// Receive-buffer drops by local UDP port.
    drops: HashMap<u16, u64>,
}

/// `read` of every thread in `tids`, added up.
fn sum<T: std::iter::Sum>(
    tids: &[u32],
    read: impl Fn(u32) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    tids.iter().map(|t| read(*t)).sum()
}

impl Snapshot {
    async fn take(node: &MediaNode, broadcaster: &MediaSession) -> anyhow::Result<Self> {
        Ok(Self {
            at: Instant::now(),
            router: node.router.stats().await?,
            router_cpu: sum(&node.router_tids, cpu::thread_seconds)?,
            router_wakeups: sum(&node.router_tids, cpu::thread_wakeups)?,
            process_cpu: cpu::process_seconds()?,
            sent: broadcaster.stats(),
            drops: udp_drops::by_port()?,
        })
    }
}

/// Loss of one kind: (whole audience, worst member), as fractions of what the broadcaster sent.
pub(super) fn loss(sent: u64, received: &[u64]) -> serde_json::Value {
    let sent = sent as f64;
    let members = received.len().max(1) as f64;
    let total = 1.0 - received.iter().sum::<u64>() as f64 / (sent * members);
    let worst = received
        .iter()
        .map(|&g| 1.0 - g as f64 / sent)
        .fold(f64::MIN, f64::max);
    serde_json::json!({ "sent": sent, "loss_fraction": total, "worst_member_loss_fraction": worst })
}

/// The window's start: `WARMUP` from now, moved to 10 ms past a multiple of 100 ms after the
/// broadcaster's epoch. Its frames are due on the grids epoch + n/30 s and epoch + n/50 s, which leave
/// 0–20 ms free of due instants in every 100 ms; so the counters read at the window's edges (within a
/// few ms of them) count exactly the frames sent inside it.
pub(super) fn window_start(epoch: Instant) -> Instant {
    let earliest = (Instant::now() + WARMUP).saturating_duration_since(epoch);
    let tenths = earliest.as_millis().div_ceil(100) as u64;
    epoch + Duration::from_millis(tenths * 100 + 10)
}

pub(super) async fn run(
    audience: usize,
    seconds: u64,
    video_scale: usize,
    receiver: FanoutReceiver,
    workers: usize,
) -> anyhow::Result<()> {
    let any: std::net::SocketAddr = "127.0.0.1:0".parse()?;
    let workers = workers.max(1);
    let mut config = NodeConfig {
        signal_addr: any,
        grpc_addr: any,
        http_addr: any,
        media_addr: any,
        media_workers: workers,
        // The room (broadcaster + audience) spreads evenly over the workers.
        media_room_capacity: (audience + 1).div_ceil(workers),
        ..NodeConfig::default()
    };
    config.rate_limit.per_second = 10_000;
    config.rate_limit.burst = 10_000;
    let node = MediaNode::start(&config).await?;
    let token = token_factory(&config);
    let source = clip::scaled(video_scale)?;

    let host = login(&node.url, &token("fanout-host")?).await?;
    let broadcaster = publish(&host, ROOM, source.clone()).await?;
    let epoch = guarded("broadcaster connects", broadcaster.wait_connected())
        .await??
        .connected_at
        .unwrap_or_else(Instant::now);

    let bar = progress(audience as u64, "audience");
    let keep = probe_keep(&source, seconds);
    let mut members = Vec::with_capacity(audience);
    for i in 0..audience {
        let signal = login(&node.url, &token(&format!("fan-{i}"))?).await?;
        let member = Member::join(&signal, receiver, keep).await?;
        members.push((signal, member));
        bar.inc(1);
    }
    for (_, member) in &members {
        member.first_video().await?;
    }
    bar.finish();

    let from = window_start(epoch);
    let to = from + Duration::from_secs(seconds);
    let window = Window { epoch, from, to };
    let mut readers = tokio::task::JoinSet::new();
    for (_, member) in &members {
        if let Member::Session(media) = member {
            readers.spawn(receive(media.subscribe_frames(), window));
        }
    }
    tokio::time::sleep_until(from.into()).await;
    let before = Snapshot::take(&node, &broadcaster).await?;
    let bar = progress(seconds, "window");
    for s in 1..=seconds {
        tokio::time::sleep_until((from + Duration::from_secs(s)).into()).await;
        bar.inc(1);
    }
    let after = Snapshot::take(&node, &broadcaster).await?;
    bar.finish();
    // Probes are read once stragglers had the time a session's reader gives them.
    let mut probed = Vec::new();
    if receiver == FanoutReceiver::Probe {
        tokio::time::sleep_until((to + LATE).into()).await;
        for (_, member) in &members {
            if let Member::Probe(probe) = member {
                probed.push(receive_probe(probe, &window)?);
            }
        }
    }

    let mut video_latency = histogram();
    let mut audio_latency = histogram();
    let (mut video_frames, mut audio_frames) = (Vec::new(), Vec::new());
    let (mut video_bytes, mut audio_bytes, mut lagged) = (0u64, 0u64, 0u64);
    let mut results = probed;
    while let Some(r) = readers.join_next().await {
        results.push(r?);
    }
    for r in results {
        video_latency.add(&r.video_latency)?;
        audio_latency.add(&r.audio_latency)?;
        video_frames.push(r.video_frames);
        audio_frames.push(r.audio_frames);
        video_bytes += r.video_bytes;
        audio_bytes += r.audio_bytes;
        lagged += r.lagged;
    }
    let drops = |ports: Vec<u16>| udp_drops::delta(&before.drops, &after.drops, ports);
    let router_drops = drops(vec![node.router.candidate_addr().port()]);
    let broadcaster_drops = drops(vec![broadcaster.local_addr().port()]);
    let audience_drops = drops(members.iter().map(|(_, m)| m.local_addr().port()).collect());
    drop(members);
    drop(broadcaster);
    node.shutdown().await;

    // The floor, alone on the machine's share now that the node and its clients are gone.
    let floor_source = source.clone();
    let floor = tokio::task::spawn_blocking(move || {
        srtp_floor::run(audience, seconds as f64, floor_source)
    })
    .await??;
    let hardware_source = source.clone();
    let hardware = tokio::task::spawn_blocking(move || {
        hardware_floor::run(audience, seconds as f64, hardware_source)
    })
    .await??;

    let window = (after.at - before.at).as_secs_f64();
    // Egress and ingress count datagrams over ICE-TCP too (framed on a connection instead of sent
    // with the UDP socket's batches), so `session-tcp` reads against `session` per packet.
    let (a, b) = (&after.router, &before.router);
    let egress =
        ((a.datagrams_out + a.tcp_frames_out) - (b.datagrams_out + b.tcp_frames_out)) as f64;
    let ingress = ((a.datagrams_in + a.tcp_frames_in) - (b.datagrams_in + b.tcp_frames_in)) as f64;
    let forwarded = (after.router.frames_forwarded - before.router.frames_forwarded) as f64;
    let router_cpu = after.router_cpu - before.router_cpu;
    let router_wakeups = (after.router_wakeups - before.router_wakeups) as f64;
    let process_cpu = after.process_cpu - before.process_cpu;
    let router_per_cpu = egress / router_cpu;
    let floor_per_cpu = floor.datagrams as f64 / floor.cpu_seconds;
    let (clip_video_kbps, clip_audio_kbps) = clip::kbit_per_second(&source);
    // Bytes of frames sent in the window, over the window's nominal length.
    let per_member_kbps =
        |bytes: u64| bytes as f64 * 8.0 / 1000.0 / seconds as f64 / audience.max(1) as f64;
    let result = serde_json::json!({
        "bench": "fanout",
        "audience": audience,
        "workers": workers,
        "receiver": format!("{receiver:?}").to_lowercase(),
        "window_s": window,
        "video_scale": video_scale,
        "clip_kbit_s": { "video": clip_video_kbps, "audio": clip_audio_kbps },
        "received_kbit_s_per_member": {
            "video": per_member_kbps(video_bytes),
            "audio": per_member_kbps(audio_bytes),
        },
        "router": {
            "ingress_packets_per_s": ingress / window,
            "egress_packets_per_s": egress / window,
            "frames_forwarded_per_s": forwarded / window,
            "cpu_s": router_cpu,
            "cpu_utilization": router_cpu / window,
            "egress_packets_per_cpu_s": router_per_cpu,
            "wakeups_per_s": router_wakeups / window,
            "cpu_us_per_wakeup": router_cpu * 1e6 / router_wakeups,
        },
        "process": {
            "cpu_s": process_cpu,
            "egress_packets_per_cpu_s": egress / process_cpu,
        },
        "video_loss": loss(after.sent.video_frames_out - before.sent.video_frames_out, &video_frames),
        "audio_loss": loss(after.sent.audio_frames_out - before.sent.audio_frames_out, &audio_frames),
        "frames_lagged_by_reader": lagged,
        "udp_receive_buffer_drops": {
            "router_socket": router_drops,
            "broadcaster_socket": broadcaster_drops,
            "audience_sockets": audience_drops,
        },
        "video_latency": percentiles(&video_latency),
        "audio_latency": percentiles(&audio_latency),
        "floor": {
            "receivers": audience,
            "seconds": floor.seconds,
            "packets_per_s": floor.datagrams as f64 / floor.seconds,
            "cpu_s": floor.cpu_seconds,
            "packets_per_cpu_s": floor_per_cpu,
            "wakeups_per_s": floor.wakeups as f64 / floor.seconds,
        },
        "router_vs_floor_per_cpu_s": router_per_cpu / floor_per_cpu,
        "hardware_floor": hardware.json(),
        "router_vs_hardware_floor_per_cpu_s": router_per_cpu / hardware.packets_per_cpu_second(),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
