//! The vocabulary the actor runtime speaks, with nothing that runs: actor keys and ids, the messages
//! each actor kind accepts, the envelope that carries them between nodes, what clients ask and are
//! answered, the one refusal type and its one code per wire, the business events, and the metric names
//! every layer records. Every other runtime crate depends on this one, and it on none of them.
//!
//! Layout:
//! - [`keys`], [`ids`]: who is addressed ([`ActorKey`], [`AppId`], [`NodeId`]) and minted ids.
//! - [`messages`]: each actor kind's message enum; inputs travel as serde data with a trace context,
//!   answers through a [`Responder`](messages::Responder) that is a local port or a remote handle.
//! - [`envelope`]: [`Envelope`], what one node sends another, and the [`Courier`] that carries it;
//!   [`handles`]: where an answer or a connection's events go on another node; [`wire`]: the wire's
//!   version and what nodes of two releases may send each other.
//! - [`commands`]: a client's commands and their answers; [`Outbound`], what its connection receives.
//! - [`inbox`]: a connection's bounded inbox ([`ConnectionInbox`]); a full one closes its connection.
//! - [`error`], [`error_code`]: [`CommandError`] and its one [`ErrorCode`] per wire.
//! - [`events`], [`bans`], [`directory`], [`handoff`]: business events, channel bans, directory entries
//!   and queries, a partition's state on its way to another node.
//! - [`media_edge`]: one live room across nodes: where a viewer's media session goes (its origin or an
//!   edge), and what origin and edges ask each other (wire 1.4).
//! - [`trace`]: one call, one trace: the context messages carry, span names.
//! - [`metrics`]: metric names, descriptions and buckets; call metrics derived from the business events.
//! - [`sync`]: the lock every crate takes its short critical sections with.
#![forbid(unsafe_code)]

pub mod bans;
pub mod commands;
pub mod directory;
pub mod envelope;
pub mod error;
pub mod error_code;
pub mod events;
pub mod handles;
pub mod handoff;
pub mod ids;
pub mod inbox;
pub mod keys;
pub mod media_edge;
pub mod messages;
pub mod metrics;
pub mod sync;
pub mod trace;
pub mod wire;

pub use commands::{CommandOk, LoginOk, Outbound, UserCommand, VideoLayer};
pub use envelope::{Courier, Envelope};
pub use error::CommandError;
pub use error_code::ErrorCode;
pub use inbox::{ConnectionInbox, InboxReceiver, OverflowSignal, connection_inbox};
pub use keys::{ActorKey, AppId, NodeId};
pub use messages::SessionSink;
