//! The fan-out floor: what it costs to packetize, SRTP-protect and send the broadcaster's frames to N
//! receivers when nothing routes them.
//!
//! N str0m sessions configured like the router's (ICE-lite, default codecs) are connected in memory to N
//! receive-only sessions configured like the SDK's audience (full ICE, Opus + VP8, RecvOnly offer). Then
//! one thread writes every frame of the same clip to each of the N router-like sessions, on the clip's
//! real-time schedule (30 video frames and 50 audio packets a second, as the broadcaster sends), and
//! sends every datagram those sessions produce on one UDP socket to a sink (a thread that reads and
//! discards, so the kernel path is the router's: loopback, a reader on the other end). Measured: the
//! datagrams sent and the CPU time of that thread.
//!
//! So the floor is the router's egress work with everything else removed: no publisher packets to
//! receive and decrypt, no depacketizing, no demultiplexing, no forwarding decisions, no tokio loop or
//! socket readiness. It does keep the sessions alive as the router must: the receivers' ICE checks are
//! answered and their timers run (the receiver side's small share of that runs on the same thread).

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use showcall_sdk::MediaSource;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::cpu;

/// What the floor measured.
pub(super) struct Floor {
    pub datagrams: u64,
    pub cpu_seconds: f64,
    /// Times the sending thread slept.
    pub wakeups: u64,
    pub seconds: f64,
}

/// The router-side address every session shares (the router has one socket), and the receivers'.
const ROUTER_ADDR: ([u8; 4], u16) = ([10, 0, 0, 1], 3478);

fn receiver_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1, (i >> 8) as u8, (i & 0xff) as u8], 5000))
}

/// RTP and RTCP start with a byte in 128..=191 (RFC 7983); STUN and DTLS below that.
fn is_rtp_or_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(128..=191))
}

/// Where the router-like sessions' datagrams go, and how many went.
struct Egress {
    socket: UdpSocket,
    sink: SocketAddr,
    sent: u64,
}

impl Egress {
    fn send(&mut self, datagram: &[u8]) {
        // Like the router: a datagram the kernel will not take now is dropped, not retried.
        if self.socket.send_to(datagram, self.sink).is_ok() {
            self.sent += 1;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Router,
    Receiver,
}

/// One receiver: the router-like session that sends to it, and the receiver session itself.
struct Pair {
    router: Rtc,
    receiver: Rtc,
    receiver_addr: SocketAddr,
    router_deadline: Instant,
    receiver_deadline: Instant,
    router_connected: bool,
    receiver_connected: bool,
    audio: Mid,
    video: Mid,
}

/// Drains `rtc`'s output to its next timeout (str0m's rule after every input), handing each datagram
/// to `datagram`. Returns the timeout and whether `Connected` was among the events.
fn drain(rtc: &mut Rtc, mut datagram: impl FnMut(&[u8])) -> anyhow::Result<(Instant, bool)> {
    let mut connected = false;
    loop {
        match rtc.poll_output()? {
            Output::Timeout(at) => return Ok((at, connected)),
            Output::Transmit(t) => datagram(&t.contents),
            Output::Event(Event::Connected) => connected = true,
            Output::Event(_) => {}
        }
    }
}

impl Pair {
    /// Negotiates like the node does (the receiver offers RecvOnly, the router side answers).
    fn negotiate(i: usize, now: Instant) -> anyhow::Result<Self> {
        let receiver_addr = receiver_addr(i);
        let mut receiver = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(now);
        receiver.add_local_candidate(Candidate::host(receiver_addr, "udp")?);
        let mut api = receiver.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().context("no offer")?;
        let mut router = Rtc::builder().set_ice_lite(true).build(now);
        router.add_local_candidate(Candidate::host(SocketAddr::from(ROUTER_ADDR), "udp")?);
        let answer = router.sdp_api().accept_offer(offer)?;
        receiver.sdp_api().accept_answer(pending, answer)?;
        Ok(Pair {
            router,
            receiver,
            receiver_addr,
            router_deadline: now,
            receiver_deadline: now,
            router_connected: false,
            receiver_connected: false,
            audio,
            video,
        })
    }

    /// Feeds one datagram to `to` and drains it, queueing what it sends.
    fn deliver(
        &mut self,
        to: Side,
        datagram: &[u8],
        now: Instant,
        egress: &mut Egress,
        queue: &mut VecDeque<(Side, Vec<u8>)>,
    ) -> anyhow::Result<()> {
        let (source, destination) = match to {
            Side::Router => (self.receiver_addr, SocketAddr::from(ROUTER_ADDR)),
            Side::Receiver => (SocketAddr::from(ROUTER_ADDR), self.receiver_addr),
        };
        let input = Input::Receive(
            now,
            Receive::new(Protocol::Udp, source, destination, datagram)?,
        );
        let rtc = match to {
            Side::Router => &mut self.router,
            Side::Receiver => &mut self.receiver,
        };
        if rtc.accepts(&input) {
            rtc.handle_input(input)?;
        }
        self.flush(to, egress, queue)
    }

    /// Drains one side. The router side's datagrams all go out on the socket (what the floor counts);
    /// its STUN/DTLS also reach the receiver in memory, which keeps ICE alive. The receiver's datagrams
    /// go to the router side in memory.
    fn flush(
        &mut self,
        side: Side,
        egress: &mut Egress,
        queue: &mut VecDeque<(Side, Vec<u8>)>,
    ) -> anyhow::Result<()> {
        match side {
            Side::Router => {
                let (at, connected) = drain(&mut self.router, |d| {
                    egress.send(d);
                    if !is_rtp_or_rtcp(d) {
                        queue.push_back((Side::Receiver, d.to_vec()));
                    }
                })?;
                self.router_deadline = at;
                self.router_connected |= connected;
            }
            Side::Receiver => {
                let (at, connected) = drain(&mut self.receiver, |d| {
                    queue.push_back((Side::Router, d.to_vec()))
                })?;
                self.receiver_deadline = at;
                self.receiver_connected |= connected;
            }
        }
        Ok(())
    }

    /// Drains both sides and delivers everything they send each other until nothing is left.
    fn pump(&mut self, now: Instant, egress: &mut Egress) -> anyhow::Result<()> {
        let mut queue = VecDeque::new();
        self.flush(Side::Router, egress, &mut queue)?;
        self.flush(Side::Receiver, egress, &mut queue)?;
        while let Some((to, datagram)) = queue.pop_front() {
            self.deliver(to, &datagram, now, egress, &mut queue)?;
        }
        Ok(())
    }

    /// Runs whichever side's timer is due.
    fn timeouts(&mut self, now: Instant, egress: &mut Egress) -> anyhow::Result<()> {
        if now >= self.router_deadline {
            self.router.handle_input(Input::Timeout(now))?;
        }
        if now >= self.receiver_deadline {
            self.receiver.handle_input(Input::Timeout(now))?;
        }
        self.pump(now, egress)
    }

    /// The router side's payload type for `codec` on `mid`.
    fn pt(&mut self, mid: Mid, codec: Codec) -> anyhow::Result<Pt> {
        let writer = self.router.writer(mid).context("no writer")?;
        let found = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt());
        found.with_context(|| format!("{codec:?} not negotiated"))
    }
}

/// Connects `n` pairs, then sends `source` to all of them for `seconds`. Blocks; run it on a thread of
/// its own (its CPU time is what is measured).
pub(super) fn run(n: usize, seconds: f64, source: Arc<MediaSource>) -> anyhow::Result<Floor> {
    str0m::crypto::from_feature_flags().install_process_default();
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    sink.set_read_timeout(Some(Duration::from_millis(50)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let sink = sink.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let _ = sink.recv(&mut buf);
            }
        })
    };
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_nonblocking(true)?;
    let mut egress = Egress {
        socket,
        sink: sink.local_addr()?,
        sent: 0,
    };

    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let mut pair = Pair::negotiate(i, Instant::now())?;
        let started = Instant::now();
        while !(pair.router_connected && pair.receiver_connected) {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("floor pair {i} did not connect");
            }
            pair.timeouts(Instant::now(), &mut egress)?;
            std::thread::sleep(Duration::from_millis(1));
        }
        pairs.push(pair);
    }
    let tracks: Vec<((Mid, Pt), (Mid, Pt))> = pairs
        .iter_mut()
        .map(|p| {
            let (audio, video) = (p.audio, p.video);
            Ok((
                (audio, p.pt(audio, Codec::Opus)?),
                (video, p.pt(video, Codec::Vp8)?),
            ))
        })
        .collect::<anyhow::Result<_>>()?;

    let frames = source.video_frames();
    let packets = source.audio_packets();
    let tid = cpu::current_thread_id()?;
    egress.sent = 0;
    let cpu_before = cpu::thread_seconds(tid)?;
    let wakeups_before = cpu::thread_wakeups(tid)?;
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
            let frame = &frames[video_n as usize % frames.len()];
            let time = MediaTime::new(video_n * 3000, Frequency::NINETY_KHZ);
            for (pair, (_, (mid, pt))) in pairs.iter_mut().zip(&tracks) {
                if let Some(w) = pair.router.writer(*mid) {
                    w.write(*pt, now, time, frame.data.clone())?;
                }
                pair.pump(now, &mut egress)?;
            }
            video_n += 1;
        }
        if now >= due(audio_n, 50) {
            let packet = &packets[audio_n as usize % packets.len()];
            let time = MediaTime::new(audio_n * 960, Frequency::FORTY_EIGHT_KHZ);
            for (pair, ((mid, pt), _)) in pairs.iter_mut().zip(&tracks) {
                if let Some(w) = pair.router.writer(*mid) {
                    w.write(*pt, now, time, packet.clone())?;
                }
                pair.pump(now, &mut egress)?;
            }
            audio_n += 1;
        }
        let mut wake = due(video_n, 30).min(due(audio_n, 50)).min(end);
        for pair in &mut pairs {
            pair.timeouts(now, &mut egress)?;
            wake = wake.min(pair.router_deadline).min(pair.receiver_deadline);
        }
        let now = Instant::now();
        if wake > now {
            std::thread::sleep(wake - now);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_seconds = cpu::thread_seconds(tid)? - cpu_before;
    let wakeups = cpu::thread_wakeups(tid)? - wakeups_before;
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    Ok(Floor {
        datagrams: egress.sent,
        cpu_seconds,
        wakeups,
        seconds: elapsed,
    })
}
