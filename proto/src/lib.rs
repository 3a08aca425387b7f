//! The wire contracts of showcall, generated from the `.proto` files beside this crate.
//!
//! Layout:
//! - [`signal`]: the client signaling protocol (WebSocket; binary protobuf or proto3 JSON).
//! - [`admin`]: the business-server gRPC API.
//! - [`node`]: node-to-node envelopes (cluster).
//! - [`policy`]: call admission, a service the app's business server implements (client and server).
//!
//! These types stop at the edge: the gateway and admin adapters convert them into domain types.
//! rustdoc's lints are off in the generated modules: their docs are the `.proto` comments, which write
//! keys as `user/<app>/<id>` (HTML to rustdoc) and are not Rust.
#![forbid(unsafe_code)]

/// Every message and service above, as a serialized `FileDescriptorSet` (for gRPC server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// Client signaling, `showcall.signal.v1`.
pub mod signal {
    #![allow(clippy::all, missing_docs, rustdoc::all)]
    include!(concat!(env!("OUT_DIR"), "/showcall.signal.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/showcall.signal.v1.serde.rs"));
}

/// Business-server API, `showcall.admin.v1`.
pub mod admin {
    #![allow(clippy::all, missing_docs, rustdoc::all)]
    include!(concat!(env!("OUT_DIR"), "/showcall.admin.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/showcall.admin.v1.serde.rs"));
}

/// Node-to-node envelopes, `showcall.node.v1`.
pub mod node {
    #![allow(clippy::all, missing_docs, rustdoc::all)]
    include!(concat!(env!("OUT_DIR"), "/showcall.node.v1.rs"));
}

/// Call admission, `showcall.policy.v1`: the node is the client; the server is generated too, for business
/// servers written in Rust and for tests.
pub mod policy {
    #![allow(clippy::all, missing_docs, rustdoc::all)]
    include!(concat!(env!("OUT_DIR"), "/showcall.policy.v1.rs"));
}
