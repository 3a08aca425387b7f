//! An in-process node for the media benchmarks, wired like `crate::start` (signaling gateway, hub, the
//! str0m router behind the `MediaControl` port) with two differences that exist only to measure:
//!
//! - the bench keeps the [`MediaRouter`] handle, for its counters ([`MediaRouter::stats`]) and the ids of
//!   its worker threads (each worker runs alone on a thread of its own, as in the node, so those threads'
//!   CPU time is the router's, apart from the clients that share the process).
//!
//! gRPC and HTTP health are left out: nothing here uses them.

use std::sync::Arc;

use anyhow::Context as _;
use showcall_gateway::{Gateway, GatewayConfig};
use showcall_media::{MediaConfig, MediaRouter};
use showcall_node::config::NodeConfig;
use showcall_node::media_port::{RouterPort, forward_events};
use showcall_protocol::NodeId;
use showcall_runtime::Hub;
use showcall_runtime::HubParts;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub(super) struct MediaNode {
    /// The signaling URL (`ws://…/signal`).
    pub url: String,
    pub router: MediaRouter,
    /// The router's worker threads' ids, for `cpu::thread_seconds`.
    pub router_tids: Vec<u32>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl MediaNode {
    /// Starts the node on `config`'s addresses (port 0 = ephemeral).
    pub async fn start(config: &NodeConfig) -> anyhow::Result<Self> {
        config.validate().context("invalid configuration")?;
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let media = MediaConfig {
            bind: config.media_addr,
            workers: config.media_workers,
            room_capacity: config.media_room_capacity,
            advertise_ip: config.media_advertise_ip,
            tcp: config.media_tcp_bind(),
            // The node-to-node relay is wired by the cluster's control plane (issue 15).
            relay: None,
        };
        let router = MediaRouter::start(media, events_tx)?;
        let router_tids = router.worker_thread_ids().to_vec();

        let signal = TcpListener::bind(config.signal_addr).await?;
        let url = format!("ws://{}/signal", signal.local_addr()?);
        let mut parts = HubParts::single_node(
            NodeId(config.node_id.clone()),
            showcall_node::user_config(config),
        );
        parts.media = Arc::new(RouterPort::new(router.clone()));
        let hub = Hub::new(parts);
        let (stop, stop_rx) = watch::channel(false);
        let gateway = Gateway::new(
            hub.clone(),
            GatewayConfig {
                keys: Arc::new(config.app_keys()),
                max_frame_bytes: config.max_frame_bytes,
                rate_per_second: config.rate_limit.per_second,
                rate_burst: config.rate_limit.burst,
                outbox_frames: config.max_outbox_frames,
                max_connections: config.max_connections,
                // Every client of a benchmark connects from 127.0.0.1: the per-address cap (100 by
                // default) would refuse an audience above it (429).
                max_connections_per_ip: 0,
                turn: None,
            },
            stop_rx.clone(),
        );
        let mut tasks = JoinSet::new();
        let mut stopped = stop_rx;
        tasks.spawn(async move {
            let signal = axum::serve::ListenerExt::tap_io(signal, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let router = gateway
                .router()
                .into_make_service_with_connect_info::<std::net::SocketAddr>();
            let _ = axum::serve(signal, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.changed().await;
                })
                .await;
        });
        tasks.spawn(forward_events(hub, events));
        Ok(Self {
            url,
            router,
            router_tids,
            stop,
            tasks,
        })
    }

    /// Closes the connections, stops the router and waits for its thread.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.tasks.shutdown().await;
        self.router.shutdown().await;
    }
}
