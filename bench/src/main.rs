//! `showcall-bench`: load benchmarks of a showcall node, a binary of their own so that the node's
//! binary carries none of their code or dependencies (the SDK, histograms, progress bars). They print a
//! progress bar while running and one JSON object with the results on stdout; BENCHMARKS.md records
//! them. Numbers, never assertions. `showcall-bench --help` lists them and their flags ([`cli`]).
//!
//! - `ringing` (`ringing`): N caller/callee pairs over WebSocket; `Call` sent → callee receives
//!   `calling`, beside a bare WebSocket relay moving a frame of the same size (`relay_floor`); in
//!   bursts, or at a fixed rate (`open_loop`: open loop, latency from the scheduled send time).
//! - `idle` (`idle`): a node in a child process; its resident memory per idle logged-in user.
//! - `fanout` (`fanout`): one broadcaster, N audience members; router egress packets per CPU second,
//!   audience loss and latency, against an SRTP-only floor (`srtp_floor`) and the hardware floor
//!   (`hardware_floor`: AES-GCM sealing and the router's batched egress on one core); its audience is
//!   SDK sessions or light RTP probes (`probe_frames` turns a probe's packets into frames).
//!   `--nodes N` (`fanout_nodes`): the room over N nodes in child processes (origin and edges), its
//!   capacity beside the same audience on one node, and the relay hop's latency.
//! - `floor` (`hardware_floor`): the hardware floor alone.
//! - `call-connect` (`call_connect`): `call()` → both sides connected with media.
//! - `switch` (`switch`): a viewer's hangup → the live room's audience sees the host again.
//! - `ice-restart` (`ice_restart`): a viewer's network change (new socket, ICE restart over signaling)
//!   → its video again, beside a fresh join's first frame (the floor) in the same run.
//! - `bandwidth` (`bandwidth`): a viewer's link narrows then widens (a user-space shaped link); → its
//!   router moves it to a lower simulcast layer and back, and the loss meanwhile, beside the same switches
//!   asked for (`SetVideoLayer`, the floor) in the same run.
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
//! Shared by the benchmarks: `cli` (the command line), `report` (progress bars, latency histograms,
//! percentiles), `open_loop` (operations on a fixed schedule, measured from it), `tokens` (the users' tokens), `signal_client` (a bare signaling client), `child_node`
//! (the `showcall` binary as a child process, for memory and the soak); by the media benchmarks:
//! `media_node` (a node whose router runs on its own thread), `sdk_user` (Rust SDK users, an
//! auto-answering host), `clip` (the broadcaster's clip at a live room's bitrate), `cpu` (CPU time from
//! `/proc`), `udp_drops` (receive-buffer drops per socket).

use crate::cli::{Benchmark, Cli, FanoutReceiver};
use crate::ringing::Load;

mod bandwidth;
mod call_connect;
mod child_node;
mod cli;
mod clip;
mod cluster;
mod cpu;
mod fanout;
mod fanout_nodes;
mod hardware_floor;
mod ice_restart;
mod idle;
mod join;
mod lifecycle;
mod media_node;
mod open_loop;
mod probe_frames;
mod relay_floor;
mod report;
mod ringing;
mod sdk_user;
mod signal_client;
mod soak;
mod srtp_floor;
mod switch;
mod tokens;
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
        Benchmark::Ringing {
            pairs,
            rounds,
            rate,
            seconds,
            url,
        } => ringing::run(pairs, Load::new(rounds, rate, seconds), url).await,
        Benchmark::Idle {
            users,
            connect_only,
        } => {
            let node_bin = child_node::node_binary(cli.node_bin.as_deref())?;
            idle::run(users, connect_only, &node_bin).await
        }
        Benchmark::Fanout {
            audience,
            seconds,
            video_scale,
            receiver,
            workers: _,
            nodes,
        } if nodes > 1 => {
            anyhow::ensure!(
                receiver == FanoutReceiver::Probe,
                "fanout --nodes runs its audience as probes: add --receiver probe"
            );
            let node_bin = cli.node_bin.as_deref();
            fanout_nodes::run(usize::from(nodes), audience, seconds, video_scale, node_bin).await
        }
        Benchmark::Fanout {
            audience,
            seconds,
            video_scale,
            receiver,
            workers,
            nodes: _,
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
            compare_tcp,
        } => join::run(viewers, video_scale, seed, compare_tcp).await,
        Benchmark::ViewerMemory {
            viewers,
            seconds,
            video_scale,
        } => {
            let node_bin = child_node::node_binary(cli.node_bin.as_deref())?;
            viewer_memory::run(viewers, seconds, video_scale, &node_bin).await
        }
        Benchmark::CallConnect { calls, concurrent } => call_connect::run(calls, concurrent).await,
        Benchmark::Switch {
            rounds,
            audience,
            nodes,
        } => switch::run(rounds, audience, usize::from(nodes)).await,
        Benchmark::IceRestart {
            rounds,
            video_scale,
            seed,
        } => ice_restart::run(rounds, video_scale, seed).await,
        Benchmark::Bandwidth {
            rounds,
            narrow_kbps,
            frames_before_narrowing,
        } => bandwidth::run(rounds, narrow_kbps, frames_before_narrowing).await,
        Benchmark::Cluster {
            pairs,
            rounds,
            rate,
            seconds,
            envelopes,
            clients_stay,
        } => {
            let load = Load::new(rounds, rate, seconds);
            cluster::run(pairs, load, envelopes, clients_stay).await
        }
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
