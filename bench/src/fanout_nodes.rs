//! `fanout --nodes N` (N ≥ 2): one live room across N nodes — the host's media on its origin, each
//! viewer's on the node its client connected to (the `client_node` edge rule), every edge fed by the
//! origin once over the node-to-node relay.
//!
//! - Each phase starts an etcd and the nodes as **child processes** (`showcall run`, one media worker
//!   each), so every node's CPU time (`/proc/<pid>/stat`) and its counters (`/metrics`: datagrams sent to
//!   viewers, relay packets sent to edges) are its own. The broadcaster and the audience (light
//!   `RtpProbe`s, as `fanout --receiver probe`) are in this process; viewer *i* connects to node
//!   *i* mod N, and the SDP answer's host candidate says which node's router carries its session.
//! - Two phases in one run: the same audience on **one node** (the baseline), then on **N nodes**.
//! - **Capacity, and how it is measured on a shared box.** On this machine every node and every client
//!   shares two cores, so the egress actually reached is the offered load (audience × the clip's packet
//!   rate), whatever the node count. What a node could carry with a core of its own is its egress
//!   packets per CPU second of its own process (`egress_per_cpu_s`: viewers' datagrams, plus the relay
//!   packets an origin sends to edges, over the node's whole CPU time in the window — signaling and
//!   timers included). The cluster's capacity is the sum of its nodes' (`capacity_packets_per_s`,
//!   each node on one core); `capacity_vs_one_node` divides it by the one-node phase's. The origin's
//!   relay sends and the edges' relay receives are in those CPU times, so what relaying costs is in
//!   the ratio.
//! - **The relay hop's latency**: frame latency (send instant at the broadcaster → whole frame at the
//!   probe, as `fanout`) of the viewers on the origin and of those on edges, in the same window;
//!   `relay_hop_added_ms` is the difference of their percentiles.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use showcall_node::config::NodeConfig;
use showcall_sdk::{ProbeOptions, RtpProbe, TrackKind};

use super::child_node::{ChildNode, ChildOptions, node_binary};
use super::cluster::start_etcd;
use super::fanout::{LATE, Window, loss, probe_keep, receive_probe, window_start};
use super::report::{histogram, load_average, percentiles, progress};
use super::sdk_user::{guarded, host_candidate_port, login, publish_joined};
use super::soak::samples::{admin, node_info};
use super::tokens::token_factory;
use super::{clip, cpu};

const ROOM: &str = "fanout_nodes_live";
const CLUSTER_SECRET: &str = "bench-fanout-secret-0123456789";
/// Series of a node's `/metrics` read around the window.
const EGRESS: &str = "showcall_media_packets_total{direction=\"out\"}";
const RELAY_SENT: &str = "showcall_media_node_relay_packets_total{direction=\"sent\"}";

/// One node of a phase, and where its router receives.
struct Node {
    process: ChildNode,
    media_port: u16,
}

/// A node's counters at one instant.
#[derive(Clone, Copy)]
struct Counters {
    cpu_s: f64,
    egress: u64,
    relay_sent: u64,
}

async fn counters(node: &Node) -> anyhow::Result<Counters> {
    Ok(Counters {
        cpu_s: cpu::pid_seconds(node.process.pid())?,
        egress: node.process.metric(EGRESS).await.unwrap_or(0),
        relay_sent: node.process.metric(RELAY_SENT).await.unwrap_or(0),
    })
}

/// Starts `count` nodes on a fresh etcd and waits until they form one cluster serving every partition.
async fn start_nodes(
    node_bin: &Path,
    etcd: &str,
    count: usize,
    phase: &str,
) -> anyhow::Result<Vec<Node>> {
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let mut nodes = Vec::with_capacity(count);
    for i in 0..count {
        let options = ChildOptions {
            args: vec![
                "--node-id".into(),
                format!("{phase}-n{i}"),
                "--etcd".into(),
                etcd.into(),
                "--media-workers".into(),
                "1".into(),
            ],
            env: vec![
                env("SHOWCALL_CLUSTER_SECRET", CLUSTER_SECRET),
                env("SHOWCALL_MEDIA__EDGE", "client_node"),
                env("SHOWCALL_RATE_LIMIT__PER_SECOND", "10000"),
                env("SHOWCALL_RATE_LIMIT__BURST", "10000"),
                env("RUST_LOG", "warn"),
                env("NO_COLOR", "1"),
            ],
            capture_logs: false,
            wrapper: Vec::new(),
        };
        let process = ChildNode::start_with(node_bin, options)
            .await
            .with_context(|| format!("starting node {i} of {phase}"))?;
        let media_port = process
            .media_addr
            .context("the node printed no media address")?
            .port();
        nodes.push(Node {
            process,
            media_port,
        });
    }
    formed(&nodes).await?;
    Ok(nodes)
}

/// Waits until every node sees all of them and together they serve every partition.
async fn formed(nodes: &[Node]) -> anyhow::Result<()> {
    let mut admins = Vec::new();
    for node in nodes {
        admins.push(admin(&node.process.grpc_url).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut served = std::collections::BTreeSet::new();
        let (mut all_see_all, mut partitions) = (true, 0);
        for a in &mut admins {
            match node_info(a).await {
                Some(info) => {
                    all_see_all &= info.live_nodes.len() == nodes.len();
                    partitions = info.partition_count;
                    served.extend(info.partitions);
                }
                None => all_see_all = false,
            }
        }
        if all_see_all && partitions > 0 && served.len() == partitions as usize {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the nodes did not form a cluster in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One phase: `count` nodes, the broadcaster, `audience` probes spread over the nodes, a window.
async fn phase(
    node_bin: &Path,
    count: usize,
    audience: usize,
    seconds: u64,
    video_scale: usize,
) -> anyhow::Result<serde_json::Value> {
    let etcd = start_etcd().await?;
    let name = format!("fanout{count}");
    let nodes = start_nodes(node_bin, &etcd.url, count, &name).await?;
    let node_of_port = |port: Option<u16>| nodes.iter().position(|n| Some(n.media_port) == port);
    let token = token_factory(&NodeConfig::default());
    let source = clip::scaled(video_scale)?;

    let host = login(&nodes[0].process.url, &token("fanout-host")?).await?;
    let (broadcaster, joined) = publish_joined(&host, ROOM, source.clone()).await?;
    let origin = node_of_port(host_candidate_port(&joined.sdp_answer))
        .context("the broadcaster's answer names none of the nodes")?;
    let epoch = guarded("broadcaster connects", broadcaster.wait_connected())
        .await??
        .connected_at
        .unwrap_or_else(Instant::now);

    let bar = progress(audience as u64, "audience");
    let keep = probe_keep(&source, seconds);
    let mut members = Vec::with_capacity(audience);
    for i in 0..audience {
        let url = &nodes[i % count].process.url;
        let signal = login(url, &token(&format!("fan-{i}"))?).await?;
        let opts = ProbeOptions {
            keep_packets: keep,
            // Forwarding alone: no bandwidth adaptation (see the module docs).
            transport_cc: false,
            ..ProbeOptions::default()
        };
        let (probe, joined) = RtpProbe::join(&signal, ROOM, opts).await?;
        let on = node_of_port(host_candidate_port(&joined.sdp_answer))
            .context("a viewer's answer names none of the nodes")?;
        members.push((signal, probe, on));
        bar.inc(1);
    }
    for (_, probe, _) in &members {
        guarded("first video", probe.wait_packets(TrackKind::Video, 1)).await??;
    }
    bar.finish();

    let from = window_start(epoch);
    let to = from + Duration::from_secs(seconds);
    let window = Window { epoch, from, to };
    tokio::time::sleep_until(from.into()).await;
    let (sent_before, mut before) = (broadcaster.stats(), Vec::new());
    for node in &nodes {
        before.push(counters(node).await?);
    }
    tokio::time::sleep_until(to.into()).await;
    let sent_after = broadcaster.stats();
    let mut after = Vec::new();
    for node in &nodes {
        after.push(counters(node).await?);
    }
    let span = seconds as f64;
    tokio::time::sleep_until((to + LATE).into()).await;

    let (mut origin_latency, mut edge_latency) = (histogram(), histogram());
    let mut video_frames = Vec::new();
    let mut viewers = vec![0usize; count];
    for (_, probe, on) in &members {
        let r = receive_probe(probe, &window)?;
        viewers[*on] += 1;
        video_frames.push(r.video_frames);
        let into: &mut Histogram<u64> = if *on == origin {
            &mut origin_latency
        } else {
            &mut edge_latency
        };
        into.add(&r.video_latency)?;
    }
    drop(members);
    drop(broadcaster);

    let mut per_node = Vec::new();
    let mut capacity = 0.0;
    let mut total_egress = 0.0;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let cpu_s = a.cpu_s - b.cpu_s;
        let egress = (a.egress - b.egress) as f64;
        let relay = (a.relay_sent - b.relay_sent) as f64;
        let per_cpu = (egress + relay) / cpu_s.max(1e-9);
        capacity += per_cpu;
        total_egress += egress + relay;
        per_node.push(serde_json::json!({
            "node": i,
            "origin": i == origin,
            "viewers": viewers[i],
            "egress_packets_per_s": egress / span,
            "relay_packets_sent_per_s": relay / span,
            "cpu_utilization": cpu_s / span,
            "egress_per_cpu_s": per_cpu,
        }));
    }
    for node in nodes {
        node.process.stop().await?;
    }
    drop(etcd);
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let hop =
        |q: f64| (!edge_latency.is_empty()).then(|| ms(&edge_latency, q) - ms(&origin_latency, q));
    Ok(serde_json::json!({
        "nodes": count,
        "audience": audience,
        "origin": origin,
        "per_node": per_node,
        "egress_packets_per_s": total_egress / span,
        "capacity_packets_per_s": capacity,
        "video_loss": loss(sent_after.video_frames_out - sent_before.video_frames_out, &video_frames),
        "video_latency_on_origin": percentiles(&origin_latency),
        "video_latency_on_edges": percentiles(&edge_latency),
        "relay_hop_added_ms": { "p50": hop(0.5), "p99": hop(0.99) },
    }))
}

pub(super) async fn run(
    nodes: usize,
    audience: usize,
    seconds: u64,
    video_scale: usize,
    node_bin: Option<&Path>,
) -> anyhow::Result<()> {
    let node_bin = node_binary(node_bin)?;
    let load_before = load_average();
    let one = phase(&node_bin, 1, audience, seconds, video_scale).await?;
    let many = phase(&node_bin, nodes, audience, seconds, video_scale).await?;
    let ratio = many["capacity_packets_per_s"].as_f64().unwrap_or(0.0)
        / one["capacity_packets_per_s"].as_f64().unwrap_or(f64::NAN);
    let result = serde_json::json!({
        "bench": "fanout",
        "mode": "nodes",
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "one_node": one,
        "nodes": many,
        "capacity_vs_one_node": ratio,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
