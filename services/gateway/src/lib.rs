//! The WebSocket signaling gateway: where clients connect.
//!
//! One protobuf schema (`showcall.signal.v1`) over WebSocket: JSON text frames for browsers, binary
//! frames for the Rust SDK. Each connection is one task; every frame is decoded, rate-limited per
//! connection, validated, authorised against the session's token, and handed to the user's actor; the
//! answer goes back with the frame's request id. Events from the actors are forwarded in order.
//!
//! Layout:
//! - [`codec`]: JSON / binary frames.
//! - [`validate`]: wire → domain, every documented limit enforced once.
//! - [`convert`]: domain → wire, including the one mapping of errors to codes.
//! - `connection`: the per-connection loop.
#![forbid(unsafe_code)]

pub mod codec;
mod connection;
pub mod convert;
pub mod validate;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::IntoResponse;
use axum::routing::get;
use showcall_actors::Hub;
use showcall_auth::AppKeys;
use tokio::sync::watch;

/// Gateway settings.
#[derive(Debug)]
pub struct GatewayConfig {
    /// Secrets of the apps whose tokens this node accepts.
    pub keys: Arc<AppKeys>,
    /// Largest frame accepted; larger ones are refused with MALFORMED_FRAME and change nothing.
    pub max_frame_bytes: usize,
    /// Sustained frames per second allowed per connection.
    pub rate_per_second: u32,
    /// Burst allowance above the sustained rate.
    pub rate_burst: u32,
}

/// What every connection shares.
#[derive(Clone)]
pub struct Gateway {
    hub: Hub,
    config: Arc<GatewayConfig>,
    /// Flips when the node shuts down; connections close with "service restart" so clients reconnect and
    /// resume within the grace period.
    shutdown: watch::Receiver<bool>,
}

impl Gateway {
    pub fn new(hub: Hub, config: GatewayConfig, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            hub,
            config: Arc::new(config),
            shutdown,
        }
    }

    /// The axum routes: `GET /signal` upgrades to the signaling WebSocket.
    pub fn router(self) -> Router {
        Router::new()
            .route("/signal", get(upgrade))
            .with_state(self)
    }
}

/// Transport-level cap: above the protocol limit so oversize frames reach the codec and get a typed
/// error instead of a dropped connection, yet bounded so a client cannot make the server buffer megabytes.
const TRANSPORT_SLACK: usize = 4;

async fn upgrade(State(gw): State<Gateway>, ws: WebSocketUpgrade) -> impl IntoResponse {
    let cap = gw.config.max_frame_bytes.saturating_mul(TRANSPORT_SLACK);
    ws.max_message_size(cap)
        .max_frame_size(cap)
        // Small buffers: most sessions are idle, and frames are small.
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| connection::serve(socket, gw))
}
