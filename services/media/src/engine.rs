//! One worker's forwarding core, sans IO: its sessions, channels, rewriting and keyframe caches. Inputs
//! are a datagram, a command, something another worker handed over, or the time; outputs are datagrams
//! to send ([`Engine::take_transmits`]), [`MediaEvent`]s, and what it hands to other workers. The time
//! is always given ([`Engine::set_time`]), never read, so tests run it on a virtual clock; the loop with
//! the socket is [`crate::worker`].
//!
//! - **Demultiplexing** without scanning sessions: a datagram from a known address (UDP, or an ICE-TCP
//!   connection's peer: the map is keyed by both) goes to that address's session (one map lookup); one
//!   from a new address must be a STUN binding request naming our ufrag ([`crate::stun`]), which maps to
//!   exactly one session, and its address is learnt only once str0m accepts it (the request carries the
//!   session's credentials). A session learns every path its checks come by (UDP and TCP alike), since
//!   the member nominates one of them, not necessarily the first.
//! - **Forwarding**: an RTP packet from a publishing member goes to every other member of its channel
//!   that receives that kind, unless the publisher is paused (in a private call), on the receiver's own
//!   stream: [`crate::feed`] places it (sequence number, RTP time) and payload types are mapped per
//!   receiver (`match_params`). A channel also on other workers gets each packet handed over once
//!   ([`crate::relay`]); packets handed over from them fan out here the same way.
//! - **Keyframes**: each publisher's latest keyframe is kept ([`crate::keyframe`]); a receiver that starts
//!   (connects, or its publisher resumes) gets it at once. A new receiver, a resume, or a receiver's PLI
//!   also marks the publisher as wanting a keyframe; it is asked (PLI) every [`KEYFRAME_RETRY`] until one
//!   arrives, however many receivers asked (one request upstream). A simulcast layer newly wanted and not
//!   asked for within that interval is asked at the next turn, whenever another layer was asked.
//! - **NACKs** from receivers are answered by str0m from each receiver stream's send history (hop by hop);
//!   str0m asks publishers for what the router itself lost.
//! - **Isolation**: a session whose str0m state errors or panics is closed alone; the loop goes on. A
//!   session ends the same way whichever way it ends: ICE gone, DTLS closed by the peer (close_notify),
//!   an error, or the node closing it.
//! - **Renegotiation**: when a channel's last publisher of a kind leaves, the other members' lines for
//!   that kind turn inactive through a router-made offer ([`MediaEvent::Offer`]); a publisher joining
//!   turns them active again ([`crate::renegotiation`]). One offer per session is in flight at a time.
//! - **ICE restart** ([`crate::ice_restart`]): a member whose network changed offers new ICE
//!   credentials for its running session; str0m answers on the same `Rtc` (same DTLS, same streams),
//!   the session is re-indexed under its new ufrag and forgets the addresses it was reached at, and its
//!   checks from the new path find it again. An offer of the router's still in flight gives way to it
//!   (the restart wins the glare) and the lines are re-offered after, if they need to be.
//!
//! After every input to a session its output is drained until str0m returns a timeout (str0m's rule);
//! sessions touched as a side effect (forwarding) are queued and drained in the same turn. Timeouts sit in
//! one heap (stale entries are skipped when popped), so a wake-up costs O(log n), not a scan of sessions.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use rand::RngCore;
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::DtlsCert;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, Mid, Rid, Rids};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tokio::sync::mpsc;

use crate::bandwidth::Allowance;
use crate::egress::Flushed;
use crate::error::MediaError;
use crate::feed::Feed;
use crate::frame_gate::FrameGate;
use crate::ice_restart;
use crate::keyframe::{KeptPacket, VideoCodec, starts_keyframe};
use crate::peer::{KEYFRAME_RETRY, Peer, PeerId, kind_of};
use crate::protocol::{Command, Kind, MediaEvent, PeerKey, RouterStats};
use crate::relay::{Control, Forwarded, Mesh, RemotePublisher, first_session_id, worker_of};
use crate::renegotiation::{Move, OutLine, changes};
use crate::rewrite::Source;
use crate::simulcast::{self, Decision, Layer, LayerSet, MAX_LAYERS, PublisherLayers};
use crate::{sdp_rules, session_path, stun};

/// How often str0m reports a session's stats: its unaveraged bandwidth estimate (`PeerStats::bwe_tx`)
/// and its TWCC round trip, which step a receiver down sooner than the 3 s average of str0m's estimate
/// events (`crate::bandwidth`, `crate::queue_delay`), and the loss estimate's granularity. Each report
/// is a few events per session. Why 50 ms: a narrowed path is only seen at a report, and at 200 ms the
/// step down came when a narrow link's queue had already overflowed; the old layer's lost packets then
/// hold a receiver's jitter buffer (NACKs and their resends crowd the link the lower keyframe needs).
/// BENCHMARKS.md `bandwidth` run 7 has the numbers, and `fanout` showed no cost beside its noise.
const STATS_INTERVAL: Duration = Duration::from_millis(50);
/// Packets of a receiver line kept to answer its NACKs, and for how long (≈ 1 s of a 3 Mbit/s stream).
const RTX_CACHE_PACKETS: usize = 300;
const RTX_CACHE_AGE: Duration = Duration::from_secs(1);
/// Resends beyond this share of a line's bytes are dropped (str0m's default).
const RTX_RATIO_CAP: f32 = 0.15;
/// The bandwidth a receiver's estimate starts at, before its TWCC feedback says more: over the top
/// layer of a camera-sized picture with room for its keyframes, so a receiver starts at the top and a
/// narrow path steps it down (GoogCC finds a narrow path within a second or so; a wide one it would
/// otherwise have to probe up to first, and a single-layer publisher's viewers would start paused).
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(2_500);
/// How often every receiver's allocation is looked at again without a new estimate (str0m reports an
/// estimate only when it moved, and a better layer is allowed only after it fitted for a while).
const ALLOCATE_EVERY: Duration = Duration::from_millis(250);
/// Timeouts a session asks for at once (str0m's pacer releases one packet per timeout) that are fed
/// within one drain, so a burst goes out in one turn (one batched send) rather than one per turn.
const MAX_IMMEDIATE_TIMEOUTS: usize = 256;
/// How far ahead of a turn's time a session's timeout is still fed in that turn. The IO loop's timer
/// wakes on millisecond ticks, so a sooner timeout would wait a whole tick; and str0m asks for them
/// all the time: after each packet its pacer releases it wants its next step 1 µs past the time it
/// was given, and a packet written to a stream waits for a timeout at the session's own clock. Left
/// to the timer, a burst of packets written in one turn (an edge's relayed batch: a frame's packets
/// came in one) went out one per tick, the frame's last packet milliseconds late. Feeding them up to
/// this early keeps the session's clock at most this far ahead of the loop's.
const TIMER_TICK: Duration = Duration::from_millis(1);
/// The oldest a receiver's queued video may get before new video for it is held back until the next
/// keyframe (what is late by more is worse than a skip to a fresh picture). Over what pacing a large
/// keyframe takes at a rate that carries its stream (a 70 KB keyframe at 2.75 Mbit/s, the pacing of the
/// initial estimate: 200 ms). It also tells the allocation the path is congested ([`Engine::allocate`]).
const MAX_QUEUE_AGE: Duration = Duration::from_millis(500);
/// The longest a receiver frozen for a step down waits for its path to drain before the lower
/// layer's keyframe is asked for ([`simulcast::LayerSelector::freeze`]); the wait is the round trip
/// its TWCC feedback last measured (the path's queue is in it), at most this: a round trip longer
/// than the 200–300 ms a congested path's queue holds is more likely a stall of the feedback.
const MAX_DRAIN_WAIT: Duration = Duration::from_millis(400);
/// Addresses one session's authenticated checks may come from (its UDP and TCP paths, a few
/// interfaces) that are routed to it at once; a new one beyond them replaces the oldest.
const MAX_REMOTES: usize = 4;

type RoomKey = (String, String);

/// Why a receiver's allocation is looked at ([`Engine::allocate`]).
#[derive(Clone, Copy, Debug)]
enum Look {
    /// Its averaged estimate, new or as it stands.
    Estimate,
    /// The video of this publisher backed up in its queue.
    Congested(PeerId),
    /// Its unaveraged estimate (bits/s): only down.
    Unaveraged(u64),
    /// Its path's queue stands deep in its round trip ([`crate::queue_delay`]): the lowest layer.
    QueueBuilt,
}

/// The sessions of one channel.
#[derive(Default)]
struct Room {
    peers: Vec<PeerId>,
    /// Publishers whose media is held back (in a private call).
    paused: HashSet<String>,
    /// Publishers of the channel on other workers ([`crate::relay`]).
    remote: Vec<PeerId>,
}

impl Room {
    fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.paused.is_empty() && self.remote.is_empty()
    }
}

pub(crate) struct Engine {
    /// Datagrams to send over UDP, in order, until the IO loop takes them.
    transmits: Vec<(SocketAddr, Vec<u8>)>,
    /// Datagrams to send over ICE-TCP connections (by the connection's peer address), in order.
    tcp_transmits: Vec<(SocketAddr, Vec<u8>)>,
    /// The time of the current input.
    now: Instant,
    /// The worker's UDP address as sessions' host candidate.
    candidate: SocketAddr,
    /// The worker's ICE-TCP address (a passive host candidate), when it listens on TCP ([`crate::tcp`]).
    tcp_candidate: Option<SocketAddr>,
    events: mpsc::UnboundedSender<MediaEvent>,
    peers: HashMap<PeerId, Peer>,
    next_id: PeerId,
    by_key: HashMap<PeerKey, PeerId>,
    /// The session of each address (and transport) an authenticated STUN request came from.
    by_addr: HashMap<(Protocol, SocketAddr), PeerId>,
    by_ufrag: HashMap<String, PeerId>,
    rooms: HashMap<RoomKey, Room>,
    /// Sessions with input since they were last drained.
    dirty: Vec<PeerId>,
    /// When sessions are to be woken; an entry is stale when it differs from its session's `scheduled`.
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    /// Publishers a keyframe is wanted from, and of which of their layers (few at a time).
    keyframe_wanted: HashMap<PeerId, LayerSet>,
    /// Rooms whose members' lines may have to move, looked at once the turn's sessions are drained (so
    /// a publisher's audio and video arriving together make one offer, not two).
    moves: Vec<(RoomKey, Move)>,
    /// Sessions that connected this turn, started as receivers once the turn's output is drained.
    connected: Vec<PeerId>,
    stats: RouterStats,
    /// Packets estimated lost so far, with the fractions `stats.packets_lost` rounds down.
    lost_estimate: f64,
    /// This worker's index.
    index: usize,
    /// Every worker's inbox.
    mesh: Mesh,
    /// The other workers each channel here is on (channels on this worker only have no entry).
    room_workers: HashMap<RoomKey, Vec<usize>>,
    /// Publishers on other workers of channels here.
    remote: HashMap<PeerId, RemotePublisher>,
    /// The worker's DTLS certificate, shared by its sessions: generating one (a P-384 key) per session
    /// was most of a join's CPU. Each session still negotiates its own keys (ECDHE); the certificate
    /// only says the sessions are this worker's. `None`: str0m makes one per session.
    dtls_cert: Option<DtlsCert>,
    /// When receivers' allocations were last looked at ([`ALLOCATE_EVERY`]).
    last_allocation: Instant,
}

/// Notes a publisher's video packet: its layer flows, and it is kept if it starts or continues the
/// layer's latest keyframe.
fn keep(video: &mut PublisherLayers, out: &Forwarded) {
    let packet = KeptPacket {
        seq: out.seq,
        time: out.time,
        marker: out.marker,
        payload: out.payload.clone(),
    };
    video.observe(
        out.layer,
        out.source.ssrc,
        out.params,
        packet,
        out.starts,
        out.at,
    );
}

fn video_codec(codec: Codec) -> VideoCodec {
    match codec {
        Codec::Vp8 => VideoCodec::Vp8,
        Codec::H264 => VideoCodec::H264,
        _ => VideoCodec::Other,
    }
}

/// The header extensions that describe the media and so travel with it; transport ones (sequence
/// numbers for congestion control, send times, mid) are the receiver's session's own.
fn forwarded_extensions(from: &ExtensionValues) -> ExtensionValues {
    ExtensionValues {
        audio_level: from.audio_level,
        voice_activity: from.voice_activity,
        video_orientation: from.video_orientation,
        ..ExtensionValues::default()
    }
}

/// Makes the router's send stream of a line that has none, and says which rid it is sent with. str0m
/// makes a line's send streams from its simulcast `send` layers when it has simulcast, so a line the
/// member publishes simulcast on (`recv` layers for the router) and also receives on — a call party —
/// gets no stream for the router to send on. Its SSRC was not in the answer: the member binds it by
/// the MID and RID header extensions str0m sends until the member's first receiver report. The stream
/// carries the first of the line's rids, since a receiver that lists rids for a line (str0m does,
/// whatever their direction) takes only streams with one of them. A retransmission stream comes with
/// it when the line negotiated one (str0m resends only on one).
fn ensure_send_stream(rtc: &mut Rtc, mid: Mid) -> Option<Rid> {
    if rtc.direct_api().stream_tx_by_mid(mid, None).is_some() {
        return None;
    }
    let media = rtc.media(mid)?;
    let Rids::Specific(rids) = media.rids_rx() else {
        return None;
    };
    let rid = *rids.first()?;
    let pts = media.remote_pts().to_vec();
    let has_rtx = rtc
        .codec_config()
        .find(|p| pts.contains(&p.pt()) && p.resend().is_some())
        .is_some();
    let mut api = rtc.direct_api();
    if api.stream_tx_by_mid(mid, Some(rid)).is_none() {
        let ssrc = api.new_ssrc();
        let rtx = has_rtx.then(|| api.new_ssrc());
        api.declare_stream_tx(ssrc, rtx, mid, Some(rid));
    }
    Some(rid)
}

/// Whether a receiver's video stream has packets waiting in str0m's pacer for longer than
/// [`MAX_QUEUE_AGE`] (the pacer sends at the receiver's estimate; its own limit is 2 s).
fn backlogged(rtc: &mut Rtc, mid: Mid, rid: Option<Rid>, now: Instant) -> bool {
    let mut api = rtc.direct_api();
    let Some(stream) = api.stream_tx_by_mid(mid, rid) else {
        return false;
    };
    stream
        .queue_info()
        .and_then(|q| q.first_unsent())
        .is_some_and(|first| now.saturating_duration_since(first) > MAX_QUEUE_AGE)
}

/// What a receiver's video stream has waiting in str0m's pacer: bytes, and how long the oldest has
/// waited (as of the pacer's latest sample). For the trace.
fn queued_video(
    rtc: &mut Rtc,
    mid: Mid,
    rid: Option<Rid>,
    now: Instant,
) -> Option<(usize, Duration)> {
    let mut api = rtc.direct_api();
    let queue = api.stream_tx_by_mid(mid, rid)?.queue_info()?;
    let age = queue
        .first_unsent()
        .map_or(Duration::ZERO, |first| now.saturating_duration_since(first));
    Some((queue.byte_size(), age))
}

/// Whether `room` holds `publisher`'s media back (it is in a private call). A free function over the
/// rooms alone, so the packet path can ask while it holds its publisher mutably.
fn holds_back(rooms: &HashMap<RoomKey, Room>, room: &RoomKey, publisher: &PeerKey) -> bool {
    rooms
        .get(room)
        .is_some_and(|r| r.paused.contains(&publisher.user))
}

fn room_key(key: &PeerKey) -> RoomKey {
    (key.app.clone(), key.channel.clone())
}

fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// True when an SDP offer asks to send media on any line.
fn offers_to_send(sdp: &str) -> bool {
    sdp.lines()
        .map(str::trim)
        .any(|l| l == "a=sendrecv" || l == "a=sendonly")
}

impl Engine {
    pub(crate) fn new(
        now: Instant,
        candidate: SocketAddr,
        tcp_candidate: Option<SocketAddr>,
        events: mpsc::UnboundedSender<MediaEvent>,
        index: usize,
        mesh: Mesh,
    ) -> Self {
        Self {
            transmits: Vec::new(),
            tcp_transmits: Vec::new(),
            now,
            candidate,
            tcp_candidate,
            events,
            peers: HashMap::new(),
            next_id: first_session_id(index),
            by_key: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            rooms: HashMap::new(),
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            keyframe_wanted: HashMap::new(),
            moves: Vec::new(),
            connected: Vec::new(),
            stats: RouterStats::default(),
            lost_estimate: 0.0,
            index,
            mesh,
            room_workers: HashMap::new(),
            remote: HashMap::new(),
            dtls_cert: str0m::crypto::from_feature_flags()
                .dtls_provider
                .generate_certificate(),
            last_allocation: now,
        }
    }

    /// Sets the time of the inputs that follow (the IO loop's clock, or a test's).
    pub(crate) fn set_time(&mut self, now: Instant) {
        self.now = now;
    }

    /// When the engine next wants [`Engine::end_turn`] called even if nothing arrives.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Ends a turn of inputs: due timers fire, every session touched is drained.
    pub(crate) fn end_turn(&mut self) {
        self.timeouts(self.now);
        self.drain();
    }

    /// The UDP datagrams produced since the last call, in order.
    pub(crate) fn take_transmits(&mut self) -> std::vec::Drain<'_, (SocketAddr, Vec<u8>)> {
        self.transmits.drain(..)
    }

    /// The datagrams for ICE-TCP connections produced since the last call, in order.
    pub(crate) fn take_tcp_transmits(&mut self) -> std::vec::Drain<'_, (SocketAddr, Vec<u8>)> {
        self.tcp_transmits.drain(..)
    }

    /// Counts what the ICE-TCP side did ([`crate::tcp`]).
    pub(crate) fn count_tcp(&mut self, counts: crate::tcp::TcpCounts) {
        self.stats.tcp_connections = counts.open;
        self.stats.tcp_frames_in += counts.frames_in;
        self.stats.tcp_frames_out += counts.frames_out;
        self.stats.tcp_dropped += counts.dropped;
        self.stats.tcp_refused += counts.refused;
        self.stats.tcp_closed_idle += counts.closed_idle;
    }

    /// Counts what the IO loop did with the transmits.
    pub(crate) fn count_io(&mut self, received: Option<usize>, flushed: Flushed) {
        if let Some(n) = received {
            self.stats.datagrams_in += 1;
            self.stats.bytes_in += n as u64;
        }
        self.stats.datagrams_out += flushed.datagrams;
        self.stats.bytes_out += flushed.bytes;
        self.stats.send_syscalls += flushed.syscalls;
        self.stats.datagrams_dropped += flushed.dropped;
    }

    /// Carries out a command; false when the engine is to stop.
    pub(crate) fn command(&mut self, command: Command) -> bool {
        match command {
            Command::Open {
                key,
                may_publish,
                offer,
                reply,
            } => {
                let answer = self.open(key, may_publish, &offer);
                let _ = reply.send(answer);
            }
            Command::Close { key } => {
                if let Some(id) = self.by_key.get(&key).copied() {
                    self.remove(id, false);
                }
            }
            Command::CloseRoom { app, channel } => {
                // The room goes first, so nobody left in it is renegotiated on the way out.
                let key = (app, channel);
                self.room_workers.remove(&key);
                if let Some(room) = self.rooms.remove(&key) {
                    for id in room.remote {
                        self.remote.remove(&id);
                    }
                    for id in room.peers {
                        self.remove(id, false);
                    }
                }
            }
            Command::RoomWorkers {
                app,
                channel,
                workers,
            } => self.set_room_workers((app, channel), workers),
            Command::AcceptAnswer {
                key,
                revision,
                answer,
                reply,
            } => {
                let accepted = self.accept_answer(&key, revision, &answer);
                let _ = reply.send(accepted);
            }
            Command::RestartIce { key, offer, reply } => {
                let answer = self.restart_ice(&key, &offer);
                let _ = reply.send(answer);
            }
            Command::Forward {
                app,
                channel,
                publisher,
                forward,
            } => {
                let room = self
                    .rooms
                    .entry((app.clone(), channel.clone()))
                    .or_default();
                if forward {
                    if room.paused.remove(&publisher) {
                        self.resume(&app, &channel, &publisher);
                    }
                    self.want_keyframe_from(&app, &channel, &publisher);
                } else {
                    room.paused.insert(publisher);
                }
            }
            Command::RequestKeyframe {
                app,
                channel,
                publisher,
            } => self.want_keyframe_from(&app, &channel, &publisher),
            Command::SetMaxLayer { key, layer, reply } => {
                let set = match self.by_key.get(&key).and_then(|id| self.peers.get_mut(id)) {
                    Some(peer) => {
                        // The lines switch at the new target's next keyframe, asked for by the
                        // next packet that reaches them.
                        peer.max_layer = layer;
                        Ok(())
                    }
                    None => Err(MediaError::NoSession),
                };
                let _ = reply.send(set);
            }
            Command::Stats { reply } => {
                let mut stats = self.stats;
                stats.sessions = self.peers.len();
                for peer in self.peers.values() {
                    if let Some((proto, source)) = peer.last_path {
                        let path = session_path::SessionPath::of(proto, source, &peer.relays);
                        stats.sessions_by_path[path.index()] += 1;
                    }
                    for layer in peer.layers.values().filter_map(|s| s.current()) {
                        if let Some(n) = stats.layer_receivers.get_mut(usize::from(layer)) {
                            *n += 1;
                        }
                    }
                }
                // The engine runs alone on its worker's thread: that thread's time is the worker's.
                stats.cpu_millis = crate::cpu::current_thread().map_or(0, |d| d.as_millis() as u64);
                let _ = reply.send(stats);
            }
            Command::Stop => return false,
        }
        true
    }

    fn open(
        &mut self,
        key: PeerKey,
        may_publish: bool,
        offer_sdp: &str,
    ) -> Result<String, MediaError> {
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|e| MediaError::InvalidOffer(e.to_string()))?;
        if let Some(pt) = sdp_rules::payload_type_with_two_meanings(offer_sdp) {
            return Err(MediaError::InvalidOffer(format!(
                "payload type {pt} has two meanings"
            )));
        }
        if !may_publish && offers_to_send(offer_sdp) {
            return Err(MediaError::PublishNotAllowed);
        }
        // str0m refuses an offer without credentials below; this only reads them.
        let remote = ice_restart::remote_side(offer_sdp).unwrap_or_default();
        // Joining again replaces the member's previous session (e.g. a reconnect).
        if let Some(old) = self.by_key.get(&key).copied() {
            self.remove(old, false);
        }
        let now = self.now;
        let ufrag = random_token(8);
        let creds = IceCreds {
            ufrag: ufrag.clone(),
            pass: random_token(16),
        };
        let mut builder = Rtc::builder();
        if let Some(cert) = &self.dtls_cert {
            builder = builder.set_dtls_cert(cert.clone());
        }
        let mut rtc = builder
            .set_ice_lite(true)
            // Packets are forwarded as they come (`crate::feed`), not re-framed.
            .set_rtp_mode(true)
            // Ingress stats carry the loss the router reports as a metric (`crate::loss`).
            .set_stats_interval(Some(STATS_INTERVAL))
            // Each receiver's send-side bandwidth estimate (GoogCC over its TWCC feedback), which
            // chooses its simulcast layer (`crate::bandwidth`).
            .enable_bwe(Some(INITIAL_ESTIMATE))
            .set_local_ice_credentials(creds)
            .build(now);
        let candidate = Candidate::host(self.candidate, "udp")
            .map_err(|e| MediaError::Negotiation(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        if let Some(addr) = self.tcp_candidate {
            // The fallback for clients whose UDP does not get through (RFC 6544): they connect to it.
            let candidate = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| MediaError::Negotiation(e.to_string()))?;
            rtc.add_local_candidate(candidate);
        }
        // Isolation (see the module docs): str0m asserts some of what it should refuse, and a panic
        // here would end the worker's loop with every session on it.
        let answer = catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_offer(offer)))
            .map_err(|_| MediaError::Negotiation("the offer made str0m panic".into()))?
            .map_err(|e| MediaError::Negotiation(e.to_string()))?;
        let id = self.next_id;
        self.next_id += 1;
        let room = self.rooms.entry(room_key(&key)).or_default();
        room.peers.push(id);
        self.by_ufrag.insert(ufrag.clone(), id);
        self.by_key.insert(key.clone(), id);
        self.peers
            .insert(id, Peer::new(key, rtc, ufrag, remote, may_publish));
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.relays = session_path::relay_candidates(offer_sdp);
        }
        self.dirty.push(id);
        Ok(answer.to_sdp_string())
    }

    /// Restarts ICE on a member's session from its offer ([`crate::ice_restart`]); returns the answer.
    /// Refusals (no session, an offer that does not parse, is no restart, or asks to send for a member
    /// that may not publish) change nothing. An offer that passes them but that str0m cannot apply
    /// leaves the session unusable: it is closed and reported, as a failed answer is.
    fn restart_ice(&mut self, key: &PeerKey, offer_sdp: &str) -> Result<String, MediaError> {
        let id = *self.by_key.get(key).ok_or(MediaError::NoSession)?;
        let offer = SdpOffer::from_sdp_string(offer_sdp)
            .map_err(|e| MediaError::InvalidOffer(e.to_string()))?;
        if let Some(pt) = sdp_rules::payload_type_with_two_meanings(offer_sdp) {
            return Err(MediaError::InvalidOffer(format!(
                "payload type {pt} has two meanings"
            )));
        }
        let peer = self.peers.get_mut(&id).ok_or(MediaError::NoSession)?;
        if !peer.may_publish && offers_to_send(offer_sdp) {
            return Err(MediaError::PublishNotAllowed);
        }
        let credentials = ice_restart::check(offer_sdp, &peer.remote)
            .map_err(|why| MediaError::NotIceRestart(why.to_string()))?;
        // str0m drops our offer in flight when it accepts the member's (its changes are re-offered
        // below, from the channel's state).
        peer.pending_offer = None;
        let accepted = catch_unwind(AssertUnwindSafe(|| peer.rtc.sdp_api().accept_offer(offer)));
        let answer = match accepted {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                tracing::warn!(user = %key.user, channel = %key.channel, error = %e, "ice restart offer not applicable; session closed");
                self.remove(id, true);
                return Err(MediaError::Negotiation(e.to_string()));
            }
            Err(_) => {
                tracing::error!(user = %key.user, channel = %key.channel, "ice restart panicked; session closed");
                self.remove(id, true);
                return Err(MediaError::Negotiation("the offer made str0m panic".into()));
            }
        };
        // str0m chose new local credentials: STUN on the new path names the new ufrag.
        let ufrag = peer.rtc.direct_api().local_ice_credentials().ufrag;
        self.by_ufrag.remove(&peer.ufrag);
        self.by_ufrag.insert(ufrag.clone(), id);
        peer.ufrag = ufrag;
        peer.remote.credentials = credentials;
        session_path::add_relays(&mut peer.relays, offer_sdp);
        peer.restarting = true;
        peer.recheck_after_answer = false;
        // A new path: its round trip's floor is its own.
        peer.queue_delay.reset();
        // Every path is checked again under the new credentials; the old addresses route nowhere (a
        // port the member left may be someone else's next).
        for remote in std::mem::take(&mut peer.remotes) {
            if self.by_addr.get(&remote) == Some(&id) {
                self.by_addr.remove(&remote);
            }
        }
        self.stats.ice_restarts += 1;
        self.dirty.push(id);
        tracing::info!(user = %key.user, channel = %key.channel, "ice restarted");
        // The member's offer stated the lines as it sees them; the channel may want them otherwise.
        self.offer_lines(id, Move::Both, true);
        Ok(answer.to_sdp_string())
    }

    /// Removes a session; `report` tells the node it ended by itself.
    fn remove(&mut self, id: PeerId, report: bool) {
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        self.keyframe_wanted.remove(&id);
        peer.rtc.disconnect();
        self.by_key.remove(&peer.key);
        self.by_ufrag.remove(&peer.ufrag);
        for remote in &peer.remotes {
            self.by_addr.remove(remote);
        }
        let room_key = room_key(&peer.key);
        if let Some(room) = self.rooms.get_mut(&room_key) {
            room.peers.retain(|p| *p != id);
            if room.is_empty() {
                self.rooms.remove(&room_key);
            }
        }
        for other in self.peers.values_mut() {
            other.first_received.retain(|(p, _)| *p != id);
            other.layers.remove(&id);
            other.bandwidth.remove(&id);
        }
        if !peer.inbound.is_empty() {
            // A publisher left: what it fed ends for the others, here and on the channel's other workers.
            self.announce(id, &peer.key, Vec::new(), None);
            self.moves.push((room_key, Move::Down));
        }
        if report {
            let _ = self
                .events
                .send(MediaEvent::SessionClosed { key: peer.key });
        }
    }

    /// A datagram from `source`, over UDP or an ICE-TCP connection (`proto`). True when a session took
    /// it (str0m accepted it: a STUN request with the session's credentials, or traffic on an address
    /// such a request came from).
    pub(crate) fn datagram(&mut self, proto: Protocol, source: SocketAddr, data: &[u8]) -> bool {
        let from = (proto, source);
        let (id, known) = match self.by_addr.get(&from) {
            Some(id) => (*id, true),
            None => {
                let Some(id) = stun::local_ufrag(data)
                    .and_then(|u| self.by_ufrag.get(u))
                    .copied()
                else {
                    return false;
                };
                (id, false)
            }
        };
        // str0m matches the destination against its local candidate: the advertised address.
        let destination = match proto {
            Protocol::Udp => self.candidate,
            Protocol::Tcp => match self.tcp_candidate {
                Some(addr) => addr,
                None => return false,
            },
            Protocol::SslTcp | Protocol::Tls => return false,
        };
        let Ok(receive) = Receive::new(proto, source, destination, data) else {
            return false;
        };
        let input = Input::Receive(self.now, receive);
        let taken = self.feed(id, input);
        // str0m holds one received RTP packet until it is polled: drained now, before the next datagram
        // (a caller may hand over several in one turn).
        self.drain_one(id);
        if taken && let Some(peer) = self.peers.get_mut(&id) {
            peer.last_path = Some(from);
        }
        if taken
            && !known
            && let Some(peer) = self.peers.get_mut(&id)
        {
            // Every path the member's checks came by is one media may come back on: the member
            // nominates one of them, not necessarily the first (UDP and TCP, or two interfaces).
            if peer.remotes.len() >= MAX_REMOTES {
                let oldest = peer.remotes.remove(0);
                if self.by_addr.get(&oldest) == Some(&id) {
                    self.by_addr.remove(&oldest);
                }
            }
            peer.remotes.push(from);
            self.by_addr.entry(from).or_insert(id);
        }
        taken
    }

    /// A path is gone (an ICE-TCP connection closed): its address routes to no session any more, so a
    /// later connection from the same address starts over with a STUN request.
    pub(crate) fn path_closed(&mut self, proto: Protocol, source: SocketAddr) {
        let from = (proto, source);
        if let Some(id) = self.by_addr.remove(&from)
            && let Some(peer) = self.peers.get_mut(&id)
        {
            peer.remotes.retain(|r| *r != from);
        }
    }

    /// Hands one input to a session; a session that errors or panics is closed alone. True when the
    /// session took the input (str0m accepted it).
    fn feed(&mut self, id: PeerId, input: Input) -> bool {
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        if !peer.rtc.accepts(&input) {
            return false;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| peer.rtc.handle_input(input)));
        match outcome {
            Ok(Ok(())) => self.dirty.push(id),
            Ok(Err(e)) => {
                tracing::warn!(user = %peer.key.user, channel = %peer.key.channel, error = %e, "media session failed");
                self.remove(id, true);
            }
            Err(_) => {
                tracing::error!(user = %peer.key.user, channel = %peer.key.channel, "media session panicked; closed");
                self.remove(id, true);
            }
        }
        true
    }

    fn timeouts(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if peer.scheduled == Some(at) {
                peer.scheduled = None;
                self.feed(id, Input::Timeout(now));
            }
        }
        let wanting: Vec<PeerId> = self
            .keyframe_wanted
            .keys()
            .copied()
            .filter(|id| {
                self.peers.get(id).is_some_and(|p| {
                    p.last_keyframe_request
                        .is_none_or(|t| now - t >= KEYFRAME_RETRY)
                })
            })
            .collect();
        for id in wanting {
            self.ask_keyframe(id, now);
        }
        if now.saturating_duration_since(self.last_allocation) >= ALLOCATE_EVERY {
            self.last_allocation = now;
            let estimated: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.estimate.is_some())
                .map(|(id, _)| *id)
                .collect();
            for id in estimated {
                self.allocate(id, Look::Estimate);
            }
        }
    }

    /// Wants a keyframe of every layer of a publisher (a receiver lost its picture, a resume).
    fn want_keyframe(&mut self, id: PeerId) {
        self.want_keyframes(id, LayerSet::first(MAX_LAYERS));
    }

    /// Wants a keyframe of some of a publisher's layers (a receiver to be switched to one).
    fn want_keyframes(&mut self, id: PeerId, layers: LayerSet) {
        if worker_of(id) != self.index {
            // A publisher on another worker: its worker asks it (and throttles).
            if self.remote.contains_key(&id) {
                let _ = self.mesh[worker_of(id)]
                    .control
                    .send(Control::WantKeyframe {
                        session: id,
                        layers,
                    });
            }
            return;
        }
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let mut layers = layers.intersection(peer.all_layers());
        // Only layers that flow answer: an encoder that dropped one (a small camera picture) would be
        // asked for it forever. A publisher with nothing flowing yet (or paused) is asked for all.
        let flowing = peer.video.available(self.now);
        if !flowing.is_empty() {
            layers = layers.intersection(flowing);
        }
        if peer.inbound_video().is_some() && !layers.is_empty() {
            let wanted = self.keyframe_wanted.entry(id).or_default();
            // A layer not wanted yet and not asked for within the retry interval (a receiver to be
            // switched there, often stepping down for bandwidth) is asked at the next turn, not after
            // the retry interval of a request for another layer: the switch waits on it. The interval
            // still paces each layer's own requests (a receiver whose video is held asks its layer's
            // keyframe on every packet; at once each time, every frame would be a keyframe).
            let now = self.now;
            let new = layers.iter().any(|l| {
                !wanted.contains(l)
                    && peer
                        .keyframe_asked(l)
                        .is_none_or(|at| now.saturating_duration_since(at) >= KEYFRAME_RETRY)
            });
            *wanted = wanted.union(layers);
            if new && let Some(peer) = self.peers.get_mut(&id) {
                peer.last_keyframe_request = None;
            }
        }
    }

    /// Drains every session with pending work until each reports its next timeout.
    fn drain(&mut self) {
        loop {
            while let Some(id) = self.dirty.pop() {
                self.drain_one(id);
            }
            for id in std::mem::take(&mut self.connected) {
                self.start_receiver(id);
            }
            if self.moves.is_empty() && self.dirty.is_empty() {
                return;
            }
            for (room, how) in std::mem::take(&mut self.moves) {
                self.renegotiate_room(&room, how);
            }
        }
    }

    /// A new receiver needs a keyframe from every publisher of its channel to start decoding: it gets
    /// their kept ones at once, and fresh ones are asked for.
    fn start_receiver(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let room = room_key(&peer.key);
        let now = self.now;
        for p in self.room_publishers(&room) {
            if p != id {
                self.serve_kept_keyframe(p, id, now);
                self.want_keyframe(p);
            }
        }
    }

    fn drain_one(&mut self, id: PeerId) {
        let mut immediate = 0;
        loop {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            if !peer.rtc.is_alive() {
                self.remove(id, true);
                return;
            }
            let output = match catch_unwind(AssertUnwindSafe(|| peer.rtc.poll_output())) {
                Ok(Ok(output)) => output,
                Ok(Err(e)) => {
                    tracing::warn!(user = %peer.key.user, error = %e, "media session output failed");
                    self.remove(id, true);
                    return;
                }
                Err(_) => {
                    tracing::error!(user = %peer.key.user, "media session panicked; closed");
                    self.remove(id, true);
                    return;
                }
            };
            match output {
                Output::Timeout(t) => {
                    if peer.closed {
                        self.remove(id, true);
                        return;
                    }
                    if t <= self.now + TIMER_TICK && immediate < MAX_IMMEDIATE_TIMEOUTS {
                        // Due now, or sooner than the loop's timer could wake for it (the pacer's
                        // next packet): fed at once at its own time, so what it releases goes out in
                        // this turn's batch and str0m's clock moves on as it asked (at most
                        // TIMER_TICK past the loop's; str0m ignores a time before one it was given).
                        immediate += 1;
                        let at = t.max(self.now);
                        let fed = catch_unwind(AssertUnwindSafe(|| {
                            peer.rtc.handle_input(Input::Timeout(at))
                        }));
                        if !matches!(fed, Ok(Ok(()))) {
                            tracing::warn!(user = %peer.key.user, "media session failed on a timeout; closed");
                            self.remove(id, true);
                            return;
                        }
                        continue;
                    }
                    // Only an earlier time needs a new entry: a session woken before its time is told
                    // its real one then. (Re-pushing every change would grow the heap by one entry per
                    // packet forwarded to each receiver.)
                    if peer.scheduled.is_none_or(|s| t < s) {
                        peer.scheduled = Some(t);
                        self.timers.push(Reverse((t, id)));
                    }
                    return;
                }
                Output::Transmit(t) => match t.proto {
                    Protocol::Udp => self.transmits.push((t.destination, t.contents.into())),
                    Protocol::Tcp => self.tcp_transmits.push((t.destination, t.contents.into())),
                    // No such candidate is offered.
                    Protocol::SslTcp | Protocol::Tls => {}
                },
                Output::Event(event) => self.event(id, event),
            }
        }
    }

    fn event(&mut self, id: PeerId, event: Event) {
        match event {
            Event::MediaAdded(added) => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                let kind = kind_of(added.kind);
                // Directions are the router's: sending = the member receives.
                if added.direction.is_sending() && peer.out_mid(kind).is_none() {
                    peer.outbound.push(OutLine {
                        mid: added.mid,
                        kind,
                        negotiated: added.direction,
                        active: true,
                    });
                    if kind == Kind::Video {
                        peer.video_send_rid = ensure_send_stream(&mut peer.rtc, added.mid);
                    }
                }
                if added.direction.is_receiving() && peer.may_publish {
                    peer.inbound.push((added.mid, kind));
                    if kind == Kind::Video
                        && let Some(Rids::Specific(rids)) =
                            peer.rtc.media(added.mid).map(|m| m.rids_rx())
                    {
                        // Simulcast: the layers in the order the offer lists them, best first.
                        peer.video_rids = rids.clone();
                    }
                    // A publisher arrived: members whose lines went quiet get them back, here and on
                    // the channel's other workers.
                    let key = peer.key.clone();
                    let kinds = peer.inbound.iter().map(|(_, k)| *k).collect();
                    self.announce(id, &key, kinds, None);
                    self.moves.push((room_key(&key), Move::Up));
                }
            }
            // Its lines are known once the events that follow are handled (str0m reports the media
            // after the connection), so the receiver is started at the end of the drain.
            Event::Connected => self.connected.push(id),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                // The member went silent (no consent checks): its session is over.
                self.remove(id, true);
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => self.reconnected(id),
            Event::RtpPacket(packet) => self.forward(id, packet),
            Event::Closed => {
                // The peer closed politely (DTLS close_notify): the session goes once its last output
                // (the close reply) is out, like any other ending.
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.closed = true;
                }
            }
            Event::MediaEgressStats(stats) => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                let before = peer.egress_nacks.insert(stats.mid, stats.nacks);
                self.stats.nacks_received += stats.nacks.saturating_sub(before.unwrap_or(0));
            }
            Event::PeerStats(stats) => {
                // The estimate without str0m's 3 s average: a path that narrowed shows here first.
                // The round trip (send → TWCC feedback, the path's queue in it): how long a step down
                // waits for the path to drain, and — a queue standing deep in it — a step down of its
                // own when GoogCC is late ([`crate::queue_delay`]).
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                peer.rtt = stats.rtt;
                let queue_built = stats
                    .rtt
                    .is_some_and(|rtt| peer.queue_delay.observe(rtt, self.now));
                if let Some(unaveraged) = stats.bwe_tx {
                    tracing::trace!(session = ?id, unaveraged = unaveraged.as_u64(), loss = ?stats.egress_loss_fraction, rtt = ?stats.rtt, "unaveraged estimate");
                    self.allocate(id, Look::Unaveraged(unaveraged.as_u64()));
                }
                if queue_built {
                    tracing::debug!(session = ?id, rtt = ?stats.rtt, "a queue stands in the round trip");
                    self.allocate(id, Look::QueueBuilt);
                }
            }
            Event::MediaIngressStats(stats) => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                let before = peer.ingress_packets.insert(stats.mid, stats.packets);
                let received = stats.packets.saturating_sub(before.unwrap_or(0));
                if let Some(fraction) = stats.loss {
                    self.lost_estimate += crate::loss::lost_between(received, fraction);
                    self.stats.packets_lost = self.lost_estimate as u64;
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc {
                estimate,
                can_probe,
            }) => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                // Without probing (no TWCC negotiated, or not yet keyed) the estimate is str0m's
                // guess, not the member's path: no allocation then.
                peer.estimate = can_probe.then(|| estimate.as_u64());
                tracing::debug!(session = ?id, estimate = estimate.as_u64(), can_probe, "bandwidth estimate");
                if can_probe {
                    self.stats.observe_estimate(estimate.as_u64());
                    self.allocate(id, Look::Estimate);
                }
            }
            Event::KeyframeRequest(_) => {
                // A receiver lost its picture: ask the publishers of its channel.
                let Some(peer) = self.peers.get(&id) else {
                    return;
                };
                let room = room_key(&peer.key);
                for p in self.room_publishers(&room) {
                    if p != id {
                        self.want_keyframe(p);
                    }
                }
            }
            _ => {}
        }
    }

    /// A session's ICE is up again after a restart. Frames were lost both ways meanwhile, so a keyframe
    /// is asked at once — rather than at the next decoder's PLI, and past the publisher's request
    /// throttle, as an explicit request is (a restart is one event per network change) — of its
    /// channel's publishers (for it) and of itself when it publishes (for its receivers).
    fn reconnected(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if !std::mem::take(&mut peer.restarting) {
            return;
        }
        let room = room_key(&peer.key);
        for p in self.room_publishers(&room) {
            if let Some(publisher) = self.peers.get_mut(&p) {
                publisher.last_keyframe_request = None;
            }
            self.want_keyframe(p);
        }
    }

    /// Every session of a channel that may publish to this worker's receivers: its sessions here and
    /// its publishers on other workers.
    fn room_publishers(&self, room: &RoomKey) -> Vec<PeerId> {
        self.rooms
            .get(room)
            .map(|r| r.peers.iter().chain(&r.remote).copied().collect())
            .unwrap_or_default()
    }

    /// The channel is now on `workers` (this one among them, or not any more): publishers here are
    /// announced to the workers that are new to it.
    fn set_room_workers(&mut self, room: RoomKey, workers: Vec<usize>) {
        let others: Vec<usize> = workers
            .iter()
            .copied()
            .filter(|w| *w != self.index)
            .collect();
        let before = self.room_workers.remove(&room).unwrap_or_default();
        let publishers: Vec<(PeerId, PeerKey, Vec<Kind>)> = self
            .room_peers(&room)
            .into_iter()
            .filter_map(|id| self.peers.get(&id))
            .filter(|p| !p.inbound.is_empty())
            .map(|p| {
                let id = self.by_key[&p.key];
                (
                    id,
                    p.key.clone(),
                    p.inbound.iter().map(|(_, k)| *k).collect(),
                )
            })
            .collect();
        for w in others.iter().filter(|w| !before.contains(w)) {
            for (id, key, kinds) in &publishers {
                self.announce(*id, key, kinds.clone(), Some(*w));
            }
        }
        if !others.is_empty() && workers.contains(&self.index) {
            self.room_workers.insert(room, others);
        }
    }

    /// Tells the channel's other workers (or just `only`) what a publisher here publishes (nothing: it
    /// is gone).
    fn announce(&self, session: PeerId, key: &PeerKey, kinds: Vec<Kind>, only: Option<usize>) {
        let targets: Vec<usize> = match only {
            Some(w) => vec![w],
            None => self
                .room_workers
                .get(&room_key(key))
                .cloned()
                .unwrap_or_default(),
        };
        for w in targets {
            let _ = self.mesh[w].control.send(Control::Publisher {
                session,
                key: key.clone(),
                kinds: kinds.clone(),
            });
        }
    }

    /// What another worker says.
    pub(crate) fn control(&mut self, control: Control) {
        match control {
            Control::Paused { key, paused } => {
                let room = self.rooms.entry(room_key(&key)).or_default();
                if paused {
                    room.paused.insert(key.user);
                } else if room.paused.remove(&key.user) {
                    self.resume(&key.app, &key.channel, &key.user);
                }
            }
            Control::WantKeyframe { session, layers } => {
                if let Some(peer) = self.peers.get_mut(&session) {
                    peer.last_keyframe_request = None;
                }
                self.want_keyframes(session, layers);
            }
            Control::Publisher {
                session,
                key,
                kinds,
            } => {
                let room = room_key(&key);
                if kinds.is_empty() {
                    if self.remote.remove(&session).is_some() {
                        for other in self.peers.values_mut() {
                            other.first_received.retain(|(p, _)| *p != session);
                            other.layers.remove(&session);
                            other.bandwidth.remove(&session);
                        }
                        if let Some(r) = self.rooms.get_mut(&room) {
                            r.remote.retain(|p| *p != session);
                            if r.is_empty() {
                                self.rooms.remove(&room);
                            }
                        }
                        self.moves.push((room, Move::Down));
                    }
                    return;
                }
                match self.remote.get_mut(&session) {
                    Some(known) => known.kinds = kinds,
                    None => {
                        self.remote.insert(
                            session,
                            RemotePublisher {
                                key,
                                kinds,
                                video: PublisherLayers::default(),
                                frames: FrameGate::default(),
                            },
                        );
                        self.rooms
                            .entry(room.clone())
                            .or_default()
                            .remote
                            .push(session);
                    }
                }
                self.moves.push((room, Move::Up));
            }
        }
    }

    fn room_peers(&self, room: &RoomKey) -> Vec<PeerId> {
        self.rooms
            .get(room)
            .map(|r| r.peers.clone())
            .unwrap_or_default()
    }

    /// Forwards a publisher's RTP packet to every other member of its channel that receives its kind,
    /// rewritten for each receiver's line ([`crate::feed`]), and hands it once to each other worker the
    /// channel is on ([`crate::relay`]), unless the publisher is paused.
    fn forward(&mut self, from: PeerId, packet: RtpPacket) {
        let Some(publisher) = self.peers.get_mut(&from) else {
            return;
        };
        let pt = packet.header.payload_type;
        let Some(params) = publisher.rtc.codec_config().find(|p| p.pt() == pt).copied() else {
            return;
        };
        let codec = params.spec().codec;
        let kind = if codec.is_video() {
            Kind::Video
        } else if codec.is_audio() {
            Kind::Audio
        } else {
            return;
        };
        if !publisher.publishes(kind) {
            // Media on a line this member may not publish on is dropped.
            return;
        }
        let layer = match kind {
            Kind::Video => match publisher.layer_of(*packet.header.ssrc) {
                Some(layer) => layer,
                // A simulcast layer past the ones forwarded.
                None => return,
            },
            Kind::Audio => 0,
        };
        let starts = kind == Kind::Video && starts_keyframe(video_codec(codec), &packet.payload);
        let out = Forwarded {
            source: Source {
                session: from,
                ssrc: *packet.header.ssrc,
            },
            kind,
            params,
            seq: *packet.seq_no,
            time: packet.header.timestamp,
            marker: packet.header.marker,
            starts,
            layer,
            payload: packet.payload,
            ext: forwarded_extensions(&packet.header.ext_vals),
            at: packet.timestamp,
        };
        if starts && let Some(wanted) = self.keyframe_wanted.get_mut(&from) {
            *wanted = wanted.without(layer);
            if wanted.is_empty() {
                self.keyframe_wanted.remove(&from);
            }
        }
        if kind == Kind::Video {
            keep(&mut publisher.video, &out);
        }
        let room = room_key(&publisher.key);
        let paused = holds_back(&self.rooms, &room, &publisher.key);
        if !publisher
            .frames
            .pass(paused, out.kind, out.source.ssrc, out.time, out.marker)
        {
            return;
        }
        if let Some(others) = self.room_workers.get(&room) {
            for w in others {
                if self.mesh[*w].packets.try_send(out.clone()).is_err() {
                    self.stats.relay_dropped += 1;
                }
            }
        }
        self.fan_out(&room, &out);
    }

    /// A packet another worker handed over, from one of its publishers: kept if it starts or continues
    /// a keyframe, and fanned out to this worker's receivers.
    pub(crate) fn relayed(&mut self, out: Forwarded) {
        let Some(publisher) = self.remote.get_mut(&out.source.session) else {
            return;
        };
        if out.kind == Kind::Video {
            keep(&mut publisher.video, &out);
        }
        let room = room_key(&publisher.key);
        let paused = holds_back(&self.rooms, &room, &publisher.key);
        if publisher
            .frames
            .pass(paused, out.kind, out.source.ssrc, out.time, out.marker)
        {
            self.fan_out(&room, &out);
        }
    }

    /// Writes a publisher's packet to every receiver of the channel on this worker.
    fn fan_out(&mut self, room: &RoomKey, out: &Forwarded) {
        let Some(targets) = self.rooms.get(room).map(|r| r.peers.clone()) else {
            return;
        };
        // The publisher's layers that flow, once for every receiver of the packet.
        let available = match out.kind {
            Kind::Video => self.available_layers(out.source.session),
            Kind::Audio => LayerSet::NONE,
        };
        for to in targets {
            if to != out.source.session {
                self.send_to(to, out, room, available);
            }
        }
    }

    /// The member key of a publisher, local or on another worker.
    fn publisher_key(&self, session: PeerId) -> Option<&PeerKey> {
        match self.peers.get(&session) {
            Some(peer) => Some(&peer.key),
            None => self.remote.get(&session).map(|r| &r.key),
        }
    }

    /// Whether a publisher's media is held back (in a private call).
    fn is_paused(&self, room: &RoomKey, session: PeerId) -> bool {
        self.publisher_key(session)
            .is_some_and(|key| holds_back(&self.rooms, room, key))
    }

    /// Whether `session` still feeds `kind` lines in `room` (present, publishing it, not paused).
    fn still_feeds(&self, session: PeerId, kind: Kind, room: &RoomKey) -> bool {
        let publishes = match self.peers.get(&session) {
            Some(peer) => peer.publishes(kind),
            None => self
                .remote
                .get(&session)
                .is_some_and(|r| r.kinds.contains(&kind)),
        };
        publishes && !self.is_paused(room, session)
    }

    /// Writes one publisher packet to one receiver, if its line takes it (and, for video, it is of the
    /// layer the receiver gets: [`crate::simulcast`]).
    fn send_to(
        &mut self,
        to: PeerId,
        out: &Forwarded,
        room: &RoomKey,
        available: LayerSet,
    ) -> bool {
        let decision = match out.kind {
            Kind::Video => self.layer_decision(to, out, available),
            Kind::Audio => Decision::Forward,
        };
        if decision == Decision::Drop {
            return false;
        }
        let current = self
            .peers
            .get(&to)
            .and_then(|r| r.feeds.get(&out.kind))
            .and_then(Feed::source);
        let current_feeds = current.is_some_and(|c| {
            c.session == out.source.session || self.still_feeds(c.session, out.kind, room)
        });
        let written = self.write_line(to, out, |feed| {
            feed.admit(
                out.source,
                out.seq,
                out.time,
                out.starts,
                current_feeds,
                out.at,
            )
            .ok()
        });
        if written && let Decision::SwitchTo(layer) = decision {
            self.switch_layer(to, out.source.session, layer);
        }
        written
    }

    /// Whether a publisher's video packet is of the layer a receiver gets, or switches it there
    /// (`available`: the publisher's layers that flow); asks the publisher for the keyframe the
    /// receiver's next switch waits for.
    fn layer_decision(&mut self, to: PeerId, out: &Forwarded, available: LayerSet) -> Decision {
        let Some(receiver) = self.peers.get_mut(&to) else {
            return Decision::Drop;
        };
        let cap = match receiver
            .bandwidth
            .get(&out.source.session)
            .map(|a| a.allowance())
        {
            Some(Allowance::Paused) => return Decision::Drop,
            Some(Allowance::Video(allowed)) => receiver.max_layer.max(allowed),
            None => receiver.max_layer,
        };
        let selector = receiver.layers.entry(out.source.session).or_default();
        let packet = simulcast::LayerPacket {
            layer: out.layer,
            starts_keyframe: out.starts,
            time: out.time,
            marker: out.marker,
        };
        let decision = selector.decide(cap, packet, available, self.now);
        if let Some(layer) = selector.keyframe_request(cap, available, self.now) {
            self.want_keyframes(out.source.session, LayerSet::NONE.with(layer));
        }
        decision
    }

    /// Looks at what a receiver's bandwidth estimate allows of each publisher's video it gets
    /// ([`crate::bandwidth`]): its layer caps, video paused or resumed (the member is told), and what
    /// its estimator is to probe for; `look` says why (a backed-up publisher's video: one layer down at
    /// once; a queue standing in the path's round trip: the lowest layer at once; an unaveraged
    /// estimate: only down). The budget per publisher is the estimate less the audio the receiver
    /// gets, shared equally.
    fn allocate(&mut self, id: PeerId, look: Look) {
        let now = self.now;
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        // No averaged estimate (no probing yet, or no TWCC): the unaveraged one is str0m's guess too.
        let Some(averaged) = peer.estimate else {
            return;
        };
        let estimate = match look {
            Look::Unaveraged(unaveraged) => unaveraged,
            Look::Estimate | Look::Congested(_) | Look::QueueBuilt => averaged,
        };
        if peer.out_mid(Kind::Video).is_none() {
            return;
        }
        let room = room_key(&peer.key);
        let publishers: Vec<(PeerId, crate::bandwidth::LayerRates)> = self
            .room_publishers(&room)
            .into_iter()
            .filter(|p| *p != id && self.still_feeds(*p, Kind::Video, &room))
            .filter_map(|p| {
                let rates = match self.peers.get(&p) {
                    Some(publisher) => publisher.video.rates(now),
                    None => self.remote.get(&p)?.video.rates(now),
                };
                Some((p, rates))
            })
            .collect();
        if publishers.is_empty() {
            return;
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let audio = peer.audio_rate.bits_per_second(now).unwrap_or(0);
        let budget = estimate.saturating_sub(audio) / publishers.len() as u64;
        let (mut minimum, mut desired) = (audio, audio);
        let mut paused = 0;
        for (publisher, rates) in &publishers {
            let allocator = peer.bandwidth.entry(*publisher).or_default();
            let before = allocator.allowance();
            let after = match look {
                Look::Unaveraged(_) => allocator.unaveraged(budget, rates, now),
                Look::QueueBuilt => {
                    allocator.queue_built(rates, now);
                    allocator.update(budget, rates, now)
                }
                Look::Congested(p) if p == *publisher => {
                    allocator.congested(rates, now);
                    allocator.update(budget, rates, now)
                }
                Look::Estimate | Look::Congested(_) => allocator.update(budget, rates, now),
            };
            if let Some((at_least, wanted)) = allocator.probe_targets(rates, now) {
                minimum += at_least;
                desired += wanted;
            }
            if after == Allowance::Paused {
                paused += 1;
            }
            if before == after {
                continue;
            }
            tracing::debug!(user = %peer.key.user, ?look, estimate, budget, ?before, ?after, "bandwidth allowance");
            if let (Allowance::Video(was), Allowance::Video(now_at)) = (before, after)
                && now_at > was
                && let Some(selector) = peer.layers.get_mut(publisher)
            {
                // A step down is congestion (the viewer's own cap is not the allocator's): the layer
                // it is on stops at the end of its frame rather than queue more in front of the lower
                // layer's keyframe, which is asked for once the path's queue has drained — as deep
                // as the last round trip its feedback measured ([`simulcast::LayerSelector::freeze`]).
                let drained = now + peer.rtt.unwrap_or_default().min(MAX_DRAIN_WAIT);
                selector.freeze(drained);
                // What the narrow path dropped of the old layer is not sent again: the receiver's
                // NACKs for it would be answered with the old layer's packets, which then crowd the
                // link in front of the lower layer's keyframe for a second or more (BENCHMARKS
                // `bandwidth` run 10). Emptying the line's resend cache leaves those NACKs unanswered;
                // the lower layer's keyframe makes them moot.
                if let Some(mid) = peer.out_mid(Kind::Video)
                    && let Some(stream) = peer
                        .rtc
                        .direct_api()
                        .stream_tx_by_mid(mid, peer.video_send_rid)
                {
                    stream.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(RTX_RATIO_CAP));
                }
                if tracing::enabled!(tracing::Level::TRACE)
                    && let Some(mid) = peer.out_mid(Kind::Video)
                {
                    let queued = queued_video(&mut peer.rtc, mid, peer.video_send_rid, now);
                    tracing::trace!(user = %peer.key.user, ?queued, ?drained, "layer frozen for a step down");
                }
            }
            if after == Allowance::Paused {
                // The line starts again at a keyframe when video resumes, numbered on without a gap.
                if let Some(selector) = peer.layers.get_mut(publisher) {
                    selector.stop();
                }
                if let Some(feed) = peer.feeds.get_mut(&Kind::Video)
                    && feed.source().is_some_and(|s| s.session == *publisher)
                {
                    feed.restart();
                }
            }
        }
        // The member's one video line shows nothing only when every publisher's video is paused.
        let video_paused = paused == publishers.len();
        if video_paused != peer.video_paused {
            peer.video_paused = video_paused;
            if video_paused {
                self.stats.video_pauses += 1;
            }
            tracing::info!(user = %peer.key.user, channel = %peer.key.channel, estimate, video_paused, "video paused for bandwidth");
            let _ = self.events.send(MediaEvent::VideoPaused {
                key: peer.key.clone(),
                paused: video_paused,
            });
        }
        if peer.bwe_targets != Some((minimum, desired)) {
            peer.bwe_targets = Some((minimum, desired));
            peer.rtc
                .bwe()
                .set_bitrate(Bitrate::bps(minimum), Bitrate::bps(desired));
            self.dirty.push(id);
        }
    }

    /// A receiver's line now carries `layer` of `publisher`.
    fn switch_layer(&mut self, to: PeerId, publisher: PeerId, layer: Layer) {
        if let Some(receiver) = self.peers.get_mut(&to)
            && receiver.layers.entry(publisher).or_default().switch(layer)
        {
            if tracing::enabled!(tracing::Level::TRACE) {
                let queued = receiver.out_mid(Kind::Video).and_then(|mid| {
                    queued_video(&mut receiver.rtc, mid, receiver.video_send_rid, self.now)
                });
                tracing::trace!(user = %receiver.key.user, layer, ?queued, "layer switched");
            }
            self.stats.layer_switches += 1;
        }
    }

    /// The layers of a publisher's video that flow now (here or on another worker).
    fn available_layers(&self, publisher: PeerId) -> LayerSet {
        match self.peers.get(&publisher) {
            Some(p) => p.video.available(self.now),
            None => self
                .remote
                .get(&publisher)
                .map_or(LayerSet::NONE, |r| r.video.available(self.now)),
        }
    }

    /// Writes a packet on a receiver's line where `place` puts it (its sequence number and RTP time
    /// there), with the receiver's payload type; counts it and reports a first frame.
    fn write_line(
        &mut self,
        to: PeerId,
        out: &Forwarded,
        place: impl FnOnce(&mut Feed) -> Option<(u64, u32)>,
    ) -> bool {
        let Some(receiver) = self.peers.get_mut(&to) else {
            return false;
        };
        let Some(mid) = receiver.out_mid(out.kind) else {
            return false;
        };
        let new_line = !receiver.feeds.contains_key(&out.kind);
        if out.kind == Kind::Video
            && !new_line
            && backlogged(&mut receiver.rtc, mid, receiver.video_send_rid, self.now)
        {
            // The receiver's path takes less than it is sent (its estimate has not caught up yet):
            // rather than queue video it would see late, the line skips to the next keyframe, whose
            // numbers follow on without a gap, and that keyframe is asked for.
            if let Some(feed) = receiver.feeds.get_mut(&Kind::Video) {
                feed.restart();
            }
            self.stats.video_held += 1;
            tracing::trace!(session = ?to, "video held: queue too old");
            self.want_keyframes(out.source.session, LayerSet::NONE.with(out.layer));
            self.allocate(to, Look::Congested(out.source.session));
            return false;
        }
        let feed = receiver
            .feeds
            .entry(out.kind)
            .or_insert_with(|| Feed::new(out.kind, out.params.spec().clock_rate.get()));
        let Some((seq, time)) = place(feed) else {
            return false;
        };
        let patch = match out.params.spec().codec {
            Codec::Vp8 => feed.vp8_patch(&out.payload),
            _ => None,
        };
        let rtc = &receiver.rtc;
        let Some(pt) = feed.map_pt(out.params.pt(), || {
            rtc.codec_config().match_params(out.params).map(|p| p.pt())
        }) else {
            return false;
        };
        let rid = match out.kind {
            Kind::Video => receiver.video_send_rid,
            Kind::Audio => None,
        };
        let mut api = receiver.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, rid) else {
            return false;
        };
        if new_line {
            // What a receiver's NACKs can ask for: a round trip's worth is what they do ask for, and
            // every receiver line keeps its own history (str0m's default, 3 s, costs ≈ 0.5 MB a
            // viewer at 1.5 Mbit/s).
            stream.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(RTX_RATIO_CAP));
        }
        let mut write = RtpWrite::new(pt, seq.into(), time, out.at, out.payload.clone())
            .marker(out.marker)
            .nackable(out.kind == Kind::Video)
            .ext_vals(out.ext.clone());
        if let Some(patch) = patch {
            write = write.vp8_patch(patch);
        }
        stream.write_rtp(write);
        if out.kind == Kind::Audio {
            receiver.audio_rate.add(out.payload.len(), self.now);
        }
        self.stats.packets_forwarded += 1;
        if out.kind == Kind::Audio || out.marker {
            self.stats.frames_forwarded += 1;
        }
        self.dirty.push(to);
        if !receiver
            .first_received
            .insert((out.source.session, out.kind))
        {
            return true;
        }
        let to_user = receiver.key.user.clone();
        if let Some(from) = self.publisher_key(out.source.session) {
            let _ = self.events.send(MediaEvent::FirstFrame {
                from: from.clone(),
                to: to_user,
                kind: out.kind,
            });
        }
        true
    }

    /// Starts `receiver`'s video line at `publisher`'s kept keyframe (a publisher here or on another
    /// worker), if it has a fresh one and the line is free for it; the line then waits for the
    /// publisher's next keyframe (asked for by the caller).
    fn serve_kept_keyframe(&mut self, publisher: PeerId, receiver: PeerId, now: Instant) {
        let Some(receiver_peer) = self.peers.get(&receiver) else {
            return;
        };
        let cap = match receiver_peer
            .bandwidth
            .get(&publisher)
            .map(|a| a.allowance())
        {
            Some(Allowance::Paused) => return,
            Some(Allowance::Video(allowed)) => receiver_peer.max_layer.max(allowed),
            None => receiver_peer.max_layer,
        };
        // The layer the receiver is to get: its kept keyframe starts it there.
        let Some(layer) = simulcast::target(cap, self.available_layers(publisher)) else {
            return;
        };
        let kept = match self.peers.get(&publisher) {
            Some(p) => p.video.fresh_keyframe(layer, now),
            None => self
                .remote
                .get(&publisher)
                .and_then(|r| r.video.fresh_keyframe(layer, now)),
        };
        let Some((kept, ssrc, params)) = kept else {
            return;
        };
        let Some(room) = self.publisher_key(publisher).map(room_key) else {
            return;
        };
        if self.is_paused(&room, publisher) {
            return;
        }
        let source = Source {
            session: publisher,
            ssrc,
        };
        let current = self
            .peers
            .get(&receiver)
            .and_then(|r| r.feeds.get(&Kind::Video))
            .and_then(Feed::source);
        if let Some(c) = current
            && c.session != publisher
            && self.still_feeds(c.session, Kind::Video, &room)
        {
            return;
        }
        let mut started = false;
        for (i, packet) in kept.into_iter().enumerate() {
            let out = Forwarded {
                source,
                kind: Kind::Video,
                params,
                seq: packet.seq,
                time: packet.time,
                marker: packet.marker,
                starts: false,
                layer,
                payload: packet.payload,
                ext: ExtensionValues::default(),
                at: now,
            };
            started |= self.write_line(receiver, &out, |feed| {
                if i == 0 {
                    feed.start_at_kept_keyframe(source, out.seq, out.time, now);
                }
                feed.rewrite_kept(source, out.seq, out.time, now)
            });
        }
        if started {
            self.stats.keyframes_from_cache += 1;
            self.switch_layer(receiver, publisher, layer);
        }
    }

    /// The session of a channel member that publishes, here or on another worker.
    fn publisher_session(&self, key: &PeerKey) -> Option<PeerId> {
        self.by_key.get(key).copied().or_else(|| {
            self.remote
                .iter()
                .find(|(_, r)| r.key == *key)
                .map(|(id, _)| *id)
        })
    }

    /// A paused publisher forwards again: every line it fed starts anew (numbered on from where it
    /// stopped), at its kept keyframe where it has a fresh one.
    fn resume(&mut self, app: &str, channel: &str, publisher: &str) {
        let key = PeerKey {
            app: app.to_owned(),
            channel: channel.to_owned(),
            user: publisher.to_owned(),
        };
        let Some(from) = self.publisher_session(&key) else {
            return;
        };
        let now = self.now;
        for to in self.room_peers(&room_key(&key)) {
            if to == from {
                continue;
            }
            if let Some(receiver) = self.peers.get_mut(&to) {
                for feed in receiver.feeds.values_mut() {
                    if feed.source().is_some_and(|s| s.session == from) {
                        feed.restart();
                    }
                }
            }
            self.serve_kept_keyframe(from, to, now);
        }
    }

    fn want_keyframe_from(&mut self, app: &str, channel: &str, publisher: &str) {
        let key = PeerKey {
            app: app.to_owned(),
            channel: channel.to_owned(),
            user: publisher.to_owned(),
        };
        if let Some(id) = self.by_key.get(&key).copied() {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.last_keyframe_request = None;
            }
            self.want_keyframe(id);
        }
    }

    fn ask_keyframe(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.last_keyframe_request = Some(now);
        let Some(mid) = peer.inbound_video() else {
            return;
        };
        // One PLI per layer wanted, on that layer's stream (a simulcast encoder answers per layer). A
        // layer that stopped flowing since it was wanted is not asked again: its encoder dropped it.
        let rids: Vec<Option<Rid>> = if peer.video_rids.is_empty() {
            peer.layer_keyframe_asked[0] = Some(now);
            vec![None]
        } else {
            let mut layers = self.keyframe_wanted.get(&id).copied().unwrap_or_default();
            let flowing = peer.video.available(now);
            if !flowing.is_empty() {
                layers = layers.intersection(flowing);
            }
            if layers.is_empty() {
                self.keyframe_wanted.remove(&id);
                return;
            }
            self.keyframe_wanted.insert(id, layers);
            for layer in layers.iter() {
                peer.layer_keyframe_asked[usize::from(layer)] = Some(now);
            }
            layers
                .iter()
                .filter_map(|l| peer.video_rids.get(usize::from(l)).copied().map(Some))
                .collect()
        };
        tracing::trace!(session = ?id, ?rids, "keyframe asked");
        let mut api = peer.rtc.direct_api();
        let mut asked = false;
        for rid in rids {
            if let Some(stream) = api.stream_rx_by_mid(mid, rid) {
                stream.request_keyframe(KeyframeRequestKind::Pli);
                asked = true;
            }
        }
        if asked {
            self.dirty.push(id);
        }
    }

    /// Re-offers every member of a room whose lines should move `how`.
    fn renegotiate_room(&mut self, room: &RoomKey, how: Move) {
        for id in self.room_peers(room) {
            self.renegotiate(id, how);
        }
    }

    /// Offers a member the line changes its channel calls for, unless an offer is already in flight
    /// (then it is looked at again when that one is answered).
    fn renegotiate(&mut self, id: PeerId, how: Move) {
        self.offer_lines(id, how, false);
    }

    /// [`Self::renegotiate`]; with `resync`, also when no line flips but str0m's directions differ from
    /// the lines' (after an ICE restart, whose offer the member wrote).
    fn offer_lines(&mut self, id: PeerId, how: Move, resync: bool) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let others: Vec<PeerId> = self
            .room_publishers(&room_key(&peer.key))
            .into_iter()
            .filter(|p| *p != id)
            .collect();
        let published = |kind: Kind| {
            others.iter().any(|p| match self.peers.get(p) {
                Some(p) => p.publishes(kind),
                None => self.remote.get(p).is_some_and(|r| r.kinds.contains(&kind)),
            })
        };
        let flips = changes(&peer.outbound, published, how);
        if flips.is_empty() && !resync {
            return;
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.pending_offer.is_some() {
            peer.recheck_after_answer = true;
            return;
        }
        for (i, active) in &flips {
            peer.outbound[*i].active = *active;
        }
        let lines = peer.outbound.clone();
        let made = catch_unwind(AssertUnwindSafe(|| {
            let mut api = peer.rtc.sdp_api();
            for line in &lines {
                api.set_direction(line.mid, line.direction());
            }
            api.apply()
        }));
        match made {
            Ok(Some((offer, pending))) => {
                peer.revision += 1;
                peer.pending_offer = Some((peer.revision, pending));
                let _ = self.events.send(MediaEvent::Offer {
                    key: peer.key.clone(),
                    revision: peer.revision,
                    sdp_offer: offer.to_sdp_string(),
                });
                self.dirty.push(id);
            }
            Ok(None) => {}
            Err(_) => {
                tracing::error!(user = %peer.key.user, "media renegotiation panicked; closed");
                self.remove(id, true);
            }
        }
    }

    /// Applies a member's answer to the pending offer. Refusals (no session, nothing pending, a stale
    /// revision, an answer that does not parse) change nothing; an answer that parses but that str0m
    /// cannot apply leaves the session unusable, so it is closed and reported.
    fn accept_answer(
        &mut self,
        key: &PeerKey,
        revision: u64,
        answer: &str,
    ) -> Result<(), MediaError> {
        let id = *self.by_key.get(key).ok_or(MediaError::NoSession)?;
        let peer = self.peers.get_mut(&id).ok_or(MediaError::NoSession)?;
        match peer.pending_offer.as_ref().map(|(r, _)| *r) {
            None => return Err(MediaError::NoPendingOffer),
            Some(pending) if pending != revision => {
                return Err(MediaError::StaleRevision {
                    answered: revision,
                    pending,
                });
            }
            Some(_) => {}
        }
        let parsed = SdpAnswer::from_sdp_string(answer)
            .map_err(|e| MediaError::InvalidAnswer(e.to_string()))?;
        if let Some(pt) = sdp_rules::payload_type_with_two_meanings(answer) {
            return Err(MediaError::InvalidAnswer(format!(
                "payload type {pt} has two meanings"
            )));
        }
        let answer = parsed;
        let (_, pending) = peer.pending_offer.take().expect("checked above");
        let applied = catch_unwind(AssertUnwindSafe(|| {
            peer.rtc.sdp_api().accept_answer(pending, answer)
        }));
        let failure = match applied {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("panicked".to_owned()),
        };
        if let Some(why) = failure {
            tracing::warn!(user = %key.user, channel = %key.channel, error = %why, "media answer not applicable; session closed");
            self.remove(id, true);
            return Err(MediaError::InvalidAnswer(why));
        }
        self.dirty.push(id);
        if std::mem::take(&mut peer.recheck_after_answer) {
            self.renegotiate(id, Move::Both);
        }
        // Lines that came back need a picture at once.
        let room = room_key(key);
        for p in self.room_peers(&room) {
            if p != id {
                self.want_keyframe(p);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
