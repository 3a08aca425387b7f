//! The WebSocket signaling gateway: where clients connect.
//!
//! One protobuf schema (`showcall.signal.v1`) over WebSocket: JSON text frames for browsers, binary
//! frames for the Rust SDK. Each connection is one task; every frame is decoded, rate-limited per
//! connection, validated, authorised against the session's token, and handed to the user's actor; the
//! answer goes back with the frame's request id. Events from the actors are forwarded in order.
//!
//! Every queue or allowance a client could grow is bounded, with a policy when full: connections per
//! node and per client address (refused before the upgrade, `slots`), frames per second per
//! connection (RATE_LIMITED), frame size (MALFORMED_FRAME, or a close beyond the transport limit), and
//! each connection's outbox (a client that stops reading is closed as a slow consumer, 4008; the actors
//! pushing to it never wait). [`close`] lists every close code.
//!
//! Layout:
//! - [`codec`]: JSON / binary frames.
//! - [`validate`]: wire → domain, every documented limit enforced once.
//! - [`convert`]: domain → wire, including the one mapping of errors to codes.
//! - [`close`]: why the server ends a connection, and the close frame it sends.
//! - `slots`: the connection caps.
//! - [`TurnServers`]: the TURN servers and per-login credentials a login answer carries.
//! - `connection`: the per-connection loop.
#![forbid(unsafe_code)]

pub mod close;
pub mod codec;
mod connection;
pub mod convert;
mod slots;
mod turn_servers;
pub mod validate;

pub use turn_servers::TurnServers;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use showcall_auth::AppKeys;
use showcall_runtime::Hub;
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
    /// Events queued for one connection's client at most; one more closes the connection as a slow
    /// consumer (4008). Must hold a resumed session's replay (`showcall_machines::user::AWAY_BUFFER`).
    pub outbox_frames: usize,
    /// Signaling connections this node holds at most; more are refused (503) before the upgrade.
    pub max_connections: usize,
    /// Signaling connections one client address holds at most (0 = no cap); more are refused (429).
    pub max_connections_per_ip: usize,
    /// TURN servers handed to each login that may move media; `None` = the login answer has none.
    pub turn: Option<TurnServers>,
}

/// What every connection shares.
#[derive(Clone)]
pub struct Gateway {
    hub: Hub,
    config: Arc<GatewayConfig>,
    /// The connection caps, shared by every upgrade.
    slots: Arc<slots::ConnectionSlots>,
    /// Flips when the node shuts down; connections close with "service restart" so clients reconnect and
    /// resume within the grace period.
    shutdown: watch::Receiver<bool>,
}

impl Gateway {
    pub fn new(hub: Hub, config: GatewayConfig, shutdown: watch::Receiver<bool>) -> Self {
        let slots =
            slots::ConnectionSlots::new(config.max_connections, config.max_connections_per_ip);
        Self {
            hub,
            config: Arc::new(config),
            slots,
            shutdown,
        }
    }

    /// The axum routes: `GET /signal` upgrades to the signaling WebSocket. The server must provide the
    /// client's address (`into_make_service_with_connect_info::<SocketAddr>()`, or a `ConnectInfo`
    /// extension): the per-address cap needs it.
    pub fn router(self) -> Router {
        Router::new()
            .route("/signal", get(upgrade))
            .with_state(self)
    }
}

/// Transport-level cap: above the protocol limit so oversize frames reach the codec and get a typed
/// error instead of a dropped connection, yet bounded so a client cannot make the server buffer megabytes.
const TRANSPORT_SLACK: usize = 4;

async fn upgrade(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    // Before the upgrade, so a refused client gets an HTTP status and a body it can read.
    let slot = match gw.slots.take(peer.ip()) {
        Ok(slot) => slot,
        Err(refusal) => {
            showcall_protocol::metrics::connection_refused(refusal.label());
            tracing::debug!(%peer, %refusal, "signaling connection refused");
            return (refusal.status(), refusal.to_string()).into_response();
        }
    };
    let cap = gw.config.max_frame_bytes.saturating_mul(TRANSPORT_SLACK);
    ws.max_message_size(cap)
        .max_frame_size(cap)
        // Small buffers: most sessions are idle, and frames are small. Frames are held until the
        // connection flushes a batch (`connection::write`), or written once 4 KiB are held.
        .read_buffer_size(1024)
        .write_buffer_size(4096)
        // A failed upgrade drops the closure, and the slot with it.
        .on_upgrade(move |socket| connection::serve(socket, gw, peer, slot))
        .into_response()
}
