//! [`MediaPeer`]: one media session before it runs — its UDP socket, its str0m `Rtc`, and the SDP offer
//! / answer exchange. [`MediaSession::join`](super::MediaSession::join) uses it against the node; two
//! peers can also be connected to each other directly (one offers, the other answers), which is how the
//! SDK tests its media without a node.

use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::{Candidate, Output, Rtc};

use super::ice_tcp::{self, TcpPaths};
use super::negotiation;
use super::session::{self, MediaSession};
use super::source::SIMULCAST_RIDS;
use super::turn_relay::TurnRelay;
use super::{MediaOptions, MediaSource, TrackKind};
use crate::SdkError;

/// A media session being negotiated. Made by [`MediaPeer::new`], negotiated with either
/// [`create_offer`](Self::create_offer) then [`accept_answer`](Self::accept_answer), or
/// [`accept_offer`](Self::accept_offer); then [`start`](Self::start)ed.
pub struct MediaPeer {
    rtc: Rtc,
    socket: UdpSocket,
    local_addr: SocketAddr,
    opts: MediaOptions,
    source: Arc<MediaSource>,
    /// The simulcast layers below `source`, best first; `None`: the shipped sample's.
    lower_layers: Option<[Arc<MediaSource>; 2]>,
    pending: Option<SdpPendingOffer>,
    /// The offer made sends the video as simulcast layers.
    simulcast: bool,
    /// The m-lines this side added (the answering side learns them from `MediaAdded` events).
    tracks: Vec<(Mid, TrackKind)>,
    negotiated: bool,
    /// The ICE-TCP connections the session will make (to the remote's passive TCP candidates).
    tcp_paths: TcpPaths,
    /// The TURN allocation behind the relayed candidate, when there is one.
    relay: Option<TurnRelay>,
}

impl fmt::Debug for MediaPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaPeer")
            .field("local_addr", &self.local_addr)
            .field("opts", &self.opts)
            .field("negotiated", &self.negotiated)
            .finish_non_exhaustive()
    }
}

/// The direction of our m-lines: a publisher sends (and receives when asked to), anyone else only
/// receives.
pub(crate) fn offer_direction(publish: bool, receive: bool) -> Direction {
    match (publish, receive) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, _) => Direction::RecvOnly,
    }
}

impl MediaPeer {
    /// Binds the UDP socket (`opts.bind_ip`, any port), builds the `Rtc` (full ICE, Opus and VP8
    /// only) and adds the socket as its host candidate (`opts.udp`) and an active ICE-TCP candidate
    /// (`opts.tcp`). Sends the shipped sample unless [`set_source`](Self::set_source) says otherwise.
    pub fn new(opts: MediaOptions) -> Result<Self, SdkError> {
        if !opts.udp && !opts.tcp {
            return Err(SdkError::Transport(
                "media options turn both udp and tcp off".to_owned(),
            ));
        }
        let source = MediaSource::sample()
            .map_err(|e| SdkError::Transport(format!("sample media unreadable: {e}")))?;
        let socket = UdpSocket::bind(SocketAddr::new(opts.bind_ip, 0))
            .map_err(|e| SdkError::Transport(format!("bind udp {}: {e}", opts.bind_ip)))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| SdkError::Transport(format!("udp socket: {e}")))?;
        let local_addr = socket
            .local_addr()
            .map_err(|e| SdkError::Transport(format!("udp socket: {e}")))?;

        let mut config = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true);
        if !opts.transport_cc {
            config = config.set_extension_map(super::without_transport_cc());
        }
        let mut rtc = config.build(Instant::now());
        if opts.udp {
            let candidate = Candidate::host(local_addr, "udp")
                .map_err(|e| SdkError::Transport(format!("host candidate {local_addr}: {e}")))?;
            if rtc.add_local_candidate(candidate).is_none() {
                return Err(SdkError::Transport(format!(
                    "host candidate {local_addr} refused"
                )));
            }
        }
        if opts.tcp
            && rtc
                .add_local_candidate(ice_tcp::active_candidate(opts.bind_ip)?)
                .is_none()
        {
            return Err(SdkError::Transport(format!(
                "tcp candidate {} refused",
                opts.bind_ip
            )));
        }
        let mut peer = MediaPeer {
            rtc,
            socket,
            local_addr,
            opts,
            source,
            lower_layers: None,
            pending: None,
            simulcast: false,
            tracks: Vec::new(),
            negotiated: false,
            tcp_paths: TcpPaths::default(),
            relay: None,
        };
        peer.settle()?;
        Ok(peer)
    }

    /// Offers `relay`'s relayed address as a candidate (before the offer or answer is made), and hands
    /// the allocation to the session.
    pub(crate) fn add_relay(&mut self, relay: TurnRelay) -> Result<(), SdkError> {
        if self.rtc.add_local_candidate(relay.candidate()?).is_none() {
            return Err(SdkError::Transport(format!(
                "relayed candidate {} refused",
                relay.relayed_addr()
            )));
        }
        self.relay = Some(relay);
        self.settle()
    }

    /// The UDP address media flows through (the host candidate).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The options the peer was made with.
    pub fn options(&self) -> &MediaOptions {
        &self.opts
    }

    /// Sends this clip instead of the shipped sample.
    pub fn set_source(&mut self, source: Arc<MediaSource>) {
        self.source = source;
    }

    /// Publishes these clips as the simulcast layers below the source (`m` then `l`, best first)
    /// instead of the shipped sample's (with `opts.simulcast`). They should show the source's pictures
    /// smaller, with keyframes at the same frames, as an encoder's layers do.
    pub fn set_lower_layers(&mut self, medium: Arc<MediaSource>, low: Arc<MediaSource>) {
        self.lower_layers = Some([medium, low]);
    }

    /// Drains `poll_output` after a mutation made before the session runs (nothing is connected yet,
    /// so nothing is lost).
    fn settle(&mut self) -> Result<(), SdkError> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(_)) => return Ok(()),
                Ok(other) => tracing::trace!(?other, "output before negotiation ignored"),
                Err(e) => return Err(SdkError::Protocol(format!("webrtc: {e}"))),
            }
        }
    }

    /// Makes the SDP offer: one audio and one video m-line, SendRecv for a publisher that also
    /// receives (`opts.receive`), SendOnly for one that does not, RecvOnly when `publish` is false. A
    /// publisher with `opts.simulcast` offers its video as the layers [`SIMULCAST_RIDS`].
    pub fn create_offer(&mut self, publish: bool) -> Result<String, SdkError> {
        if self.negotiated || self.pending.is_some() {
            return Err(SdkError::Protocol("media already negotiated".to_owned()));
        }
        let dir = offer_direction(publish, self.opts.receive);
        let simulcast = (publish && self.opts.simulcast).then(|| {
            let mut layers = Simulcast::new();
            for rid in SIMULCAST_RIDS {
                layers.add_send_layer(SimulcastLayer::new(rid));
            }
            layers
        });
        self.simulcast = simulcast.is_some();
        let mut api = self.rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, dir, None, None, None);
        let video = api.add_media(MediaKind::Video, dir, None, None, simulcast);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| SdkError::Protocol("no offer to make".to_owned()))?;
        self.tracks = vec![(audio, TrackKind::Audio), (video, TrackKind::Video)];
        self.pending = Some(pending);
        self.settle()?;
        Ok(offer.to_sdp_string())
    }

    /// Applies the remote answer to [`create_offer`](Self::create_offer)'s offer.
    pub fn accept_answer(&mut self, answer: &str) -> Result<(), SdkError> {
        negotiation::apply_answer(&mut self.rtc, &mut self.pending, answer)?;
        self.tcp_paths.allow(answer);
        self.negotiated = true;
        Ok(())
    }

    /// Answers a remote offer (the answering side of a direct connection). Our m-lines mirror the
    /// offer's (its SendRecv is ours, its SendOnly our RecvOnly, ...); `opts.send_*` still choose what
    /// is actually sent.
    pub fn accept_offer(&mut self, offer: &str) -> Result<String, SdkError> {
        if self.negotiated || self.pending.is_some() {
            return Err(SdkError::Protocol("media already negotiated".to_owned()));
        }
        let sdp = offer;
        let offer = SdpOffer::from_sdp_string(offer)
            .map_err(|e| SdkError::Protocol(format!("bad sdp offer: {e}")))?;
        self.tcp_paths.allow(sdp);
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SdkError::Protocol(format!("sdp offer refused: {e}")))?;
        self.negotiated = true;
        Ok(answer.to_sdp_string())
    }

    /// Starts the session's task (must be called within a tokio runtime) once negotiated.
    pub fn start(self) -> Result<MediaSession, SdkError> {
        let (socket, sender) = negotiation::task_sockets(self.negotiated, self.socket)?;
        let video_layers = if self.simulcast {
            let [medium, low] = match self.lower_layers {
                Some(layers) => layers,
                None => MediaSource::sample_lower_layers()
                    .map_err(|e| SdkError::Transport(format!("sample media unreadable: {e}")))?,
            };
            SIMULCAST_RIDS
                .iter()
                .map(|rid| Some(Rid::from(*rid)))
                .zip([self.source.clone(), medium, low])
                .collect()
        } else {
            vec![(None, self.source.clone())]
        };
        Ok(session::spawn(session::Setup {
            rtc: self.rtc,
            socket,
            sender,
            local_addr: self.local_addr,
            opts: self.opts,
            source: self.source,
            video_layers,
            tracks: self.tracks,
            tcp_paths: self.tcp_paths,
            relay: self.relay,
        }))
    }
}
