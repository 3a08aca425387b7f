//! The rules of showcall as pure state machines: no IO, no clock, no runtime.
//!
//! Each machine takes `handle(input, now) -> Result<effects, error>`: time arrives as an argument, ids are
//! minted outside and passed in, and a refused input changes nothing. The actors in
//! `showcall-actors` own one machine each, feed it messages and timers, and carry out its effects (timers
//! are armed at the absolute deadlines the machines name). This
//! crate's dependencies (serde, thiserror) are the proof that nothing else leaks in.
//!
//! Layout:
//! - [`types`]: ids, call states, reasons and events (CallAPI's numbers).
//! - [`call`]: [`CallMachine`], one 1v1 call seen from both sides.
//! - [`user`]: [`UserMachine`], one user's session, busy/glare decisions and event numbering.
//! - [`channel`]: [`ChannelMachine`], a live room or a call channel: members, roles, pause/resume.
#![forbid(unsafe_code)]

pub mod call;
pub mod channel;
pub mod types;
pub mod user;

pub use call::{
    AdmissionRequest, CallEffect, CallError, CallInput, CallMachine, CallProgress, CallRecord,
    CallSetup, CallSnapshot, CallTimer, CallUpdate,
};
pub use channel::{
    ChannelEffect, ChannelError, ChannelInput, ChannelKind, ChannelMachine, ChannelReport,
    ChannelUpdate,
};
pub use types::*;
pub use user::{UserConfig, UserEffect, UserError, UserInput, UserMachine, UserTimer};
