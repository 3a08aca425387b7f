//! [`MediaSession`]: a running media session, and the task that drives its str0m `Rtc`.
//!
//! The task owns the `Rtc` and the UDP socket and waits for one of: a datagram, the `Rtc`'s deadline,
//! the next paced frame, or a command from the handle. Each wake-up performs mutations one at a time,
//! each followed by draining `poll_output` until `Output::Timeout` (str0m's single-mutation rule).
//! Counters go out through a `tokio::sync::watch`, so waiting for frames is awaiting a change, never a
//! polling sleep. When the task ends — [`MediaSession::close`], the handle dropped, an error from
//! str0m, ICE disconnected (and not restarted, [`super::ice_restart`]), or the remote closing DTLS —
//! the last stats say `connected: false, closed: true` and the watch closes.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{Codec, CodecExtra};
use str0m::media::{Frequency, KeyframeRequestKind, MediaData, MediaTime, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::ice_restart;
use super::ice_tcp::{self, TcpPaths};
use super::ivf::vp8_is_keyframe;
use super::negotiation;
use super::offers;
use super::rtc_driver::{RtcDriver, Stop, send_datagram};
use super::source::{AudioCursor, VideoCursor, media_ticks};
use super::turn_relay::{self, TurnRelay};
use super::{MediaOptions, MediaPeer, MediaSource, MediaTransport, TrackKind};
use crate::{ChannelJoined, ChannelRole, SdkError, SignalClient, WeakSignalClient};

/// Counters of one media session (a snapshot; see [`MediaSession::watch_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Audio frames (Opus packets) received.
    pub audio_frames_in: u64,
    /// Video frames received (whole frames, after depacketizing).
    pub video_frames_in: u64,
    /// Of those, keyframes.
    pub video_keyframes_in: u64,
    pub audio_frames_out: u64,
    pub video_frames_out: u64,
    pub video_keyframes_out: u64,
    /// Keyframe requests (PLI/FIR) the remote sent for our video.
    pub keyframe_requests_in: u64,
    /// Keyframe requests (PLI) this session sent.
    pub keyframe_requests_out: u64,
    /// Publish on/off as last set by [`MediaSession::set_sending`] (true at start). Once a snapshot
    /// with `sending: false` is seen, no further frame is sent until it turns true.
    pub sending: bool,
    /// ICE and DTLS are up (str0m's `Event::Connected`) and the session has not ended.
    pub connected: bool,
    /// The path the session connected over (the one its last datagram before connecting came by): UDP,
    /// or ICE-TCP when UDP did not get through. `None` until connected.
    pub transport: Option<MediaTransport>,
    /// The session has ended (closed, or failed); nothing changes after this.
    pub closed: bool,
    pub connected_at: Option<Instant>,
    /// Whether the node currently sends us audio / video: the lines are negotiated to receive. They
    /// turn false when the channel's publisher of that kind leaves (the node renegotiates them
    /// inactive) and true again when one joins.
    pub receiving_audio: bool,
    pub receiving_video: bool,
    /// Renegotiations the node started and this session answered.
    pub renegotiations: u64,
    /// ICE restarts the node answered and this session applied (it moved to a new socket each time;
    /// see [`MediaSession::restart_ice`]).
    pub ice_restarts: u64,
    /// The UDP socket the session runs on now (a restart moves it). `None` before the task runs.
    pub local_addr: Option<SocketAddr>,
    /// When the first audio / video frame arrived.
    pub first_audio_in: Option<Instant>,
    pub first_video_in: Option<Instant>,
    /// The node stopped our video because our bandwidth does not carry even its lowest layer (audio
    /// goes on); false again when it resumes (`ChannelEvent.video_paused_for_bandwidth`). Only for a
    /// session joined with [`MediaSession::join`], which hears the channel's events.
    pub video_paused_for_bandwidth: bool,
    /// Times the node paused our video for bandwidth.
    pub video_pauses_for_bandwidth: u64,
}

/// One frame received, as given to [`MediaSession::subscribe_frames`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFrame {
    pub kind: TrackKind,
    /// A video keyframe.
    pub keyframe: bool,
    /// The encoded frame (a VP8 frame, an Opus packet), depacketized.
    pub data: Arc<[u8]>,
    /// RTP timestamp (extended), in the codec's clock (90 kHz video, 48 kHz audio).
    pub rtp_time: u64,
    /// Whether it follows the previous frame of its stream without loss.
    pub contiguous: bool,
    pub received_at: Instant,
}

/// How many received frames a [`MediaSession::subscribe_frames`] receiver may fall behind.
const FRAME_CHANNEL_CAPACITY: usize = 512;
/// The least time between two automatic keyframe requests.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// Largest datagram read.
const RECV_BUFFER: usize = 2048;

pub(crate) enum Command {
    SetSending(bool),
    RequestKeyframe,
    /// The node's renegotiation offer; the reply is our answer.
    RemoteOffer {
        sdp: String,
        reply: oneshot::Sender<Result<String, SdkError>>,
    },
    /// Starts an ICE restart ([`super::ice_restart`]): binds a new socket (on `bind_ip`, else the
    /// session's IP); the reply is the offer with new credentials.
    OfferIceRestart {
        bind_ip: Option<IpAddr>,
        reply: oneshot::Sender<Result<String, SdkError>>,
    },
    /// The node refused the restart: the session stays on its path.
    AbandonIceRestart,
    /// The node's answer to the restart: the session moves to the new socket.
    AcceptIceRestart {
        sdp: String,
        reply: oneshot::Sender<Result<(), SdkError>>,
    },
    /// When ICE drops, ask for a restart here rather than end (sessions with signaling).
    RestartOnDisconnect(mpsc::Sender<()>),
    /// The node paused (`true`) or resumed our video for our bandwidth.
    VideoPausedForBandwidth(bool),
    /// Ends the session (its restart failed: no path left).
    Fail(String),
    Close,
}

/// A running media session (see the [module docs](super)). Dropping it closes the session.
pub struct MediaSession {
    commands: mpsc::UnboundedSender<Command>,
    stats: watch::Receiver<MediaStats>,
    frames: broadcast::WeakSender<ReceivedFrame>,
    local_addr: SocketAddr,
    /// The signaling session and channel it was joined with ([`MediaSession::join`]): what an ICE
    /// restart goes over. `None` for a session the app negotiated itself.
    signaling: Option<(WeakSignalClient, String)>,
}

impl fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSession")
            .field("local_addr", &self.local_addr)
            .field("stats", &*self.stats.borrow())
            .finish_non_exhaustive()
    }
}

impl MediaSession {
    /// Joins `channel` with media: makes an offer ([`MediaPeer::create_offer`]; a broadcaster — which
    /// includes a call participant — publishes, an audience member only receives), sends it as
    /// `JoinChannel.sdp_offer`, applies the node's `ChannelJoined.sdp_answer`, and starts the session.
    ///
    /// A refused join returns the server's error and nothing runs. If the join succeeded but its answer
    /// is missing or unusable, the channel is left again (best effort) and `SdkError::Protocol` is
    /// returned. Closing the session does not leave the channel; `leave_channel` does (and ends the
    /// node's side of the media).
    pub async fn join(
        signal: &SignalClient,
        channel: &str,
        role: ChannelRole,
        opts: MediaOptions,
    ) -> Result<(MediaSession, ChannelJoined), SdkError> {
        Self::join_peer(signal, channel, role, MediaPeer::new(opts)?).await
    }

    /// [`join`](Self::join) with a peer made beforehand, e.g. one given its own clips
    /// ([`MediaPeer::set_source`], [`MediaPeer::set_lower_layers`]); not yet negotiated.
    pub async fn join_peer(
        signal: &SignalClient,
        channel: &str,
        role: ChannelRole,
        mut peer: MediaPeer,
    ) -> Result<(MediaSession, ChannelJoined), SdkError> {
        let opts = peer.options();
        if opts.turn
            && let Some(relay) = allocate_relay(signal, opts.turn_ca_pem.as_deref()).await
        {
            peer.add_relay(relay)?;
        }
        let offer = peer.create_offer(role == ChannelRole::Broadcaster)?;
        // Subscribed before joining, so an offer right after the join is not missed.
        let events = signal.subscribe_events();
        let pauses = signal.subscribe_events();
        let joined = signal
            .join_channel_with_offer(channel, role, &offer)
            .await?;
        match peer
            .accept_answer(&joined.sdp_answer)
            .and_then(|()| peer.start())
        {
            Ok(mut session) => {
                tokio::spawn(answer_offers(
                    session.commands.clone(),
                    signal.downgrade(),
                    channel.to_owned(),
                    events,
                ));
                tokio::spawn(follow_video_pauses(
                    session.commands.clone(),
                    channel.to_owned(),
                    pauses,
                ));
                // One request waits at most: the restart under way answers the ones behind it.
                let (ask, asked) = mpsc::channel(1);
                session.send(Command::RestartOnDisconnect(ask));
                tokio::spawn(ice_restart::restart_when_asked(
                    session.commands.clone(),
                    signal.downgrade(),
                    channel.to_owned(),
                    asked,
                ));
                session.signaling = Some((signal.downgrade(), channel.to_owned()));
                Ok((session, joined))
            }
            Err(e) => negotiation::abandon_join(signal, channel, e).await,
        }
    }

    /// The local UDP address (host candidate) of this session: the one it runs on now (an ICE restart
    /// moves it to a new socket).
    pub fn local_addr(&self) -> SocketAddr {
        self.stats.borrow().local_addr.unwrap_or(self.local_addr)
    }

    /// The network changed: restarts ICE (`media::ice_restart`) on a new UDP socket — a new port, on
    /// `bind_ip` when given (the new network's address), else on the session's IP — over the signaling
    /// session it was joined with. Returns once the node's answer is applied; media continues when the
    /// new path's checks get through (wait for it with [`wait_for`](Self::wait_for)). The session keeps
    /// its channel, its streams and (for a call participant) its call. Refused — the session goes on on
    /// its old path — when the node refuses, when a restart is already under way, or for a session not
    /// made by [`join`](Self::join) (it has no signaling: use
    /// [`SignalClient::restart_ice`](crate::SignalClient::restart_ice) with the app's own offer).
    pub async fn restart_ice(&self, bind_ip: Option<IpAddr>) -> Result<(), SdkError> {
        let Some((signal, channel)) = &self.signaling else {
            return Err(SdkError::Protocol(
                "this session was not joined through a SignalClient: it has no signaling to restart ICE over"
                    .to_owned(),
            ));
        };
        let signal = signal.upgrade().ok_or(SdkError::Disconnected)?;
        ice_restart::restart(&self.commands, &signal, channel, bind_ip).await
    }

    /// The counters now.
    pub fn stats(&self) -> MediaStats {
        self.stats.borrow().clone()
    }

    /// A receiver of the counters: it sees every change; it closes when the session ends.
    pub fn watch_stats(&self) -> watch::Receiver<MediaStats> {
        self.stats.clone()
    }

    /// Waits until `done` holds for the counters, returning them. `Err(Disconnected)` when the session
    /// ends first. Wrap it in `tokio::time::timeout` to bound the wait.
    pub async fn wait_for(
        &self,
        done: impl FnMut(&MediaStats) -> bool,
    ) -> Result<MediaStats, SdkError> {
        negotiation::wait_for(&self.stats, done).await
    }

    /// Waits until ICE and DTLS are up.
    pub async fn wait_connected(&self) -> Result<MediaStats, SdkError> {
        self.wait_for(|s| s.connected).await
    }

    /// Waits until at least `n` video frames were received in total.
    pub async fn wait_video_frames(&self, n: u64) -> Result<MediaStats, SdkError> {
        self.wait_for(|s| s.video_frames_in >= n).await
    }

    /// Waits until at least `n` audio frames were received in total.
    pub async fn wait_audio_frames(&self, n: u64) -> Result<MediaStats, SdkError> {
        self.wait_for(|s| s.audio_frames_in >= n).await
    }

    /// Publish on/off: whether the session sends its media (if its direction allows sending and
    /// `MediaOptions::send_*` asked for it). Turned back on, video restarts from a keyframe.
    pub fn set_sending(&self, on: bool) {
        self.send(Command::SetSending(on));
    }

    /// Asks the remote sender for a video keyframe (PLI) now.
    pub fn request_keyframe(&self) {
        self.send(Command::RequestKeyframe);
    }

    /// Every frame received from now on. A receiver more than 512 frames behind loses the oldest
    /// (`RecvError::Lagged`); it closes when the session ends.
    pub fn subscribe_frames(&self) -> broadcast::Receiver<ReceivedFrame> {
        match self.frames.upgrade() {
            Some(tx) => tx.subscribe(),
            // Ended: a receiver that reports closed at once.
            None => broadcast::channel(1).1,
        }
    }

    /// Applies a renegotiation offer from the node (`ChannelEvent.media_offer`) and returns the answer to
    /// send back (`SignalClient::answer_media`). Sessions made by [`join`](Self::join) do this by
    /// themselves; this is for sessions started from a [`MediaPeer`] with the app's own signaling. A
    /// malformed offer is refused and changes nothing.
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

    /// Ends the session: a DTLS close_notify goes to the remote, the task stops. Does not wait; see
    /// [`closed`](Self::closed). Also done on drop.
    pub fn close(&self) {
        self.send(Command::Close);
    }

    /// Waits until the session has ended.
    pub async fn closed(&self) {
        let mut rx = self.stats.clone();
        // An error means the task is gone, which is what we wait for too.
        let _ = rx.wait_for(|s| s.closed).await;
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.stats.borrow().closed
    }

    fn send(&self, command: Command) {
        // The task is gone when this fails: nothing left to tell.
        let _ = self.commands.send(command);
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.send(Command::Close);
    }
}

/// Answers the node's renegotiation offers for this session's channel until the session or the
/// signaling client is gone.
async fn answer_offers(
    commands: mpsc::UnboundedSender<Command>,
    signal: WeakSignalClient,
    channel: String,
    events: mpsc::UnboundedReceiver<crate::Event>,
) {
    let closed = {
        let commands = commands.clone();
        async move { commands.closed().await }
    };
    let apply = |sdp: String| {
        let commands = commands.clone();
        async move {
            let (reply, answer) = oneshot::channel();
            commands.send(Command::RemoteOffer { sdp, reply }).ok()?;
            answer.await.ok()
        }
    };
    offers::answer_offers(signal, channel, events, closed, apply).await;
}

/// What [`MediaPeer::start`] hands to the task.
pub(crate) struct Setup {
    pub(crate) rtc: Rtc,
    pub(crate) socket: UdpSocket,
    /// The same socket, for sending (non-blocking, not gated by tokio's readiness).
    pub(crate) sender: std::net::UdpSocket,
    pub(crate) local_addr: SocketAddr,
    pub(crate) opts: MediaOptions,
    pub(crate) source: Arc<MediaSource>,
    /// The video layers to send, best first, each with its rid (one layer without a rid: no simulcast).
    pub(crate) video_layers: Vec<(Option<Rid>, Arc<MediaSource>)>,
    pub(crate) tracks: Vec<(Mid, TrackKind)>,
    pub(crate) tcp_paths: TcpPaths,
    pub(crate) relay: Option<TurnRelay>,
}

pub(crate) fn spawn(setup: Setup) -> MediaSession {
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (stats_tx, stats) = watch::channel(MediaStats {
        sending: true,
        local_addr: Some(setup.local_addr),
        ..MediaStats::default()
    });
    let (frames_tx, _) = broadcast::channel(FRAME_CHANNEL_CAPACITY);
    let session = MediaSession {
        commands,
        stats,
        frames: frames_tx.downgrade(),
        local_addr: setup.local_addr,
        signaling: None,
    };
    let now = Instant::now();
    let driver = Driver {
        rtc: setup.rtc,
        socket: setup.socket,
        sender: setup.sender,
        local_addr: setup.local_addr,
        tcp_local: ice_tcp::active_addr(setup.opts.bind_ip),
        tcp: setup.tcp_paths,
        relay: setup.relay,
        offer_udp: setup.opts.udp,
        offer_tcp: setup.opts.tcp,
        restart: None,
        node_ufrag: None,
        restart_on_disconnect: None,
        restarts_in_a_row: 0,
        last_heard: now,
        last_transport: MediaTransport::Udp,
        tracks: setup
            .tracks
            .into_iter()
            .map(|(mid, kind)| Track {
                mid,
                kind,
                pt: None,
            })
            .collect(),
        send_audio: setup.opts.send_audio,
        send_video: setup.opts.send_video,
        request_keyframes: setup.opts.request_keyframes,
        sending: true,
        video: setup
            .video_layers
            .into_iter()
            .map(|(rid, source)| LayerCursor {
                rid,
                cursor: VideoCursor::new(source, now),
            })
            .collect(),
        audio: AudioCursor::new(setup.source, now),
        epoch: now,
        connected: false,
        rtc_deadline: now,
        awaiting_keyframe: true,
        keyframe_wanted: false,
        last_keyframe_request: None,
        stats: StatsPublisher(stats_tx),
        frames: frames_tx,
    };
    driver.publish_receiving();
    tokio::spawn(run(driver, command_rx));
    session
}

/// The negotiated payload type to send `kind` with on `mid`: Opus for audio, VP8 for video.
fn send_payload_type(rtc: &mut Rtc, mid: Mid, kind: TrackKind) -> Option<Pt> {
    let codec = match kind {
        TrackKind::Audio => Codec::Opus,
        TrackKind::Video => Codec::Vp8,
    };
    let pt = rtc.writer(mid).and_then(|w| {
        w.payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
    });
    if pt.is_none() {
        tracing::debug!(%mid, ?codec, "no payload type negotiated to send");
    }
    pt
}

struct Track {
    mid: Mid,
    kind: TrackKind,
    /// The negotiated payload type we send with (resolved once connected).
    pt: Option<Pt>,
}

/// Publishes the counters; on drop (the task ending, however it ends — a panic included) marks the
/// session closed, so waiters never hang on a dead session.
struct StatsPublisher(watch::Sender<MediaStats>);

impl StatsPublisher {
    fn update(&self, f: impl FnOnce(&mut MediaStats)) {
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
    socket: UdpSocket,
    sender: std::net::UdpSocket,
    local_addr: SocketAddr,
    /// The active TCP candidate's address: where str0m expects TCP datagrams to arrive.
    tcp_local: SocketAddr,
    /// The ICE-TCP connections (`ice_tcp`).
    tcp: TcpPaths,
    /// The TURN allocation behind the relayed candidate (`turn_relay`), until the session connects
    /// another way.
    relay: Option<TurnRelay>,
    /// The candidates the session offers (`MediaOptions::udp`, `::tcp`), offered again after a restart.
    offer_udp: bool,
    offer_tcp: bool,
    /// An ICE restart waiting for the node's answer.
    restart: Option<PendingRestart>,
    /// The node's ICE ufrag since the last restart (`None`: never restarted): its offers must name it.
    node_ufrag: Option<String>,
    /// Where to ask for a restart when ICE drops (`None`: the session ends instead).
    restart_on_disconnect: Option<mpsc::Sender<()>>,
    /// Restarts asked for since ICE was last up ([`ice_restart::AUTO_RESTARTS`] at most).
    restarts_in_a_row: u32,
    /// When the node was last heard from (a datagram the session took), or a restart asked for: the
    /// silence watch ([`ice_restart::SILENCE_BEFORE_RESTART`]) counts from it.
    last_heard: Instant,
    /// The transport of the last datagram received (what the session connects over, when it does).
    last_transport: MediaTransport,
    tracks: Vec<Track>,
    send_audio: bool,
    send_video: bool,
    request_keyframes: bool,
    /// Publish on/off ([`MediaSession::set_sending`]).
    sending: bool,
    /// One cursor per video layer sent, best first (one without simulcast).
    video: Vec<LayerCursor>,
    audio: AudioCursor,
    /// Media time zero: when the session connected.
    epoch: Instant,
    connected: bool,
    rtc_deadline: Instant,
    /// No usable video since the start or a gap: a keyframe is needed.
    awaiting_keyframe: bool,
    /// An automatic keyframe request is to be sent (rate-limited).
    keyframe_wanted: bool,
    last_keyframe_request: Option<Instant>,
    stats: StatsPublisher,
    frames: broadcast::Sender<ReceivedFrame>,
}

/// An ICE restart offered and not answered yet: the offer's pending state and the socket it moves to.
struct PendingRestart {
    pending: SdpPendingOffer,
    socket: std::net::UdpSocket,
    local_addr: SocketAddr,
}

/// One video layer's position in its clip, and the rid it is sent with (simulcast).
struct LayerCursor {
    rid: Option<Rid>,
    cursor: VideoCursor,
}

enum Wake {
    Command(Option<Command>),
    Datagram(std::io::Result<(usize, SocketAddr)>),
    /// A datagram from an ICE-TCP connection.
    TcpDatagram(SocketAddr, Vec<u8>),
    /// A datagram the TURN server relayed from a peer.
    RelayedDatagram(SocketAddr, Vec<u8>),
    Timer,
}

/// A relay on the first of the login's `turns:` servers that allocates one; `None` when the login has
/// none or none does (the session then goes on without, as a browser whose TURN server fails).
async fn allocate_relay(signal: &SignalClient, ca_pem: Option<&str>) -> Option<TurnRelay> {
    let servers = signal.login_info().map(|info| info.ice_servers)?;
    let servers = turn_relay::turns_servers(&servers);
    if servers.is_empty() {
        return None;
    }
    let tls = match turn_relay::tls_config(ca_pem) {
        Ok(tls) => tls,
        Err(e) => {
            tracing::warn!(error = %e, "no TURN relay: its TLS settings are unusable");
            return None;
        }
    };
    for (server, credentials) in servers {
        match TurnRelay::allocate(&server, credentials, tls.clone()).await {
            Ok(relay) => return Some(relay),
            Err(e) => tracing::info!(error = %e, "TURN relay not allocated"),
        }
    }
    None
}

/// The relay's next datagram; pending forever without one.
async fn relayed(relay: &mut Option<TurnRelay>) -> (SocketAddr, Vec<u8>) {
    match relay {
        Some(relay) => relay.recv().await,
        None => std::future::pending().await,
    }
}

async fn run(mut d: Driver, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let stop = loop {
        match d.step(Instant::now()) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(stop) => break stop,
        }
        let wake_at = d.next_wake();
        let wake = tokio::select! {
            command = commands.recv() => Wake::Command(command),
            received = d.socket.recv_from(&mut buf) => Wake::Datagram(received),
            (from, data) = d.tcp.recv() => Wake::TcpDatagram(from, data),
            (from, data) = relayed(&mut d.relay) => Wake::RelayedDatagram(from, data),
            () = tokio::time::sleep_until(wake_at.into()) => Wake::Timer,
        };
        let handled = match wake {
            Wake::Timer => Ok(()),
            Wake::Command(None | Some(Command::Close)) => break d.close(),
            Wake::Command(Some(Command::SetSending(on))) => {
                d.set_sending(on);
                Ok(())
            }
            Wake::Command(Some(Command::VideoPausedForBandwidth(paused))) => {
                d.stats.update(|s| {
                    if paused && !s.video_paused_for_bandwidth {
                        s.video_pauses_for_bandwidth += 1;
                    }
                    s.video_paused_for_bandwidth = paused;
                });
                Ok(())
            }
            Wake::Command(Some(Command::RequestKeyframe)) => d.request_keyframe(Instant::now()),
            Wake::Command(Some(Command::OfferIceRestart { bind_ip, reply })) => {
                match d.offer_ice_restart(bind_ip, Instant::now()) {
                    Ok(offer) => {
                        let _ = reply.send(Ok(offer));
                        Ok(())
                    }
                    Err(Ok(refused)) => {
                        let _ = reply.send(Err(refused));
                        Ok(())
                    }
                    Err(Err(stop)) => Err(stop),
                }
            }
            Wake::Command(Some(Command::AbandonIceRestart)) => {
                d.restart = None;
                Ok(())
            }
            Wake::Command(Some(Command::AcceptIceRestart { sdp, reply })) => {
                match d.accept_ice_restart(&sdp, Instant::now()) {
                    Ok(()) => {
                        let _ = reply.send(Ok(()));
                        Ok(())
                    }
                    Err(Ok(refused)) => {
                        let _ = reply.send(Err(refused));
                        Ok(())
                    }
                    Err(Err(stop)) => Err(stop),
                }
            }
            Wake::Command(Some(Command::RestartOnDisconnect(ask))) => {
                d.restart_on_disconnect = Some(ask);
                Ok(())
            }
            Wake::Command(Some(Command::Fail(reason))) => Err(Stop::Failed(reason)),
            Wake::Command(Some(Command::RemoteOffer { sdp, reply })) => {
                let answered = d.accept_remote_offer(&sdp, Instant::now());
                match answered {
                    Ok(answer) => {
                        let _ = reply.send(Ok(answer));
                        Ok(())
                    }
                    Err(Ok(refused)) => {
                        let _ = reply.send(Err(refused));
                        Ok(())
                    }
                    Err(Err(stop)) => Err(stop),
                }
            }
            Wake::Datagram(Ok((n, source))) => d.receive(Protocol::Udp, source, &buf[..n]),
            Wake::TcpDatagram(source, data) => d.receive(Protocol::Tcp, source, &data),
            Wake::RelayedDatagram(source, data) => d.receive_relayed(source, &data),
            Wake::Datagram(Err(e)) => d.receive_error(e),
        };
        if let Err(stop) = handled {
            break stop;
        }
    };
    match stop {
        Stop::Closed => tracing::debug!(local = %d.local_addr, "media session closed"),
        Stop::Failed(reason) => {
            tracing::info!(local = %d.local_addr, %reason, "media session ended")
        }
    }
    if d.rtc.is_alive() {
        d.rtc.disconnect();
    }
    // Dropping the driver marks the stats closed and closes the watch and the frame channel.
}

impl Driver {
    /// Performs at most one pending mutation due at `now` (then drains). `Ok(true)` when it did one, so
    /// the caller looks again before sleeping.
    fn step(&mut self, now: Instant) -> Result<bool, Stop> {
        if !self.rtc.is_alive() {
            return Err(Stop::Closed);
        }
        if now >= self.rtc_deadline {
            self.mutate(now, |rtc| rtc.handle_input(Input::Timeout(now)))?;
            // Never spin on a deadline that does not move.
            if self.rtc_deadline <= now {
                self.rtc_deadline = now + Duration::from_millis(1);
            }
            return Ok(true);
        }
        if self.connected && self.sending {
            if self.send_video
                && let Some(i) = self.video.iter().position(|l| now >= l.cursor.next_due())
                && let Some((mid, pt)) = self.sendable(TrackKind::Video)
                && let Some((due, frame)) = self.video[i].cursor.poll(now)
            {
                // Every layer's frame of one picture has the same media time (one capture).
                let time =
                    MediaTime::new(media_ticks(self.epoch, due, 90_000), Frequency::NINETY_KHZ);
                let data = frame.data.clone();
                let rid = self.video[i].rid;
                self.mutate(now, |rtc| match rtc.writer(mid) {
                    Some(w) => match rid {
                        Some(rid) => w.rid(rid).write(pt, due, time, data),
                        None => w.write(pt, due, time, data),
                    },
                    None => Ok(()),
                })?;
                if i == 0 {
                    // Counted once per picture: the top layer's frames.
                    self.stats.update(|s| {
                        s.video_frames_out += 1;
                        s.video_keyframes_out += u64::from(frame.keyframe);
                    });
                }
                return Ok(true);
            }
            if self.send_audio
                && now >= self.audio.next_due()
                && let Some((mid, pt)) = self.sendable(TrackKind::Audio)
                && let Some((due, packet)) = self.audio.poll(now)
            {
                let time = MediaTime::new(
                    media_ticks(self.epoch, due, 48_000),
                    Frequency::FORTY_EIGHT_KHZ,
                );
                self.mutate(now, |rtc| match rtc.writer(mid) {
                    Some(w) => w.write(pt, due, time, packet),
                    None => Ok(()),
                })?;
                self.stats.update(|s| s.audio_frames_out += 1);
                return Ok(true);
            }
        }
        if self.keyframe_wanted && self.keyframe_request_allowed(now) {
            self.keyframe_wanted = false;
            self.request_keyframe(now)?;
            return Ok(true);
        }
        if self.watches_silence() && now >= self.last_heard + ice_restart::SILENCE_BEFORE_RESTART {
            // The next ask, if this restart does not bring the node back either, is as far again.
            self.last_heard = now;
            tracing::info!(local = %self.local_addr, "nothing from the node: restarting ICE");
            self.ice_dropped()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether the session restarts by itself when the node goes silent: it runs, it has signaling to
    /// restart over, and no restart is under way.
    fn watches_silence(&self) -> bool {
        self.connected && self.restart_on_disconnect.is_some() && self.restart.is_none()
    }

    /// The earliest instant something is due.
    fn next_wake(&self) -> Instant {
        let mut at = self.rtc_deadline;
        if self.connected && self.sending {
            if self.send_video && self.sendable(TrackKind::Video).is_some() {
                for layer in &self.video {
                    at = at.min(layer.cursor.next_due());
                }
            }
            if self.send_audio && self.sendable(TrackKind::Audio).is_some() {
                at = at.min(self.audio.next_due());
            }
        }
        if self.keyframe_wanted
            && let Some(last) = self.last_keyframe_request
        {
            at = at.min(last + KEYFRAME_REQUEST_INTERVAL);
        }
        if self.watches_silence() {
            at = at.min(self.last_heard + ice_restart::SILENCE_BEFORE_RESTART);
        }
        at
    }

    fn keyframe_request_allowed(&self, now: Instant) -> bool {
        self.last_keyframe_request
            .is_none_or(|last| now >= last + KEYFRAME_REQUEST_INTERVAL)
    }

    /// The mid and payload type to send `kind` with, when this session may send it.
    fn sendable(&self, kind: TrackKind) -> Option<(Mid, Pt)> {
        self.tracks.iter().find_map(|t| {
            let pt = t.pt?;
            let media = self.rtc.media(t.mid)?;
            (t.kind == kind && media.direction().is_sending() && !media.disabled())
                .then_some((t.mid, pt))
        })
    }

    /// The session connected: resolve payload types and start the media clock.
    fn on_connected(&mut self, now: Instant) {
        for track in &mut self.tracks {
            track.pt = send_payload_type(&mut self.rtc, track.mid, track.kind);
        }
        self.connected = true;
        self.epoch = now;
        for layer in &mut self.video {
            layer.cursor.resume(now);
        }
        self.audio.resume(now);
        let transport = self.last_transport;
        if transport != MediaTransport::Tcp {
            self.tcp.stand_down();
        }
        if transport != MediaTransport::Turn && self.relay.take().is_some() {
            // The allocation would only carry str0m's checks of a path it does not use: released.
            tracing::debug!(
                ?transport,
                "connected without the relay: its allocation is released"
            );
        }
        self.stats.update(|s| {
            s.connected = true;
            s.connected_at = Some(now);
            s.transport = Some(transport);
        });
    }

    fn set_sending(&mut self, on: bool) {
        if on && !self.sending {
            let now = Instant::now();
            for layer in &mut self.video {
                layer.cursor.resume(now);
            }
            self.audio.resume(now);
        }
        self.sending = on;
        self.stats.update(|s| s.sending = on);
    }

    /// Sends a PLI for the video we receive, if the session negotiated that.
    fn request_keyframe(&mut self, now: Instant) -> Result<(), Stop> {
        let Some(mid) = self
            .tracks
            .iter()
            .find(|t| t.kind == TrackKind::Video)
            .map(|t| t.mid)
        else {
            return Ok(());
        };
        let possible = self
            .rtc
            .writer(mid)
            .is_some_and(|w| w.is_request_keyframe_possible(KeyframeRequestKind::Pli));
        if !possible {
            return Ok(());
        }
        self.last_keyframe_request = Some(now);
        let mut sent = false;
        self.mutate(now, |rtc| {
            if let Some(mut w) = rtc.writer(mid) {
                // No incoming video stream yet is not an error worth ending the session for.
                match w.request_keyframe(None, KeyframeRequestKind::Pli) {
                    Ok(()) => sent = true,
                    Err(e) => tracing::debug!(error = %e, "keyframe request not sent"),
                }
            }
            Ok(())
        })?;
        if sent {
            self.stats.update(|s| s.keyframe_requests_out += 1);
        }
        Ok(())
    }

    fn receive(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), Stop> {
        let Ok(contents) = datagram.try_into() else {
            tracing::trace!(%source, len = datagram.len(), "non-webrtc datagram ignored");
            return Ok(());
        };
        let now = Instant::now();
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination: match proto {
                    Protocol::Tcp => self.tcp_local,
                    _ => self.local_addr,
                },
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            tracing::trace!(%source, "datagram for no session ignored");
            return Ok(());
        }
        self.last_transport = match proto {
            Protocol::Tcp => MediaTransport::Tcp,
            _ => MediaTransport::Udp,
        };
        self.last_heard = now;
        self.mutate(now, |rtc| rtc.handle_input(input))
    }

    /// A datagram the TURN server relayed from `source`: as received on the relayed address.
    fn receive_relayed(&mut self, source: SocketAddr, datagram: &[u8]) -> Result<(), Stop> {
        let Some(relayed) = self.relay.as_ref().map(TurnRelay::relayed_addr) else {
            return Ok(());
        };
        let Ok(contents) = datagram.try_into() else {
            return Ok(());
        };
        let now = Instant::now();
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: relayed,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            return Ok(());
        }
        self.last_transport = MediaTransport::Turn;
        self.mutate(now, |rtc| rtc.handle_input(input))
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

    /// Starts str0m's close (RTCP BYE, DTLS close_notify) and sends what it queues.
    /// Applies the node's offer and returns our answer. A malformed offer is refused (`Err(Ok)`) and
    /// changes nothing; a str0m failure while applying ends the session (`Err(Err)`).
    fn accept_remote_offer(
        &mut self,
        sdp: &str,
        now: Instant,
    ) -> Result<String, Result<SdkError, Stop>> {
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| Ok(SdkError::Protocol(format!("bad sdp offer: {e}"))))?;
        if self.restart.is_some() {
            // Accepting it would void our restart offer; the node drops it when the restart reaches it
            // and offers again after.
            return Err(Ok(SdkError::Protocol(
                "an ICE restart is under way: the node offers again after it".to_owned(),
            )));
        }
        if let Some(current) = &self.node_ufrag
            && ice_restart::ice_ufrag(sdp) != Some(current.as_str())
        {
            return Err(Ok(SdkError::Protocol(
                "an offer from before the ICE restart (the node dropped it)".to_owned(),
            )));
        }
        self.tcp.allow(sdp);
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| Err(Stop::Failed(format!("webrtc: {e}"))))?;
        // Counted before the directions are published, so a watcher that sees them sees the count too.
        self.stats.update(|s| s.renegotiations += 1);
        self.drain(now).map_err(Err)?;
        self.publish_receiving();
        Ok(answer.to_sdp_string())
    }

    /// Starts an ICE restart: a new socket (a new port; on `bind_ip` when given) and an offer with new ICE
    /// credentials and no candidates yet — the new socket's is added once the node has answered, as the
    /// session's old ones are dropped then. Refusals (`Err(Ok)`) change nothing.
    fn offer_ice_restart(
        &mut self,
        bind_ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<String, Result<SdkError, Stop>> {
        if self.restart.is_some() {
            return Err(Ok(SdkError::Protocol(
                "an ICE restart is already under way".to_owned(),
            )));
        }
        let ip = bind_ip.unwrap_or(self.local_addr.ip());
        let bound = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))
            .and_then(|socket| {
                socket.set_nonblocking(true)?;
                let local = socket.local_addr()?;
                Ok((socket, local))
            })
            .map_err(|e| Ok(SdkError::Transport(format!("bind udp {ip}: {e}"))))?;
        let (socket, local_addr) = bound;
        let mut api = self.rtc.sdp_api();
        api.ice_restart(false);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| Ok(SdkError::Protocol("no ice restart offer made".to_owned())))?;
        self.restart = Some(PendingRestart {
            pending,
            socket,
            local_addr,
        });
        self.drain(now).map_err(Err)?;
        Ok(offer.to_sdp_string())
    }

    /// Applies the node's answer to our restart and moves to the new socket: it becomes the host
    /// candidate (and the active TCP candidate comes back when the session runs over TCP, the relayed one
    /// when it still holds its TURN relay). A malformed
    /// answer is refused (`Err(Ok)`; the restart is dropped, the session stays on its path); one str0m
    /// cannot apply ends the session.
    fn accept_ice_restart(
        &mut self,
        sdp: &str,
        now: Instant,
    ) -> Result<(), Result<SdkError, Stop>> {
        let Some(restart) = self.restart.take() else {
            return Err(Ok(SdkError::Protocol(
                "no ICE restart awaits an answer".to_owned(),
            )));
        };
        let answer = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| Ok(SdkError::Protocol(format!("bad sdp answer: {e}"))))?;
        let failed = |e: String| -> Result<SdkError, Stop> {
            Err(Stop::Failed(format!("ice restart: {e}")))
        };
        self.rtc
            .sdp_api()
            .accept_answer(restart.pending, answer)
            .map_err(|e| failed(e.to_string()))?;
        let sender = restart
            .socket
            .try_clone()
            .map_err(|e| failed(e.to_string()))?;
        let socket = UdpSocket::from_std(restart.socket).map_err(|e| failed(e.to_string()))?;
        let local = restart.local_addr;
        self.socket = socket;
        self.sender = sender;
        self.local_addr = local;
        self.tcp_local = ice_tcp::active_addr(local.ip());
        let on_tcp = self.connected && self.last_transport == MediaTransport::Tcp;
        if self.offer_udp {
            let candidate = Candidate::host(local, "udp").map_err(|e| failed(e.to_string()))?;
            self.rtc.add_local_candidate(candidate);
        }
        if self.offer_tcp && (on_tcp || !self.offer_udp) {
            let candidate =
                ice_tcp::active_candidate(local.ip()).map_err(|e| failed(e.to_string()))?;
            self.rtc.add_local_candidate(candidate);
            self.tcp.allow(sdp);
        }
        // A session on a TURN relay keeps it (its TLS connection may have outlived the change).
        if let Some(relay) = &self.relay {
            let candidate = relay.candidate().map_err(|e| failed(e.to_string()))?;
            self.rtc.add_local_candidate(candidate);
        }
        self.node_ufrag = ice_restart::ice_ufrag(sdp).map(str::to_owned);
        // The new path gets its own time to be heard on.
        self.last_heard = now;
        self.stats.update(|s| {
            s.ice_restarts += 1;
            s.local_addr = Some(local);
        });
        self.drain(now).map_err(Err)?;
        tracing::debug!(%local, "ice restarted on a new socket");
        Ok(())
    }

    /// Whether a line of `kind` is negotiated for us to receive.
    fn receiving(&self, kind: TrackKind) -> bool {
        self.tracks.iter().any(|t| {
            t.kind == kind
                && self
                    .rtc
                    .media(t.mid)
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

    fn handle_event(&mut self, event: Event, now: Instant) -> Result<(), Stop> {
        match event {
            Event::Connected => self.on_connected(now),
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(local = %self.local_addr, ?state, "ice state");
                match state {
                    IceConnectionState::Disconnected => self.ice_dropped()?,
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        self.restarts_in_a_row = 0;
                    }
                    _ => {}
                }
            }
            Event::MediaAdded(added) => {
                let kind = if added.kind.is_audio() {
                    TrackKind::Audio
                } else {
                    TrackKind::Video
                };
                // str0m announces the remote's m-lines (the answering side's only knowledge of its
                // tracks) once connected, so the payload type is resolved here.
                if !self.tracks.iter().any(|t| t.mid == added.mid) {
                    let pt = send_payload_type(&mut self.rtc, added.mid, kind);
                    self.tracks.push(Track {
                        mid: added.mid,
                        kind,
                        pt,
                    });
                }
                self.publish_receiving();
            }
            Event::MediaData(data) => self.on_media_data(data),
            Event::MediaChanged(_) => self.publish_receiving(),
            Event::KeyframeRequest(request) => {
                let ours = self
                    .tracks
                    .iter()
                    .any(|t| t.mid == request.mid && t.kind == TrackKind::Video);
                if ours {
                    // A simulcast receiver (the node) asks per layer; without a rid, every layer.
                    for layer in &mut self.video {
                        if request.rid.is_none() || layer.rid == request.rid {
                            layer.cursor.restart_at_keyframe();
                        }
                    }
                    self.stats.update(|s| s.keyframe_requests_in += 1);
                }
            }
            Event::Closed => return Err(Stop::Failed("closed by the remote".to_owned())),
            _ => {}
        }
        Ok(())
    }

    /// The path to the node is gone (nothing heard from it for a while, or str0m's ICE `Disconnected`): a
    /// session with signaling restarts ICE ([`super::ice_restart`]), a few times in a row at most; any
    /// other ends.
    fn ice_dropped(&mut self) -> Result<(), Stop> {
        if self.restart.is_some() {
            // The restart under way is what brings it back.
            return Ok(());
        }
        match &self.restart_on_disconnect {
            Some(ask) if self.restarts_in_a_row < ice_restart::AUTO_RESTARTS => {
                self.restarts_in_a_row += 1;
                tracing::info!(local = %self.local_addr, "ice disconnected: restarting it");
                // Full: one is asked for already.
                let _ = ask.try_send(());
                Ok(())
            }
            _ => Err(Stop::Failed("ice disconnected".to_owned())),
        }
    }

    fn on_media_data(&mut self, data: MediaData) {
        let kind = self
            .tracks
            .iter()
            .find(|t| t.mid == data.mid)
            .map(|t| t.kind)
            .or_else(|| {
                self.rtc.media(data.mid).map(|m| {
                    if m.kind().is_audio() {
                        TrackKind::Audio
                    } else {
                        TrackKind::Video
                    }
                })
            })
            .unwrap_or(if data.params.spec().codec.is_audio() {
                TrackKind::Audio
            } else {
                TrackKind::Video
            });
        let now = Instant::now();
        let keyframe = kind == TrackKind::Video
            && match data.codec_extra {
                _ if data.params.spec().codec == Codec::Vp8 => vp8_is_keyframe(&data.data),
                CodecExtra::H264(e) => e.is_keyframe,
                CodecExtra::Av1(e) => e.is_keyframe,
                _ => false,
            };
        if kind == TrackKind::Video && self.request_keyframes {
            if keyframe {
                self.awaiting_keyframe = false;
                self.keyframe_wanted = false;
            } else if self.awaiting_keyframe || !data.contiguous {
                self.awaiting_keyframe = true;
                self.keyframe_wanted = true;
            }
        }
        self.stats.update(|s| match kind {
            TrackKind::Audio => {
                s.audio_frames_in += 1;
                s.first_audio_in.get_or_insert(now);
            }
            TrackKind::Video => {
                s.video_frames_in += 1;
                s.video_keyframes_in += u64::from(keyframe);
                s.first_video_in.get_or_insert(now);
            }
        });
        if self.frames.receiver_count() > 0 {
            // Only fails when nobody listens.
            let _ = self.frames.send(ReceivedFrame {
                kind,
                keyframe,
                data: data.data,
                rtp_time: data.time.numer(),
                contiguous: data.contiguous,
                received_at: now,
            });
        }
    }
}

impl RtcDriver for Driver {
    fn rtc(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    fn sender(&self) -> &std::net::UdpSocket {
        &self.sender
    }

    fn send_tcp(&mut self, to: SocketAddr, datagram: &[u8]) {
        self.tcp.send(to, datagram);
    }

    fn send_udp(&mut self, from: SocketAddr, to: SocketAddr, datagram: &[u8]) {
        match &self.relay {
            Some(relay) if relay.relayed_addr() == from => relay.send(to, datagram),
            _ => send_datagram(&self.sender, to, datagram),
        }
    }

    fn set_deadline(&mut self, at: Instant) {
        self.rtc_deadline = at;
    }

    fn on_event(&mut self, event: Event, now: Instant) -> Result<(), Stop> {
        self.handle_event(event, now)
    }
}

/// Tells the session each time the node pauses or resumes its video for bandwidth
/// (`ChannelEvent.video_paused_for_bandwidth` for its channel), until the session or the event
/// stream ends.
async fn follow_video_pauses(
    commands: mpsc::UnboundedSender<Command>,
    channel: String,
    mut events: mpsc::UnboundedReceiver<crate::Event>,
) {
    use crate::proto::{channel_event, event};
    while let Some(event) = events.recv().await {
        let Some(event::Kind::ChannelEvent(ce)) = event.kind else {
            continue;
        };
        let Some(channel_event::Kind::VideoPausedForBandwidth(pause)) = ce.kind else {
            continue;
        };
        if ce.channel == channel
            && commands
                .send(Command::VideoPausedForBandwidth(pause.paused))
                .is_err()
        {
            return;
        }
    }
}
