//! One member's WebRTC session: its str0m `Rtc` and what the router learned about its media lines.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::net::Protocol;

use crate::bandwidth::BandwidthAllocator;
use crate::feed::Feed;
use crate::frame_gate::FrameGate;
use crate::ice_restart::RemoteSide;
use crate::protocol::{Kind, PeerKey};
use crate::queue_delay::QueueDelay;
use crate::rate::RateMeter;
use crate::renegotiation::OutLine;
use crate::simulcast::{Layer, LayerSelector, LayerSet, MAX_LAYERS, PublisherLayers};

/// Identifies a session inside the router (never reused while the router runs).
pub type PeerId = u64;

/// How often a wanted keyframe is asked for again while none arrives.
pub const KEYFRAME_RETRY: std::time::Duration = std::time::Duration::from_millis(300);

pub struct Peer {
    pub key: PeerKey,
    pub rtc: Rtc,
    /// The ICE ufrag this node chose for the session: routes STUN from a new address here.
    pub ufrag: String,
    /// The member's ICE credentials and media lines, as its last offer stated them: what tells an ICE
    /// restart offer from any other ([`crate::ice_restart`]).
    pub remote: RemoteSide,
    /// ICE restarted and the member's checks have not reached us on a new path yet.
    pub restarting: bool,
    /// Whether this member may publish (broadcaster of a live room, or a call participant).
    pub may_publish: bool,
    /// Media lines the router sends on (the member receives).
    pub outbound: Vec<OutLine>,
    /// Media lines the member publishes on, with their kind.
    pub inbound: Vec<(Mid, Kind)>,
    /// The wake-up of this session in the engine's timer heap (no later than str0m's next timeout).
    pub scheduled: Option<Instant>,
    /// The addresses (and transports) the member's authenticated STUN requests came from, each routed
    /// to this session (at most `engine::MAX_REMOTES`).
    pub remotes: Vec<(Protocol, SocketAddr)>,
    /// The relayed candidates the member's offers named (`crate::session_path`).
    pub relays: Vec<SocketAddr>,
    /// The path the member's latest datagram came by (`None` before the first).
    pub last_path: Option<(Protocol, SocketAddr)>,
    /// (publisher, kind) pairs whose first frame reached this member (for `FirstFrame` events).
    pub first_received: HashSet<(PeerId, Kind)>,
    /// When a keyframe was last asked of this publisher (the router keeps the set of publishers it wants
    /// one from).
    pub last_keyframe_request: Option<Instant>,
    /// When a keyframe was last asked of each simulcast layer (a new layer's request is not held back
    /// by the retry interval of another's).
    pub layer_keyframe_asked: [Option<Instant>; MAX_LAYERS],
    /// The router's offer waiting for the member's answer, with its revision.
    pub pending_offer: Option<(u64, SdpPendingOffer)>,
    /// The last revision offered.
    pub revision: u64,
    /// A change came while an offer was pending: look again once it is answered.
    pub recheck_after_answer: bool,
    /// RTP packets received per published line at the last stats event (for the loss estimate).
    pub ingress_packets: HashMap<Mid, u64>,
    /// NACKs received per receiving line at the last stats event.
    pub egress_nacks: HashMap<Mid, u64>,
    /// What each of the member's receiving lines carries (made at the line's first packet).
    pub feeds: HashMap<Kind, Feed>,
    /// The member's video as a publisher, layer by layer: which layers flow, and each one's latest
    /// keyframe for receivers that start.
    pub video: PublisherLayers,
    /// Its video frames under way, so a pause holds it back between frames.
    pub frames: FrameGate,
    /// The rids of the member's simulcast layers, best first (empty: no simulcast, one layer).
    pub video_rids: Vec<Rid>,
    /// The rid the router's video stream to this member is sent with: set when the member publishes
    /// simulcast on the line it receives on (see `engine::ensure_send_stream`).
    pub video_send_rid: Option<Rid>,
    /// The best layer this member wants to receive (0: the top; a viewer in a small window asks for
    /// less).
    pub max_layer: Layer,
    /// The layer this member gets of each publisher it receives video from.
    pub layers: HashMap<PeerId, LayerSelector>,
    /// The peer closed the session (DTLS close_notify): it goes once its last output is out.
    pub closed: bool,
    /// The session's latest send-side bandwidth estimate (bits/s of RTP payload; str0m's GoogCC over the
    /// member's TWCC feedback). `None`: no estimate (the member negotiated no TWCC), no allocation.
    pub estimate: Option<u64>,
    /// The latest TWCC round trip (send → feedback, so with the path's queue in it).
    pub rtt: Option<std::time::Duration>,
    /// Whether the path's queue stands deep in that round trip ([`crate::queue_delay`]).
    pub queue_delay: QueueDelay,
    /// What the estimate allows of each publisher's video ([`crate::bandwidth`]).
    pub bandwidth: HashMap<PeerId, BandwidthAllocator>,
    /// The audio written to this member: what the estimate carries before any video.
    pub audio_rate: RateMeter,
    /// The member was told its video is paused for bandwidth (and not told since that it resumed).
    pub video_paused: bool,
    /// The (minimum, desired) bitrates last handed to str0m's estimator.
    pub bwe_targets: Option<(u64, u64)>,
}

impl Peer {
    /// When a keyframe was last asked of `layer` (of this session as a publisher).
    pub fn keyframe_asked(&self, layer: Layer) -> Option<Instant> {
        self.layer_keyframe_asked
            .get(usize::from(layer))
            .copied()
            .flatten()
    }

    pub fn new(
        key: PeerKey,
        rtc: Rtc,
        ufrag: String,
        remote: RemoteSide,
        may_publish: bool,
    ) -> Self {
        Self {
            key,
            rtc,
            ufrag,
            remote,
            restarting: false,
            may_publish,
            outbound: Vec::new(),
            inbound: Vec::new(),
            scheduled: None,
            remotes: Vec::new(),
            relays: Vec::new(),
            last_path: None,
            first_received: HashSet::new(),
            last_keyframe_request: None,
            layer_keyframe_asked: [None; MAX_LAYERS],
            pending_offer: None,
            revision: 0,
            recheck_after_answer: false,
            ingress_packets: HashMap::new(),
            egress_nacks: HashMap::new(),
            feeds: HashMap::new(),
            video: PublisherLayers::default(),
            frames: FrameGate::default(),
            video_rids: Vec::new(),
            video_send_rid: None,
            max_layer: 0,
            layers: HashMap::new(),
            closed: false,
            estimate: None,
            bandwidth: HashMap::new(),
            rtt: None,
            queue_delay: QueueDelay::default(),
            audio_rate: RateMeter::default(),
            video_paused: false,
            bwe_targets: None,
        }
    }

    /// The active line to send `kind` to this member on.
    pub fn out_mid(&self, kind: Kind) -> Option<Mid> {
        self.outbound
            .iter()
            .find(|l| l.kind == kind && l.active)
            .map(|l| l.mid)
    }

    /// Whether this member publishes `kind`.
    pub fn publishes(&self, kind: Kind) -> bool {
        self.inbound.iter().any(|(_, k)| *k == kind)
    }

    /// The layer of one of this member's video packets, by the rid of the stream it came on (`None`:
    /// a layer past the ones forwarded).
    pub fn layer_of(&mut self, ssrc: u32) -> Option<Layer> {
        if self.video_rids.is_empty() {
            return Some(0);
        }
        let rid = self.rtc.direct_api().stream_rx(&ssrc.into())?.rid()?;
        let rank = self.video_rids.iter().position(|r| *r == rid)?;
        Layer::try_from(rank)
            .ok()
            .filter(|l| usize::from(*l) < crate::simulcast::MAX_LAYERS)
    }

    /// Every layer this member publishes.
    pub fn all_layers(&self) -> LayerSet {
        LayerSet::first(self.video_rids.len().max(1))
    }

    /// The line a publisher sends video on.
    pub fn inbound_video(&self) -> Option<Mid> {
        self.inbound
            .iter()
            .find(|(_, k)| *k == Kind::Video)
            .map(|(m, _)| *m)
    }
}

pub fn kind_of(kind: MediaKind) -> Kind {
    match kind {
        MediaKind::Audio => Kind::Audio,
        MediaKind::Video => Kind::Video,
    }
}
