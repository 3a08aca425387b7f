//! `showcall-bench`: load benchmarks of a showcall node, a binary of their own so that the node's
//! binary carries none of their code or dependencies (the SDK, histograms, progress bars). They print a
//! progress bar while running and one JSON object with the results on stdout; BENCHMARKS.md records
//! them. Numbers, never assertions. `showcall-bench --help` lists them and their flags ([`cli`]).
//!
//! - `ringing`: N caller/callee pairs over WebSocket (binary frames, like the Rust SDK). Each round every
//!   caller calls its callee at once; the latency is `Call` sent → callee receives `calling`. In the same
//!   run, a bare WebSocket relay (client A → server → client B, same frame size, same process) gives the
//!   floor; the ratio says what the call engine adds on top of moving one frame.
//! - `idle`: logs in N users against a node started as a child process and reports the node's resident
//!   memory per idle user (connection + user actor).
//! - `fanout` (`fanout`): one broadcaster, N audience members; router egress packets per CPU second,
//!   audience loss and latency, against an SRTP-only floor (`srtp_floor`) and the hardware floor
//!   (`hardware_floor`: AES-GCM sealing and the router's batched egress on one core); its audience is
//!   SDK sessions or light RTP probes (`probe_frames` turns a probe's packets into frames).
//! - `floor` (`hardware_floor`): the hardware floor alone.
//! - `call-connect` (`call_connect`): `call()` → both sides connected with media.
//! - `switch` (`switch`): a viewer's hangup → the live room's audience sees the host again.
//! - `join` (`join`): viewers join a live room at random points of its GOP; join → first video frame
//!   and ICE/DTLS connect → first video frame, beside one signaling round trip (the goal's floor), and
//!   how many first frames the router served from its kept keyframe.
//! - `viewer-memory` (`viewer_memory`): a node in a child process; its resident memory per receiving
//!   viewer session, beside that of the same users logged in without media (`idle`'s measure).
//! - `cluster` (`cluster`): ringing over 3 nodes vs 1, envelope throughput, join and takeover times.
//! - `lifecycle` (`lifecycle`): graceful leave, join under load and a rolling restart, each beside its
//!   floor (the same step with no users; a plain login).
//! - `soak` (`soak`): three nodes in child processes and etcd under a long churn of users (logins and
//!   logouts, calls connected and hung up or dropped, rooms joined and left, some media); each node's
//!   memory, open files, sessions and actors over time, whether they return to their baseline, and
//!   the errors the nodes logged.
//!
//! Every benchmark starts its nodes in this process (`showcall_node::start`, or `media_node`), except
//! `idle`, `viewer-memory` and `soak`: they run the `showcall` binary as child processes
//! (`child_node`; `--node-bin` names another than the one next to this executable), so that a node's
//! memory and open files are its own.
//!
//! Shared by the media benchmarks: `media_node` (a node whose router runs on its own thread),
//! `child_node` (the `showcall` binary as a child process, for memory and the soak),
//! `sdk_user` (Rust SDK users, an auto-answering host), `clip` (the broadcaster's clip at a live
//! room's bitrate), `cpu` (CPU time from `/proc`), `udp_drops` (receive-buffer drops per socket).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use prost::Message as _;
use showcall_auth::{Grants, TokenIssuer};
use showcall_node::config::NodeConfig;
use showcall_proto::signal::{self as pb, client_frame::Command, event::Kind, server_frame::Frame};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::cli::{Benchmark, Cli};

mod call_connect;
mod child_node;
mod cli;
mod clip;
mod cluster;
mod cpu;
mod fanout;
mod hardware_floor;
mod join;
mod lifecycle;
mod media_node;
mod probe_frames;
mod sdk_user;
mod soak;
mod srtp_floor;
mod switch;
mod udp_drops;
mod viewer_memory;

fn main() -> anyhow::Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The node's logs to stderr (`RUST_LOG`, default `info`): those of the nodes started in this
    // process, and the SDK's.
    let _telemetry = showcall_node::telemetry::Telemetry::init(None, "")?;
    runtime.block_on(run(cli))
}

/// Runs the benchmark named on the command line.
async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.benchmark {
        Benchmark::Ringing { pairs, rounds, url } => ringing(pairs, rounds, url).await,
        Benchmark::Idle {
            users,
            connect_only,
        } => {
            let node_bin = child_node::node_binary(cli.node_bin.as_deref())?;
            idle(users, connect_only, &node_bin).await
        }
        Benchmark::Fanout {
            audience,
            seconds,
            video_scale,
            receiver,
            workers,
        } => fanout::run(audience, seconds, video_scale, receiver, workers).await,
        Benchmark::Floor {
            receivers,
            seconds,
            video_scale,
            no_gso,
        } => hardware_floor::bench(receivers, seconds, video_scale, !no_gso).await,
        Benchmark::Join {
            viewers,
            video_scale,
            seed,
        } => join::run(viewers, video_scale, seed).await,
        Benchmark::ViewerMemory {
            viewers,
            seconds,
            video_scale,
        } => {
            let node_bin = child_node::node_binary(cli.node_bin.as_deref())?;
            viewer_memory::run(viewers, seconds, video_scale, &node_bin).await
        }
        Benchmark::CallConnect { calls, concurrent } => call_connect::run(calls, concurrent).await,
        Benchmark::Switch { rounds, audience } => switch::run(rounds, audience).await,
        Benchmark::Cluster {
            pairs,
            rounds,
            envelopes,
        } => cluster::run(pairs, rounds, envelopes).await,
        Benchmark::Lifecycle {
            users,
            restart_users,
            calls,
        } => lifecycle::run(users, restart_users, calls).await,
        Benchmark::Soak {
            minutes,
            warmup_minutes,
            users,
            rooms,
            media_share,
            seed,
            sample_seconds,
        } => {
            soak::run(soak::SoakOptions {
                node_bin: child_node::node_binary(cli.node_bin.as_deref())?,
                minutes,
                warmup_minutes,
                users,
                rooms,
                media_share,
                seed,
                sample_seconds,
            })
            .await
        }
    }
}

/// A minimal binary-frame signaling client: the protocol with nothing on top.
struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Client {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("connecting")?;
        Ok(Self { ws, next_id: 1 })
    }

    async fn send(&mut self, command: Command) -> anyhow::Result<u64> {
        let request_id = self.next_id;
        self.next_id += 1;
        let frame = pb::ClientFrame {
            request_id,
            command: Some(command),
        };
        self.ws
            .send(Message::Binary(frame.encode_to_vec().into()))
            .await?;
        Ok(request_id)
    }

    async fn next(&mut self) -> anyhow::Result<pb::ServerFrame> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(pb::ServerFrame::decode(b.as_ref())?),
                Some(Ok(Message::Close(_))) | None => bail!("connection closed"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Sends a command and waits for its response, skipping events.
    async fn request(&mut self, command: Command) -> anyhow::Result<pb::Response> {
        let id = self.send(command).await?;
        loop {
            if let Some(Frame::Response(r)) = self.next().await?.frame
                && r.request_id == id
            {
                if let Some(e) = &r.error {
                    bail!("refused: {} {}", e.code, e.message);
                }
                return Ok(r);
            }
        }
    }

    /// Waits for a call state change to `state`; returns its call id.
    async fn wait_state(&mut self, state: pb::CallState) -> anyhow::Result<String> {
        loop {
            if let Some(Frame::Event(pb::Event {
                kind: Some(Kind::CallStateChanged(c)),
                ..
            })) = self.next().await?.frame
                && c.state == state as i32
            {
                return Ok(c.call_id);
            }
        }
    }

    async fn login_prepared(url: &str, token: String) -> anyhow::Result<Self> {
        let mut c = Self::connect(url).await?;
        c.request(Command::Login(pb::Login { token })).await?;
        c.request(Command::PrepareForCall(pb::PrepareForCall {
            call_timeout_ms: Some(0),
            ..Default::default()
        }))
        .await?;
        Ok(c)
    }
}

fn token_factory(config: &NodeConfig) -> impl Fn(&str) -> anyhow::Result<String> + use<> {
    let keys = config.app_keys();
    let app = config.apps[0].id.clone();
    move |uid: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let grants = Grants {
            signal: true,
            channel: Some("*".into()),
            publish: true,
            subscribe: true,
        };
        Ok(TokenIssuer::mint(&keys, &app, uid, Duration::from_secs(3600), grants, now)?.0)
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds")
}

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({ "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "max_ms": h.max() as f64 / 1000.0, "samples": h.len() })
}

pub(crate) async fn ringing(
    pairs: usize,
    rounds: usize,
    url: Option<String>,
) -> anyhow::Result<()> {
    let mut config = NodeConfig::default();
    let own_node = match url {
        Some(_) => None,
        None => {
            config.signal_addr = "127.0.0.1:0".parse()?;
            config.grpc_addr = "127.0.0.1:0".parse()?;
            config.http_addr = "127.0.0.1:0".parse()?;
            config.media_addr = "127.0.0.1:0".parse()?;
            // The bench is one client process opening many frames per connection.
            config.rate_limit.per_second = 10_000;
            config.rate_limit.burst = 10_000;
            Some(showcall_node::start(config.clone()).await?)
        }
    };
    let url = match (&url, &own_node) {
        (Some(u), _) => format!(
            "{}/signal",
            u.trim_end_matches("/signal").trim_end_matches('/')
        ),
        (None, Some(node)) => node.signal_url(),
        (None, None) => unreachable!("a node is started when no url is given"),
    };
    let token = token_factory(&config);

    let bar = progress(pairs as u64 * 2, "login");
    let mut clients = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let caller = Client::login_prepared(&url, token(&format!("bench-caller-{i}"))?).await?;
        let callee = Client::login_prepared(&url, token(&format!("bench-callee-{i}"))?).await?;
        clients.push((i, caller, callee));
        bar.inc(2);
    }
    bar.finish();

    let (ring, setups_per_sec) = ring_rounds(&mut clients, rounds).await?;

    // The floor: the same number of pairs moving one frame of the same size through a bare relay.
    let frame_size = pb::ClientFrame {
        request_id: 1,
        command: Some(Command::Call(pb::Call {
            remote_user_id: format!("bench-callee-{}", pairs - 1),
            ..Default::default()
        })),
    }
    .encoded_len();
    let relay = relay_floor(pairs, rounds, frame_size).await?;

    let showcall = percentiles(&ring);
    let floor = percentiles(&relay);
    let ratio =
        |k: &str| showcall[k].as_f64().unwrap_or(0.0) / floor[k].as_f64().unwrap_or(f64::NAN);
    let result = serde_json::json!({
        "bench": "ringing",
        "pairs": pairs,
        "rounds": rounds,
        "ring_latency": showcall,
        "setups_per_sec_mean": setups_per_sec.iter().sum::<f64>() / setups_per_sec.len().max(1) as f64,
        "relay_floor": floor,
        "frame_bytes": frame_size,
        "ratio_p50": ratio("p50_ms"),
        "ratio_p99": ratio("p99_ms"),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(node) = own_node {
        node.shutdown().await;
    }
    Ok(())
}

/// Rounds of ringing: every caller `bench-caller-i` calls its callee `bench-callee-i` at once; latency is
/// `Call` sent → callee sees `calling`; the callee rejects. Returns the latencies and, per round, the
/// pairs rung per second.
async fn ring_rounds(
    clients: &mut Vec<(usize, Client, Client)>,
    rounds: usize,
) -> anyhow::Result<(Histogram<u64>, Vec<f64>)> {
    let pairs = clients.len();
    let mut ring = histogram();
    let mut setups_per_sec = Vec::new();
    let bar = progress((pairs * rounds) as u64, "ringing");
    for _ in 0..rounds {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, mut caller, mut callee) in clients.drain(..) {
            tasks.spawn(async move {
                let t0 = Instant::now();
                caller
                    .send(Command::Call(pb::Call {
                        remote_user_id: format!("bench-callee-{i}"),
                        ..Default::default()
                    }))
                    .await?;
                let call_id = callee.wait_state(pb::CallState::Calling).await?;
                let latency = t0.elapsed();
                callee
                    .request(Command::Reject(pb::Reject {
                        call_id,
                        reason: String::new(),
                    }))
                    .await?;
                caller.wait_state(pb::CallState::Prepared).await?;
                anyhow::Ok((i, caller, callee, latency))
            });
        }
        let mut last_ring = Duration::ZERO;
        while let Some(done) = tasks.join_next().await {
            let (i, caller, callee, latency) = done??;
            ring.record(latency.as_micros().max(1) as u64)?;
            last_ring = last_ring.max(latency);
            clients.push((i, caller, callee));
            bar.inc(1);
        }
        let _ = started;
        setups_per_sec.push(pairs as f64 / last_ring.as_secs_f64());
    }
    bar.finish();
    Ok((ring, setups_per_sec))
}

/// Relay routing table: pair id → the B side's outbox.
type Relay = Arc<Mutex<HashMap<usize, mpsc::UnboundedSender<AxMessage>>>>;

async fn relay_socket(mut socket: WebSocket, relay: Relay, pair: usize, side_b: bool) {
    if side_b {
        let (tx, mut rx) = mpsc::unbounded_channel();
        relay.lock().expect("relay lock").insert(pair, tx);
        loop {
            tokio::select! {
                out = rx.recv() => {
                    let Some(m) = out else { break };
                    if socket.send(m).await.is_err() { break; }
                }
                inc = socket.recv() => if !matches!(inc, Some(Ok(_))) { break },
            }
        }
    } else {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, AxMessage::Binary(_)) {
                let peer = relay.lock().expect("relay lock").get(&pair).cloned();
                if let Some(peer) = peer {
                    let _ = peer.send(m);
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct RelayQuery {
    pair: usize,
    side: String,
}

async fn relay_upgrade(
    State(relay): State<Relay>,
    Query(q): Query<RelayQuery>,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    ws.on_upgrade(move |s| relay_socket(s, relay, q.pair, q.side == "b"))
}

async fn relay_floor(
    pairs: usize,
    rounds: usize,
    frame_size: usize,
) -> anyhow::Result<Histogram<u64>> {
    let relay: Relay = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/relay", axum::routing::get(relay_upgrade))
        .with_state(relay.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut conns = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let (b, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/relay?pair={i}&side=b")).await?;
        let (a, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/relay?pair={i}&side=a")).await?;
        conns.push((a, b));
    }
    // Each B registers on its own task; one frame through every pair proves the routes exist.
    for (a, b) in &mut conns {
        loop {
            a.send(Message::Binary(vec![0u8; 1].into())).await?;
            if tokio::time::timeout(Duration::from_millis(200), b.next())
                .await
                .is_ok()
            {
                break;
            }
        }
    }
    let payload = vec![7u8; frame_size];
    let mut h = histogram();
    let bar = progress((pairs * rounds) as u64, "relay");
    for _ in 0..rounds {
        let mut tasks = tokio::task::JoinSet::new();
        for (mut a, mut b) in conns.drain(..) {
            let payload = payload.clone();
            tasks.spawn(async move {
                let t0 = Instant::now();
                a.send(Message::Binary(payload.into())).await?;
                loop {
                    match b.next().await {
                        Some(Ok(Message::Binary(_))) => break,
                        Some(Ok(_)) => continue,
                        _ => bail!("relay closed"),
                    }
                }
                anyhow::Ok((a, b, t0.elapsed()))
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (a, b, latency) = done??;
            h.record(latency.as_micros().max(1) as u64)?;
            conns.push((a, b));
            bar.inc(1);
        }
    }
    bar.finish();
    server.abort();
    Ok(h)
}

async fn idle(users: usize, connect_only: bool, node_bin: &std::path::Path) -> anyhow::Result<()> {
    let node = child_node::ChildNode::start(node_bin).await?;
    let url = node.url.clone();
    let token = token_factory(&NodeConfig::default());
    let before = node.rss_bytes()?;

    let bar = progress(users as u64, "login");
    let mut conns = Vec::with_capacity(users);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0;
    // Log in with bounded concurrency so the listen backlog never overflows.
    while conns.len() < users {
        while next < users && tasks.len() < 256 {
            let t = token(&format!("idle-{next}"))?;
            let url = url.clone();
            tasks.spawn(async move {
                let mut c = Client::connect(&url).await?;
                if !connect_only {
                    c.request(Command::Login(pb::Login { token: t })).await?;
                } else {
                    // A ping proves the connection is served without creating a session.
                    c.request(Command::Ping(pb::Ping {})).await?;
                }
                anyhow::Ok(c)
            });
            next += 1;
        }
        let c = tasks.join_next().await.context("login tasks")???;
        conns.push(c);
        bar.inc(1);
    }
    bar.finish();
    // Let the node finish any lazy allocation, then read its memory twice to see it is settled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = node.rss_bytes()?;
    let per_user = after.saturating_sub(before) as f64 / users as f64;
    let result = serde_json::json!({
        "bench": "idle",
        "users": users,
        "logged_in": !connect_only,
        "node_rss_before_mib": before as f64 / 1048576.0,
        "node_rss_after_mib": after as f64 / 1048576.0,
        "bytes_per_idle_user": per_user.round(),
        "kib_per_idle_user": (per_user / 1024.0 * 100.0).round() / 100.0,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    drop(conns);
    node.stop().await
}
