//! The `showcall` node: wires the actors, the signaling gateway, the business API and the HTTP health
//! endpoint into one process.
//!
//! Layout:
//! - [`config`]: [`NodeConfig`], layered defaults → TOML → env → flags.
//! - [`cli`]: the command line (`run`, `token`, `admin-token`).
//! - [`metrics`]: `/metrics`, the Prometheus page (recorder installed once per process).
//! - [`open_files`]: the open-files limit raised and the descriptor table grown, once per process.
//! - [`demo`]: the demo pages and web SDK, served next to `/signal` (and the demo token route).
//! - [`webhooks`]: starts webhook delivery for the apps that have a `webhook_url`.
//! - [`telemetry`]: logs, and a call's trace over OTLP when `otlp_endpoint` is set.
//! - this file: [`start`] and [`NodeHandle`].
//!
//! Shutdown follows mini-redis: one watch channel tells every server and connection to stop; [`NodeHandle::
//! shutdown`] waits until they have. Connections close with "service restart" so clients can reconnect (to
//! any node, once clustered) and resume within the grace period.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod demo;
pub mod media_port;
pub mod metrics;
pub mod open_files;
pub mod telemetry;
pub mod tls;
pub mod webhooks;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use showcall_gateway::{Gateway, GatewayConfig};
use showcall_machines::UserConfig;
use showcall_protocol::NodeId;
use showcall_runtime::Hub;
use showcall_runtime::HubParts;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::NodeConfig;

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    /// Where the WebSocket signaling endpoint listens (`ws://<addr>/signal`).
    pub signal_addr: SocketAddr,
    /// Where the business gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Where `/healthz` and `/metrics` listen.
    pub http_addr: SocketAddr,
    /// Where the WebRTC media router receives (UDP); ICE candidates carry `media_candidate`.
    pub media_addr: SocketAddr,
    /// The first media worker's ICE-TCP address (its passive TCP candidate), when `media_tcp` is on.
    pub media_tcp_addr: Option<SocketAddr>,
    /// Whether signaling and pages are served over TLS (HTTPS/WSS).
    pub secure: bool,
    /// Where the node link listens when it has its own port (`link_addr`, cluster only).
    pub link_addr: Option<SocketAddr>,
    /// Whether gRPC (business API, node link) is served over TLS.
    pub grpc_tls: bool,
    hub: Hub,
    /// The cluster membership, when the node joined one through etcd.
    membership: Option<showcall_cluster::Membership>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Webhook deliveries so far (all zero when this node does not deliver).
    webhooks: Arc<showcall_admin::webhooks::WebhookCounters>,
}

impl NodeHandle {
    /// The signaling URL clients connect to.
    pub fn signal_url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}/signal", self.signal_addr)
    }

    /// The business API's URL (`http://` or `https://`).
    pub fn grpc_url(&self) -> String {
        let scheme = if self.grpc_tls { "https" } else { "http" };
        format!("{scheme}://{}", self.grpc_addr)
    }

    /// The demo pages' URL.
    pub fn pages_url(&self) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}/", self.signal_addr)
    }

    /// The node's actor hub (for in-process inspection).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The cluster membership, when the node joined one through etcd.
    pub fn membership(&self) -> Option<&showcall_cluster::Membership> {
        self.membership.as_ref()
    }

    /// What webhook delivery has done on this node: `failures()` is `showcall_webhook_failures_total`.
    pub fn webhook_counters(&self) -> &showcall_admin::webhooks::WebhookCounters {
        &self.webhooks
    }

    /// Stops accepting, closes connections, waits for the servers to finish, and leaves the cluster
    /// (revoking the lease frees this node's partitions at once).
    ///
    /// Every step is bounded: servers get [`SHUTDOWN_GRACE`] to finish (open streams — other nodes'
    /// links, `WatchEvents` — are ended by the same signal), then whatever still runs is aborted, so the
    /// node exits within a few seconds whatever its peers and clients do.
    pub async fn shutdown(mut self) {
        if let Some(membership) = &self.membership {
            // First hand every partition over with its actors (sessions, connected calls): the
            // servers and this node's connections keep running meanwhile — sessions whose socket is
            // here are relayed to their new node until the socket closes below.
            self.hub.set_leaving();
            membership.announce_leaving(LEAVE_LIMIT / 5).await;
            // Connected calls whose media runs here move to a channel on another node first, while
            // this node still relays to its clients: their parties are told to join the new one.
            let moved = self.hub.move_call_channels(CHANNEL_MOVE_LIMIT).await;
            tracing::info!(moved, "call channels moved to other nodes");
            membership.leave(LEAVE_LIMIT).await;
            // Messages this node held for those partitions go on to their new owners.
            if !self.hub.drain_parked(PARKED_DRAIN).await {
                tracing::warn!("messages still waiting for their new owners are dropped");
            }
        }
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                still_running = self.tasks.len(),
                "servers did not stop in time; aborted"
            );
            self.tasks.abort_all();
        }
        if let Some(membership) = &self.membership {
            membership.stop().await;
        }
    }
}

/// How long a leaving node spends handing its partitions over (half of it waiting for calls that are
/// still connecting); what is left after it is lost as in a crash.
pub const LEAVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a leaving node waits for the messages it held during the handover to move on.
pub const PARKED_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a leaving node waits for its call channels to move to other nodes.
pub const CHANNEL_MOVE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long servers and connections get to finish after the stop signal.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// What every user actor of a node runs with, from its configuration (public for benchmarks that
/// assemble a node's parts themselves).
pub fn user_config(config: &NodeConfig) -> UserConfig {
    UserConfig {
        grace_ms: config.grace_period.as_millis() as u64,
        token_warning_ms: config.token_expiry_warning.as_millis() as u64,
        default_call_timeout_ms: config.call_timeout.as_millis() as u64,
        pause_at: match config.pause_live_at {
            config::PauseAt::Accept => showcall_machines::PauseAt::Accept,
            config::PauseAt::Ringing => showcall_machines::PauseAt::Ringing,
        },
        // A lost call's new owner needs the lease to expire, the partition to be claimed and the call's
        // record read, then asks the parties (it waits ADOPTION_TIMEOUT_MS for answers): parties wait
        // longer than all of that before giving up on the call themselves.
        takeover_wait_ms: (2 * config.lease_ttl.as_millis() as u64)
            + showcall_machines::call::ADOPTION_TIMEOUT_MS
            + 5_000,
        billing_tick_ms: config.billing_tick.as_millis() as u64,
    }
}

/// The apps whose calls their business server authorizes (those with a `call_policy_url`).
fn admission(config: &NodeConfig) -> anyhow::Result<Arc<dyn showcall_ports::admission::Admission>> {
    use showcall_ports::admission::{GrpcAdmission, NoAdmission};
    let apps: Vec<_> = config
        .apps
        .iter()
        .filter_map(|a| {
            Some((
                showcall_protocol::AppId(a.id.clone()),
                a.call_policy_url.clone()?,
            ))
        })
        .collect();
    if apps.is_empty() {
        return Ok(Arc::new(NoAdmission));
    }
    let trusted_ca = config
        .trusted_ca
        .as_deref()
        .map(tls::trusted_ca)
        .transpose()?;
    Ok(Arc::new(GrpcAdmission::new(
        apps,
        config.call_policy_timeout,
        trusted_ca.as_deref(),
    )?))
}

/// The cluster secret (validation made sure a cluster has one).
fn cluster_secret(config: &NodeConfig) -> anyhow::Result<showcall_auth::ClusterSecret> {
    let secret = config
        .cluster_secret
        .as_ref()
        .context("a cluster needs cluster_secret")?;
    Ok(showcall_auth::ClusterSecret::new(secret.0.as_bytes()))
}

/// Binds every endpoint and starts serving. Port 0 binds an ephemeral port; the handle says which.
/// The IP other nodes reach this one at, from the node link's advertised address (an IP, or a host
/// name resolved once, at start); `None` when it names no concrete address (e.g. `0.0.0.0:7801`).
async fn node_network_ip(link_advertise: &str) -> Option<IpAddr> {
    tokio::net::lookup_host(link_advertise)
        .await
        .ok()?
        .map(|a| a.ip())
        .find(|ip| !ip.is_unspecified())
}

pub async fn start(config: NodeConfig) -> anyhow::Result<NodeHandle> {
    config.validate().context("invalid configuration")?;
    // First: the cluster's etcd requests below are already timed.
    let recorded = metrics::install();
    // Before any socket: the table of descriptors grown once, not under load (`open_files`).
    open_files::prepare();
    let signal = TcpListener::bind(config.signal_addr)
        .await
        .with_context(|| format!("binding signaling on {}", config.signal_addr))?;
    let grpc = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC on {}", config.grpc_addr))?;
    let http = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http_addr))?;
    let (signal_addr, grpc_addr, http_addr) =
        (signal.local_addr()?, grpc.local_addr()?, http.local_addr()?);
    // The node link on its own port, when asked (only a cluster has one).
    let link = match config.link_addr {
        Some(addr) if !config.etcd_endpoints.is_empty() => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the node link on {addr}"))?,
        ),
        _ => None,
    };
    let link_addr = link.as_ref().map(|l| l.local_addr()).transpose()?;
    let grpc_tls = match (&config.grpc_tls_cert, &config.grpc_tls_key) {
        (Some(cert), Some(key)) => Some(tls::grpc_server_tls(cert, key)?),
        _ => None,
    };
    let grpc_tls_on = grpc_tls.is_some();
    let trusted_ca = config
        .trusted_ca
        .as_deref()
        .map(tls::trusted_ca)
        .transpose()?;

    let (media_events_tx, media_events) = tokio::sync::mpsc::unbounded_channel();
    let router = showcall_media::MediaRouter::start(
        showcall_media::MediaConfig {
            bind: config.media_addr,
            workers: config.media_workers,
            room_capacity: config.media_room_capacity,
            advertise_ip: config.media_advertise_ip,
            tcp: config.media_tcp_bind(),
            // One live room across nodes: a cluster member relays rooms to the nodes holding their
            // viewers (`config.media`); a single node has nobody to relay to.
            relay: (!config.etcd_endpoints.is_empty()).then(|| {
                config
                    .media
                    .relay_addr
                    .unwrap_or_else(|| SocketAddr::new(config.media_addr.ip(), 0))
            }),
        },
        media_events_tx,
    )
    .with_context(|| format!("binding media (UDP, TCP) on {}", config.media_addr))?;
    let media_addr = router.candidate_addr();
    let media_tcp_addr = router.tcp_candidate_addrs().first().copied();
    let signal_url = format!(
        "{}://{signal_addr}/signal",
        if config.tls_cert.is_some() {
            "wss"
        } else {
            "ws"
        }
    );
    let mut parts = HubParts::single_node(NodeId(config.node_id.clone()), user_config(&config));
    // What peers dial for the node link: its own address when it has one, else the gRPC port's.
    let link_advertise = match link_addr {
        Some(addr) => config
            .link_advertise_addr
            .clone()
            .unwrap_or_else(|| addr.to_string()),
        None => config
            .grpc_advertise_addr
            .clone()
            .unwrap_or_else(|| grpc_addr.to_string()),
    };
    // The relay crosses the nodes' own network, which the node link's address is on; the media
    // address is the clients' (in compose it is the host's 127.0.0.1, which another container
    // cannot reach).
    let relay_ip = node_network_ip(&link_advertise)
        .await
        .or(config.media_advertise_ip);
    let router_port = media_port::RouterPort::new(router.clone()).with_relay_advertise_ip(relay_ip);
    parts.media = Arc::new(router_port.clone());
    parts.relay = Arc::new(router_port.clone());
    parts.admission = admission(&config)?;
    let membership = if config.etcd_endpoints.is_empty() {
        None
    } else {
        let membership = showcall_cluster::Membership::start(showcall_cluster::ClusterConfig {
            endpoints: config.etcd_endpoints.clone(),
            prefix: config.cluster_prefix.clone(),
            partitions: config.partitions,
            lease_ttl: config.lease_ttl,
            info: showcall_cluster::NodeInfo {
                id: NodeId(config.node_id.clone()),
                grpc_addr: link_advertise,
                media_addr: media_addr.to_string(),
                signal_url: signal_url.clone(),
                signal_public_url: config.signal_public_url.clone(),
                capacity: config.media_capacity,
                load: 0,
                leaving: false,
                lease: 0,
                timeline: true,
                wire_minor: 0,
                media: Some(showcall_cluster::MediaInfo {
                    relays: showcall_ports::MediaRelay::relays(&router_port),
                    sessions: 0,
                    egress_bps: 0,
                    max_sessions: config.media.max_viewers,
                    max_egress_bps: config.media.max_egress_bps,
                }),
            },
        })
        .await
        .context("joining the cluster through etcd")?;
        parts.placement = Arc::new(
            showcall_cluster::EtcdPlacement::new(membership.clone())
                .with_edge_rule(config.media.edge),
        );
        let secret = cluster_secret(&config)?;
        let transport = match grpc_tls {
            Some(_) => showcall_cluster::LinkTransport::Tls {
                ca_pem: trusted_ca.clone(),
            },
            None => showcall_cluster::LinkTransport::Plain,
        };
        let mut courier = showcall_cluster::LinkCourier::new(
            membership.clone(),
            showcall_cluster::LinkCredentials::new(secret, NodeId(config.node_id.clone())),
            transport,
        );
        if config.rehearse_next_wire_minor {
            tracing::warn!(
                "rehearsing a rolling upgrade: node-link frames are written as the next minor wire version would write them"
            );
            courier = courier.rehearsing_next_minor();
        }
        parts.courier = Arc::new(courier);
        let ledger = showcall_cluster::EtcdCallLedger::new(&membership);
        parts.ledger = Arc::new(ledger.clone());
        parts.events = Arc::new(showcall_cluster::EtcdEventLog::new(&membership));
        parts.bans = Arc::new(showcall_cluster::EtcdBans::new(&membership));
        Some((membership, ledger))
    };
    let (membership, ledger) = match membership {
        Some((m, l)) => (Some(m), Some(l)),
        None => (None, None),
    };
    let hub = Hub::new(parts);
    let keys = Arc::new(config.app_keys());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let webhooks =
        webhooks::start(&config, &hub, membership.as_ref(), &shutdown_rx, &mut tasks).await?;

    let gateway = Gateway::new(
        hub.clone(),
        GatewayConfig {
            keys: keys.clone(),
            max_frame_bytes: config.max_frame_bytes,
            rate_per_second: config.rate_limit.per_second,
            rate_burst: config.rate_limit.burst,
            outbox_frames: config.max_outbox_frames,
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            turn: config.turn.as_ref().map(|turn| turn.servers()),
        },
        shutdown_rx.clone(),
    );
    let signal_router = gateway.router().merge(demo::router(&config));
    let mut stop = shutdown_rx.clone();
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    let secure = tls.is_some();
    match tls {
        Some(acceptor) => {
            tasks.spawn(tls::serve(signal, signal_router, acceptor, stop));
        }
        None => {
            tasks.spawn(async move {
                // Signaling frames are small and latency-bound: without TCP_NODELAY an event written right
                // after a response waits for the client's delayed ACK (~40 ms).
                let signal = signal.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                // The gateway caps connections per client address.
                let signal_router =
                    signal_router.into_make_service_with_connect_info::<SocketAddr>();
                let served = axum::serve(signal, signal_router)
                    .with_graceful_shutdown(async move {
                        let _ = stop.changed().await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "signaling server failed");
                }
            });
        }
    }

    let info_hub = hub.clone();
    let node_id = config.node_id.clone();
    let info_membership = membership.clone();
    let admin = showcall_admin::AdminService::new(keys, move || {
        let (partitions, fenced, live_nodes, partition_count) = match &info_membership {
            Some(m) => (
                m.served(),
                m.is_fenced(),
                m.view().nodes.keys().map(|n| n.0.clone()).collect(),
                m.partitions(),
            ),
            None => (Vec::new(), false, vec![node_id.clone()], 0),
        };
        showcall_admin::NodeInfo {
            node_id: node_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            signal_url: signal_url.clone(),
            users_online: info_hub.users_online() as u64,
            calls_active: info_hub.calls_active() as u64,
            partitions,
            fenced,
            live_nodes,
            active_actors: info_hub.active_actors(),
            partition_count,
        }
    });
    let admin = admin
        .with_api_keys(Arc::new(config.api_keys()))
        .with_events(hub.events().clone())
        .with_hub(hub.clone())
        .with_shutdown(shutdown_rx.clone());
    let link_stop = shutdown_rx.clone();
    let link_own_stop = shutdown_rx.clone();
    let link_hub = membership.as_ref().map(|_| hub.clone());
    let link_secret = match &membership {
        Some(_) => cluster_secret(&config)?,
        None => showcall_auth::ClusterSecret::new(b""),
    };
    let link_tls = grpc_tls.clone();
    if let Some(m) = &membership {
        // Partitions with users or calls running here are not handed to a joining node (no actor
        // migration).
        let busy_hub = hub.clone();
        let count = m.partitions();
        m.set_busy(Arc::new(move || {
            busy_hub
                .busy_keys()
                .iter()
                // Channels are pinned, not placed by partition: they never hold a partition back.
                .filter(|key| !matches!(key, showcall_protocol::ActorKey::Channel(..)))
                .map(|key| showcall_cluster::partition_of(key, count))
                .collect()
        }));
        let load_hub = hub.clone();
        m.set_load(Arc::new(move || load_hub.channels_open() as u32));
        // The router's load as an edge: sessions and the bit rate it sends, sampled every second.
        let media_load = Arc::new(std::sync::Mutex::new(showcall_cluster::MediaLoad::default()));
        let sampled = media_load.clone();
        m.set_media_load(Arc::new(move || {
            *sampled.lock().unwrap_or_else(|e| e.into_inner())
        }));
        let mut stop = shutdown_rx.clone();
        let sampler_router = router.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = media_port::sample_media_load(sampler_router, media_load) => {}
                _ = stop.changed() => {}
            }
        });
        // Busy partitions move with their actors (a joining node's share, and this node's on leave).
        let handoff_hub = hub.clone();
        m.set_handoff(Arc::new(move |partition, target, force| {
            let hub = handoff_hub.clone();
            Box::pin(async move {
                let moving = move |key: &showcall_protocol::ActorKey| {
                    !matches!(key, showcall_protocol::ActorKey::Channel(..))
                        && showcall_cluster::partition_of(key, count) == partition
                };
                match hub.hand_off(&moving, &target, force).await {
                    showcall_protocol::handoff::HandoffOutcome::Moved { users, calls } => {
                        tracing::info!(partition, %target, users, calls, "partition handed over");
                        true
                    }
                    showcall_protocol::handoff::HandoffOutcome::NotNow(why) => {
                        tracing::debug!(partition, %target, %why, "partition not handed over yet");
                        false
                    }
                    showcall_protocol::handoff::HandoffOutcome::Failed(why) => {
                        tracing::warn!(partition, %target, %why, "partition handoff failed");
                        false
                    }
                }
            })
        }));
        // This node's own lease expired: others took its actors over; drop the local copies.
        let mut own_losses = m.own_lease_losses();
        let evict_hub = hub.clone();
        let mut stop = shutdown_rx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    lost = own_losses.recv() => match lost {
                        Some(()) => evict_hub.evict_all(),
                        None => break,
                    },
                    _ = stop.changed() => break,
                }
            }
        });
        // A dead node's actors are gone: close the sessions and end the calls that lived there.
        let mut losses = m.node_losses();
        let count = m.partitions();
        let loss_hub = hub.clone();
        let loss_membership = m.clone();
        let loss_ledger = ledger.clone();
        let takeover_limit = 3 * config.lease_ttl + std::time::Duration::from_secs(5);
        let mut stop = shutdown_rx.clone();
        tasks.spawn(async move {
            loop {
                let loss = tokio::select! {
                    loss = losses.recv() => match loss {
                        Some(loss) => loss,
                        None => break,
                    },
                    _ = stop.changed() => break,
                };
                let (partitions, channels) = (loss.partitions.clone(), loss.channels.clone());
                let dead_tag = showcall_cluster::view::node_tag(&loss.node);
                let lost: showcall_protocol::messages::LostKeys = Arc::new(move |key| match key {
                    // Channels are pinned to a node, not placed by partition.
                    showcall_protocol::ActorKey::Channel(app, channel) => {
                        match showcall_cluster::view::tag_of_call_channel(channel) {
                            Some(tag) => tag == dead_tag,
                            None => {
                                channels.contains(&showcall_cluster::view::channel_id(app, channel))
                            }
                        }
                    }
                    _ => partitions.contains(&showcall_cluster::partition_of(key, count)),
                });
                loss_hub.node_lost(&loss.node, lost);
                // Connected calls whose actor died there go on here if this node owns them now.
                if let Some(ledger) = &loss_ledger {
                    tokio::spawn(showcall_cluster::take_over_calls(
                        loss_hub.clone(),
                        loss_membership.clone(),
                        ledger.clone(),
                        loss,
                        takeover_limit,
                    ));
                }
            }
        });
    }
    let mut stop = shutdown_rx.clone();
    tasks.spawn(async move {
        let stopped = async move {
            let _ = stop.changed().await;
        };
        // In a cluster the same port carries the node link (envelopes from other nodes), unless it
        // has a port of its own.
        let node_link =
            link_hub.map(|hub| showcall_cluster::NodeLinkService::new(hub, link_secret, link_stop));
        let (shared, own) = match link {
            Some(listener) => (None, node_link.map(|service| (listener, service))),
            None => (node_link, None),
        };
        if let Some((listener, service)) = own {
            let tls = link_tls;
            let mut stop = link_own_stop;
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.changed().await;
                };
                if let Err(e) = showcall_cluster::serve_link(listener, service, tls, stopped).await
                {
                    tracing::error!(error = %e, "node link server failed");
                }
            });
        }
        let more = move |routes: tonic::service::Routes| match shared {
            Some(service) => routes.add_service(service.into_server()),
            None => routes,
        };
        if let Err(e) = showcall_admin::serve_with(grpc, admin, grpc_tls, more, stopped).await {
            tracing::error!(error = %e, "gRPC server failed");
        }
    });

    let node_metrics =
        metrics::NodeMetrics::new(recorded, hub.clone(), router.clone(), membership.clone());
    let health = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(node_metrics.router());
    let mut stop = shutdown_rx.clone();
    tasks.spawn(async move {
        let served = axum::serve(http, health)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    // The media router and its event relay live until shutdown.
    let mut stop = shutdown_rx.clone();
    let events_hub = hub.clone();
    let router_stop = router.clone();
    tasks.spawn(async move {
        let relay = tokio::spawn(media_port::forward_events(events_hub, media_events));
        let _ = stop.changed().await;
        router_stop.shutdown().await;
        relay.abort();
    });

    Ok(NodeHandle {
        signal_addr,
        grpc_addr,
        http_addr,
        media_addr,
        media_tcp_addr,
        secure,
        link_addr,
        grpc_tls: grpc_tls_on,
        hub,
        membership,
        shutdown: shutdown_tx,
        tasks,
        webhooks,
    })
}
