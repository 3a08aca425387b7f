//! [`RtpProbe`]: a light receive-only WebRTC peer that looks at the RTP packets a node sends, rather than
//! at frames. str0m runs in RTP mode (`RtcConfig::set_rtp_mode`): it does ICE, DTLS, SRTP decryption,
//! RTCP (receiver reports, NACKs) and RTX unwrapping, and hands over each new packet as
//! `Event::RtpPacket` — no depacketizing, no jitter buffer. That makes it the receiver to
//! check what is on the wire (sequence numbers, SSRCs, timestamps) and cheap enough to run by the
//! thousand in a benchmark.
//!
//! It is set up like a [`MediaPeer`](super::MediaPeer): [`ProbePeer::new`] binds the socket and builds
//! the `Rtc`, [`ProbePeer::create_offer`] offers to receive audio and video (Opus and VP8, as
//! `MediaPeer`'s receive-only offer), [`ProbePeer::accept_answer`] applies the node's answer and
//! [`ProbePeer::start`] runs it; or [`RtpProbe::join`] does all that against a node as an audience
//! member and answers the node's renegotiation offers by itself.
//!
//! What it keeps is bounded ([`ProbeOptions::keep_packets`] records, see [`super::rtp_record`]); the
//! counters ([`ProbeStats`]) are watched, so waiting for packets is awaiting a change, never a sleep.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpPacket;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot, watch};

use super::TrackKind;
use super::rtc_driver::{RtcDriver, Stop};
use super::rtp_record::{Records, RtpRecord, StreamSummary};
use super::{negotiation, offers};
use crate::{ChannelJoined, ChannelRole, SdkError, SignalClient, lock};

/// Largest datagram read.
const RECV_BUFFER: usize = 2048;
/// Datagrams read in one wake-up once the socket is readable, before timers and commands get their turn:
/// a thousand probes in one process spend less on wake-ups when a burst is taken at once.
const RECV_BATCH: usize = 32;

/// How a probe binds and what it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOptions {
    /// The IP the UDP socket binds to and announces as its host candidate (a concrete address the node
    /// can reach). Default 127.0.0.1.
    pub bind_ip: IpAddr,
    /// How many of the latest packets' records are kept (older ones are dropped; the per-SSRC
    /// summaries and the counters cover every packet). Default 4096; 0 keeps summaries only.
    pub keep_packets: usize,
    /// Offer transport-wide congestion control (the TWCC header extension), as browsers do, so the
    /// node estimates this receiver's bandwidth and adapts what it sends (simulcast layer, video
    /// paused). Default true. Off, the node has no estimate for it and sends whatever the publisher
    /// sends: a benchmark of forwarding alone, whose probes share a starved CPU, turns it off so
    /// their late feedback does not read as congestion.
    pub transport_cc: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            keep_packets: 4096,
            transport_cc: true,
        }
    }
}

/// Counters of one probe (a snapshot; see [`RtpProbe::watch_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeStats {
    pub audio_packets: u64,
    pub video_packets: u64,
    /// Payload bytes received, both kinds.
    pub payload_bytes: u64,
    /// ICE and DTLS are up and the probe has not ended.
    pub connected: bool,
    /// The probe has ended (closed, or failed); nothing changes after this.
    pub closed: bool,
    pub connected_at: Option<Instant>,
    /// Whether the lines are negotiated for the node to send audio / video (they turn false when the
    /// channel's publisher of that kind leaves, true when one comes back).
    pub receiving_audio: bool,
    pub receiving_video: bool,
    /// Renegotiations the node started and this probe answered.
    pub renegotiations: u64,
    pub first_video_at: Option<Instant>,
}

impl ProbeStats {
    /// Packets of `kind` received.
    pub fn packets(&self, kind: TrackKind) -> u64 {
        match kind {
            TrackKind::Audio => self.audio_packets,
            TrackKind::Video => self.video_packets,
        }
    }
}

/// A probe being negotiated (see the module docs of `media::probe`).
pub struct ProbePeer {
    rtc: Rtc,
    socket: UdpSocket,
    local_addr: SocketAddr,
    opts: ProbeOptions,
    pending: Option<SdpPendingOffer>,
    /// Our m-lines, to tell whether the node sends on them.
    tracks: Vec<(Mid, TrackKind)>,
    negotiated: bool,
}

impl fmt::Debug for ProbePeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbePeer")
            .field("local_addr", &self.local_addr)
            .field("negotiated", &self.negotiated)
            .finish_non_exhaustive()
    }
}

impl ProbePeer {
    /// Binds the UDP socket (`opts.bind_ip`, any port), builds the `Rtc` in RTP mode (full ICE, Opus
    /// and VP8) and adds the socket as its host candidate.
    pub fn new(opts: ProbeOptions) -> Result<Self, SdkError> {
        let transport = |e: std::io::Error| SdkError::Transport(format!("udp socket: {e}"));
        let socket = UdpSocket::bind(SocketAddr::new(opts.bind_ip, 0)).map_err(transport)?;
        socket.set_nonblocking(true).map_err(transport)?;
        let local_addr = socket.local_addr().map_err(transport)?;
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true);
        if !opts.transport_cc {
            config = config.set_extension_map(super::without_transport_cc());
        }
        let mut rtc = config.build(Instant::now());
        let candidate = Candidate::host(local_addr, "udp")
            .map_err(|e| SdkError::Transport(format!("host candidate {local_addr}: {e}")))?;
        if rtc.add_local_candidate(candidate).is_none() {
            return Err(SdkError::Transport(format!(
                "host candidate {local_addr} refused"
            )));
        }
        let mut peer = ProbePeer {
            rtc,
            socket,
            local_addr,
            opts,
            pending: None,
            tracks: Vec::new(),
            negotiated: false,
        };
        peer.settle()?;
        Ok(peer)
    }

    /// Drains `poll_output` after a mutation made before the probe runs (str0m's rule; nothing is
    /// connected yet, so nothing is lost).
    fn settle(&mut self) -> Result<(), SdkError> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(_)) => return Ok(()),
                Ok(other) => tracing::trace!(?other, "output before negotiation ignored"),
                Err(e) => return Err(SdkError::Protocol(format!("webrtc: {e}"))),
            }
        }
    }

    /// The UDP address media arrives at (the host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The SDP offer: one audio and one video m-line, both RecvOnly.
    pub fn create_offer(&mut self) -> Result<String, SdkError> {
        if self.negotiated || self.pending.is_some() {
            return Err(SdkError::Protocol("media already negotiated".to_owned()));
        }
        let mut api = self.rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| SdkError::Protocol("no offer to make".to_owned()))?;
        self.pending = Some(pending);
        self.tracks = vec![(audio, TrackKind::Audio), (video, TrackKind::Video)];
        self.settle()?;
        Ok(offer.to_sdp_string())
    }

    /// Applies the node's answer to [`create_offer`](Self::create_offer)'s offer.
    pub fn accept_answer(&mut self, answer: &str) -> Result<(), SdkError> {
        negotiation::apply_answer(&mut self.rtc, &mut self.pending, answer)?;
        self.negotiated = true;
        Ok(())
    }

    /// Starts the probe's task (within a tokio runtime) once negotiated.
    pub fn start(self) -> Result<RtpProbe, SdkError> {
        let (socket, sender) = negotiation::task_sockets(self.negotiated, self.socket)?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (stats_tx, stats) = watch::channel(ProbeStats::default());
        let records = Arc::new(Mutex::new(Records::new(self.opts.keep_packets)));
        let now = Instant::now();
        let driver = Driver {
            rtc: self.rtc,
            socket,
            sender,
            local_addr: self.local_addr,
            deadline: now,
            tracks: self.tracks,
            lines: HashMap::new(),
            records: records.clone(),
            counts: Counts::default(),
            stats: StatsPublisher(stats_tx),
        };
        driver.publish_receiving();
        tokio::spawn(run(driver, command_rx));
        Ok(RtpProbe {
            commands,
            stats,
            records,
            local_addr: self.local_addr,
        })
    }
}

enum Command {
    /// The node's renegotiation offer; the reply is our answer.
    RemoteOffer {
        sdp: String,
        reply: oneshot::Sender<Result<String, SdkError>>,
    },
    Close,
}

/// A running probe (see the module docs of `media::probe`). Dropping it closes the probe.
pub struct RtpProbe {
    commands: mpsc::UnboundedSender<Command>,
    stats: watch::Receiver<ProbeStats>,
    records: Arc<Mutex<Records>>,
    local_addr: SocketAddr,
}

impl fmt::Debug for RtpProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtpProbe")
            .field("local_addr", &self.local_addr)
            .field("stats", &*self.stats.borrow())
            .finish_non_exhaustive()
    }
}

impl RtpProbe {
    /// Joins `channel` as an audience member with a probe: offers receive-only media in
    /// `JoinChannel.sdp_offer`, applies the node's answer, starts, and answers the node's later
    /// renegotiation offers for the channel by itself (as [`MediaSession::join`](super::MediaSession::join)
    /// does). If the answer is unusable the channel is left again (best effort) and the error returned.
    pub async fn join(
        signal: &SignalClient,
        channel: &str,
        opts: ProbeOptions,
    ) -> Result<(RtpProbe, ChannelJoined), SdkError> {
        let mut peer = ProbePeer::new(opts)?;
        let offer = peer.create_offer()?;
        // Subscribed before joining, so an offer right after the join is not missed.
        let events = signal.subscribe_events();
        let joined = signal
            .join_channel_with_offer(channel, ChannelRole::Audience, &offer)
            .await?;
        match peer
            .accept_answer(&joined.sdp_answer)
            .and_then(|()| peer.start())
        {
            Ok(probe) => {
                let commands = probe.commands.clone();
                let closed = {
                    let commands = commands.clone();
                    async move { commands.closed().await }
                };
                let apply = move |sdp: String| {
                    let commands = commands.clone();
                    async move {
                        let (reply, answer) = oneshot::channel();
                        commands.send(Command::RemoteOffer { sdp, reply }).ok()?;
                        answer.await.ok()
                    }
                };
                tokio::spawn(offers::answer_offers(
                    signal.downgrade(),
                    channel.to_owned(),
                    events,
                    closed,
                    apply,
                ));
                Ok((probe, joined))
            }
            Err(e) => negotiation::abandon_join(signal, channel, e).await,
        }
    }

    /// The local UDP address (host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters now.
    pub fn stats(&self) -> ProbeStats {
        self.stats.borrow().clone()
    }

    /// A receiver of the counters: it sees every change; it closes when the probe ends.
    pub fn watch_stats(&self) -> watch::Receiver<ProbeStats> {
        self.stats.clone()
    }

    /// Waits until `done` holds for the counters, returning them. `Err(Disconnected)` when the probe
    /// ends first. Wrap it in `tokio::time::timeout` to bound the wait.
    pub async fn wait_for(
        &self,
        done: impl FnMut(&ProbeStats) -> bool,
    ) -> Result<ProbeStats, SdkError> {
        negotiation::wait_for(&self.stats, done).await
    }

    /// Waits until ICE and DTLS are up.
    pub async fn wait_connected(&self) -> Result<ProbeStats, SdkError> {
        self.wait_for(|s| s.connected).await
    }

    /// Waits until at least `n` packets of `kind` were received in total.
    pub async fn wait_packets(&self, kind: TrackKind, n: u64) -> Result<ProbeStats, SdkError> {
        self.wait_for(|s| s.packets(kind) >= n).await
    }

    /// The records of the latest packets (at most [`ProbeOptions::keep_packets`]), oldest first.
    pub fn packets(&self) -> Vec<RtpRecord> {
        lock(&self.records).packets()
    }

    /// A summary per SSRC received, from the first packet (ordered by SSRC).
    pub fn streams(&self) -> Vec<StreamSummary> {
        lock(&self.records).streams()
    }

    /// Applies a renegotiation offer from the node (`ChannelEvent.media_offer`) and returns the answer
    /// to send back (`SignalClient::answer_media`). Probes made by [`join`](Self::join) do this by
    /// themselves. A malformed offer is refused and changes nothing.
    pub async fn answer_offer(&self, sdp_offer: &str) -> Result<String, SdkError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::RemoteOffer {
                sdp: sdp_offer.to_owned(),
                reply,
            })
            .map_err(|_| SdkError::Disconnected)?;
        answer.await.map_err(|_| SdkError::Disconnected)?
    }

    /// Ends the probe (a DTLS close_notify goes to the node). Does not wait; see
    /// [`closed`](Self::closed). Also done on drop. Does not leave the channel.
    pub fn close(&self) {
        // The task is gone when this fails: nothing left to tell.
        let _ = self.commands.send(Command::Close);
    }

    /// Waits until the probe has ended.
    pub async fn closed(&self) {
        let mut rx = self.stats.clone();
        // An error means the task is gone, which is what we wait for too.
        let _ = rx.wait_for(|s| s.closed).await;
    }
}

impl Drop for RtpProbe {
    fn drop(&mut self) {
        self.close();
    }
}

/// Publishes the counters; on drop (the task ending however it ends) marks the probe closed, so
/// waiters never hang on a dead probe.
struct StatsPublisher(watch::Sender<ProbeStats>);

impl StatsPublisher {
    fn update(&self, f: impl FnOnce(&mut ProbeStats)) {
        self.0.send_modify(f);
    }
}

impl Drop for StatsPublisher {
    fn drop(&mut self) {
        self.0.send_modify(|s| {
            s.connected = false;
            s.closed = true;
        });
    }
}

/// The task that owns the session's `Rtc` and socket.
struct Driver {
    rtc: Rtc,
    socket: tokio::net::UdpSocket,
    /// The same socket, for sending (non-blocking, not gated by tokio's readiness).
    sender: UdpSocket,
    local_addr: SocketAddr,
    /// When str0m wants its next timeout.
    deadline: Instant,
    /// Our m-lines.
    tracks: Vec<(Mid, TrackKind)>,
    /// The mid and kind each SSRC arrives on, learnt once per SSRC (str0m knows it per stream; a packet
    /// only carries the mid extension in its first packets).
    lines: HashMap<u32, (Arc<str>, TrackKind)>,
    records: Arc<Mutex<Records>>,
    /// The packet counters, published in [`ProbeStats`] once per wake-up.
    counts: Counts,
    stats: StatsPublisher,
}

#[derive(Default)]
struct Counts {
    audio_packets: u64,
    video_packets: u64,
    payload_bytes: u64,
    first_video_at: Option<Instant>,
    /// Packets came since the counters were last published.
    changed: bool,
}

async fn run(mut d: Driver, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let stop = loop {
        let now = Instant::now();
        if now >= d.deadline {
            if let Err(stop) = d.mutate(now, |rtc| rtc.handle_input(Input::Timeout(now))) {
                break stop;
            }
            // Never spin on a deadline that does not move.
            if d.deadline <= now {
                d.deadline = now + Duration::from_millis(1);
            }
            continue;
        }
        let handled = tokio::select! {
            command = commands.recv() => match command {
                None | Some(Command::Close) => break d.close(),
                Some(Command::RemoteOffer { sdp, reply }) => match d.accept_remote_offer(&sdp) {
                    Ok(answer) => {
                        let _ = reply.send(Ok(answer));
                        Ok(())
                    }
                    Err(Ok(refused)) => {
                        let _ = reply.send(Err(refused));
                        Ok(())
                    }
                    Err(Err(stop)) => Err(stop),
                },
            },
            received = d.socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => d.receive(source, &buf[..n]).and_then(|()| d.receive_more(&mut buf)),
                Err(e) => d.receive_error(e),
            },
            () = tokio::time::sleep_until(d.deadline.into()) => Ok(()),
        };
        // The counters go out once per wake-up, not per packet.
        d.publish_counts();
        if let Err(stop) = handled {
            break stop;
        }
    };
    match stop {
        Stop::Closed => tracing::debug!(local = %d.local_addr, "rtp probe closed"),
        Stop::Failed(reason) => tracing::info!(local = %d.local_addr, %reason, "rtp probe ended"),
    }
    if d.rtc.is_alive() {
        d.rtc.disconnect();
    }
    // Dropping the driver marks the stats closed and closes the watch.
}

impl Driver {
    fn receive(&mut self, source: SocketAddr, datagram: &[u8]) -> Result<(), Stop> {
        let Ok(contents) = datagram.try_into() else {
            tracing::trace!(%source, len = datagram.len(), "non-webrtc datagram ignored");
            return Ok(());
        };
        let now = Instant::now();
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local_addr,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            return Ok(());
        }
        self.mutate(now, |rtc| rtc.handle_input(input))
    }

    /// Reads what else the socket holds now (up to [`RECV_BATCH`] datagrams).
    fn receive_more(&mut self, buf: &mut [u8]) -> Result<(), Stop> {
        for _ in 0..RECV_BATCH {
            match self.socket.try_recv_from(buf) {
                Ok((n, source)) => self.receive(source, &buf[..n])?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return self.receive_error(e),
            }
        }
        Ok(())
    }

    fn receive_error(&mut self, e: std::io::Error) -> Result<(), Stop> {
        use std::io::ErrorKind;
        match e.kind() {
            // ICMP echoes of an earlier send, or a spurious wake-up: the socket is fine.
            ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::WouldBlock
            | ErrorKind::Interrupted => Ok(()),
            _ => Err(Stop::Failed(format!("udp receive: {e}"))),
        }
    }

    /// Applies the node's offer and returns our answer. A malformed offer is refused (`Err(Ok)`) and
    /// changes nothing; a str0m failure while applying ends the probe (`Err(Err)`).
    fn accept_remote_offer(&mut self, sdp: &str) -> Result<String, Result<SdkError, Stop>> {
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| Ok(SdkError::Protocol(format!("bad sdp offer: {e}"))))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| Err(Stop::Failed(format!("webrtc: {e}"))))?;
        // Counted before the directions are published, so a watcher that sees them sees the count too.
        self.stats.update(|s| s.renegotiations += 1);
        self.drain(Instant::now()).map_err(Err)?;
        self.publish_receiving();
        Ok(answer.to_sdp_string())
    }

    fn handle_event(&mut self, event: Event, now: Instant) -> Result<(), Stop> {
        match event {
            Event::Connected => self.stats.update(|s| {
                s.connected = true;
                s.connected_at = Some(now);
            }),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err(Stop::Failed("ice disconnected".to_owned()));
            }
            Event::MediaAdded(_) | Event::MediaChanged(_) => self.publish_receiving(),
            Event::RtpPacket(packet) => self.on_packet(packet),
            Event::Closed => return Err(Stop::Failed("closed by the remote".to_owned())),
            _ => {}
        }
        Ok(())
    }

    fn on_packet(&mut self, packet: RtpPacket) {
        let ssrc = *packet.header.ssrc;
        let Some((mid, kind)) = self.line_of(ssrc) else {
            tracing::trace!(ssrc, "rtp packet of no known line ignored");
            return;
        };
        let record = RtpRecord {
            mid,
            kind,
            ssrc,
            seq: packet.header.sequence_number,
            ext_seq: *packet.seq_no,
            rtp_timestamp: packet.header.timestamp,
            rtp_time: packet.time.numer(),
            marker: packet.header.marker,
            payload_len: packet.payload.len(),
            arrived: packet.timestamp,
        };
        let arrived = record.arrived;
        let bytes = record.payload_len as u64;
        lock(&self.records).push(record);
        let c = &mut self.counts;
        match kind {
            TrackKind::Audio => c.audio_packets += 1,
            TrackKind::Video => {
                c.video_packets += 1;
                c.first_video_at.get_or_insert(arrived);
            }
        }
        c.payload_bytes += bytes;
        c.changed = true;
    }

    /// Publishes the packet counters if packets came since the last time.
    fn publish_counts(&mut self) {
        if !self.counts.changed {
            return;
        }
        self.counts.changed = false;
        let c = &self.counts;
        self.stats.update(|s| {
            s.audio_packets = c.audio_packets;
            s.video_packets = c.video_packets;
            s.payload_bytes = c.payload_bytes;
            s.first_video_at = c.first_video_at;
        });
    }

    /// The line an SSRC arrives on, from str0m's receive stream for it (cached).
    fn line_of(&mut self, ssrc: u32) -> Option<(Arc<str>, TrackKind)> {
        if let Some(line) = self.lines.get(&ssrc) {
            return Some(line.clone());
        }
        let mid: Mid = self.rtc.direct_api().stream_rx(&ssrc.into())?.mid();
        let kind = match self.rtc.media(mid)?.kind() {
            MediaKind::Audio => TrackKind::Audio,
            MediaKind::Video => TrackKind::Video,
        };
        let line = (Arc::<str>::from(&*mid), kind);
        self.lines.insert(ssrc, line.clone());
        Some(line)
    }

    /// Whether a line of `kind` is negotiated for us to receive.
    fn receiving(&self, kind: TrackKind) -> bool {
        self.tracks.iter().any(|&(mid, k)| {
            k == kind
                && self
                    .rtc
                    .media(mid)
                    .is_some_and(|m| m.direction().is_receiving())
        })
    }

    fn publish_receiving(&self) {
        let audio = self.receiving(TrackKind::Audio);
        let video = self.receiving(TrackKind::Video);
        self.stats.update(|s| {
            s.receiving_audio = audio;
            s.receiving_video = video;
        });
    }
}

impl RtcDriver for Driver {
    fn rtc(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    fn sender(&self) -> &UdpSocket {
        &self.sender
    }

    fn set_deadline(&mut self, at: Instant) {
        self.deadline = at;
    }

    fn on_event(&mut self, event: Event, now: Instant) -> Result<(), Stop> {
        self.handle_event(event, now)
    }
}
