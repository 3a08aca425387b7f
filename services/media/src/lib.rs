//! The node's embedded WebRTC media router, on str0m (sans-IO) driven by one tokio UDP loop.
//!
//! Every channel member that joins with an SDP offer gets one session (ICE-lite, the node's single UDP
//! socket as host candidate). A live room forwards its broadcaster's audio and video to every audience
//! member; a call channel forwards each participant's media to the other. Pausing a publisher (a host in a
//! private call) stops forwarding without touching anyone's session; resuming asks the publisher for a
//! keyframe until one arrives, so receivers see video at once.
//!
//! Layout:
//! - [`router`]: [`MediaRouter`], the handle (commands in, [`MediaEvent`]s out).
//! - `engine`: the task that owns the socket and every session, demultiplexes and forwards.
//! - [`egress`]: the outgoing datagrams of a turn, sent together at its end (`sendmmsg` + UDP GSO);
//!   public for the node's hardware-floor benchmark.
//! - `peer`: one session's state.
//! - `renegotiation`: when a member's send lines turn inactive or active again (server-initiated offers).
//! - `loss`: the estimate of packets lost on the way in, from str0m's receiver-report stats.
//! - `stun`: the ufrag lookup that routes a new address's first packet.
//! - [`error`]: the error type, [`MediaError`].
#![forbid(unsafe_code)]

pub mod egress;
mod engine;
pub mod error;
mod loss;
mod peer;
mod renegotiation;
pub mod router;
mod stun;

pub use error::MediaError;
pub use router::{Kind, MediaConfig, MediaEvent, MediaRouter, PeerKey, RouterStats};
