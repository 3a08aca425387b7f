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
//!    same rate is measured too, the floor both are compared with. The single node stays up beside the
//!    cluster and the sides take turns ([`take_turns`]): a round each in bursts, a slice each at a fixed
//!    rate.
//! 4. Envelope throughput: one node sends `envelopes` notifications to a user actor another node owns, then
//!    one request on the same link (answered after all of them); envelopes per second.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
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
use super::open_loop::{OpenLoop, Schedule};
use super::relay_floor::Relay;
use super::report::{percentiles, progress};
use super::ringing::{Load, Pairs, SLICE, call_frame_bytes, ratio, ring_at_rate, ring_rounds};
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

/// One side of the ringing comparison: pairs logged in to a set of nodes (each pair's caller and
/// callee on different nodes when there are several), and what its turns measured.
struct Side {
    clients: Pairs,
    /// etcd's process, whose CPU the side's turns are charged (three nodes only).
    etcd: Option<u32>,
    /// Burst mode: the latencies of every round so far, and each round's pairs per second.
    rounds: Option<(Histogram<u64>, Vec<f64>)>,
    /// Fixed-rate mode: every slice so far, measured together.
    slices: Option<OpenLoop>,
    turns: u32,
    /// This process's CPU (the nodes and the clients) during the side's turns.
    cpu_seconds: f64,
    etcd_seconds: f64,
    /// Node-link envelopes sent during the side's turns (0 on one node).
    envelopes: u64,
}

impl Side {
    async fn login(urls: &[String], pairs: usize, etcd: Option<u32>) -> anyhow::Result<Self> {
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
        Ok(Self {
            clients,
            etcd,
            rounds: None,
            slices: None,
            turns: 0,
            cpu_seconds: 0.0,
            etcd_seconds: 0.0,
            envelopes: 0,
        })
    }

    /// One turn: a round of the burst (`Load::Burst`, whatever its `rounds`), or a slice of the fixed
    /// rate.
    async fn turn(&mut self, load: Load) -> anyhow::Result<()> {
        let etcd_cpu = |pid: Option<u32>| pid.map(cpu::pid_seconds).transpose();
        let (cpu_before, etcd_before) = (cpu::process_seconds()?, etcd_cpu(self.etcd)?);
        let envelopes_before = showcall_cluster::link::envelopes_sent();
        match load {
            Load::Burst { .. } => {
                let rounds = ring_rounds(&mut self.clients, 1).await?;
                let (latency, per_sec) = (rounds.calling, rounds.setups_per_sec);
                match &mut self.rounds {
                    None => self.rounds = Some((latency, per_sec)),
                    Some((all, rates)) => {
                        all.add(&latency)?;
                        rates.extend(per_sec);
                    }
                }
            }
            Load::Rate(slice) => {
                let (measured, back) =
                    ring_at_rate(std::mem::take(&mut self.clients), slice).await?;
                self.clients = back;
                match &mut self.slices {
                    None => self.slices = Some(measured),
                    Some(all) => all.absorb(measured, self.turns)?,
                }
            }
        }
        self.turns += 1;
        self.cpu_seconds += cpu::process_seconds()? - cpu_before;
        if let (Some(before), Some(after)) = (etcd_before, etcd_cpu(self.etcd)?) {
            self.etcd_seconds += after - before;
        }
        self.envelopes += showcall_cluster::link::envelopes_sent() - envelopes_before;
        Ok(())
    }

    /// Latency percentiles over all turns; per call setup (ring, reject, both back to prepared): CPU
    /// (clients included: they are the same over one node and three), node-link envelopes (the reject
    /// and settling included), etcd's CPU.
    fn json(&self) -> serde_json::Value {
        let (mut result, setups) = match (&self.rounds, &self.slices) {
            (Some((latency, per_sec)), _) => {
                let mut result = percentiles(latency);
                result["setups_per_sec_mean"] =
                    serde_json::json!(per_sec.iter().sum::<f64>() / per_sec.len().max(1) as f64);
                (result, latency.len())
            }
            (None, Some(measured)) => (measured.json(), measured.latency.len()),
            (None, None) => return serde_json::Value::Null,
        };
        let per_setup = |seconds: f64| seconds * 1000.0 / setups.max(1) as f64;
        result["cpu_ms_per_setup"] = per_setup(self.cpu_seconds).into();
        result["envelopes_per_setup"] = (self.envelopes as f64 / setups.max(1) as f64).into();
        if self.etcd.is_some() {
            result["etcd_cpu_ms_per_setup"] = per_setup(self.etcd_seconds).into();
        }
        result
    }
}

/// Rings on both sides in turns (the box's load drifts over a run — another build starting, a
/// neighbour's burst — and taking turns shares the drift between the figure and its baseline instead of
/// putting it all on one side): in bursts, a round on one node, then a round on three, `rounds` times;
/// at a fixed rate, [`SLICE`] on one node, then on three, then through the relay floor, until each has
/// run `seconds`. Returns the relay's figures at a fixed rate.
async fn take_turns(
    one: &mut Side,
    three: &mut Side,
    pairs: usize,
    load: Load,
) -> anyhow::Result<Option<OpenLoop>> {
    match load {
        Load::Burst { rounds } => {
            for _ in 0..rounds {
                one.turn(load).await?;
                three.turn(load).await?;
            }
            Ok(None)
        }
        Load::Rate(schedule) => {
            let mut relay = Relay::start(pairs).await?;
            let frame_size = call_frame_bytes(pairs);
            let slices = (schedule.seconds / SLICE.as_secs()).max(1);
            let slice = Schedule {
                seconds: schedule.seconds / slices,
                ..schedule
            };
            let mut floor: Option<OpenLoop> = None;
            for done in 0..slices {
                one.turn(Load::Rate(slice)).await?;
                three.turn(Load::Rate(slice)).await?;
                let measured = relay.at_rate(slice, frame_size).await?;
                match &mut floor {
                    None => floor = Some(measured),
                    Some(all) => all.absorb(measured, u32::try_from(done)?)?,
                }
            }
            Ok(floor)
        }
    }
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
    // 1 node, no etcd: the baseline. It stays up, idle but for its turns, beside the cluster.
    let single = showcall_node::start(node_config("single", None)?).await?;

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
    let mut one = Side::login(&[single.signal_url()], pairs, None).await?;
    let mut three = Side::login(&urls, pairs, etcd.pid()).await?;
    let floor = take_turns(&mut one, &mut three, pairs, load).await?;
    let (one_node, three_nodes) = (one.json(), three.json());
    drop((one, three));
    single.shutdown().await;
    let floor = floor.map(|f| f.json());
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
