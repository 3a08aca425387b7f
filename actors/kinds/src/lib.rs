//! The actors of showcall: thin shells around the pure machines of `showcall-machines` (the channel
//! actor is a ractor actor; a user's or a call's actor runs only while it has messages, see
//! [`user_actor`] and [`call_actor`]).
//!
//! Each actor owns one machine, turns messages and timers into machine inputs (with `now` from its
//! [`Context`]), and carries out the effects through the context's ports and [`Outbox`]. Rules live in
//! the machines; here is only delivery. The actors know nothing of the registry that runs them
//! (`showcall-runtime`), which is the only crate that names their types.
//!
//! - [`user_actor`], [`call_actor`], [`channel_actor`]: one actor kind each.
//! - [`context`]: what an actor is given ([`ActorContext`]).
//! - [`inline_runs`]: runs started while a task handles a message run on that task.
//!
//! [`Outbox`]: showcall_ports::outbox::Outbox
#![forbid(unsafe_code)]

pub mod call_actor;
pub mod channel_actor;
pub mod context;
pub mod inline_runs;
pub mod user_actor;

pub use call_actor::{CallActor, CallStart};
pub use channel_actor::ChannelActor;
pub use context::{ActorContext, Context, TimerKey};
pub use user_actor::{RestoredUser, UserActor, UserStart};
