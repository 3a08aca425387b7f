//! The node's configuration, and how it is layered.
//!
//! Precedence, lowest to highest:
//! 1. built-in defaults ([`NodeConfig::default`]), enough to run a single demo node on localhost;
//! 2. an optional TOML file (`--config PATH` or `SHOWCALL_CONFIG`);
//! 3. environment variables `SHOWCALL_<FIELD>`, nested fields joined by a double underscore
//!    (`SHOWCALL_SIGNAL_ADDR=0.0.0.0:7800`, `SHOWCALL_GRACE_PERIOD=10s`,
//!    `SHOWCALL_RATE_LIMIT__PER_SECOND=20`);
//! 4. command-line flags (`--signal-addr`, `--grpc-addr`, `--http-addr`, `--node-id`, `--grace-period`,
//!    `--call-timeout`).
//!
//! Unknown keys are errors at every layer, so a typo is reported instead of silently ignored.
//! `apps` can only be set in the file: a list of secrets does not fit in one variable safely.
//!
//! Admission and billing (decisions where the issue is silent):
//! - `apps[].call_policy_url` (unset = the app's calls ring without asking) names the app's CallPolicy
//!   service, `http://host:port` or `https://host:port` (TLS trusting the public web roots and
//!   `trusted_ca`). `call_policy_timeout` (default 2 s, at most 30 s: the caller is waiting) is one value for
//!   every app; past it the call is refused ("admission timed out").
//! - `billing_tick` defaults to 60 s (the issue's "charge per minute"), so a business server gets ticks
//!   without configuring anything; `0s` turns them off. Below 100 ms is refused: every tick is an event
//!   in the log (in etcd for a cluster), per connected call.
//!
//! Webhooks: an app with `webhook_url` (and its `webhook_secret`, at least 16 bytes) gets every one of its
//! business events POSTed there (see `showcall_admin::webhooks`). How patiently is the `[webhooks]` table
//! (`SHOWCALL_WEBHOOKS__ATTEMPT_TIMEOUT=5s`, `__INITIAL_BACKOFF`, `__MAX_BACKOFF`, `__MAX_ATTEMPTS`):
//!
//! ```toml
//! [[apps]]
//! id = "shop"
//! secret = "shop-token-secret-0123456789"
//! webhook_url = "https://api.shop.example/showcall/events"
//! webhook_secret = "whsec-another-long-secret"
//!
//! [webhooks]
//! attempt_timeout = "5s"   # per attempt: connect, send, answer
//! initial_backoff = "1s"   # doubles after each failed attempt ...
//! max_backoff = "60s"      # ... up to this (each wait jittered to 50–100 %)
//! max_attempts = 10        # then the event is given up on and counted
//! ```

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use showcall_auth::{ApiKeys, AppKeys, MIN_TURN_SECRET_LEN};
use showcall_protocol::media_edge::EdgeRule;

use crate::cli::RunArgs;

/// A node's `media_capacity` unless configured: every node the same.
pub const DEFAULT_MEDIA_CAPACITY: u32 = 10_000;

/// Prefix of every configuration variable.
pub const ENV_PREFIX: &str = "SHOWCALL";

/// Variables with the prefix that are not configuration keys (read by the CLI itself).
const RESERVED_ENV: &[&str] = &["SHOWCALL_CONFIG"];

/// The app every fresh node knows, so the demo and `showcall token` work out of the box.
pub const DEMO_APP_ID: &str = "demo";

/// The demo app's secret. It is public (it is in the source), so anyone can mint tokens for a node
/// that still uses it: production MUST configure its own apps and secrets.
pub const DEMO_SECRET: &str = "showcall-demo-secret-change-me";

/// The demo app's API key id: what `showcall admin-token` signs with when no key is named.
pub const DEMO_API_KEY: &str = "demo-key";

/// The demo API key's secret. Public like [`DEMO_SECRET`]: anyone can call the business API of a node
/// that still has it; production MUST configure its own keys.
pub const DEMO_API_SECRET: &str = "showcall-demo-api-secret-change-me";

/// Shortest accepted app secret, in bytes: HS256 with a shorter secret can be brute-forced.
pub const MIN_SECRET_LEN: usize = 16;

/// Smallest accepted `max_frame_bytes`: a signaling frame must at least fit a small SDP.
const MIN_FRAME_BYTES: usize = 1024;

/// Largest accepted `max_frame_bytes`: every connection may buffer one frame, so this bounds memory.
const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Longest accepted `call_policy_timeout`: the caller waits in `calling` meanwhile.
const MAX_CALL_POLICY_TIMEOUT: Duration = Duration::from_secs(30);

/// Shortest accepted non-zero `billing_tick`: each tick is a business event per connected call.
const MIN_BILLING_TICK: Duration = Duration::from_millis(100);

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id in the cluster: it names the node in placement, logs and `GetNodeInfo`, so it must
    /// be unique among nodes.
    pub node_id: String,
    /// Where clients connect: WebSocket signaling (and the demo page, later).
    pub signal_addr: SocketAddr,
    /// Where business servers (and other nodes) reach the gRPC admin API.
    pub grpc_addr: SocketAddr,
    /// Health checks and Prometheus metrics, kept apart from client traffic so probes and scrapes work
    /// when the signaling port is saturated or firewalled.
    pub http_addr: SocketAddr,
    /// The UDP address of the WebRTC media router's first worker; worker `i` binds this port + `i`
    /// (`media_workers` ports in all). Clients (browsers) must reach them over UDP.
    pub media_addr: SocketAddr,
    /// Media router workers, each a thread with its own UDP port; a channel's sessions share one worker
    /// (0 = one per core).
    pub media_workers: usize,
    /// Sessions of one channel a media worker takes before the channel spreads over another worker too
    /// (its publishers' packets are then handed between them; 0 = 500).
    pub media_room_capacity: usize,
    /// How many channels this node's media router is meant to carry, relative to the other nodes': new
    /// channels go to the node with fewer open channels per unit of capacity (README "Placement"), so a
    /// node with twice the cores can be given twice the capacity. Not a hard limit. At least 1.
    pub media_capacity: u32,
    /// The IP put in the media router's ICE host candidate when it differs from `media_addr`'s (e.g.
    /// binding 0.0.0.0, or a public IP in front of a container). Unset = `media_addr`'s IP.
    pub media_advertise_ip: Option<IpAddr>,
    /// ICE-TCP, the fallback for clients whose UDP is blocked: each media worker also listens on TCP and
    /// offers it as a passive TCP candidate. On by default.
    pub media_tcp: bool,
    /// The TCP address of the first media worker's ICE-TCP port; worker `i` listens on this port + `i`.
    /// Unset = `media_addr` (the same IP and port numbers as UDP, on TCP).
    pub media_tcp_addr: Option<SocketAddr>,
    /// PEM certificate chain for serving signaling and the demo pages over HTTPS/WSS (with `tls_key`).
    /// Browsers grant camera and microphone only to secure contexts, so off localhost this (or a TLS proxy
    /// in front) is required.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The apps this node serves, each with the secret its tokens are signed with. The default is the
    /// public demo app ([`DEMO_APP_ID`], [`DEMO_SECRET`]); production MUST replace it.
    pub apps: Vec<AppConfig>,
    /// How long a call may ring unanswered before it ends with a timeout, so neither side waits forever.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// How long a user's session (and its call) survives a dropped connection, so a reconnect on a flaky
    /// network resumes instead of hanging up. Also how long shutdown waits for calls to drain.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// How long before its token expires a session is warned, leaving time to fetch and send a renewed
    /// token without reconnecting.
    #[serde(with = "humantime_serde")]
    pub token_expiry_warning: Duration,
    /// When a host's live broadcast pauses for a 1v1 call.
    pub pause_live_at: PauseAt,
    /// Per-connection limit on signaling frames, so one client cannot flood a node.
    pub rate_limit: RateLimitConfig,
    /// Largest signaling frame accepted, in bytes: a bigger one is answered MALFORMED_FRAME, and one over
    /// four times this closes the connection (1009) unread. Bounds the memory one connection can make
    /// the node hold.
    pub max_frame_bytes: usize,
    /// etcd client URLs (`http://host:2379`). Empty (the default) = a single node with in-memory
    /// placement and no external service; set = this node joins the cluster registered there. As an
    /// environment variable: comma-separated.
    pub etcd_endpoints: Vec<String>,
    /// Where other nodes reach this node's gRPC, when it differs from `grpc_addr` (a container's or
    /// pod's DNS name, or a concrete IP when binding 0.0.0.0). Unset = `grpc_addr`.
    pub grpc_advertise_addr: Option<String>,
    /// The URL clients reach this node's signaling at directly (`ws://` or `wss://`, ending in
    /// `/signal`), e.g. a per-node DNS name behind the load balancer. Set on every node, a client whose
    /// session is served by another node than the one it connected to is sent there at login (when its
    /// SDK asks for it, `Login.follow_home`), so its commands and events cross no node link. Unset = no
    /// login is sent to this node (clients reach it through whatever node they connect to).
    pub signal_public_url: Option<String>,
    /// How long a dead node's partitions stay owned before survivors take them (etcd lease TTL; whole
    /// seconds, at least 2). A node that cannot renew stops serving shortly before this.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// Number of partitions the actor key space is split into. MUST be equal on every node.
    pub partitions: u32,
    /// Key prefix in etcd, so several clusters can share one etcd. Ends with `/`.
    pub cluster_prefix: String,
    /// How long an app's CallPolicy service has to allow a call before it is refused, so a slow business
    /// server cannot leave callers hanging. Applies to apps with a `call_policy_url`.
    #[serde(with = "humantime_serde")]
    pub call_policy_timeout: Duration,
    /// Period of the billing ticks of connected calls (business events), so a business server can
    /// charge as a call goes; `0s` = no ticks.
    #[serde(with = "humantime_serde")]
    pub billing_tick: Duration,
    /// How webhooks are retried (for the apps that have a `webhook_url`).
    pub webhooks: WebhooksConfig,
    /// The secret every member of the cluster shares (at least [`MIN_SECRET_LEN`] bytes; required with
    /// `etcd_endpoints`): a node opening a link to another proves membership with a token signed with
    /// it, and a link without one is refused. Equal on every node. Never logged.
    pub cluster_secret: Option<Secret>,
    /// Where the node link (envelopes from other nodes) listens when it should not share `grpc_addr`
    /// with the business API, so the two can be firewalled apart. Unset = on `grpc_addr`.
    pub link_addr: Option<SocketAddr>,
    /// Where other nodes reach `link_addr`, when it differs (a DNS name, or a concrete IP when binding
    /// 0.0.0.0). Unset = `link_addr`. Without `link_addr`, `grpc_advertise_addr` is the link's address.
    pub link_advertise_addr: Option<String>,
    /// For rehearsing a rolling upgrade only, never in production: this node writes its node-link frames
    /// as a node of the next minor wire version would (a higher minor, fields this release does not
    /// know, a message kind it does not know once per link; `showcall_cluster::wire_rehearsal`).
    pub rehearse_next_wire_minor: bool,
    /// PEM certificate chain for serving gRPC — the business API and the node link — over TLS (with
    /// `grpc_tls_key`). Off by default; every node of a cluster must agree (a node with it dials its
    /// peers' links over TLS).
    pub grpc_tls_cert: Option<PathBuf>,
    /// PEM private key matching `grpc_tls_cert`.
    pub grpc_tls_key: Option<PathBuf>,
    /// PEM bundle of CA certificates this node trusts for its outgoing TLS — peers' node links and
    /// `https://` CallPolicy services — beside the public web roots (for a private cluster CA).
    pub trusted_ca: Option<PathBuf>,
    /// OTLP/gRPC endpoint of an OpenTelemetry collector (`http://otel-collector:4317`; plain HTTP/2, no
    /// TLS). Unset (the
    /// default) = no traces are exported and no exporter runs; set = each call is one trace (see
    /// `showcall_protocol::trace`), sent in batches (the standard `OTEL_BSP_*` variables tune them).
    pub otlp_endpoint: Option<String>,
    /// Signaling connections this node holds at most, so its memory is bounded whoever connects; more
    /// are refused before the WebSocket upgrade with HTTP 503 (try later, or another node).
    pub max_connections: usize,
    /// Signaling connections one client IP address holds at most, so one client (or one NAT) cannot
    /// take the node's `max_connections`; more are refused with HTTP 429. 0 = no per-address cap (behind
    /// a proxy, where every client has the proxy's address).
    pub max_connections_per_ip: usize,
    /// Events queued for one signaling connection whose client does not read them fast enough; one more
    /// closes the connection as a slow consumer (close code 4008; the session goes into its grace period
    /// and resumes when the client logs in again). Bounds what a stalled client costs the node. At least
    /// 512 (a resumed session's replay of up to 256 events must fit).
    pub max_outbox_frames: usize,
    /// TURN servers for clients whose network lets nothing but TLS on 443 out (README "TURN"): each login
    /// that may move media gets their URLs with credentials of its own, minted from the secret shared
    /// with them. Unset (the default) = logins get no TURN servers.
    pub turn: Option<TurnConfig>,
    /// One live room across nodes (`[media]`): where viewers' media sessions go, this node's limits as
    /// an edge, and its relay socket.
    pub media: MediaEdgeConfig,
}

/// The `[media]` table: one live room across nodes (`showcall_protocol::media_edge`). A room's host
/// publishes on its origin (the node its channel is pinned to); each viewer's session goes where the
/// origin's `edge` rule puts it, and a node with viewers of a room subscribes to the origin once over
/// its relay socket and fans out locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaEdgeConfig {
    /// Where viewers of rooms this node is the origin of get their media session: `client_node` (the
    /// node holding the viewer's signaling connection, the default), `origin` (no edges: every session
    /// on the origin), or `least_loaded`. Broadcasters and calls always stay on the origin.
    pub edge: EdgeRule,
    /// Media sessions this node's router takes before it takes no more viewers (it is not chosen as an
    /// edge, nor opens viewers of its own rooms: they go to the least loaded node with room, or are
    /// refused UNAVAILABLE when none has). 0 = unlimited.
    pub max_viewers: u64,
    /// Media bit rate (bits/s) this node's router sends before it takes no more viewers, as
    /// `max_viewers`. 0 = unlimited.
    pub max_egress_bps: u64,
    /// UDP address of the node-to-node relay socket (origins send their rooms' media to edges there; an
    /// edge's NACKs and keyframe requests go back to the origin's). Unset = `media_addr`'s IP, any free
    /// port (it is announced to the origin in each subscription). A socket bound to every interface is
    /// announced at the IP of the node link's advertised address (`link_advertise_addr` or
    /// `grpc_advertise_addr`, a host name resolved once at start), since the relay crosses the nodes'
    /// own network, else at `media_advertise_ip`. In a cluster only: a single node has no relay. Its
    /// packets are sealed with a fresh key per room subscription.
    pub relay_addr: Option<SocketAddr>,
}

impl Default for MediaEdgeConfig {
    fn default() -> Self {
        Self {
            edge: EdgeRule::ClientNode,
            max_viewers: 0,
            max_egress_bps: 0,
            relay_addr: None,
        }
    }
}

/// TURN servers sharing a secret with the node (coturn's `use-auth-secret` / `static-auth-secret`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnConfig {
    /// `turn:` / `turns:` URLs clients are given, e.g. `turns:turn.example.com:443?transport=tcp`.
    /// As an environment variable (`SHOWCALL_TURN__URLS`): comma-separated.
    pub urls: Vec<String>,
    /// The secret shared with the TURN servers; at least [`MIN_TURN_SECRET_LEN`] bytes. Never logged.
    pub secret: Secret,
    /// How long a minted credential stays valid. The TURN server refuses to refresh an allocation
    /// past it, so it must outlast the longest session that keeps media open; 1 minute to 7 days.
    #[serde(default = "default_turn_credential_ttl", with = "humantime_serde")]
    pub credential_ttl: Duration,
}

fn default_turn_credential_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl TurnConfig {
    /// What the gateway hands out at login.
    pub fn servers(&self) -> showcall_gateway::TurnServers {
        showcall_gateway::TurnServers {
            urls: self.urls.clone(),
            secret: showcall_auth::TurnSecret::new(self.secret.0.as_bytes()),
            credential_ttl: self.credential_ttl,
        }
    }

    fn problems(&self, problems: &mut Vec<String>) {
        if self.urls.is_empty() {
            problems.push("turn.urls is empty: clients would get no TURN server".to_owned());
        }
        for url in &self.urls {
            if !(url.starts_with("turn:") || url.starts_with("turns:"))
                || url.contains(char::is_whitespace)
            {
                problems.push(format!(
                    "turn.urls: {url:?} is not a turn: or turns: URL (e.g. turns:turn.example.com:443?transport=tcp)"
                ));
            }
        }
        if self.secret.0.len() < MIN_TURN_SECRET_LEN {
            problems.push(format!(
                "turn.secret is shorter than {MIN_TURN_SECRET_LEN} bytes"
            ));
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600))
            .contains(&self.credential_ttl)
        {
            problems.push("turn.credential_ttl must be 1m..=7d".to_owned());
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        let local = |port| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        Self {
            node_id: "node-1".into(),
            signal_addr: local(7800),
            grpc_addr: local(7801),
            http_addr: local(7802),
            media_addr: local(7803),
            media_workers: 0,
            media_room_capacity: 0,
            media_capacity: DEFAULT_MEDIA_CAPACITY,
            media_advertise_ip: None,
            media_tcp: true,
            media_tcp_addr: None,
            tls_cert: None,
            tls_key: None,
            apps: vec![AppConfig {
                id: DEMO_APP_ID.into(),
                secret: DEMO_SECRET.into(),
                api_keys: vec![ApiKeyConfig {
                    key: DEMO_API_KEY.into(),
                    secret: DEMO_API_SECRET.into(),
                }],
                call_policy_url: None,
                webhook_url: None,
                webhook_secret: None,
            }],
            call_timeout: Duration::from_secs(15),
            grace_period: Duration::from_secs(30),
            token_expiry_warning: Duration::from_secs(30),
            pause_live_at: PauseAt::default(),
            rate_limit: RateLimitConfig::default(),
            max_frame_bytes: 16 * 1024,
            etcd_endpoints: Vec::new(),
            grpc_advertise_addr: None,
            signal_public_url: None,
            lease_ttl: Duration::from_secs(2),
            partitions: 256,
            cluster_prefix: "/showcall/v1/".into(),
            call_policy_timeout: Duration::from_secs(2),
            billing_tick: Duration::from_secs(60),
            webhooks: WebhooksConfig::default(),
            otlp_endpoint: None,
            cluster_secret: None,
            link_addr: None,
            link_advertise_addr: None,
            rehearse_next_wire_minor: false,
            grpc_tls_cert: None,
            grpc_tls_key: None,
            trusted_ca: None,
            max_connections: 10_000,
            max_connections_per_ip: 100,
            max_outbox_frames: 1024,
            turn: None,
            media: MediaEdgeConfig::default(),
        }
    }
}

/// One app: a tenant with its own users and its own token secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app id, as tokens and `MintToken` name it.
    pub id: String,
    /// The HS256 secret of the app's tokens; at least [`MIN_SECRET_LEN`] bytes. Never logged.
    pub secret: String,
    /// The app's API keys: its business servers sign their admin tokens with one of them (see
    /// `showcall_auth::api_keys`). Two at once is how a secret is rotated. None = nobody can call the
    /// business API for this app.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// The app's CallPolicy service (`http://host:port`, `proto/policy/v1/policy.proto`): when set, each
    /// call of the app is authorized there before it rings. Unset = no admission.
    #[serde(default)]
    pub call_policy_url: Option<String>,
    /// Where the app's business events are POSTed (`http://` or `https://`). Unset = no webhooks.
    pub webhook_url: Option<String>,
    /// The HMAC key of the webhooks' `Showcall-Signature` (required with `webhook_url`; at least 16
    /// bytes). Its own secret, not the token secret, so a receiver holding it cannot mint tokens.
    /// Never logged.
    pub webhook_secret: Option<String>,
}

impl fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppConfig")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("api_keys", &self.api_keys)
            .field("call_policy_url", &self.call_policy_url)
            .field("webhook_url", &self.webhook_url)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A secret in the configuration: deserialized from a plain string, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One API key of an app: a public id and the secret admin tokens are signed with.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The key id: sent as the admin token's `iss`, logged; unique across every app. ASCII letters,
    /// digits, `-`, `_` and `.`, at most 64.
    pub key: String,
    /// The HS256 secret; at least [`MIN_SECRET_LEN`] bytes, and not the app's token secret. Never logged.
    pub secret: String,
}

impl fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// When a host who is live in a channel has the broadcast paused for a 1v1 call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PauseAt {
    /// When the host accepts: the audience keeps watching while the call rings, and nothing pauses for
    /// a call that is declined.
    #[default]
    Accept,
    /// As soon as the call rings: the host can take the call without the audience seeing the decision.
    Ringing,
}

/// A token bucket per signaling connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained frames per second allowed.
    pub per_second: u32,
    /// Frames allowed at once above the sustained rate, so a burst at login (or a reconnect) passes.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_second: 50,
            burst: 100,
        }
    }
}

/// How webhook deliveries are retried (see `showcall_admin::webhooks::RetryPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// The most one attempt may take, so a hanging receiver cannot stall its app's events.
    #[serde(with = "humantime_serde")]
    pub attempt_timeout: Duration,
    /// The wait after the first failed attempt; it doubles after each further one.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// The longest wait between attempts, so a long outage is still probed regularly.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Attempts per event before it is given up on (and counted in `showcall_webhook_failures_total`).
    pub max_attempts: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        let policy = showcall_admin::webhooks::RetryPolicy::default();
        Self {
            attempt_timeout: policy.attempt_timeout,
            initial_backoff: policy.initial_backoff,
            max_backoff: policy.max_backoff,
            max_attempts: policy.max_attempts,
        }
    }
}

impl WebhooksConfig {
    /// The retry policy these settings describe.
    pub fn policy(&self) -> showcall_admin::webhooks::RetryPolicy {
        showcall_admin::webhooks::RetryPolicy {
            attempt_timeout: self.attempt_timeout,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            max_attempts: self.max_attempts,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The config file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A layer does not parse: bad TOML, an unknown key, a value of the wrong type.
    Parse {
        /// Which layer: the file's path, or the environment.
        layer: String,
        /// What the parser said.
        source: ::config::ConfigError,
    },
    /// The configuration parses but breaks rules (listed, lowercase).
    Invalid(Vec<String>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            Self::Parse { layer, source } => write!(f, "bad configuration in {layer}: {source}"),
            Self::Invalid(problems) => {
                write!(f, "invalid configuration: {}", problems.join("; "))
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Parse { source, .. } => Some(source),
            Self::Invalid(_) => None,
        }
    }
}

impl NodeConfig {
    /// Where the media router listens for ICE-TCP: `None` when `media_tcp` is off.
    pub fn media_tcp_bind(&self) -> Option<SocketAddr> {
        self.media_tcp
            .then(|| self.media_tcp_addr.unwrap_or(self.media_addr))
    }

    /// Loads the configuration for `run` (and every other command that needs it): defaults, then the
    /// `--config` file, then `SHOWCALL_*` variables of this process, then the flags in `cli`; and
    /// validates the result.
    pub fn load(cli: &RunArgs) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some((path.as_path(), text))
            }
            None => None,
        };
        let file = file.as_ref().map(|(path, text)| (*path, text.as_str()));
        Self::from_layers(file, std::env::vars(), cli)
    }

    /// The layering of [`NodeConfig::load`] with every input explicit: `file` is `(path, TOML text)` (the
    /// path only names it in errors), `env` the variables to consider (those without the `SHOWCALL_`
    /// prefix are ignored). Validates the result.
    pub fn from_layers(
        file: Option<(&Path, &str)>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &RunArgs,
    ) -> Result<Self, ConfigError> {
        let file_source = file.map(|(path, text)| {
            let layer = path.display().to_string();
            (layer, File::from_str(text, FileFormat::Toml))
        });

        // The file alone first, so its mistakes are reported as the file's.
        if let Some((layer, source)) = &file_source {
            deserialize(Config::builder().add_source(source.clone())).map_err(|source| {
                ConfigError::Parse {
                    layer: layer.clone(),
                    source,
                }
            })?;
        }

        let prefix = format!("{ENV_PREFIX}_");
        let env: ::config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&prefix) && !RESERVED_ENV.contains(&k.as_str()))
            .collect();
        let environment = Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            // An empty variable is an unset one, as shells and container runtimes often mean it.
            .ignore_empty(true)
            // Lists (`etcd_endpoints`, `turn.urls`) are comma-separated; parsing also lets numbers and booleans
            // through typed, which the fields' own types then check.
            .list_separator(",")
            .with_list_parse_key("etcd_endpoints")
            .with_list_parse_key("turn.urls")
            .try_parsing(true)
            .source(Some(env));

        let mut builder = Config::builder();
        if let Some((_, source)) = file_source {
            builder = builder.add_source(source);
        }
        let mut cfg =
            deserialize(builder.add_source(environment)).map_err(|source| ConfigError::Parse {
                layer: format!("the {ENV_PREFIX}_* environment variables"),
                source,
            })?;

        cfg.apply_flags(flags);
        cfg.validate()?;
        Ok(cfg)
    }

    /// The top layer: every flag given replaces what the lower layers said.
    fn apply_flags(&mut self, flags: &RunArgs) {
        if let Some(node_id) = &flags.node_id {
            self.node_id.clone_from(node_id);
        }
        if let Some(addr) = flags.signal_addr {
            self.signal_addr = addr;
        }
        if let Some(addr) = flags.grpc_addr {
            self.grpc_addr = addr;
        }
        if let Some(addr) = flags.http_addr {
            self.http_addr = addr;
        }
        if let Some(addr) = flags.media_addr {
            self.media_addr = addr;
        }
        if let Some(ip) = flags.media_advertise_ip {
            self.media_advertise_ip = Some(ip);
        }
        if let Some(n) = flags.media_workers {
            self.media_workers = n;
        }
        if let Some(path) = &flags.tls_cert {
            self.tls_cert = Some(path.clone());
        }
        if let Some(path) = &flags.tls_key {
            self.tls_key = Some(path.clone());
        }
        if let Some(d) = flags.grace_period {
            self.grace_period = d;
        }
        if let Some(d) = flags.call_timeout {
            self.call_timeout = d;
        }
        if !flags.etcd.is_empty() {
            self.etcd_endpoints.clone_from(&flags.etcd);
        }
    }

    /// Checks the rules no single field's type can express; lists every problem, not just the first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();

        if self.node_id.trim().is_empty() {
            problems.push("node_id is empty".to_owned());
        } else if self.node_id.len() > 64 {
            problems.push("node_id is longer than 64 bytes".to_owned());
        }

        if self.apps.is_empty() {
            problems
                .push("apps is empty: at least one app is needed to accept any token".to_owned());
        }
        let mut seen = HashSet::new();
        let mut key_ids = HashSet::new();
        for (i, app) in self.apps.iter().enumerate() {
            if app.id.is_empty() {
                problems.push(format!("apps[{i}].id is empty"));
            } else if !seen.insert(app.id.as_str()) {
                problems.push(format!("apps[{i}].id {:?} appears twice", app.id));
            }
            if app.secret.len() < MIN_SECRET_LEN {
                problems.push(format!(
                    "apps[{i}].secret is shorter than {MIN_SECRET_LEN} bytes"
                ));
            }
            for (k, key) in app.api_keys.iter().enumerate() {
                let at = format!("apps[{i}].api_keys[{k}]");
                let id_ok = key
                    .key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if key.key.is_empty() || key.key.len() > showcall_auth::MAX_API_KEY_ID_LEN || !id_ok
                {
                    problems.push(format!(
                        "{at}.key must be 1..={} ASCII letters, digits, '-', '_' or '.'",
                        showcall_auth::MAX_API_KEY_ID_LEN
                    ));
                } else if !key_ids.insert(key.key.as_str()) {
                    problems.push(format!(
                        "{at}.key {:?} appears twice (key ids are unique across apps)",
                        key.key
                    ));
                }
                if key.secret.len() < MIN_SECRET_LEN {
                    problems.push(format!(
                        "{at}.secret is shorter than {MIN_SECRET_LEN} bytes"
                    ));
                } else if key.secret == app.secret {
                    problems.push(format!(
                        "{at}.secret is the app's token secret: a holder of one could act as the other"
                    ));
                }
            }
            if let Some(url) = &app.call_policy_url
                && let Err(e) = showcall_ports::admission::policy_endpoint(&app.id, url)
            {
                problems.push(format!("apps[{i}].call_policy_url {url:?}: {}", e.why));
            }
            match &app.webhook_url {
                Some(url) => {
                    let secret = app.webhook_secret.as_deref();
                    if let Err(e) =
                        showcall_admin::webhooks::WebhookTarget::parse(&app.id, url, secret)
                    {
                        problems.push(format!("apps[{i}].{e}"));
                    }
                }
                None if app.webhook_secret.is_some() => problems.push(format!(
                    "apps[{i}].webhook_secret is set but webhook_url is not"
                )),
                None => {}
            }
        }
        if self.call_policy_timeout.is_zero() || self.call_policy_timeout > MAX_CALL_POLICY_TIMEOUT
        {
            problems.push(format!(
                "call_policy_timeout must be more than 0 and at most {}",
                humantime::format_duration(MAX_CALL_POLICY_TIMEOUT)
            ));
        }
        if !self.billing_tick.is_zero() && self.billing_tick < MIN_BILLING_TICK {
            problems.push(format!(
                "billing_tick must be 0s (off) or at least {}",
                humantime::format_duration(MIN_BILLING_TICK)
            ));
        }
        let hooks = &self.webhooks;
        if hooks.attempt_timeout.is_zero() {
            problems
                .push("webhooks.attempt_timeout is zero: every attempt would time out".to_owned());
        }
        if hooks.initial_backoff.is_zero() {
            problems.push(
                "webhooks.initial_backoff is zero: retries would hammer a failing receiver"
                    .to_owned(),
            );
        }
        if hooks.max_backoff < hooks.initial_backoff {
            problems
                .push("webhooks.max_backoff is shorter than webhooks.initial_backoff".to_owned());
        }
        if hooks.max_attempts == 0 {
            problems.push("webhooks.max_attempts is zero: no event would ever be sent".to_owned());
        }

        // Port 0 asks the OS for a free port, so two port-0 addresses never collide.
        let mut addrs = vec![
            ("signal_addr", self.signal_addr),
            ("grpc_addr", self.grpc_addr),
            ("http_addr", self.http_addr),
        ];
        addrs.extend(self.link_addr.map(|a| ("link_addr", a)));
        for (i, (a_name, a)) in addrs.iter().enumerate() {
            for (b_name, b) in &addrs[i + 1..] {
                if a.port() != 0 && a == b {
                    problems.push(format!("{a_name} and {b_name} are both {a}"));
                }
            }
        }

        if self.media_addr.ip().is_unspecified() && self.media_advertise_ip.is_none() {
            problems.push(format!(
                "media_addr {} binds every interface: set media_advertise_ip to the address clients reach",
                self.media_addr
            ));
        }

        if let Some(tcp) = self.media_tcp_addr
            && self.media_tcp
            && tcp.ip().is_unspecified()
            && self.media_advertise_ip.is_none()
        {
            problems.push(format!(
                "media_tcp_addr {tcp} binds every interface: set media_advertise_ip to the address clients reach"
            ));
        }

        if let Some(turn) = &self.turn {
            turn.problems(&mut problems);
        }

        if self.tls_cert.is_some() != self.tls_key.is_some() {
            problems.push("tls_cert and tls_key go together: set both or neither".to_owned());
        }
        if self.grpc_tls_cert.is_some() != self.grpc_tls_key.is_some() {
            problems
                .push("grpc_tls_cert and grpc_tls_key go together: set both or neither".to_owned());
        }

        if self.call_timeout.is_zero() {
            problems.push("call_timeout is zero: every call would time out at once".to_owned());
        }
        if self.rate_limit.per_second == 0 {
            problems.push("rate_limit.per_second is zero: no frame would ever pass".to_owned());
        }
        if self.rate_limit.burst == 0 {
            problems.push("rate_limit.burst is zero: no frame would ever pass".to_owned());
        }
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&self.max_frame_bytes) {
            problems.push(format!(
                "max_frame_bytes must be {MIN_FRAME_BYTES}..={MAX_FRAME_BYTES}"
            ));
        }

        if !self.etcd_endpoints.is_empty() {
            if self.lease_ttl < Duration::from_secs(2) || self.lease_ttl.subsec_nanos() != 0 {
                problems.push("lease_ttl must be whole seconds, at least 2s".to_owned());
            }
            if self.partitions == 0 || self.partitions > 65_536 {
                problems.push("partitions must be 1..=65536".to_owned());
            }
            if !self.cluster_prefix.starts_with('/') || !self.cluster_prefix.ends_with('/') {
                problems.push("cluster_prefix must start and end with '/'".to_owned());
            }
            match &self.cluster_secret {
                None => problems.push(
                    "cluster_secret is not set: a cluster's node link accepts only members that know it"
                        .to_owned(),
                ),
                Some(secret) if secret.0.len() < MIN_SECRET_LEN => problems.push(format!(
                    "cluster_secret is shorter than {MIN_SECRET_LEN} bytes"
                )),
                Some(_) => {}
            }
            if let Some(link) = self.link_addr
                && link.ip().is_unspecified()
                && self.link_advertise_addr.is_none()
            {
                problems.push(format!(
                    "link_addr {link} binds every interface: set link_advertise_addr to the address other nodes reach"
                ));
            }
            if self.link_addr.is_none()
                && self.grpc_addr.ip().is_unspecified()
                && self.grpc_advertise_addr.is_none()
            {
                problems.push(format!(
                    "grpc_addr {} binds every interface: set grpc_advertise_addr to the address other nodes reach",
                    self.grpc_addr
                ));
            }
        }

        if self.media_capacity == 0 {
            problems.push("media_capacity is 0: it must be at least 1".to_owned());
        }

        if let Some(url) = &self.signal_public_url
            && !(url.starts_with("ws://") || url.starts_with("wss://"))
        {
            problems.push(format!(
                "signal_public_url {url:?} must be a ws:// or wss:// URL clients reach this node's signaling at"
            ));
        }

        // The exporter is built without TLS (a collector next to the node, or a sidecar, is the usual
        // setup): an https:// endpoint would fail at every export instead of here.
        if let Some(endpoint) = &self.otlp_endpoint
            && !endpoint.starts_with("http://")
        {
            problems.push(format!(
                "otlp_endpoint {endpoint:?} must be an http:// URL of an OTLP/gRPC collector (e.g. http://localhost:4317; TLS is not supported)"
            ));
        }

        if self.max_connections == 0 {
            problems.push("max_connections is zero: no client could connect".to_owned());
        }
        // A resumed session replays its buffered events into the outbox at once: they must fit, with room.
        const OUTBOX_FRAMES: std::ops::RangeInclusive<usize> =
            2 * showcall_machines::user::AWAY_BUFFER..=65_536;
        if !OUTBOX_FRAMES.contains(&self.max_outbox_frames) {
            problems.push(format!(
                "max_outbox_frames must be {}..={}",
                OUTBOX_FRAMES.start(),
                OUTBOX_FRAMES.end()
            ));
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The secrets of the configured apps, for minting and verifying tokens.
    pub fn app_keys(&self) -> AppKeys {
        AppKeys::from_pairs(
            self.apps
                .iter()
                .map(|a| (a.id.as_str(), a.secret.as_bytes())),
        )
    }

    /// The API keys of every app, for verifying admin tokens.
    pub fn api_keys(&self) -> ApiKeys {
        ApiKeys::from_triples(self.apps.iter().flat_map(|a| {
            a.api_keys
                .iter()
                .map(|k| (k.key.as_str(), a.id.as_str(), k.secret.as_bytes()))
        }))
    }

    /// The apps that have a webhook, checked (call after [`validate`](Self::validate) passed).
    pub fn webhook_targets(&self) -> Vec<showcall_admin::webhooks::WebhookTarget> {
        self.apps
            .iter()
            .filter_map(|app| {
                let url = app.webhook_url.as_deref()?;
                showcall_admin::webhooks::WebhookTarget::parse(
                    &app.id,
                    url,
                    app.webhook_secret.as_deref(),
                )
                .ok()
            })
            .collect()
    }

    /// Whether an app still uses the public demo secret; the node should warn loudly when it does.
    pub fn uses_demo_secret(&self) -> bool {
        self.apps.iter().any(|a| a.secret == DEMO_SECRET)
    }

    /// Whether an app still has the public demo API key secret: anyone can then call its business API.
    pub fn uses_demo_api_secret(&self) -> bool {
        self.apps
            .iter()
            .flat_map(|a| &a.api_keys)
            .any(|k| k.secret == DEMO_API_SECRET)
    }
}

fn deserialize(
    builder: ::config::ConfigBuilder<::config::builder::DefaultState>,
) -> Result<NodeConfig, ::config::ConfigError> {
    builder.build()?.try_deserialize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file(text: &str) -> Option<(&'static Path, &str)> {
        Some((Path::new("showcall.toml"), text))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const FILE: &str = r#"
        node_id = "from-file"
        signal_addr = "0.0.0.0:9000"
        grace_period = "45s"
        pause_live_at = "ringing"

        [rate_limit]
        per_second = 5

        [[apps]]
        id = "shop"
        secret = "shop-secret-0123456789"
    "#;

    #[test]
    fn nothing_given_means_the_defaults() {
        let cfg = NodeConfig::from_layers(None, env(&[]), &RunArgs::default()).unwrap();
        assert_eq!(cfg, NodeConfig::default());
        assert_eq!(cfg.signal_addr, addr("127.0.0.1:7800"));
        assert_eq!(cfg.call_timeout, Duration::from_secs(15));
        assert!(cfg.uses_demo_secret());
    }

    #[test]
    fn ice_tcp_is_on_by_default_on_the_udp_port_numbers_and_the_environment_moves_or_stops_it() {
        let cfg = NodeConfig::from_layers(None, env(&[]), &RunArgs::default()).unwrap();
        assert_eq!(cfg.media_tcp_bind(), Some(addr("127.0.0.1:7803")));
        let moved = env(&[("SHOWCALL_MEDIA_TCP_ADDR", "127.0.0.1:8443")]);
        let cfg = NodeConfig::from_layers(None, moved, &RunArgs::default()).unwrap();
        assert_eq!(cfg.media_tcp_bind(), Some(addr("127.0.0.1:8443")));
        let off = env(&[("SHOWCALL_MEDIA_TCP", "false")]);
        let cfg = NodeConfig::from_layers(None, off, &RunArgs::default()).unwrap();
        assert_eq!(cfg.media_tcp_bind(), None);
        // Every interface and no address to advertise: candidates could not name one.
        let everywhere = env(&[("SHOWCALL_MEDIA_TCP_ADDR", "0.0.0.0:7803")]);
        let msg = NodeConfig::from_layers(None, everywhere, &RunArgs::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("media_tcp_addr 0.0.0.0:7803 binds every interface"),
            "{msg}"
        );
    }

    #[test]
    fn file_overrides_defaults_and_keeps_the_rest() {
        let cfg = NodeConfig::from_layers(file(FILE), env(&[]), &RunArgs::default()).unwrap();
        assert_eq!(cfg.node_id, "from-file");
        assert_eq!(cfg.signal_addr, addr("0.0.0.0:9000"));
        assert_eq!(cfg.grace_period, Duration::from_secs(45));
        assert_eq!(cfg.pause_live_at, PauseAt::Ringing);
        assert_eq!(cfg.rate_limit.per_second, 5);
        assert_eq!(
            cfg.rate_limit.burst, 100,
            "unset nested field keeps its default"
        );
        assert_eq!(
            cfg.grpc_addr,
            addr("127.0.0.1:7801"),
            "unset field keeps its default"
        );
        assert_eq!(cfg.apps.len(), 1, "the file's apps replace the demo app");
        assert_eq!(cfg.apps[0].id, "shop");
        assert!(!cfg.uses_demo_secret());
    }

    #[test]
    fn env_overrides_file() {
        let vars = env(&[
            ("SHOWCALL_SIGNAL_ADDR", "0.0.0.0:9100"),
            ("SHOWCALL_GRACE_PERIOD", "10s"),
            ("SHOWCALL_RATE_LIMIT__PER_SECOND", "20"),
            ("SHOWCALL_MAX_FRAME_BYTES", "4096"),
            ("SHOWCALL_PAUSE_LIVE_AT", "accept"),
            // Not ours: ignored.
            ("PATH", "/usr/bin"),
            ("SHOWCALL_CONFIG", "elsewhere.toml"),
            // Empty is unset.
            ("SHOWCALL_NODE_ID", ""),
        ]);
        let cfg = NodeConfig::from_layers(file(FILE), vars, &RunArgs::default()).unwrap();
        assert_eq!(cfg.signal_addr, addr("0.0.0.0:9100"));
        assert_eq!(cfg.grace_period, Duration::from_secs(10));
        assert_eq!(cfg.rate_limit.per_second, 20);
        assert_eq!(cfg.rate_limit.burst, 100);
        assert_eq!(cfg.max_frame_bytes, 4096);
        assert_eq!(cfg.pause_live_at, PauseAt::Accept);
        assert_eq!(cfg.node_id, "from-file");
    }

    #[test]
    fn flags_override_env() {
        let vars = env(&[
            ("SHOWCALL_SIGNAL_ADDR", "0.0.0.0:9100"),
            ("SHOWCALL_NODE_ID", "from-env"),
            ("SHOWCALL_CALL_TIMEOUT", "20s"),
            ("SHOWCALL_HTTP_ADDR", "0.0.0.0:9102"),
        ]);
        let flags = RunArgs {
            signal_addr: Some(addr("0.0.0.0:9200")),
            node_id: Some("from-flag".into()),
            call_timeout: Some(Duration::from_secs(5)),
            grace_period: Some(Duration::from_secs(1)),
            ..RunArgs::default()
        };
        let cfg = NodeConfig::from_layers(file(FILE), vars, &flags).unwrap();
        assert_eq!(cfg.signal_addr, addr("0.0.0.0:9200"));
        assert_eq!(cfg.node_id, "from-flag");
        assert_eq!(cfg.call_timeout, Duration::from_secs(5));
        assert_eq!(cfg.grace_period, Duration::from_secs(1));
        assert_eq!(cfg.http_addr, addr("0.0.0.0:9102"), "no flag: env stays");
    }

    #[test]
    fn unknown_key_in_file_is_reported_with_the_file() {
        let err = NodeConfig::from_layers(
            file("signal_adr = \"0.0.0.0:1\"\n"),
            env(&[]),
            &RunArgs::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
        assert!(msg.contains("showcall.toml"), "{msg}");
        assert!(msg.contains("signal_adr"), "{msg}");
    }

    #[test]
    fn unknown_nested_key_in_file_is_reported() {
        let msg = NodeConfig::from_layers(
            file("[rate_limit]\nper_minute = 5\n"),
            env(&[]),
            &RunArgs::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("per_minute"), "{msg}");
    }

    #[test]
    fn bad_values_are_reported() {
        for text in [
            "grace_period = \"soon\"\n",
            "signal_addr = \"localhost\"\n",
            "pause_live_at = \"never\"\n",
            "not toml at all [",
        ] {
            let err =
                NodeConfig::from_layers(file(text), env(&[]), &RunArgs::default()).unwrap_err();
            assert!(matches!(err, ConfigError::Parse { .. }), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_env_variable_is_reported_with_the_environment() {
        let msg = NodeConfig::from_layers(
            None,
            env(&[("SHOWCALL_SIGNAL_ADR", "0.0.0.0:1")]),
            &RunArgs::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("environment"), "{msg}");
        assert!(msg.contains("signal_adr"), "{msg}");
    }

    #[test]
    fn validation_lists_every_problem() {
        let cfg = NodeConfig {
            apps: vec![
                AppConfig {
                    id: "a".into(),
                    secret: "short".into(),
                    api_keys: Vec::new(),
                    call_policy_url: None,
                    webhook_url: None,
                    webhook_secret: None,
                },
                AppConfig {
                    id: "a".into(),
                    secret: "long-enough-secret-0123".into(),
                    api_keys: Vec::new(),
                    call_policy_url: None,
                    webhook_url: None,
                    webhook_secret: None,
                },
            ],
            grpc_addr: addr("127.0.0.1:7800"),
            rate_limit: RateLimitConfig {
                per_second: 0,
                burst: 1,
            },
            ..NodeConfig::default()
        };
        let Err(ConfigError::Invalid(problems)) = cfg.validate() else {
            panic!("expected invalid");
        };
        let all = problems.join("\n");
        assert!(all.contains("apps[0].secret"), "{all}");
        assert!(all.contains("apps[1].id \"a\" appears twice"), "{all}");
        assert!(all.contains("signal_addr and grpc_addr"), "{all}");
        assert!(all.contains("rate_limit.per_second"), "{all}");
        assert_eq!(problems.len(), 4, "{all}");
    }

    #[test]
    fn no_apps_is_invalid() {
        let cfg = NodeConfig {
            apps: vec![],
            ..NodeConfig::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("apps is empty")
        );
    }

    #[test]
    fn port_zero_addresses_may_repeat() {
        let any = addr("127.0.0.1:0");
        let cfg = NodeConfig {
            signal_addr: any,
            grpc_addr: any,
            http_addr: any,
            media_addr: any,
            ..NodeConfig::default()
        };
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = NodeConfig {
            cluster_secret: Some(Secret("the-cluster-secret-0123".into())),
            ..NodeConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains(DEMO_SECRET), "{shown}");
        assert!(!shown.contains(DEMO_API_SECRET), "{shown}");
        assert!(!shown.contains("the-cluster-secret"), "{shown}");
        assert!(shown.contains("demo") && shown.contains(DEMO_API_KEY));
    }

    #[test]
    fn api_keys_and_the_cluster_secret_are_checked() {
        let key = |key: &str, secret: &str| ApiKeyConfig {
            key: key.into(),
            secret: secret.into(),
        };
        let cfg = NodeConfig {
            apps: vec![
                AppConfig {
                    id: "a".into(),
                    secret: "app-a-token-secret-0123".into(),
                    api_keys: vec![
                        key("k1", "short"),
                        key("k 2", "long-enough-api-secret-0123"),
                        key("k3", "app-a-token-secret-0123"),
                    ],
                    call_policy_url: None,
                    webhook_url: None,
                    webhook_secret: None,
                },
                AppConfig {
                    id: "b".into(),
                    secret: "app-b-token-secret-0123".into(),
                    api_keys: vec![key("k1", "long-enough-api-secret-0123")],
                    call_policy_url: None,
                    webhook_url: None,
                    webhook_secret: None,
                },
            ],
            etcd_endpoints: vec!["http://127.0.0.1:2379".into()],
            ..NodeConfig::default()
        };
        let msg = cfg.validate().unwrap_err().to_string();
        for expected in [
            "apps[0].api_keys[0].secret is shorter",
            "apps[0].api_keys[1].key must be",
            "apps[0].api_keys[2].secret is the app's token secret",
            "apps[1].api_keys[0].key \"k1\" appears twice",
            "cluster_secret is not set",
        ] {
            assert!(msg.contains(expected), "{expected}: {msg}");
        }
    }

    /// The `[media]` table (one live room across nodes) from a file or the environment; an unknown rule
    /// is an error, not a default.
    #[test]
    fn the_media_edge_table_loads_from_a_file_or_the_environment() {
        let default = NodeConfig::default().media;
        assert_eq!(default.edge, EdgeRule::ClientNode);
        assert_eq!((default.max_viewers, default.max_egress_bps), (0, 0));
        let from_file = NodeConfig::from_layers(
            file(
                "[media]\nedge = \"least_loaded\"\nmax_viewers = 2000\n\
                 max_egress_bps = 900000000\nrelay_addr = \"127.0.0.1:7809\"\n",
            ),
            env(&[]),
            &RunArgs::default(),
        )
        .expect("a [media] table loads");
        assert_eq!(
            from_file.media,
            MediaEdgeConfig {
                edge: EdgeRule::LeastLoaded,
                max_viewers: 2000,
                max_egress_bps: 900_000_000,
                relay_addr: Some("127.0.0.1:7809".parse().unwrap()),
            }
        );
        let from_env = NodeConfig::from_layers(
            None,
            env(&[("SHOWCALL_MEDIA__EDGE", "origin")]),
            &RunArgs::default(),
        )
        .expect("the rule from the environment loads");
        assert_eq!(from_env.media.edge, EdgeRule::Origin);
        let typo = NodeConfig::from_layers(
            file("[media]\nedge = \"nearest\"\n"),
            env(&[]),
            &RunArgs::default(),
        );
        assert!(typo.is_err(), "an unknown rule is refused");
    }

    /// TURN from a file or from the environment (the compose file's way), and what validation refuses.
    #[test]
    fn turn_servers_load_from_a_file_or_the_environment_and_bad_ones_are_refused() {
        let from_file = NodeConfig::from_layers(
            file(
                "[turn]\nurls = [\"turns:turn.example.com:443?transport=tcp\"]\n\
                 secret = \"a-turn-secret-of-at-least-32-bytes!!\"\ncredential_ttl = \"2h\"\n",
            ),
            env(&[]),
            &RunArgs::default(),
        )
        .expect("a [turn] table loads");
        from_file.validate().expect("a good [turn] is valid");
        let turn = from_file.turn.expect("turn is set");
        assert_eq!(turn.urls, ["turns:turn.example.com:443?transport=tcp"]);
        assert_eq!(turn.credential_ttl, Duration::from_secs(7200));
        assert!(!format!("{turn:?}").contains("a-turn-secret"));

        let from_env = NodeConfig::from_layers(
            None,
            env(&[
                (
                    "SHOWCALL_TURN__URLS",
                    "turns:t.example.com:443?transport=tcp,turn:t.example.com:3478",
                ),
                (
                    "SHOWCALL_TURN__SECRET",
                    "a-turn-secret-of-at-least-32-bytes!!",
                ),
            ]),
            &RunArgs::default(),
        )
        .expect("turn from the environment loads");
        let turn = from_env.turn.expect("turn is set");
        assert_eq!(turn.urls.len(), 2);
        assert_eq!(turn.credential_ttl, Duration::from_secs(24 * 3600));

        // Empty variables (the compose file's default) are unset ones: no TURN.
        let unset = NodeConfig::from_layers(
            None,
            env(&[("SHOWCALL_TURN__URLS", ""), ("SHOWCALL_TURN__SECRET", "")]),
            &RunArgs::default(),
        )
        .expect("empty variables load");
        assert_eq!(unset.turn, None);

        let bad = NodeConfig {
            turn: Some(TurnConfig {
                urls: vec!["https://turn.example.com".into()],
                secret: Secret("short".into()),
                credential_ttl: Duration::from_secs(1),
            }),
            ..NodeConfig::default()
        };
        let msg = bad.validate().unwrap_err().to_string();
        for expected in [
            "is not a turn: or turns: URL",
            "turn.secret is shorter than 32 bytes",
            "turn.credential_ttl must be 1m..=7d",
        ] {
            assert!(msg.contains(expected), "{expected}: {msg}");
        }
    }

    /// The config files shipped in `deploy/` load and validate as the nodes there get them.
    #[test]
    fn the_deploy_configs_load_and_validate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
        let compose = std::fs::read_to_string(root.join("compose/showcall.toml")).unwrap();
        let compose_env = env(&[
            ("SHOWCALL_ETCD_ENDPOINTS", "http://etcd:2379"),
            (
                "SHOWCALL_CLUSTER_SECRET",
                "CHANGE-ME-compose-cluster-secret",
            ),
            ("SHOWCALL_GRPC_ADVERTISE_ADDR", "node1:7801"),
        ]);
        let cfg = NodeConfig::from_layers(file(&compose), compose_env, &RunArgs::default())
            .expect("the compose config loads");
        cfg.validate().expect("the compose config is valid");
        assert_eq!(cfg.api_keys().app_of("demo-2026"), Some("demo"));

        // The k8s Secret embeds the file in YAML, indented by four spaces.
        let k8s = std::fs::read_to_string(root.join("k8s/showcall.yaml")).unwrap();
        let start = k8s.find("showcall.toml: |\n").expect("the embedded file") + 17;
        let embedded: String = k8s[start..]
            .lines()
            .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
            .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
            .collect();
        let k8s_env = env(&[
            ("SHOWCALL_ETCD_ENDPOINTS", "http://etcd.showcall.svc:2379"),
            (
                "SHOWCALL_GRPC_ADVERTISE_ADDR",
                "pod.showcall-headless.showcall.svc:7801",
            ),
        ]);
        let cfg = NodeConfig::from_layers(file(&embedded), k8s_env, &RunArgs::default())
            .expect("the k8s config loads");
        cfg.validate().expect("the k8s config is valid");
        assert!(cfg.cluster_secret.is_some());
    }

    #[test]
    fn api_keys_are_read_from_the_file() {
        let cfg = NodeConfig::from_layers(
            file(
                r#"
                cluster_secret = "from-the-file-0123456789"
                [[apps]]
                id = "shop"
                secret = "shop-secret-0123456789"
                api_keys = [
                    { key = "shop-old", secret = "shop-api-secret-old-0123" },
                    { key = "shop-new", secret = "shop-api-secret-new-0123" },
                ]
                "#,
            ),
            env(&[]),
            &RunArgs::default(),
        )
        .unwrap();
        let keys = cfg.api_keys();
        assert_eq!(keys.app_of("shop-old"), Some("shop"));
        assert_eq!(keys.app_of("shop-new"), Some("shop"));
        assert_eq!(
            cfg.cluster_secret,
            Some(Secret("from-the-file-0123456789".into()))
        );
    }

    const HOOKED: &str = r#"
        [[apps]]
        id = "shop"
        secret = "shop-secret-0123456789"
        webhook_url = "https://api.shop.example/events"
        webhook_secret = "whsec-0123456789abcdef"

        [[apps]]
        id = "quiet"
        secret = "quiet-secret-0123456789"

        [webhooks]
        initial_backoff = "10ms"
        max_attempts = 3
    "#;

    #[test]
    fn webhooks_are_configured_per_app_and_tuned_in_one_table() {
        let vars = env(&[("SHOWCALL_WEBHOOKS__ATTEMPT_TIMEOUT", "2s")]);
        let cfg = NodeConfig::from_layers(file(HOOKED), vars, &RunArgs::default()).unwrap();
        let targets = cfg.webhook_targets();
        assert_eq!(targets.len(), 1, "only the app with a webhook_url");
        assert_eq!(targets[0].app, "shop");
        assert_eq!(
            targets[0].url.to_string(),
            "https://api.shop.example/events"
        );
        let policy = cfg.webhooks.policy();
        assert_eq!(policy.initial_backoff, Duration::from_millis(10));
        assert_eq!(policy.max_attempts, 3);
        assert_eq!(
            policy.attempt_timeout,
            Duration::from_secs(2),
            "from the environment"
        );
        assert_eq!(policy.max_backoff, Duration::from_secs(60), "the default");
        assert!(!format!("{cfg:?}").contains("whsec-0123456789abcdef"));
    }

    #[test]
    fn bad_webhook_settings_are_each_reported() {
        let text = r#"
            [[apps]]
            id = "a"
            secret = "a-secret-0123456789"
            webhook_url = "api.example/events"
            webhook_secret = "whsec-0123456789abcdef"

            [[apps]]
            id = "b"
            secret = "b-secret-0123456789"
            webhook_url = "https://api.example/events"

            [[apps]]
            id = "c"
            secret = "c-secret-0123456789"
            webhook_url = "https://api.example/events"
            webhook_secret = "short"

            [[apps]]
            id = "d"
            secret = "d-secret-0123456789"
            webhook_secret = "whsec-0123456789abcdef"

            [webhooks]
            attempt_timeout = "0s"
            initial_backoff = "2s"
            max_backoff = "1s"
            max_attempts = 0
        "#;
        let Err(ConfigError::Invalid(problems)) =
            NodeConfig::from_layers(file(text), env(&[]), &RunArgs::default())
        else {
            panic!("expected invalid");
        };
        let all = problems.join("\n");
        assert!(
            all.contains("apps[0].webhook_url \"api.example/events\" is not an absolute"),
            "{all}"
        );
        assert!(all.contains("apps[1].webhook_secret is required"), "{all}");
        assert!(
            all.contains("apps[2].webhook_secret is shorter than 16 bytes"),
            "{all}"
        );
        assert!(
            all.contains("apps[3].webhook_secret is set but webhook_url is not"),
            "{all}"
        );
        assert!(all.contains("webhooks.attempt_timeout is zero"), "{all}");
        assert!(all.contains("webhooks.max_backoff is shorter"), "{all}");
        assert!(all.contains("webhooks.max_attempts is zero"), "{all}");
        assert_eq!(problems.len(), 7, "{all}");
    }

    #[test]
    fn an_unknown_webhooks_key_is_reported() {
        let msg = NodeConfig::from_layers(
            file("[webhooks]\nretries = 3\n"),
            env(&[]),
            &RunArgs::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("retries"), "{msg}");
    }

    #[test]
    fn admission_and_billing_ticks_are_configured_and_checked() {
        let text = r#"
            call_policy_timeout = "500ms"
            billing_tick = "30s"

            [[apps]]
            id = "shop"
            secret = "shop-secret-0123456789"
            call_policy_url = "http://10.0.0.5:9090"
        "#;
        let cfg = NodeConfig::from_layers(file(text), env(&[]), &RunArgs::default()).unwrap();
        assert_eq!(cfg.call_policy_timeout, Duration::from_millis(500));
        assert_eq!(cfg.billing_tick, Duration::from_secs(30));
        assert_eq!(
            cfg.apps[0].call_policy_url.as_deref(),
            Some("http://10.0.0.5:9090")
        );
        let off = env(&[("SHOWCALL_BILLING_TICK", "0s")]);
        let cfg = NodeConfig::from_layers(None, off, &RunArgs::default()).unwrap();
        assert!(cfg.billing_tick.is_zero(), "0s turns ticks off");
        assert_eq!(
            NodeConfig::default().apps[0].call_policy_url,
            None,
            "no admission by default"
        );

        let cfg = NodeConfig {
            apps: vec![AppConfig {
                id: "shop".into(),
                secret: "shop-secret-0123456789".into(),
                api_keys: Vec::new(),
                call_policy_url: Some("ftp://policy.example:443".into()),
                webhook_url: None,
                webhook_secret: None,
            }],
            call_policy_timeout: Duration::ZERO,
            billing_tick: Duration::from_millis(10),
            ..NodeConfig::default()
        };
        let Err(ConfigError::Invalid(problems)) = cfg.validate() else {
            panic!("expected invalid");
        };
        let all = problems.join("\n");
        assert!(all.contains("apps[0].call_policy_url"), "{all}");
        assert!(all.contains("http or https"), "{all}");
        assert!(all.contains("call_policy_timeout"), "{all}");
        assert!(all.contains("billing_tick"), "{all}");
        assert_eq!(problems.len(), 3, "{all}");
    }

    #[test]
    fn app_keys_hold_every_app() {
        let cfg = NodeConfig::from_layers(file(FILE), env(&[]), &RunArgs::default()).unwrap();
        let keys = cfg.app_keys();
        assert!(keys.contains("shop"));
        assert!(!keys.contains(DEMO_APP_ID));
    }
    #[test]
    fn otlp_endpoint_is_off_by_default_and_set_from_the_environment() {
        let cfg = NodeConfig::from_layers(None, env(&[]), &RunArgs::default()).unwrap();
        assert_eq!(cfg.otlp_endpoint, None);
        let vars = env(&[("SHOWCALL_OTLP_ENDPOINT", "http://otel-collector:4317")]);
        let cfg = NodeConfig::from_layers(None, vars, &RunArgs::default()).unwrap();
        assert_eq!(
            cfg.otlp_endpoint.as_deref(),
            Some("http://otel-collector:4317")
        );
    }

    #[test]
    fn otlp_endpoint_must_be_a_plain_http_url() {
        for bad in ["otel-collector:4317", "https://otel-collector:4317"] {
            let vars = env(&[("SHOWCALL_OTLP_ENDPOINT", bad)]);
            let err = NodeConfig::from_layers(None, vars, &RunArgs::default()).unwrap_err();
            assert!(err.to_string().contains("otlp_endpoint"), "{bad}: {err}");
        }
    }

    #[test]
    fn media_capacity_defaults_to_ten_thousand_is_set_from_the_environment_and_is_never_zero() {
        let cfg = NodeConfig::from_layers(None, env(&[]), &RunArgs::default()).unwrap();
        assert_eq!(cfg.media_capacity, 10_000);
        let vars = env(&[("SHOWCALL_MEDIA_CAPACITY", "20000")]);
        let cfg = NodeConfig::from_layers(None, vars, &RunArgs::default()).unwrap();
        assert_eq!(cfg.media_capacity, 20_000);
        let vars = env(&[("SHOWCALL_MEDIA_CAPACITY", "0")]);
        let err = NodeConfig::from_layers(None, vars, &RunArgs::default()).unwrap_err();
        assert!(err.to_string().contains("media_capacity"), "{err}");
    }

    #[test]
    fn the_public_signal_url_is_unset_by_default_and_must_be_a_websocket_url() {
        let cfg = NodeConfig::from_layers(None, env(&[]), &RunArgs::default()).unwrap();
        assert_eq!(cfg.signal_public_url, None);
        let url = "wss://node-1.example.com/signal";
        let vars = env(&[("SHOWCALL_SIGNAL_PUBLIC_URL", url)]);
        let cfg = NodeConfig::from_layers(None, vars, &RunArgs::default()).unwrap();
        assert_eq!(cfg.signal_public_url.as_deref(), Some(url));
        for bad in [
            "node-1.example.com:7800",
            "https://node-1.example.com/signal",
        ] {
            let vars = env(&[("SHOWCALL_SIGNAL_PUBLIC_URL", bad)]);
            let err = NodeConfig::from_layers(None, vars, &RunArgs::default()).unwrap_err();
            assert!(
                err.to_string().contains("signal_public_url"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn signaling_caps_are_set_from_the_environment_and_checked() {
        let vars = env(&[
            ("SHOWCALL_MAX_CONNECTIONS", "500"),
            ("SHOWCALL_MAX_CONNECTIONS_PER_IP", "0"),
            ("SHOWCALL_MAX_OUTBOX_FRAMES", "2048"),
        ]);
        let cfg = NodeConfig::from_layers(None, vars, &RunArgs::default()).unwrap();
        assert_eq!(
            (
                cfg.max_connections,
                cfg.max_connections_per_ip,
                cfg.max_outbox_frames
            ),
            (500, 0, 2048)
        );
        for (key, bad) in [
            ("SHOWCALL_MAX_CONNECTIONS", "0"),
            // Smaller than a resumed session's replay.
            ("SHOWCALL_MAX_OUTBOX_FRAMES", "100"),
        ] {
            let err = NodeConfig::from_layers(None, env(&[(key, bad)]), &RunArgs::default())
                .unwrap_err()
                .to_string();
            let field = key.trim_start_matches("SHOWCALL_").to_lowercase();
            assert!(err.contains(&field), "{key}={bad}: {err}");
        }
    }
}
