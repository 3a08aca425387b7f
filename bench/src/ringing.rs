//! `ringing`: N caller/callee pairs over WebSocket (binary frames, like the Rust SDK). Each round every
//! caller calls its callee at once; the latency is `Call` sent → callee receives `calling`. In the same
//! run, a bare WebSocket relay ([`relay_floor`](super::relay_floor)) moving a frame of the same size
//! gives the floor; the ratio says what the call engine adds on top of moving one frame.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prost::Message as _;
use showcall_node::config::NodeConfig;
use showcall_proto::signal::{self as pb, client_frame::Command};

use super::relay_floor::relay_floor;
use super::report::{histogram, percentiles, progress};
use super::signal_client::Client;
use super::tokens::token_factory;

pub(super) async fn run(pairs: usize, rounds: usize, url: Option<String>) -> anyhow::Result<()> {
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
            // Every client connects from 127.0.0.1: the per-address cap (100) would refuse most.
            config.max_connections_per_ip = 0;
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
pub(super) async fn ring_rounds(
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
