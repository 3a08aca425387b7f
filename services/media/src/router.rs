//! [`MediaRouter`]: the handle the node holds, and the commands it sends to the router's task.
//!
//! All sessions of a node live in one tokio task ([`crate::engine`]) that owns the UDP socket: str0m is
//! sans-IO, so one loop feeds every session its datagrams and timeouts and carries their output. The
//! handle talks to that task over a channel; nothing else touches a session.

use std::net::{IpAddr, SocketAddr};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::error::MediaError;

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
    /// The router renegotiates a member's session (its lines turn inactive or active again): the member
    /// must answer `sdp_offer` through [`MediaRouter::accept_answer`] with this `revision`.
    Offer {
        key: PeerKey,
        revision: u64,
        sdp_offer: String,
    },
}

/// Where the router listens and what it tells peers.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// UDP address to bind (port 0 = any).
    pub bind: SocketAddr,
    /// Address put in host candidates, when it differs from the bound one (e.g. a public IP in front of
    /// a container, or a concrete IP when binding 0.0.0.0).
    pub advertise_ip: Option<IpAddr>,
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
    Stats {
        reply: oneshot::Sender<RouterStats>,
    },
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
}

/// The node's media router. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MediaRouter {
    tx: mpsc::UnboundedSender<Command>,
    candidate: SocketAddr,
}

impl MediaRouter {
    /// Binds the UDP socket and starts the router task. Events go to `events`.
    pub async fn start(
        config: MediaConfig,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> std::io::Result<(MediaRouter, JoinHandle<()>)> {
        // str0m needs a process-wide crypto provider; installing it twice is harmless.
        str0m::crypto::from_feature_flags().install_process_default();
        let bound = std::net::UdpSocket::bind(config.bind)?;
        bound.set_nonblocking(true)?;
        // Sends go straight to the kernel through a clone: tokio's `try_send_to` refuses every send after a
        // single "would block" until the reactor comes round, which would drop the rest of a fan-out turn.
        let sender = bound.try_clone()?;
        let socket = UdpSocket::from_std(bound)?;
        let local = socket.local_addr()?;
        let candidate = SocketAddr::new(config.advertise_ip.unwrap_or(local.ip()), local.port());
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = Engine::new(socket, sender, candidate, events);
        let task = tokio::spawn(engine.run(rx));
        Ok((MediaRouter { tx, candidate }, task))
    }

    /// The address peers send media to.
    pub fn candidate_addr(&self) -> SocketAddr {
        self.candidate
    }

    /// Opens a session for a channel member from its SDP offer; returns the SDP answer. A member that may
    /// not publish must offer receive-only.
    pub async fn open(
        &self,
        key: PeerKey,
        may_publish: bool,
        offer: String,
    ) -> Result<String, MediaError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Open {
                key,
                may_publish,
                offer,
                reply,
            })
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)?
    }

    /// Closes a member's session (left the channel, or the channel closed).
    pub fn close(&self, key: PeerKey) {
        let _ = self.tx.send(Command::Close { key });
    }

    /// Closes every session of a channel at once (the channel ended): unlike closing them one by one,
    /// the members left for a moment are not renegotiated.
    pub fn close_room(&self, app: &str, channel: &str) {
        let _ = self.tx.send(Command::CloseRoom {
            app: app.to_owned(),
            channel: channel.to_owned(),
        });
    }

    /// Applies a member's answer to the router's pending offer ([`MediaEvent::Offer`]). A malformed
    /// answer, a stale revision, or no pending offer is refused and changes nothing.
    pub async fn accept_answer(
        &self,
        key: PeerKey,
        revision: u64,
        answer: String,
    ) -> Result<(), MediaError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::AcceptAnswer {
                key,
                revision,
                answer,
                reply,
            })
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)?
    }

    /// Starts or stops forwarding a publisher's media to the rest of its channel. Resuming also asks the
    /// publisher for a keyframe, repeatedly until one arrives.
    pub fn set_forwarding(&self, app: &str, channel: &str, publisher: &str, forward: bool) {
        let _ = self.tx.send(Command::Forward {
            app: app.to_owned(),
            channel: channel.to_owned(),
            publisher: publisher.to_owned(),
            forward,
        });
    }

    /// Asks a publisher for a keyframe (PLI), repeated until one arrives.
    pub fn request_keyframe(&self, app: &str, channel: &str, publisher: &str) {
        let _ = self.tx.send(Command::RequestKeyframe {
            app: app.to_owned(),
            channel: channel.to_owned(),
            publisher: publisher.to_owned(),
        });
    }

    /// Current counters.
    pub async fn stats(&self) -> Result<RouterStats, MediaError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Stats { reply })
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)
    }
}
