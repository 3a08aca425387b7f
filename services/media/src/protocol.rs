//! What the router's handle, its workers and the node say to each other: who a session is, the
//! commands a worker takes, the events the node hears, the counters. Plain data, so every module of
//! the router depends on this one and none on the handle ([`crate::router`]).

use tokio::sync::oneshot;

use crate::error::MediaError;

/// Upper bounds (bits/s) of the buckets receivers' bandwidth estimates are counted in
/// ([`RouterStats::estimate_buckets`]): from below an audio-only link to a wide one.
pub const ESTIMATE_BUCKETS_BPS: [u64; 12] = [
    50_000, 100_000, 200_000, 300_000, 500_000, 750_000, 1_000_000, 1_500_000, 2_000_000,
    3_000_000, 5_000_000, 10_000_000,
];

impl RouterStats {
    /// Counts one bandwidth estimate.
    pub(crate) fn observe_estimate(&mut self, bps: u64) {
        let bucket = ESTIMATE_BUCKETS_BPS
            .iter()
            .position(|bound| bps <= *bound)
            .unwrap_or(ESTIMATE_BUCKETS_BPS.len());
        self.estimate_buckets[bucket] += 1;
        self.estimate_sum_bps += bps;
        self.estimate_count += 1;
    }
}

/// Which membership a media session belongs to: one session per user per channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerKey {
    pub app: String,
    pub channel: String,
    pub user: String,
}

/// Audio or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Audio,
    Video,
}

/// What the router tells the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// The first frame of `kind` from `from` was forwarded to `to` (a member of the same channel).
    FirstFrame {
        from: PeerKey,
        to: String,
        kind: Kind,
    },
    /// A session ended by itself (ICE or DTLS failed, the peer went silent, or it misbehaved).
    SessionClosed { key: PeerKey },
    /// The member's estimated bandwidth no longer carries the lowest video layer of what it receives
    /// (`paused`: its video stopped, its audio goes on), or carries it again (`!paused`: video resumes
    /// at the next keyframe). Said once per change (`crate::bandwidth`).
    VideoPaused { key: PeerKey, paused: bool },
    /// The router renegotiates a member's session (its lines turn inactive or active again): the member
    /// must answer `sdp_offer` through [`crate::MediaRouter::accept_answer`] with this `revision`.
    Offer {
        key: PeerKey,
        revision: u64,
        sdp_offer: String,
    },
    /// This node is an edge of the channel and has heard nothing from its origin (no packet, no
    /// state) for `relay_node::STALL_AFTER` (3 s): its viewers get nothing from there. Said once per
    /// stall; the channel's origin publishers stay known until the node unsubscribes.
    RelayStalled {
        app: String,
        channel: String,
        origin_node: String,
    },
    /// The origin of a stalled relay is heard again.
    RelayResumed {
        app: String,
        channel: String,
        origin_node: String,
    },
}

pub(crate) enum Command {
    Open {
        key: PeerKey,
        may_publish: bool,
        offer: String,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    Close {
        key: PeerKey,
    },
    CloseRoom {
        app: String,
        channel: String,
    },
    AcceptAnswer {
        key: PeerKey,
        revision: u64,
        answer: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// The member's offer restarting ICE on its session ([`crate::ice_restart`]); the reply is the
    /// answer.
    RestartIce {
        key: PeerKey,
        offer: String,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    Forward {
        app: String,
        channel: String,
        publisher: String,
        forward: bool,
    },
    RequestKeyframe {
        app: String,
        channel: String,
        publisher: String,
    },
    /// The best simulcast layer a member is to receive (0: the top).
    SetMaxLayer {
        key: PeerKey,
        layer: crate::simulcast::Layer,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Stats {
        reply: oneshot::Sender<RouterStats>,
    },
    /// The channel is now on these workers (an empty list: on none).
    RoomWorkers {
        app: String,
        channel: String,
        workers: Vec<usize>,
    },
    /// Ends the worker's loop (its sessions end with it).
    Stop,
}

/// Counters for benchmarks and metrics (all since the router started).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    pub sessions: usize,
    /// UDP datagrams received (RTP, RTCP, STUN, DTLS; also those dropped as unknown).
    pub datagrams_in: u64,
    /// UDP datagrams sent.
    pub datagrams_out: u64,
    /// Bytes of the datagrams received (UDP payload).
    pub bytes_in: u64,
    /// Bytes of the datagrams sent.
    pub bytes_out: u64,
    /// RTP packets from publishers estimated lost on the way in (see `loss`).
    pub packets_lost: u64,
    /// Video frames (their last packets) and audio packets written to receivers.
    pub frames_forwarded: u64,
    /// RTP packets written to receivers (each publisher packet once per receiver).
    pub packets_forwarded: u64,
    /// NACKs received from receivers (each answered from the receiver stream's send history when the
    /// packet is still there).
    pub nacks_received: u64,
    /// Receivers started at a publisher's kept keyframe instead of waiting for a new one.
    pub keyframes_from_cache: u64,
    /// Send system calls made (datagrams out ÷ this = the batching factor).
    pub send_syscalls: u64,
    /// Datagrams the kernel refused (full socket buffer) and the router dropped.
    pub datagrams_dropped: u64,
    /// CPU time of the worker threads (user + system), in milliseconds (10 ms resolution).
    pub cpu_millis: u64,
    /// Packets for another worker dropped because its queue was full.
    pub relay_dropped: u64,
    /// ICE-TCP connections open now (`crate::tcp`).
    pub tcp_connections: usize,
    /// Datagrams received over ICE-TCP (`datagrams_in` counts UDP only).
    pub tcp_frames_in: u64,
    /// Datagrams queued to ICE-TCP connections.
    pub tcp_frames_out: u64,
    /// Datagrams for an ICE-TCP connection dropped: its queue was full (a slow or stalled reader), or
    /// the connection had closed.
    pub tcp_dropped: u64,
    /// ICE-TCP connections refused at once because the worker had its most.
    pub tcp_refused: u64,
    /// ICE-TCP connections closed because no session took anything from them for a while.
    pub tcp_closed_idle: u64,
    /// ICE restarts accepted: sessions a member moved to a new network path (`crate::ice_restart`).
    pub ice_restarts: u64,
    /// Receivers of each simulcast layer now (a receiver counts once per publisher it gets video
    /// from; a publisher without simulcast sends layer 0).
    pub layer_receivers: [usize; crate::simulcast::MAX_LAYERS],
    /// Times a receiver was switched from one layer to another (its first layer is not a switch).
    pub layer_switches: u64,
    /// Receivers' bandwidth estimates, one per estimate str0m made (a histogram over
    /// [`ESTIMATE_BUCKETS_BPS`]: the count of estimates at or under each bound but over the one before,
    /// and past the last one).
    pub estimate_buckets: [u64; ESTIMATE_BUCKETS_BPS.len() + 1],
    /// The estimates' sum (bits/s) and count.
    pub estimate_sum_bps: u64,
    pub estimate_count: u64,
    /// Times a receiver's video was paused because its bandwidth carried no layer.
    pub video_pauses: u64,
    /// Video packets held back from a receiver whose queued video was already too old (its line then
    /// skipped to the next keyframe).
    pub video_held: u64,
    /// Sessions now by the path their latest datagram came by: UDP, ICE-TCP, UDP through a TURN relay
    /// (`crate::session_path`); sessions that received nothing yet are not counted.
    pub sessions_by_path: [usize; 3],
    /// Node-to-node relay (`relay_node`), origin side: publisher packets sent to edges (one
    /// per packet per edge, however many viewers the edge has; resends not counted).
    pub relay_packets_sent: u64,
    /// Origin side: packets resent to edges on their NACKs.
    pub relay_packets_retransmitted: u64,
    /// Origin side: relay sequence numbers NACKed that had already left the retransmission buffer.
    pub relay_nacks_unanswered: u64,
    /// Origin side: edges now, summed over relayed channels.
    pub relay_edges: usize,
    /// Edge side: packets received from origins (each once: duplicates are not counted).
    pub relay_packets_received: u64,
    /// Edge side: relay sequence numbers NACKed (each try counted).
    pub relay_nacks_sent: u64,
    /// Edge side: packets missing that NACKs did not bring back in time (given up).
    pub relay_packets_lost: u64,
    /// Edge side: origin publishers known now, summed over subscribed channels.
    pub relay_publishers: usize,
    /// Relay packets not delivered: the socket's send buffer was full, an edge worker's queue was full,
    /// or the packet's publisher was not known yet.
    pub relay_packets_dropped: u64,
    /// Relay datagrams refused: too short, another version, not authentic under the relay's key, of no
    /// known relay, from the wrong address, or replayed.
    pub relay_datagrams_rejected: u64,
    /// Keyframe requests passed on: at an edge, to its origin; at an origin, to a publisher's worker
    /// (after aggregation, `relay_keyframes`).
    pub relay_keyframe_requests: u64,
}

impl std::ops::AddAssign for RouterStats {
    fn add_assign(&mut self, o: Self) {
        self.sessions += o.sessions;
        self.datagrams_in += o.datagrams_in;
        self.datagrams_out += o.datagrams_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.packets_lost += o.packets_lost;
        self.frames_forwarded += o.frames_forwarded;
        self.packets_forwarded += o.packets_forwarded;
        self.nacks_received += o.nacks_received;
        self.keyframes_from_cache += o.keyframes_from_cache;
        self.send_syscalls += o.send_syscalls;
        self.datagrams_dropped += o.datagrams_dropped;
        self.cpu_millis += o.cpu_millis;
        self.relay_dropped += o.relay_dropped;
        self.tcp_connections += o.tcp_connections;
        self.tcp_frames_in += o.tcp_frames_in;
        self.tcp_frames_out += o.tcp_frames_out;
        self.tcp_dropped += o.tcp_dropped;
        self.tcp_refused += o.tcp_refused;
        self.tcp_closed_idle += o.tcp_closed_idle;
        self.ice_restarts += o.ice_restarts;
        for (n, o) in self.layer_receivers.iter_mut().zip(o.layer_receivers) {
            *n += o;
        }
        self.layer_switches += o.layer_switches;
        for (n, o) in self.sessions_by_path.iter_mut().zip(o.sessions_by_path) {
            *n += o;
        }
        for (n, o) in self.estimate_buckets.iter_mut().zip(o.estimate_buckets) {
            *n += o;
        }
        self.estimate_sum_bps += o.estimate_sum_bps;
        self.estimate_count += o.estimate_count;
        self.video_pauses += o.video_pauses;
        self.video_held += o.video_held;
        self.relay_packets_sent += o.relay_packets_sent;
        self.relay_packets_retransmitted += o.relay_packets_retransmitted;
        self.relay_nacks_unanswered += o.relay_nacks_unanswered;
        self.relay_edges += o.relay_edges;
        self.relay_packets_received += o.relay_packets_received;
        self.relay_nacks_sent += o.relay_nacks_sent;
        self.relay_packets_lost += o.relay_packets_lost;
        self.relay_publishers += o.relay_publishers;
        self.relay_packets_dropped += o.relay_packets_dropped;
        self.relay_datagrams_rejected += o.relay_datagrams_rejected;
        self.relay_keyframe_requests += o.relay_keyframe_requests;
    }
}
