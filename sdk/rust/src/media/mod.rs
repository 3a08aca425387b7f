//! The media client: real WebRTC audio and video through str0m as the client peer, for tests and load
//! generators.
//!
//! ```no_run
//! # async fn demo(signal: showcall_sdk::SignalClient) -> Result<(), showcall_sdk::SdkError> {
//! use showcall_sdk::{ChannelRole, MediaOptions, MediaSession};
//!
//! // Join the live room as its broadcaster, with media: publishes the shipped VP8/Opus sample.
//! let (media, joined) =
//!     MediaSession::join(&signal, "host-1_live", ChannelRole::Broadcaster, MediaOptions::default())
//!         .await?;
//! media.wait_connected().await?;
//! media.set_sending(false); // publish off (e.g. while in a private call) …
//! media.set_sending(true); //  … and on again, from a keyframe
//! # let _ = joined; Ok(()) }
//! ```
//!
//! # How it works
//! - [`MediaPeer`] sets a session up: binds one UDP socket (127.0.0.1:0 by default), builds a str0m
//!   `Rtc` (a full ICE agent, not ICE-lite; codecs limited to Opus and VP8), adds the socket as its host
//!   candidate and an active ICE-TCP candidate beside it (`ice_tcp`: the fallback when UDP does not
//!   reach the node) — and, when the login has `turns:` servers, a relayed candidate on one of them
//!   (`turn_relay`: the fallback when only TLS on 443 gets out) — and negotiates: [`create_offer`](MediaPeer::create_offer) (one audio and one video
//!   m-line) + [`accept_answer`](MediaPeer::accept_answer), or [`accept_offer`](MediaPeer::accept_offer)
//!   for the answering side. [`start`](MediaPeer::start) hands it to a tokio task and returns the
//!   [`MediaSession`] handle.
//! - [`MediaSession::join`] does that against the node: the offer goes in `JoinChannel.sdp_offer`
//!   ([`SignalClient::join_channel_with_offer`](crate::SignalClient::join_channel_with_offer)), the
//!   node's `ChannelJoined.sdp_answer` is applied.
//! - The task (`session`) drives the `Rtc` sans-IO: UDP datagrams (and those of its ICE-TCP
//!   connections) become `Input::Receive`, deadlines `Input::Timeout`, every mutation is followed by
//!   draining `poll_output` to its `Timeout`, and `Output::Transmit` is sent on the socket (or the TCP
//!   connection to its destination). Once connected it sends the [`MediaSource`] paced in real
//!   time (30 video frames and 50 audio packets a second, looping), restarts the video at a keyframe
//!   when the remote asks for one, and counts what it receives ([`MediaStats`], watched with a
//!   `tokio::sync::watch`; frames themselves via [`MediaSession::subscribe_frames`]).
//! - When the network changes, the session restarts ICE over its signaling session and goes on on a
//!   new socket (`ice_restart`): the app says so ([`MediaSession::restart_ice`]), or the session does
//!   it by itself once its ICE drops.
//! - Nothing panics on bad input: an error from str0m, an ICE disconnection that a restart does not
//!   mend, or the remote closing DTLS ends the session — [`MediaStats::connected`] turns false, [`MediaStats::closed`] true, and every
//!   `wait_*` returns [`SdkError::Disconnected`](crate::SdkError::Disconnected) unless already
//!   satisfied.
//!
//! # Layout
//! - [`ivf`] — IVF reader (the VP8 clip); [`ogg`] — Ogg page/packet reader and Ogg Opus.
//! - [`source`] — [`MediaSource`] (the parsed clip) and the real-time pacing.
//! - `peer` — [`MediaPeer`]: socket, `Rtc`, offer/answer.
//! - `ice_tcp` — the active side of ICE-TCP: the TCP candidate and the connections behind it.
//! - `turn_relay` — TURN over TLS: the relayed candidate and the allocation behind it.
//! - `session` — [`MediaSession`], [`MediaStats`], [`ReceivedFrame`] and the run loop.
//! - `offers` — answering the node's renegotiation offers, for every kind of session.
//! - `ice_restart` — moving a running session to a new network path (a new socket) without leaving
//!   its channel: [`MediaSession::restart_ice`], and by itself when ICE drops.
//! - `probe` — [`RtpProbe`] (and [`ProbePeer`], its setup): a receive-only peer in str0m's RTP mode
//!   that records packets, not frames — for checking what is on the wire and for benchmarks with many
//!   light receivers; [`rtp_record`] — what it keeps (bounded).

mod ice_restart;
mod ice_tcp;
pub mod ivf;
mod negotiation;
mod offers;
pub mod ogg;
mod peer;
mod probe;
mod rtc_driver;
pub mod rtp_record;
mod session;
pub mod source;
mod turn_relay;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};

pub use peer::MediaPeer;
pub use probe::{ProbeOptions, ProbePeer, ProbeStats, RtpProbe};
pub use rtp_record::{RtpRecord, StreamSummary};
pub use session::{MediaSession, MediaStats, ReceivedFrame};
pub use source::{MediaSource, MediaSourceError, VideoFrame};

/// What a media session sends and receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOptions {
    /// Send the audio (when the role publishes). Default true.
    pub send_audio: bool,
    /// Send the video (when the role publishes). Default true.
    pub send_video: bool,
    /// Offer to receive (SendRecv rather than SendOnly for a publisher). An audience member always
    /// offers RecvOnly. Default true.
    pub receive: bool,
    /// The IP the UDP socket binds to and announces as its host candidate (the active TCP candidate
    /// names it too); must be a concrete address (not 0.0.0.0) the media router can reach. Default
    /// 127.0.0.1.
    pub bind_ip: IpAddr,
    /// Offer the UDP host candidate: media goes over UDP when it gets through. Default true. A client
    /// that knows its network blocks UDP may turn it off and connect over ICE-TCP alone (`tcp` must
    /// then be on).
    pub udp: bool,
    /// Offer an active ICE-TCP candidate: when the node's UDP cannot be reached, the session connects
    /// to the node's TCP port and runs over it, by itself (see `ice_tcp`). Default true.
    pub tcp: bool,
    /// Ask the sender for a keyframe (PLI) when video arrives that a decoder could not use — before the
    /// first keyframe, or after a gap — at most every 500 ms, as a browser does. Default true.
    pub request_keyframes: bool,
    /// Allocate a relay on the login's first reachable `turns:` server (`LoginInfo::ice_servers`) before
    /// joining and offer it as a relayed candidate: the path when only TLS on 443 leaves the network
    /// (see `turn_relay`). Nothing happens when the login has no TURN servers. Default true.
    pub turn: bool,
    /// PEM CA certificates trusted for TURN servers' TLS beside the public web roots (a private CA).
    /// Default none.
    pub turn_ca_pem: Option<String>,
    /// Publish the video as three simulcast layers (rids `h`, `m`, `l`: the clip at full size and the
    /// shipped sample at 160x120 and 80x60, or the clips given to `MediaPeer::set_lower_layers`), of
    /// which the node forwards each receiver one. Only for a
    /// publisher; default false (one layer).
    pub simulcast: bool,
    /// Offer transport-wide congestion control (the TWCC header extension), as browsers do, so the
    /// node estimates this session's bandwidth and adapts what it sends it (simulcast layer, video
    /// paused). Default true. A benchmark whose receivers share a starved CPU turns it off, so their
    /// late feedback does not read as congestion (the same as `ProbeOptions::transport_cc`).
    pub transport_cc: bool,
}

impl Default for MediaOptions {
    fn default() -> Self {
        MediaOptions {
            send_audio: true,
            send_video: true,
            receive: true,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            udp: true,
            tcp: true,
            request_keyframes: true,
            turn: true,
            turn_ca_pem: None,
            simulcast: false,
            transport_cc: true,
        }
    }
}

/// How a session's packets travel to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaTransport {
    /// UDP, the usual path.
    Udp,
    /// ICE-TCP: a TCP connection to the node's media port (the fallback when UDP does not get through).
    Tcp,
    /// A TURN relay reached over TLS (the fallback when only TLS on 443 gets out).
    Turn,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Audio,
    Video,
}

/// str0m's standard header extensions (Chrome's) less the transport-wide sequence number, which is what
/// TWCC feedback counts: without it nothing is fed back and the sender has no estimate.
fn without_transport_cc() -> str0m::rtp::ExtensionMap {
    use str0m::rtp::{Extension, ExtensionMap};
    let mut map = ExtensionMap::empty();
    let standard = ExtensionMap::standard();
    for id in 1..=14 {
        if let Some(ext) = standard.lookup(id)
            && *ext != Extension::TransportSequenceNumber
        {
            map.set(id, ext.clone());
        }
    }
    map
}
