//! Ports: what the actors need from the world around them, as traits the services implement, each with
//! the in-memory implementation a single node (and a test) runs with. The node binary wires in the
//! real ones (DESIGN.md "Dependencies point down").
//!
//! - [`placement`]: where an actor lives ([`Placement`]); [`LocalPlacement`] answers "here".
//! - [`media`]: the media router ([`MediaControl`]); [`NoMedia`] refuses media.
//! - [`media_relay`]: the router's relay between a room's origin and its edges ([`MediaRelay`]);
//!   [`NoRelay`] refuses (a node that is never an edge).
//! - [`records`]: ended calls ([`CallRecordSink`]) and connected ones kept for a takeover ([`CallLedger`]).
//! - [`event_log`]: where business events are numbered and kept ([`EventLog`]).
//! - [`bans`]: where channel bans are kept ([`Bans`]).
//! - [`admission`]: whether a call may ring ([`Admission`]) and the CallPolicy gRPC client.
//! - [`directory`]: what this node's actors are doing now ([`Directory`]).
//! - [`outbox`]: what an actor may send ([`Outbox`](outbox::Outbox)); the runtime's registry implements it,
//!   [`memory_outbox`] records what was sent (an actor tested alone).
//! - [`clock`]: Unix milliseconds that follow tokio's clock ([`Clock`]).
//!
//! The [`Courier`](showcall_protocol::Courier) between nodes is in the protocol crate: answers travel
//! through it.
#![forbid(unsafe_code)]

pub mod admission;
pub mod bans;
pub mod clock;
pub mod directory;
pub mod event_log;
pub mod media;
pub mod media_relay;
pub mod memory_outbox;
pub mod outbox;
pub mod placement;
pub mod records;

pub use admission::Admission;
pub use bans::Bans;
pub use clock::Clock;
pub use directory::Directory;
pub use event_log::EventLog;
pub use media::{
    AnswerApplied, LayerCapped, MediaControl, MediaRefusal, NoMedia, SessionOpening, Unreachable,
};
pub use media_relay::{MediaRelay, NoRelay};
pub use placement::{LocalPlacement, PinFuture, PinRefusal, Placement};
pub use records::{CallLedger, CallRecordSink, LogRecords, NoLedger};
