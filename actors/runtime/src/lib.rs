//! The actors of showcall: thin ractor shells around the pure machines of `showcall-machines`.
//!
//! Each actor owns one machine, turns messages and timers into machine inputs (with `now` from the node's
//! [`Clock`]), and carries out the effects. Rules live in the machines; here is only delivery.
//!
//! Layout:
//! - [`hub`]: [`Hub`], the registry and router of this node's actors (placement-aware).
//! - [`session`]: what the gateway uses: [`Session`], [`UserCommand`], [`Outbound`].
//! - [`user_actor`], [`call_actor`], [`channel_actor`]: one actor kind each.
//! - [`messages`]: each actor's message enum; inputs travel as serde data with a trace context.
//! - [`ports`]: traits the services implement (placement, media control, call records).
//! - [`keys`], [`ids`], [`clock`], [`error`]: small vocabulary.
#![forbid(unsafe_code)]

pub mod call_actor;
pub mod channel_actor;
pub mod clock;
pub mod error;
pub mod hub;
pub mod ids;
pub mod keys;
pub mod messages;
pub mod ports;
pub mod session;
pub mod user_actor;

pub use clock::Clock;
pub use error::CommandError;
pub use hub::{Hub, HubParts};
pub use keys::{ActorKey, AppId, NodeId};
pub use session::{CommandOk, LoginOk, Outbound, Session, SessionSink, UserCommand};
