//! The business-server gRPC API (`showcall.admin.v1.Admin`), served by every node.
//!
//! Layout:
//! - [`auth`]: who may call: admin tokens checked per request ([`AdminAuth`]), the app a key acts for,
//!   and [`AdminCredentials`] for clients.
//! - [`request`]: turns proto requests into checked domain values, and admin errors into `tonic::Status`
//!   (the one place either happens).
//! - [`service`]: [`AdminService`], the `Admin` trait implementation.
//! - [`business`]: the users / hosts / channels / kick / call RPCs' requests and answers.
//! - [`events`]: business events as the `WatchEvents` stream.
//! - [`server`]: [`serve`], which runs the API and the standard gRPC health service on a listener.
//! - [`webhooks`]: the same events POSTed to each app's webhook URL, signed and retried.
#![forbid(unsafe_code)]

pub mod auth;
pub mod business;
pub mod events;
pub mod request;
pub mod server;
pub mod service;
pub mod webhooks;

pub use auth::{AdminAuth, AdminCredentials};
pub use request::{AdminError, MAX_TTL_SECONDS, MintToken};
pub use server::{serve, serve_with};
pub use service::AdminService;
/// What `GetNodeInfo` answers; the node fills it in (see [`AdminService::new`]).
pub use showcall_proto::admin::NodeInfo;
