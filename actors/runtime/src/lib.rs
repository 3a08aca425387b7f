//! The runtime that runs showcall's actors: [`Hub`], the node's registry of local actors and its router
//! to every actor wherever it lives. It is the only crate that names the actor types
//! (`showcall-actors`); the actors reach it only through their context (`ActorContext`, `Outbox`), which
//! the hub implements.
//!
//! Layout:
//! - [`hub`]: [`Hub`], the registry (get-or-spawn per key) and what a hub is built from ([`HubParts`]).
//! - `routing`: the one route function: delivery to an actor here, on another node (the node link), or
//!   parked while its partition moves; requests waiting for another node's answer.
//! - `routed`: what differs per actor kind for the router (keys, local delivery, refusals).
//! - `media_edges`: one live room across nodes: another node's router as a `MediaControl` (for a
//!   room's origin), and the rooms this node is an edge of (one worker each).
//! - `node_loss`: another node died, or this node lost its lease.
//! - `pending_answers`: questions asked of other nodes, until answered, their node lost, or given up.
//! - `flux`: messages parked while their key's partition has no owner.
//! - [`handoff`]: a partition's actors moving to another node with their state (leave, join).
//! - `admin_ops`: the business server's questions and orders (cluster-wide lists, kick, end call).
//! - `users`: the user registry — a user's actor rests as state and runs only while it has messages
//!   (idle users cost their state alone).
//! - `timer_wheel`: the node's one timer for its users' sessions.
//! - `spawn_gate`: one start at a time per call or channel key.
//! - [`session`]: what the gateway holds of a logged-in connection ([`Session`]).
//! - `context`: the hub as the actors' context.
//!
//! Vocabulary, messages and the envelope are `showcall-protocol`'s; the ports `showcall-ports`'.
#![forbid(unsafe_code)]

mod admin_ops;
mod calls;
mod context;
mod flux;
pub mod handoff;
pub mod hub;
mod media_edges;
mod node_loss;
mod orphaned_edge_rooms;
mod pending_answers;
mod routed;
mod routing;
pub mod session;
mod spawn_gate;
mod timer_wheel;
mod users;

pub use flux::{FLUX_WAIT, MAX_PARKED, MAX_PARKED_PER_KEY};
pub use hub::{Hub, HubParts};
pub use media_edges::EDGE_ROOM_QUEUE;
pub use session::Session;
pub use users::MAX_QUEUED_PER_USER;
