//! The actors of showcall: thin ractor shells around the pure machines of `showcall-machines`.
//!
//! Each actor owns one machine, turns messages and timers into machine inputs (with `now` from the node's
//! [`Clock`]), and carries out the effects. Rules live in the machines; here is only delivery.
//!
//! Layout:
//! - [`hub`]: [`Hub`], the registry and router of this node's actors (placement-aware).
//! - [`session`]: what the gateway uses: [`Session`], [`UserCommand`], [`Outbound`].
//! - [`inbox`]: a connection's bounded inbox ([`ConnectionInbox`]); a full one closes its connection.
//! - [`user_actor`], [`call_actor`], [`channel_actor`]: one actor kind each.
//! - [`messages`]: each actor's message enum; inputs travel as serde data with a trace context.
//! - [`ports`]: traits the services implement (placement, media control, call records).
//! - [`admission`]: the call admission port and its CallPolicy gRPC client.
//! - [`handoff`]: a partition's actors moving to another node with their state (leave, join).
//! - [`remote`]: envelopes between nodes and the [`Courier`] port; `routing`: the hub's routing methods.
//! - [`directory`]: what this node's actors are doing now (presence, channels, calls), for the admin API;
//!   `admin_ops`: the business server's questions and orders (cluster-wide lists, kick, end call).
//! - [`bans`]: channel bans and the port that keeps them.
//! - [`trace`]: one call, one trace: the context messages carry, span names.
//! - [`error`], [`error_code`]: the refusal type and its one code per wire.
//! - [`keys`], [`ids`], [`clock`]: small vocabulary.
//! - [`metrics`]: metric names, descriptions and buckets; call metrics derived from the business events.
#![forbid(unsafe_code)]

mod admin_ops;
pub mod admission;
pub mod bans;
pub mod call_actor;
pub mod channel_actor;
pub mod clock;
pub mod directory;
pub mod error;
pub mod error_code;
pub mod events;
pub mod flux;
pub mod handoff;
pub mod hub;
pub mod ids;
pub mod inbox;
pub mod keys;
pub mod messages;
pub mod metrics;
pub mod ports;
pub mod remote;
mod routing;
pub mod session;
pub mod trace;
pub mod user_actor;

pub use clock::Clock;
pub use error::CommandError;
pub use error_code::ErrorCode;
pub use hub::{Hub, HubParts};
pub use inbox::{ConnectionInbox, InboxReceiver, OverflowSignal, connection_inbox};
pub use keys::{ActorKey, AppId, NodeId};
pub use messages::SessionSink;
pub use remote::{Courier, Envelope};
pub use session::{CommandOk, LoginOk, Outbound, Session, UserCommand};
