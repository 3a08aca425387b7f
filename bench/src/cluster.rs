//! `showcall-bench cluster`: a cluster on this machine — one etcd (the `etcd` binary on PATH, Debian's
//! `etcd-server`, on ephemeral ports with a temporary data dir) and in-process nodes.
//!
//! 1. Three nodes form; a fourth joins: time until it serves every partition the rendezvous target gives
//!    it (no actors yet, so nothing is held back).
//! 2. That node "crashes" (stops renewing its lease without revoking it): time until the survivors serve
//!    every partition again (lease TTL 2 s).
//! 3. Ringing over one single node (no etcd) — the baseline — and over the three clustered nodes, each
//!    pair's caller and callee connected to different nodes, actors wherever placement puts them. Prints
//!    both and the p50/p99 ratio (the goal is ≤ 1.5× at p99). In bursts (every pair at once, round after
//!    round), or at a fixed rate (`--rate N --seconds S`, open loop): then a bare WebSocket relay at the
//!    same rate is measured too (after the three-node ringing, the nodes idle), the floor both are
//!    compared with.
//! 4. Envelope throughput: one node sends `envelopes` notifications to a user actor another node owns, then
//!    one request on the same link (answered after all of them); envelopes per second.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use showcall_cluster::partition_of;
use showcall_cluster::rendezvous::target;
use showcall_machines::{ChannelName, UserId};
use showcall_node::NodeHandle;
use showcall_node::config::NodeConfig;
use showcall_protocol::ActorKey;
use showcall_protocol::AppId;
use showcall_protocol::NodeId;
use showcall_protocol::UserCommand;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command as Process;

use super::cpu;
use super::relay_floor::Relay;
use super::report::{percentiles, progress};
use super::ringing::{Load, Pairs, call_frame_bytes, ratio, ring_at_rate, ring_rounds};
use super::signal_client::Client;
use super::tokens::token_factory;

pub(super) const PARTITIONS: u32 = 256;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A throwaway etcd; killed on drop.
pub(super) struct Etcd {
    _child: tokio::process::Child,
    pub(super) url: String,
    dir: std::path::PathBuf,
}

impl Etcd {
    /// The etcd process's id (for its CPU time).
    pub(super) fn pid(&self) -> Option<u32> {
        self._child.id()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) async fn start_etcd() -> anyhow::Result<Etcd> {
    let dir = std::env::temp_dir().join(format!("showcall-bench-etcd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (client, peer) = (free_port()?, free_port()?);
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut child = Process::new("etcd")
        .arg("--name=bench")
        .arg(format!("--data-dir={}", dir.display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=bench={peer_url}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting etcd (install Debian's etcd-server)")?;
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    loop {
        match lines.next_line().await? {
            Some(line) if line.contains("ready to serve client requests") => break,
            Some(_) => {}
            None => bail!("etcd exited before it was ready"),
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Etcd {
        _child: child,
        url,
        dir,
    })
}

pub(super) fn node_config(id: &str, etcd: Option<&str>) -> anyhow::Result<NodeConfig> {
    let any = "127.0.0.1:0".parse()?;
    let mut config = NodeConfig {
        node_id: id.to_owned(),
        signal_addr: any,
        grpc_addr: any,
        http_addr: any,
        media_addr: any,
        partitions: PARTITIONS,
        ..NodeConfig::default()
    };
    config.rate_limit.per_second = 10_000;
    config.rate_limit.burst = 10_000;
    // Every client connects from 127.0.0.1: the per-address cap (100) would refuse most.
    config.max_connections_per_ip = 0;
    if let Some(url) = etcd {
        config.etcd_endpoints = vec![url.to_owned()];
        config.cluster_secret = Some(showcall_node::config::Secret(
            "bench-cluster-secret-0123456789".into(),
        ));
    }
    Ok(config)
}

/// Waits until `nodes` together serve every partition, each serving what `expected` says it should
/// (when given). Returns how long it took.
pub(super) async fn until_served(
    nodes: &[&NodeHandle],
    expected: Option<&dyn Fn(&NodeId) -> usize>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let mut all = BTreeSet::new();
        let mut matches = true;
        for node in nodes {
            let m = node.membership().context("clustered node")?;
            let served = m.served();
            if let Some(expected) = expected {
                matches &= served.len() == expected(m.me());
            }
            all.extend(served);
        }
        if all.len() == PARTITIONS as usize && matches {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the cluster did not converge in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `nodes` serve every partition, each exactly its rendezvous share among them (so none is
/// still handing partitions over, and a login is not refused as "moving between nodes").
pub(super) async fn until_converged(nodes: &[&NodeHandle]) -> anyhow::Result<Duration> {
    let mut live = BTreeSet::new();
    for node in nodes {
        live.insert(node.membership().context("clustered node")?.me().clone());
    }
    let share = |n: &NodeId| {
        (0..PARTITIONS)
            .filter(|p| target(*p, &live) == Some(n))
            .count()
    };
    until_served(nodes, Some(&share)).await
}

/// Rings over the nodes at `urls` (each pair's caller and callee on different nodes when there are
/// several); the latencies, and the CPU time this process (nodes and clients) and etcd used meanwhile.
async fn ring(
    urls: &[String],
    pairs: usize,
    load: Load,
    etcd: Option<u32>,
) -> anyhow::Result<serde_json::Value> {
    let token = token_factory(&NodeConfig::default());
    let bar = progress(pairs as u64 * 2, "login");
    let mut clients: Pairs = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let (a, b) = (&urls[i % urls.len()], &urls[(i + 1) % urls.len()]);
        let caller = Client::login_prepared(a, token(&format!("bench-caller-{i}"))?).await?;
        let callee = Client::login_prepared(b, token(&format!("bench-callee-{i}"))?).await?;
        clients.push((i, caller, callee));
        bar.inc(2);
    }
    bar.finish();
    let etcd_cpu = || etcd.map(cpu::pid_seconds).transpose();
    let (cpu_before, etcd_before) = (cpu::process_seconds()?, etcd_cpu()?);
    let envelopes_before = showcall_cluster::link::envelopes_sent();
    let (mut result, setups) = match load {
        Load::Burst { rounds } => {
            let (latency, per_sec) = ring_rounds(&mut clients, rounds).await?;
            let mut result = percentiles(&latency);
            result["setups_per_sec_mean"] =
                serde_json::json!(per_sec.iter().sum::<f64>() / per_sec.len().max(1) as f64);
            (result, latency.len())
        }
        Load::Rate(schedule) => {
            let (measured, _) = ring_at_rate(clients, schedule).await?;
            (measured.json(), measured.latency.len())
        }
    };
    // Per call setup (ring, reject, both back to prepared), clients included: they are the same over
    // one node and three.
    let per_setup = |seconds: f64| seconds * 1000.0 / setups.max(1) as f64;
    result["cpu_ms_per_setup"] = per_setup(cpu::process_seconds()? - cpu_before).into();
    // Node-link envelopes (0 on one node), the reject and settling included.
    let envelopes = showcall_cluster::link::envelopes_sent() - envelopes_before;
    result["envelopes_per_setup"] = (envelopes as f64 / setups.max(1) as f64).into();
    if let (Some(before), Some(after)) = (etcd_before, etcd_cpu()?) {
        result["etcd_cpu_ms_per_setup"] = per_setup(after - before).into();
    }
    Ok(result)
}

/// Sends `count` harmless notifications from `from` to a user actor `to` owns, then one request on the
/// same link; returns envelopes per second.
async fn envelope_throughput(
    from: &NodeHandle,
    to: &NodeHandle,
    count: usize,
) -> anyhow::Result<f64> {
    let app = AppId(showcall_node::config::DEMO_APP_ID.to_owned());
    let owner = to.membership().context("clustered node")?;
    // A user whose actor lives on `to`.
    let user = (0..)
        .map(|i| UserId(format!("bench-sink-{i}")))
        .find(|u| {
            let key = ActorKey::User(app.clone(), u.clone());
            owner.owner(partition_of(&key, PARTITIONS)).as_ref() == Some(owner.me())
        })
        .expect("some user lands on the node");
    let token = token_factory(&NodeConfig::default());
    let _client = Client::login_prepared(&to.signal_url(), token(user.as_str())?).await?;
    let hub = from.hub();
    let started = Instant::now();
    for _ in 0..count {
        // Leaving a channel one is not in: delivered, changes nothing.
        let input = showcall_machines::user::UserInput::LeaveChannel {
            channel: ChannelName("bench-nowhere".into()),
        };
        hub.send_user(&app, &user, input);
    }
    // FIFO per link: this answer comes after every envelope before it was handled.
    let answered = hub
        .user_command(
            &app,
            &user,
            showcall_machines::ConnId(0),
            UserCommand::LeaveChannel {
                channel: ChannelName("bench-nowhere".into()),
            },
        )
        .await;
    let elapsed = started.elapsed();
    if !matches!(
        answered,
        Err(showcall_protocol::CommandError::NotInChannel)
            | Err(showcall_protocol::CommandError::SessionClosed)
    ) {
        bail!("unexpected answer: {answered:?}");
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// A clustered node's configuration that announces the URL clients reach its signaling at, so logins
/// that follow their session are sent to its node (`signal_public_url`; its port is picked here, free
/// when asked — another process could take it before the node binds it, then the node fails to start).
fn announced_node_config(id: &str, etcd: &str) -> anyhow::Result<NodeConfig> {
    let mut config = node_config(id, Some(etcd))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    config.signal_addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.signal_public_url = Some(format!("ws://127.0.0.1:{port}/signal"));
    Ok(config)
}

/// `clients_stay`: the nodes announce no public URL, so every client is served by the node it
/// connected to, through the node link when its session lives elsewhere (as before logins followed
/// their session).
pub async fn run(
    pairs: usize,
    load: Load,
    envelopes: usize,
    clients_stay: bool,
) -> anyhow::Result<()> {
    // 1 node, no etcd.
    let single = showcall_node::start(node_config("single", None)?).await?;
    let one_node = ring(&[single.signal_url()], pairs, load, None).await?;
    single.shutdown().await;

    // 3 nodes through etcd.
    let etcd = start_etcd().await?;
    let mut nodes = Vec::new();
    let formed = Instant::now();
    let config = |id: &str| match clients_stay {
        true => node_config(id, Some(&etcd.url)),
        false => announced_node_config(id, &etcd.url),
    };
    for i in 1..=3 {
        nodes.push(showcall_node::start(config(&format!("n{i}"))?).await?);
    }
    until_served(&nodes.iter().collect::<Vec<_>>(), None).await?;
    let formed = formed.elapsed();
    // A fourth node joins and takes its share.
    let joined_at = Instant::now();
    nodes.push(showcall_node::start(config("n4")?).await?);
    let live: BTreeSet<NodeId> = (1..=4).map(|i| NodeId(format!("n{i}"))).collect();
    let share = |n: &NodeId| {
        (0..PARTITIONS)
            .filter(|p| target(*p, &live) == Some(n))
            .count()
    };
    until_served(&nodes.iter().collect::<Vec<_>>(), Some(&share)).await?;
    let join = joined_at.elapsed();

    // It crashes (no lease renewal, no revoke): the survivors take its partitions after the TTL.
    let crashed = nodes.pop().expect("four nodes");
    let crashed_at = Instant::now();
    crashed.membership().context("clustered node")?.abandon();
    until_served(&nodes.iter().collect::<Vec<_>>(), None).await?;
    let takeover = crashed_at.elapsed();

    let urls: Vec<String> = nodes.iter().map(|n| n.signal_url()).collect();
    let three_nodes = ring(&urls, pairs, load, etcd.pid()).await?;
    // The floor of a fixed rate: a bare relay at the same rate.
    let floor = match load {
        Load::Burst { .. } => None,
        Load::Rate(schedule) => Some(
            Relay::start(pairs)
                .await?
                .at_rate(schedule, call_frame_bytes(pairs))
                .await?
                .json(),
        ),
    };
    let throughput = envelope_throughput(&nodes[0], &nodes[1], envelopes).await?;

    let mut result = serde_json::json!({
        "bench": "cluster",
        "pairs": pairs,
        "clients_follow_their_session": !clients_stay,
        "partitions": PARTITIONS,
        "lease_ttl_s": 2,
        "ringing_one_node": one_node,
        "ringing_three_nodes": three_nodes,
        "ratio_p50": ratio(&three_nodes, &one_node, "p50_ms"),
        "ratio_p99": ratio(&three_nodes, &one_node, "p99_ms"),
        "envelopes": envelopes,
        "envelopes_per_sec": throughput,
        "three_nodes_formed_ms": formed.as_millis(),
        "join_share_ms": join.as_millis(),
        "crash_to_reowned_ms": takeover.as_millis(),
    });
    match load {
        Load::Burst { rounds } => {
            result["mode"] = "burst".into();
            result["rounds"] = rounds.into();
        }
        Load::Rate(schedule) => {
            result["mode"] = "rate".into();
            result["rate_per_sec"] = schedule.rate.into();
            result["seconds"] = schedule.seconds.into();
        }
    }
    if let Some(floor) = floor {
        for (name, ringing) in [("one_node", &one_node), ("three_nodes", &three_nodes)] {
            for p in ["p50", "p90", "p99"] {
                result[format!("ratio_{name}_to_relay_{p}")] =
                    ratio(ringing, &floor, &format!("{p}_ms")).into();
            }
        }
        result["relay_floor"] = floor;
    }
    println!("{}", serde_json::to_string_pretty(&result)?);
    for node in nodes {
        node.shutdown().await;
    }
    drop(crashed);
    drop(etcd);
    Ok(())
}
