//! An in-process node for the media benchmarks, wired like [`crate::start`] (signaling gateway, hub, the
//! str0m router behind the `MediaControl` port) with two differences that exist only to measure:
//!
//! - the bench keeps the [`MediaRouter`] handle, for its counters ([`MediaRouter::stats`]);
//! - the router's task runs alone on a thread of its own (a current-thread tokio runtime) instead of on
//!   the shared runtime, so that thread's CPU time is the router's CPU time, apart from the clients that
//!   share the process. The router's code is the same: one task, one UDP socket.
//!
//! gRPC and HTTP health are left out: nothing here uses them.

use std::sync::Arc;

use anyhow::Context as _;
use showcall_actors::{Hub, HubParts, NodeId};
use showcall_gateway::{Gateway, GatewayConfig};
use showcall_media::{MediaConfig, MediaRouter};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use super::cpu;
use crate::config::NodeConfig;
use crate::media_port::{RouterPort, forward_events};

pub(super) struct MediaNode {
    /// The signaling URL (`ws://…/signal`).
    pub url: String,
    pub router: MediaRouter,
    /// The router thread's id, for [`cpu::thread_seconds`].
    pub router_tid: u32,
    stop: watch::Sender<bool>,
    stop_router: oneshot::Sender<()>,
    router_thread: std::thread::JoinHandle<()>,
    tasks: JoinSet<()>,
}

type RouterReady = anyhow::Result<(MediaRouter, u32)>;

impl MediaNode {
    /// Starts the node on `config`'s addresses (port 0 = ephemeral).
    pub async fn start(config: &NodeConfig) -> anyhow::Result<Self> {
        config.validate().context("invalid configuration")?;
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready) = oneshot::channel::<RouterReady>();
        let (stop_router, router_stopped) = oneshot::channel::<()>();
        let media = MediaConfig {
            bind: config.media_addr,
            advertise_ip: config.media_advertise_ip,
        };
        let router_thread = std::thread::Builder::new()
            .name("media-router".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                // `block_on` drives the router task spawned by `start` until told to stop.
                runtime.block_on(async move {
                    match MediaRouter::start(media, events_tx).await {
                        Ok((router, task)) => {
                            let tid = cpu::current_thread_id();
                            let _ = ready_tx.send(tid.map(|tid| (router, tid)));
                            let _ = router_stopped.await;
                            task.abort();
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                        }
                    }
                });
            })?;
        let (router, router_tid) = ready.await.context("media router thread died")??;

        let signal = TcpListener::bind(config.signal_addr).await?;
        let url = format!("ws://{}/signal", signal.local_addr()?);
        let mut parts =
            HubParts::single_node(NodeId(config.node_id.clone()), crate::user_config(config));
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
            },
            stop_rx.clone(),
        );
        let mut tasks = JoinSet::new();
        let mut stopped = stop_rx;
        tasks.spawn(async move {
            let signal = axum::serve::ListenerExt::tap_io(signal, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(signal, gateway.router())
                .with_graceful_shutdown(async move {
                    let _ = stopped.changed().await;
                })
                .await;
        });
        tasks.spawn(forward_events(hub, events));
        Ok(Self {
            url,
            router,
            router_tid,
            stop,
            stop_router,
            router_thread,
            tasks,
        })
    }

    /// Closes the connections, stops the router and waits for its thread.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = self.stop_router.send(());
        self.tasks.shutdown().await;
        let _ = tokio::task::spawn_blocking(move || self.router_thread.join()).await;
    }
}
