//! The node's embedded WebRTC media router, on str0m (sans-IO), in RTP mode: publishers' packets are
//! forwarded as they come, rewritten per receiver, by N worker loops (one per core by default), each on
//! a thread and a UDP port of its own.
//!
//! Every channel member that joins with an SDP offer gets one session (ICE-lite, its channel's worker's
//! UDP socket as host candidate, and its TCP port as a passive ICE-TCP one when TCP is on). A live room forwards its broadcaster's audio and video to every audience
//! member; a call channel forwards each participant's media to the other. Pausing a publisher (a host in a
//! private call) stops forwarding without touching anyone's session; resuming asks the publisher for a
//! keyframe until one arrives, so receivers see video at once.
//!
//! Layout:
//! - [`router`]: [`MediaRouter`], the handle (commands in, [`MediaEvent`]s out).
//! - `engine`: one worker's sans-IO core: its sessions, demultiplexing and forwarding.
//! - `worker`: the IO loop around it (socket, queues, clock, batched sends).
//! - `tcp`: ICE-TCP, the fallback for clients without UDP: each worker's TCP listener, its connections,
//!   and the passive TCP candidate beside the UDP one; `rfc4571`: the framing on those connections.
//! - `feed`, `rewrite`: what a receiver line carries and where each packet goes in it.
//! - `keyframe`: keyframe starts at the RTP level, and each publisher's latest keyframe.
//! - `simulcast`: a publisher's layers (which flow, each one's keyframe) and the choice of one per
//!   receiver (its cap, switched at keyframes); `picture`: VP8 PictureID / TL0PICIDX kept continuous
//!   for a receiver across switches.
//! - `bandwidth`: per-receiver bandwidth allocation: from the receiver's estimate (str0m's TWCC-based
//!   send-side estimator) and each layer's bitrate, the best layer it may get, or no video (paused);
//!   `rate`: the bitrate meter it reads layers and audio from.
//! - [`cpu`]: thread CPU time, which each worker reports of itself.
//! - [`egress`]: the outgoing datagrams of a turn, sent together at its end (`sendmmsg` + UDP GSO);
//!   public for the node's hardware-floor benchmark.
//! - `protocol`: what the handle, the workers and the node say to each other (plain data).
//! - `placement`: which worker each session lives on; a channel spreads over workers when it outgrows one.
//! - `relay`: the hand-off of a channel's packets between the workers it is on.
//! - `relay_node`: one live room across nodes ([`RelayPeer`], [`MediaRouter::add_edge`],
//!   [`MediaRouter::subscribe_origin`]): the origin sends each packet once per edge, edges fan out
//!   locally (the node's relay socket, one more member of the worker mesh); `relay_loop`: its IO loop;
//!   `relay_wire`: its datagrams; `relay_crypto`: their AEAD, key ([`RelayKey`]) and replay window;
//!   `relay_gaps` (edge: which packets to NACK), `relay_reorder` (edge: the origin's order kept across
//!   repairs), `relay_history` (origin: what to resend), `relay_keyframes` (requests aggregated).
//! - `peer`: one session's state.
//! - `renegotiation`: when a member's send lines turn inactive or active again (server-initiated offers).
//! - `loss`: the estimate of packets lost on the way in, from str0m's receiver-report stats.
//! - `sdp_rules`: what a client's SDP must follow that str0m panics on instead of refusing.
//! - `stun`: the ufrag lookup that routes a new address's first packet.
//! - `ice_restart`: what a member's offer must be to restart ICE on its running session (a network
//!   change): new credentials, the same lines; the session is re-indexed under its new ufrag.
//! - [`error`]: the error type, [`MediaError`].
//! - `fuzzing` (feature `fuzzing` only): one worker's engine, sans IO, for the fuzz targets in `fuzz/`.
#![forbid(unsafe_code)]

mod bandwidth;
pub mod cpu;
pub mod egress;
mod engine;
pub mod error;
mod feed;
mod frame_gate;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod ice_restart;
mod keyframe;
mod loss;
mod peer;
mod picture;
mod placement;
mod protocol;
mod queue_delay;
mod rate;
mod relay;
mod relay_crypto;
mod relay_gaps;
mod relay_history;
mod relay_keyframes;
mod relay_loop;
mod relay_node;
mod relay_reorder;
mod relay_wire;
mod renegotiation;
mod rewrite;
mod rfc4571;
pub mod router;
mod sdp_rules;
mod session_path;
mod simulcast;
mod stun;
mod tcp;
mod worker;

pub use error::MediaError;
pub use protocol::ESTIMATE_BUCKETS_BPS;
pub use relay_crypto::RelayKey;
pub use relay_node::RelayPeer;
pub use router::{Kind, MediaConfig, MediaEvent, MediaRouter, PeerKey, RouterStats};
