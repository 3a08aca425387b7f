//! `showcall-bench soak`: three nodes (child processes) and etcd under a long churn of users, to see
//! whether anything accumulates.
//!
//! etcd (from PATH, temp data dir) and three nodes, each the `showcall` binary run as `showcall run` in a
//! child process with its own ports, the cluster secret and the etcd endpoint; their logs (stderr,
//! `RUST_LOG=warn`) are kept in files and their ERROR and WARN lines counted ([`logs`]). The users
//! ([`churn`]) are Rust SDK clients in this process: hosts going live in rooms and taking calls,
//! viewers logging in and out on random nodes, watching rooms and calling hosts — connected calls hung
//! up or dropped, media in a share of calls and rooms — from a seeded RNG.
//!
//! Every `sample_seconds` each node is read ([`samples`]): resident memory (and its anonymous part,
//! which tells a growing heap from the executable's pages read in as code first runs), open files, CPU
//! time, and from `GetNodeInfo` its sessions, calls and actors; one row per reading on stderr. After `minutes`
//! the churn stops, every user still online logs out, and the nodes are read every two seconds until
//! their sessions, calls and actors are back to what they were before the churn (dropped sessions
//! expire after the grace period), or [`SETTLE_TIMEOUT`] passes. Then the goals, each PASS or FAIL:
//! - resident memory grows ≤ 5 % from the end of the warm-up to the end of the churn, on every node;
//! - sessions, calls and actors return to their pre-churn baseline once the churn stopped;
//! - no node logged an ERROR.
//!
//! It is a benchmark: it exits 0 whatever the result, and prints one JSON object on stdout.
//!
//! Sizing (defaults): 300 users — 30 hosts, each with a room and taking calls, and 270 viewers; about
//! half are online at a time — and media in 10 % of calls (at most 3 at once) and in 3 rooms of 30 (at
//! most 12 probes watching). With ten hosts, nine calls in ten found their host busy; with thirty, one
//! in six connects. The three nodes then use a few percent of a core each, and the bench
//! process (where media sessions, the costly clients, encrypt and decrypt their streams) little more, so
//! on two cores shared by etcd, three nodes and every client the clients stay ahead of their timers:
//! what is measured is the nodes, not a starved bench. More users fit; the default leaves room for
//! whatever else runs on a shared machine.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use showcall_node::config::NodeConfig;
use showcall_sdk::MediaSource;
use tokio::sync::watch;

use super::child_node::{ChildNode, ChildOptions};
use super::cluster::start_etcd;
use super::report::percentiles;
use super::tokens::token_factory;

mod churn;
mod logs;
pub(crate) mod samples;

use churn::{Churn, GRACE, Role, Room};
use logs::LogTally;
use samples::{Admin, Counts, NodeSample};

const NODES: usize = 3;
/// Shared by the three nodes: node links are opened with tokens signed with it.
const CLUSTER_SECRET: &str = "soak-cluster-secret-0123456789";
/// How long the nodes have, after the churn stopped, to return to their baseline: the grace period
/// (dropped sessions), plus a generous margin.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the nodes are read while they settle.
const SETTLE_POLL: Duration = Duration::from_secs(2);
/// How long the users have to log out once told to stop.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(60);
/// The RSS goal: growth from the end of the warm-up to the end of the churn, percent.
const RSS_GROWTH_GOAL_PCT: f64 = 5.0;

/// What `showcall-bench soak` runs with.
#[derive(Debug, Clone)]
pub(crate) struct SoakOptions {
    /// The `showcall` binary each node runs.
    pub node_bin: std::path::PathBuf,
    pub minutes: u64,
    pub warmup_minutes: u64,
    pub users: usize,
    pub rooms: usize,
    pub media_share: f64,
    pub seed: u64,
    /// `None`: 30 s, or 10 s for runs of five minutes or less.
    pub sample_seconds: Option<u64>,
}

/// The phase a reading was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    Baseline,
    Warmup,
    Churn,
    Settling,
}

/// Every node at one instant.
struct Reading {
    /// Since the churn started.
    at: Duration,
    phase: Phase,
    nodes: Vec<NodeSample>,
}

struct Node {
    id: String,
    process: ChildNode,
    admin: Admin,
    logs: Arc<Mutex<LogTally>>,
}

pub(crate) async fn run(options: SoakOptions) -> anyhow::Result<()> {
    if options.warmup_minutes >= options.minutes {
        bail!("--warmup-minutes must be shorter than --minutes");
    }
    if !(0.0..=1.0).contains(&options.media_share) {
        bail!("--media-share must be between 0 and 1");
    }
    if options.rooms == 0 || options.users <= options.rooms {
        bail!("--users must be more than --rooms (each room has a host), and a room is needed");
    }
    let sample_every =
        Duration::from_secs(options.sample_seconds.unwrap_or(if options.minutes <= 5 {
            10
        } else {
            30
        }));
    let etcd = start_etcd().await?;
    let log_dir = std::env::temp_dir().join(format!("showcall-soak-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir)?;
    let mut nodes = Vec::new();
    for i in 1..=NODES {
        let id = format!("soak-n{i}");
        nodes.push(start_node(&options.node_bin, &id, &etcd.url, &log_dir).await?);
    }
    formed(&mut nodes).await?;
    eprintln!(
        "soak: etcd {} and {NODES} nodes up (logs in {}); {} users, {} rooms, media share {}, seed {}, {} min ({} min warm-up)",
        etcd.url,
        log_dir.display(),
        options.users,
        options.rooms,
        options.media_share,
        options.seed,
        options.minutes,
        options.warmup_minutes
    );
    eprintln!("{}", header());

    let started = Instant::now();
    let mut readings = Vec::new();
    let baseline = read(&mut nodes, Duration::ZERO, Phase::Baseline).await?;
    eprintln!("{}", row(&baseline, None, None));
    readings.push(baseline);

    let load = Arc::new(churn_for(&options, &nodes)?);
    let (stop, stopped) = watch::channel(false);
    let mut users = tokio::task::JoinSet::new();
    for room in 0..options.rooms {
        users.spawn(churn::user(
            load.clone(),
            Role::Host(room),
            0,
            stopped.clone(),
        ));
    }
    for viewer in 0..options.users - options.rooms {
        users.spawn(churn::user(
            load.clone(),
            Role::Viewer,
            viewer,
            stopped.clone(),
        ));
    }

    let warmup = Duration::from_secs(options.warmup_minutes * 60);
    let churn_length = Duration::from_secs(options.minutes * 60);
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + sample_every, sample_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let at = started.elapsed();
        let phase = if at < warmup {
            Phase::Warmup
        } else {
            Phase::Churn
        };
        let reading = read(&mut nodes, at, phase).await?;
        eprintln!("{}", row(&reading, readings.last(), Some(load.as_ref())));
        readings.push(reading);
        if at + sample_every / 2 >= churn_length {
            break;
        }
    }

    // Stop: everyone online logs out; dropped sessions expire by themselves.
    let stopped_at = started.elapsed();
    let _ = stop.send(true);
    let all_out = tokio::time::timeout(LOGOUT_TIMEOUT, async {
        while users.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !all_out {
        eprintln!("soak: some users did not finish logging out in {LOGOUT_TIMEOUT:?}");
        users.abort_all();
    }
    eprintln!(
        "soak: churn stopped at {:.0} s; waiting for the baseline",
        stopped_at.as_secs_f64()
    );
    let baseline_counts: Vec<Option<Counts>> =
        readings[0].nodes.iter().map(|n| n.info.clone()).collect();
    let settle_started = Instant::now();
    let mut last_printed = Instant::now();
    let returned_after = loop {
        tokio::time::sleep(SETTLE_POLL).await;
        let reading = read(&mut nodes, started.elapsed(), Phase::Settling).await?;
        let back = at_baseline(&reading, &baseline_counts);
        let timed_out = settle_started.elapsed() >= SETTLE_TIMEOUT;
        // Printed at the sampling pace, and the last one always (the report reads it).
        if back || timed_out || last_printed.elapsed() >= sample_every {
            eprintln!("{}", row(&reading, readings.last(), Some(load.as_ref())));
            last_printed = Instant::now();
            readings.push(reading);
        }
        if back {
            break Some(settle_started.elapsed());
        }
        if timed_out {
            break None;
        }
    };

    let report = report(&options, &nodes, &readings, &load, returned_after, &log_dir);
    println!("{}", serde_json::to_string_pretty(&report)?);
    for node in nodes {
        node.process.stop().await?;
    }
    drop(etcd);
    Ok(())
}

async fn start_node(node_bin: &Path, id: &str, etcd: &str, log_dir: &Path) -> anyhow::Result<Node> {
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let options = ChildOptions {
        args: vec![
            "--node-id".into(),
            id.into(),
            "--etcd".into(),
            etcd.into(),
            "--grace-period".into(),
            format!("{}s", GRACE.as_secs()),
        ],
        env: vec![
            env("SHOWCALL_CLUSTER_SECRET", CLUSTER_SECRET),
            // Warnings and errors are what the soak counts; info lines would only cost CPU.
            env("RUST_LOG", "warn"),
            env("NO_COLOR", "1"),
        ],
        capture_logs: true,
        wrapper: wrapper(id),
    };
    let mut process = ChildNode::start_with(node_bin, options)
        .await
        .with_context(|| format!("starting node {id}"))?;
    let stderr = process.take_stderr().context("node logs piped")?;
    let logs = logs::tally(stderr, &log_dir.join(format!("{id}.log")))?;
    let admin = samples::admin(&process.grpc_url).await?;
    Ok(Node {
        id: id.to_owned(),
        process,
        admin,
        logs,
    })
}

/// `SOAK_WRAP_N1` (e.g. `heaptrack -o /tmp/soak-n1`): a command the first node runs under,
/// to see where its memory goes; its readings are then of that command's process. (Not `SHOWCALL_*`:
/// the nodes inherit this environment and refuse settings they do not know.)
fn wrapper(id: &str) -> Vec<String> {
    match std::env::var("SOAK_WRAP_N1") {
        Ok(command) if id.ends_with("n1") => command.split_whitespace().map(Into::into).collect(),
        _ => Vec::new(),
    }
}

/// Waits until the three nodes see each other and serve every partition between them.
async fn formed(nodes: &mut [Node]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut served = std::collections::BTreeSet::new();
        let (mut all_see_all, mut partitions) = (true, 0);
        for node in nodes.iter_mut() {
            match samples::node_info(&mut node.admin).await {
                Some(info) => {
                    all_see_all &= info.live_nodes.len() == NODES;
                    partitions = info.partition_count;
                    served.extend(info.partitions);
                }
                None => all_see_all = false,
            }
        }
        if all_see_all && partitions > 0 && served.len() == partitions as usize {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the three nodes did not form a cluster in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn churn_for(options: &SoakOptions, nodes: &[Node]) -> anyhow::Result<Churn> {
    let token = token_factory(&NodeConfig::default());
    let media_rooms = (options.rooms as f64 * options.media_share).ceil() as usize;
    let rooms = (0..options.rooms)
        .map(|r| Room {
            name: format!("soak_room_{r}"),
            media: r < media_rooms,
        })
        .collect();
    let clip: Arc<MediaSource> = super::clip::scaled(1)?;
    Ok(Churn::new(
        nodes.iter().map(|n| n.process.url.clone()).collect(),
        Box::new(token),
        rooms,
        clip,
        options.media_share,
        options.seed,
    ))
}

async fn read(nodes: &mut [Node], at: Duration, phase: Phase) -> anyhow::Result<Reading> {
    let mut taken = Vec::with_capacity(nodes.len());
    for node in nodes.iter_mut() {
        taken.push(samples::sample(&node.process, &mut node.admin).await?);
    }
    Ok(Reading {
        at,
        phase,
        nodes: taken,
    })
}

/// Whether every node's sessions, calls and actors are what they were before the churn.
fn at_baseline(reading: &Reading, baseline: &[Option<Counts>]) -> bool {
    reading
        .nodes
        .iter()
        .zip(baseline)
        .all(|(now, before)| match (&now.info, before) {
            (Some(now), Some(before)) => {
                now.users_online == before.users_online
                    && now.calls_active == before.calls_active
                    && now.actors.len() == before.actors.len()
            }
            _ => false,
        })
}

fn mib(bytes: u64) -> f64 {
    (bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0
}

fn header() -> String {
    let mut h = format!("{:>6} {:<8}", "t(s)", "phase");
    for i in 1..=NODES {
        h.push_str(&format!(
            " | n{i}: {:>5} {:>5} {:>5} {:>4} {:>5} {:>4} {:>3}",
            "RSS", "anon", "fds", "cpu%", "actor", "sess", "call"
        ));
    }
    h.push_str(" | online calls errs");
    h
}

fn row(reading: &Reading, previous: Option<&Reading>, churn: Option<&Churn>) -> String {
    let phase = format!("{:?}", reading.phase).to_lowercase();
    let mut r = format!("{:>6.0} {:<8}", reading.at.as_secs_f64(), phase);
    for (i, node) in reading.nodes.iter().enumerate() {
        // CPU share since the previous reading, percent of one core.
        let cpu = previous
            .filter(|p| reading.at > p.at)
            .map(|p| {
                (node.cpu_seconds - p.nodes[i].cpu_seconds) / (reading.at - p.at).as_secs_f64()
                    * 100.0
            })
            .unwrap_or(0.0);
        let (actors, sessions, calls) = match &node.info {
            Some(c) => (
                c.actors.len().to_string(),
                c.users_online.to_string(),
                c.calls_active.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        r.push_str(&format!(
            " | n{}: {:>5.1} {:>5.1} {:>5} {:>4.0} {:>5} {:>4} {:>3}",
            i + 1,
            mib(node.rss_bytes),
            mib(node.anon_bytes),
            node.open_files,
            cpu,
            actors,
            sessions,
            calls
        ));
    }
    if let Some(churn) = churn {
        let c = &churn.counters;
        r.push_str(&format!(
            " | {:>6} {:>5} {:>4}",
            c.online.load(Ordering::Relaxed),
            c.calls_connected.load(Ordering::Relaxed),
            c.client_errors.load(Ordering::Relaxed)
        ));
    }
    r
}

fn report(
    options: &SoakOptions,
    nodes: &[Node],
    readings: &[Reading],
    churn: &Churn,
    returned_after: Option<Duration>,
    log_dir: &Path,
) -> serde_json::Value {
    let warmup = Duration::from_secs(options.warmup_minutes * 60);
    // The first reading at or after the end of the warm-up, and the last one of the churn.
    let warm = readings
        .iter()
        .find(|r| r.phase == Phase::Churn && r.at >= warmup)
        .or_else(|| readings.iter().rfind(|r| r.phase != Phase::Settling));
    let end = readings.iter().rfind(|r| r.phase == Phase::Churn);
    let last = readings.last();
    let baseline = &readings[0];
    let mut per_node = Vec::new();
    let (mut worst_growth, mut worst_anon_growth) = (f64::MIN, f64::MIN);
    let (mut errors, mut all_back) = (0, returned_after.is_some());
    for (i, node) in nodes.iter().enumerate() {
        let rss = |r: Option<&Reading>| r.map(|r| r.nodes[i].rss_bytes).unwrap_or(0);
        let growth = (rss(end) as f64 - rss(warm) as f64) / rss(warm).max(1) as f64 * 100.0;
        worst_growth = worst_growth.max(growth);
        let anon = |r: Option<&Reading>| r.map(|r| r.nodes[i].anon_bytes).unwrap_or(0);
        let anon_growth = (anon(end) as f64 - anon(warm) as f64) / anon(warm).max(1) as f64 * 100.0;
        worst_anon_growth = worst_anon_growth.max(anon_growth);
        let max_rss = readings
            .iter()
            .map(|r| r.nodes[i].rss_bytes)
            .max()
            .unwrap_or(0);
        let max_fds = readings
            .iter()
            .map(|r| r.nodes[i].open_files)
            .max()
            .unwrap_or(0);
        let logs = node.logs.lock().expect("log tally lock").clone();
        errors += logs.errors;
        let before = baseline.nodes[i].info.clone();
        let after = last.and_then(|r| r.nodes[i].info.clone());
        let lingering: Vec<&String> = match (&before, &after) {
            (Some(b), Some(a)) => a
                .actors
                .iter()
                .filter(|x| !b.actors.contains(x))
                .take(20)
                .collect(),
            _ => Vec::new(),
        };
        all_back &= lingering.is_empty();
        let counts = |c: &Option<Counts>| {
            c.as_ref().map(|c| {
                serde_json::json!({
                    "sessions": c.users_online,
                    "calls": c.calls_active,
                    "actors": c.actors.len(),
                    "user_actors": c.actors_of("user"),
                    "call_actors": c.actors_of("call"),
                    "channel_actors": c.actors_of("channel"),
                })
            })
        };
        let peak_actors = readings
            .iter()
            .filter_map(|r| r.nodes[i].info.as_ref().map(|c| c.actors.len()))
            .max();
        per_node.push(serde_json::json!({
            "node": node.id,
            "rss_mib": {
                "baseline": mib(rss(Some(baseline))),
                "end_of_warmup": mib(rss(warm)),
                "end_of_churn": mib(rss(end)),
                "max": mib(max_rss),
                "after_settling": mib(rss(last)),
            },
            "rss_growth_after_warmup_pct": (growth * 100.0).round() / 100.0,
            "anon_mib": {
                "baseline": mib(anon(Some(baseline))),
                "end_of_warmup": mib(anon(warm)),
                "end_of_churn": mib(anon(end)),
                "after_settling": mib(anon(last)),
            },
            "anon_growth_after_warmup_pct": (anon_growth * 100.0).round() / 100.0,
            "open_files": {
                "baseline": baseline.nodes[i].open_files,
                "end_of_warmup": warm.map(|r| r.nodes[i].open_files),
                "end_of_churn": end.map(|r| r.nodes[i].open_files),
                "max": max_fds,
                "after_settling": last.map(|r| r.nodes[i].open_files),
            },
            "cpu_seconds": last.map(|r| r.nodes[i].cpu_seconds),
            "peak_actors": peak_actors,
            "before_churn": counts(&before),
            "after_settling": counts(&after),
            "lingering_actors": lingering,
            "log_errors": logs.errors,
            "log_warnings": logs.warnings,
            "warning_kinds": logs.warning_kinds,
            "first_errors": logs.first_errors.iter().take(5).collect::<Vec<_>>(),
        }));
    }

    let rss_pass = worst_growth <= RSS_GROWTH_GOAL_PCT;
    let verdict = |pass: bool| if pass { "PASS" } else { "FAIL" };
    eprintln!();
    eprintln!("==================== soak goals ====================");
    let line = |pass: bool, text: String| {
        if pass {
            eprintln!("PASS  {text}");
        } else {
            eprintln!("FAIL  !!!!!!!! {text} !!!!!!!!");
        }
    };
    line(
        rss_pass,
        format!(
            "RSS growth after warm-up ≤ {RSS_GROWTH_GOAL_PCT} % on every node (worst {worst_growth:+.2} %)"
        ),
    );
    line(
        all_back,
        match returned_after {
            Some(t) => format!(
                "sessions, calls and actors back to the pre-churn baseline ({:.1} s after the churn stopped)",
                t.as_secs_f64()
            ),
            None => format!(
                "sessions, calls and actors back to the pre-churn baseline (NOT within {SETTLE_TIMEOUT:?})"
            ),
        },
    );
    line(
        errors == 0,
        format!("no error logged ({errors} ERROR lines)"),
    );
    for node in nodes {
        for e in node
            .logs
            .lock()
            .expect("log tally lock")
            .first_errors
            .iter()
            .take(3)
        {
            eprintln!("  {}: {e}", node.id);
        }
    }
    eprintln!("====================================================");

    let c = &churn.counters;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let rows: Vec<serde_json::Value> = readings
        .iter()
        .map(|r| {
            serde_json::json!({
                "t_s": r.at.as_secs(),
                "phase": r.phase,
                "rss_mib": r.nodes.iter().map(|x| mib(x.rss_bytes)).collect::<Vec<_>>(),
                "anon_mib": r.nodes.iter().map(|x| mib(x.anon_bytes)).collect::<Vec<_>>(),
                "open_files": r.nodes.iter().map(|x| x.open_files).collect::<Vec<_>>(),
                "actors": r.nodes.iter().map(|x| x.info.as_ref().map(|c| c.actors.len())).collect::<Vec<_>>(),
                "sessions": r.nodes.iter().map(|x| x.info.as_ref().map(|c| c.users_online)).collect::<Vec<_>>(),
                "calls": r.nodes.iter().map(|x| x.info.as_ref().map(|c| c.calls_active)).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "bench": "soak",
        "nodes": NODES,
        "minutes": options.minutes,
        "warmup_minutes": options.warmup_minutes,
        "users": options.users,
        "rooms": options.rooms,
        "media_share": options.media_share,
        "seed": options.seed,
        "grace_period_s": GRACE.as_secs(),
        "goals": {
            "rss_growth_after_warmup": verdict(rss_pass),
            "back_to_baseline": verdict(all_back),
            "no_error_logged": verdict(errors == 0),
        },
        "worst_rss_growth_pct": (worst_growth * 100.0).round() / 100.0,
        "worst_anon_growth_pct": (worst_anon_growth * 100.0).round() / 100.0,
        "back_to_baseline_after_s": returned_after.map(|t| (t.as_secs_f64() * 10.0).round() / 10.0),
        "per_node": per_node,
        "clients": {
            "logins": n(&c.logins),
            "logouts": n(&c.logouts),
            "sessions_dropped": n(&c.sessions_dropped),
            "hosts_went_live": n(&c.hosts_live),
            "calls_placed": n(&c.calls_placed),
            "calls_accepted": n(&c.calls_accepted),
            "calls_connected": n(&c.calls_connected),
            "calls_hung_up": n(&c.calls_hung_up),
            "calls_dropped": n(&c.calls_dropped),
            "calls_not_connected": n(&c.calls_not_connected),
            "not_connected_reasons": churn.not_connected.lock().expect("lock").clone(),
            "calls_with_media": n(&c.calls_with_media),
            "call_video_frames_received": n(&c.call_video_frames),
            "room_joins": n(&c.room_joins),
            "room_joins_with_probe": n(&c.room_joins_with_probe),
            "probe_packets_received": n(&c.probe_packets),
            "refusals": churn.refusals.lock().expect("lock").clone(),
            "client_errors": n(&c.client_errors),
            "first_client_errors": churn.first_client_errors.lock().expect("lock").clone(),
            "login_latency": percentiles(&churn.login_latency.lock().expect("lock")),
            "call_to_connected_latency": percentiles(&churn.connect_latency.lock().expect("lock")),
        },
        "logs": log_dir.display().to_string(),
        "samples": rows,
    })
}
