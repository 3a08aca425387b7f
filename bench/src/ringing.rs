//! `ringing`: N caller/callee pairs over WebSocket (binary frames, like the Rust SDK); the latency is
//! `Call` sent → callee receives `calling` (`ring_latency`), and beside it `Call` sent → the caller has
//! its answer (`caller_answer`: the node writes the callee's frames first, BENCHMARKS `ringing`). Two
//! modes:
//! - bursts (the default): each round every caller calls its callee at once;
//! - a fixed rate (`--rate N --seconds S`, open loop, [`open_loop`]): N call setups a
//!   second, each on the first free pair, the latency counted from the setup's scheduled time.
//!
//! In the same run, a bare WebSocket relay ([`relay_floor`](super::relay_floor)) moving a frame of the
//! same size the same way (bursts, or the same rate) gives the floor; the ratio says what the call
//! engine adds on top of moving one frame. At a fixed rate the two take turns, [`SLICE`] at a time, until
//! each has run its `S` seconds: the box's load drifts over a run (another build starting, a
//! neighbour's burst), and taking turns shares the drift between the figure and its floor instead of
//! putting it all on one side.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use prost::Message as _;
use showcall_node::config::NodeConfig;
use showcall_proto::signal::{self as pb, client_frame::Command};

use super::open_loop::{self, OpenLoop, Schedule, Timing};
use super::relay_floor::Relay;
use super::report::{histogram, percentiles, progress};
use super::signal_client::Client;
use super::tokens::token_factory;

/// How long each side runs at a time in the fixed-rate mode before the other takes its turn.
pub(super) const SLICE: Duration = Duration::from_secs(2);

/// The pairs: `(i, bench-caller-i, bench-callee-i)`, both logged in and prepared.
pub(super) type Pairs = Vec<(usize, Client, Client)>;

/// How the pairs ring.
#[derive(Debug, Clone, Copy)]
pub(super) enum Load {
    /// Every pair at once, `rounds` times.
    Burst { rounds: usize },
    /// A fixed rate, open loop.
    Rate(Schedule),
}

impl Load {
    /// `Rate` when a rate is given, else `Burst`.
    pub(super) fn new(rounds: usize, rate: Option<u32>, seconds: u64) -> Self {
        match rate {
            Some(rate) => Load::Rate(Schedule { rate, seconds }),
            None => Load::Burst { rounds },
        }
    }
}

pub(super) async fn run(pairs: usize, load: Load, url: Option<String>) -> anyhow::Result<()> {
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
    let mut clients: Pairs = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let caller = Client::login_prepared(&url, token(&format!("bench-caller-{i}"))?).await?;
        let callee = Client::login_prepared(&url, token(&format!("bench-callee-{i}"))?).await?;
        clients.push((i, caller, callee));
        bar.inc(2);
    }
    bar.finish();

    let frame_size = call_frame_bytes(pairs);
    let result = match load {
        Load::Burst { rounds } => {
            let Rounds {
                calling: ring,
                caller_answer,
                setups_per_sec,
            } = ring_rounds(&mut clients, rounds).await?;
            // The floor: the same number of pairs moving one frame of the same size through a bare
            // relay.
            let relay = Relay::start(pairs).await?.burst(rounds, frame_size).await?;
            let showcall = percentiles(&ring);
            let floor = percentiles(&relay);
            serde_json::json!({
                "bench": "ringing",
                "mode": "burst",
                "pairs": pairs,
                "rounds": rounds,
                "ring_latency": showcall,
                "caller_answer": percentiles(&caller_answer),
                "setups_per_sec_mean": setups_per_sec.iter().sum::<f64>() / setups_per_sec.len().max(1) as f64,
                "relay_floor": floor,
                "frame_bytes": frame_size,
                "ratio_p50": ratio(&showcall, &floor, "p50_ms"),
                "ratio_p99": ratio(&showcall, &floor, "p99_ms"),
            })
        }
        Load::Rate(schedule) => {
            let (ring, relay) = take_turns(clients, pairs, schedule, frame_size).await?;
            let (showcall, floor) = (ring.json(), relay.json());
            let caller_answer = percentiles(&ring.also_latency);
            serde_json::json!({
                "bench": "ringing",
                "mode": "rate",
                "pairs": pairs,
                "rate_per_sec": schedule.rate,
                "seconds": schedule.seconds,
                "ring_latency": showcall,
                "caller_answer": caller_answer,
                "relay_floor": floor,
                "frame_bytes": frame_size,
                "ratio_p50": ratio(&showcall, &floor, "p50_ms"),
                "ratio_p90": ratio(&showcall, &floor, "p90_ms"),
                "ratio_p99": ratio(&showcall, &floor, "p99_ms"),
            })
        }
    };
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(node) = own_node {
        node.shutdown().await;
    }
    Ok(())
}

/// What rounds of ringing measured.
pub(super) struct Rounds {
    /// `Call` sent → the callee sees `calling`, in microseconds.
    pub(super) calling: Histogram<u64>,
    /// `Call` sent → the caller has its answer, in microseconds.
    pub(super) caller_answer: Histogram<u64>,
    /// Per round, the pairs rung per second (over the round's slowest ring).
    pub(super) setups_per_sec: Vec<f64>,
}

/// Rounds of ringing: every caller `bench-caller-i` calls its callee `bench-callee-i` at once; latency is
/// `Call` sent → callee sees `calling` (and, beside it, → the caller's answer); the callee rejects.
pub(super) async fn ring_rounds(clients: &mut Pairs, rounds: usize) -> anyhow::Result<Rounds> {
    let pairs = clients.len();
    let mut ring = histogram();
    let mut answers = histogram();
    let mut setups_per_sec = Vec::new();
    let bar = progress((pairs * rounds) as u64, "ringing");
    for _ in 0..rounds {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, mut caller, mut callee) in clients.drain(..) {
            tasks.spawn(async move {
                let t0 = Instant::now();
                let rung = ring_once(&mut caller, &mut callee, i).await?;
                let latency = rung.calling.saturating_duration_since(t0);
                let answer = rung.caller_answered.saturating_duration_since(t0);
                reject_and_settle(&mut caller, &mut callee, rung.call_id).await?;
                anyhow::Ok((i, caller, callee, latency, answer))
            });
        }
        let mut last_ring = Duration::ZERO;
        while let Some(done) = tasks.join_next().await {
            let (i, caller, callee, latency, answer) = done??;
            ring.record(latency.as_micros().max(1) as u64)?;
            answers.record(answer.as_micros().max(1) as u64)?;
            last_ring = last_ring.max(latency);
            clients.push((i, caller, callee));
            bar.inc(1);
        }
        let _ = started;
        setups_per_sec.push(pairs as f64 / last_ring.as_secs_f64());
    }
    bar.finish();
    Ok(Rounds {
        calling: ring,
        caller_answer: answers,
        setups_per_sec,
    })
}

/// `a[key] / b[key]` of two percentile objects (NaN when `b` has none).
pub(super) fn ratio(a: &serde_json::Value, b: &serde_json::Value, key: &str) -> f64 {
    a[key].as_f64().unwrap_or(0.0) / b[key].as_f64().unwrap_or(f64::NAN)
}

/// The size of a `Call` frame (the relay floor moves frames of this size).
pub(super) fn call_frame_bytes(pairs: usize) -> usize {
    pb::ClientFrame {
        request_id: 1,
        command: Some(Command::Call(pb::Call {
            remote_user_id: format!("bench-callee-{}", pairs.saturating_sub(1)),
            ..Default::default()
        })),
    }
    .encoded_len()
}

/// The fixed-rate mode: ringing and the relay floor take turns ([`SLICE`] each) until each has run
/// `schedule.seconds`; each side's slices are measured together.
async fn take_turns(
    mut clients: Pairs,
    pairs: usize,
    schedule: Schedule,
    frame_size: usize,
) -> anyhow::Result<(OpenLoop, OpenLoop)> {
    let mut relay = Relay::start(pairs).await?;
    let slices = (schedule.seconds / SLICE.as_secs()).max(1);
    let slice = Schedule {
        seconds: schedule.seconds / slices,
        ..schedule
    };
    let mut measured: Option<(OpenLoop, OpenLoop)> = None;
    for done in 0..slices {
        let (ring, back) = ring_at_rate(clients, slice).await?;
        clients = back;
        let floor = relay.at_rate(slice, frame_size).await?;
        measured = Some(match measured {
            None => (ring, floor),
            Some((mut r, mut f)) => {
                let before = u32::try_from(done)?;
                r.absorb(ring, before)?;
                f.absorb(floor, before)?;
                (r, f)
            }
        });
    }
    measured.context("at least one slice")
}

/// Ringing at a fixed rate (open loop): each scheduled setup takes the first free pair, whose caller
/// calls its callee; latency is the setup's scheduled time → the callee sees `calling`; the callee
/// rejects and the pair is free again once the caller is back to `prepared`.
pub(super) async fn ring_at_rate(
    clients: Pairs,
    schedule: Schedule,
) -> anyhow::Result<(OpenLoop, Pairs)> {
    open_loop::run(
        clients,
        schedule,
        "ringing",
        |(i, mut caller, mut callee)| async move {
            let sent = Instant::now();
            let rung = ring_once(&mut caller, &mut callee, i).await?;
            reject_and_settle(&mut caller, &mut callee, rung.call_id)
                .await
                .context("rejecting")?;
            let timing = Timing {
                sent,
                answered: rung.calling,
                also_answered: Some(rung.caller_answered),
            };
            Ok(((i, caller, callee), timing))
        },
    )
    .await
}

/// A ring as its two clients saw it.
struct Rung {
    call_id: String,
    /// When the callee saw `calling`.
    calling: Instant,
    /// When the caller had its answer (the call's id).
    caller_answered: Instant,
}

/// `bench-caller-i` calls `bench-callee-i`; returns once the callee saw `calling` and the caller has
/// its answer (in either order). A call the node refuses (the caller's answer is an error) fails here
/// rather than leave the callee waiting.
async fn ring_once(caller: &mut Client, callee: &mut Client, i: usize) -> anyhow::Result<Rung> {
    let id = caller
        .send(Command::Call(pb::Call {
            remote_user_id: format!("bench-callee-{i}"),
            ..Default::default()
        }))
        .await?;
    let calling = async {
        let call_id = callee.wait_state(pb::CallState::Calling).await;
        let call_id = call_id.context("waiting for the callee's `calling`")?;
        anyhow::Ok((call_id, Instant::now()))
    };
    // The caller's events up to its answer are not needed.
    let answered = async {
        caller.response(id).await.context("placing the call")?;
        anyhow::Ok(Instant::now())
    };
    let ((call_id, calling), caller_answered) = tokio::try_join!(calling, answered)?;
    Ok(Rung {
        call_id,
        calling,
        caller_answered,
    })
}

/// The callee rejects the call; returns once both sides are back to `prepared`. Both, not only the
/// caller: over a cluster the caller can hear the end before the callee's session has handled it, and
/// the pair's next call would then find the callee busy.
async fn reject_and_settle(
    caller: &mut Client,
    callee: &mut Client,
    call_id: String,
) -> anyhow::Result<()> {
    let reject = Command::Reject(pb::Reject {
        call_id,
        reason: String::new(),
    });
    callee
        .request_until_state(reject, pb::CallState::Prepared)
        .await?;
    caller.wait_state(pb::CallState::Prepared).await?;
    Ok(())
}
