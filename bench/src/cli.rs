//! The `showcall-bench` command line: one subcommand per benchmark, and where the node binary is for
//! the benchmarks that run nodes as child processes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// showcall-bench: load benchmarks of a showcall node. Each prints a progress bar and one JSON object
/// with its results on stdout; BENCHMARKS.md records them.
#[derive(Debug, Clone, Parser)]
#[command(name = "showcall-bench", version)]
pub struct Cli {
    /// The `showcall` node binary, for the benchmarks that run nodes as child processes (`idle`,
    /// `viewer-memory`, `soak`, `fanout --nodes`) [default: `showcall` next to this executable].
    // Not `SHOWCALL_*`: the nodes inherit this environment and refuse settings they do not know.
    #[arg(long, global = true, value_name = "PATH", env = "BENCH_NODE_BIN")]
    pub node_bin: Option<PathBuf>,
    /// Which load to run.
    #[command(subcommand)]
    pub benchmark: Benchmark,
}

/// The audience members of `fanout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FanoutReceiver {
    /// The SDK's `MediaSession`: depacketizes every frame, as an app's receiver does.
    Session,
    /// The SDK's `RtpProbe`: counts packets and assembles frames from their records afterwards.
    Probe,
    /// The SDK's `MediaSession` over ICE-TCP only (`MediaOptions { udp: false }`): what a viewer whose
    /// UDP is blocked costs the router.
    SessionTcp,
}

/// The benchmarks.
#[derive(Debug, Clone, Subcommand)]
pub enum Benchmark {
    /// Pairs of users call each other; measures ring and answer latency.
    Ringing {
        /// How many caller/callee pairs call at the same time.
        #[arg(long, value_name = "N", default_value_t = 200)]
        pairs: usize,
        /// How many calls each pair places, one after another (burst mode: every pair at once per round).
        #[arg(long, value_name = "N", default_value_t = 5)]
        rounds: usize,
        /// Fixed-rate mode instead of bursts: N call setups per second (open loop, each on the first
        /// free pair, latency from its scheduled time), the relay floor at the same rate.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        rate: Option<u32>,
        /// How long the fixed-rate mode lasts.
        #[arg(long, value_name = "S", default_value_t = 20, requires = "rate")]
        seconds: u64,
        /// Signaling URL of a running node (e.g. `ws://127.0.0.1:7800`); without it, the bench starts a
        /// node of its own.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Many users stay logged in doing nothing; measures the memory and CPU an idle session costs.
    Idle {
        /// How many idle users to log in.
        #[arg(long, value_name = "N", default_value_t = 10_000)]
        users: usize,
        /// Open the WebSocket connections but do not log in: isolates the cost of a bare connection
        /// from that of a session (user actor).
        #[arg(long)]
        connect_only: bool,
    },
    /// One broadcaster, N audience members: router egress packets per CPU second, audience loss and
    /// latency, against an SRTP-only floor.
    Fanout {
        /// How many receive-only audience members watch the broadcaster.
        #[arg(long, value_name = "N", default_value_t = 50)]
        audience: usize,
        /// Length of the measured window, in seconds (after a one-second warm-up).
        #[arg(long, value_name = "S", default_value_t = 10)]
        seconds: u64,
        /// Each video frame of the sample is sent this many times its size (its bytes repeated): 7 makes
        /// the ≈ 210 kbit/s sample ≈ 1.5 Mbit/s, a live room's bitrate.
        #[arg(long, value_name = "K", default_value_t = 7)]
        video_scale: usize,
        /// What each audience member is: `session`, the SDK's decoding `MediaSession`; or `probe`, a
        /// light `RtpProbe` (ICE, DTLS, SRTP decryption, packet records) that lets 300 to 1,000
        /// members fit on the machine beside the node.
        #[arg(long, value_enum, default_value_t = FanoutReceiver::Session)]
        receiver: FanoutReceiver,
        /// Media router workers; with more than one, the room spreads evenly over them (each takes
        /// its share of the audience, the broadcaster's packets handed between them).
        #[arg(long, value_name = "N", default_value_t = 1)]
        workers: usize,
        /// Nodes the room spreads over (one live room across nodes: the host on its origin, each
        /// viewer's session on the node its client connected to, fed by the origin's relay). Above 1,
        /// the nodes run as child processes on one etcd, the audience is probes, and one node with
        /// its share of the audience (audience / N) is measured first in the same run.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        nodes: u16,
    },
    /// The hardware floor: one core seals (AES-128-GCM) the fan-out broadcaster's packets for N
    /// receivers and sends them with the router's batched egress (sendmmsg + GSO) to N loopback sockets.
    Floor {
        /// How many receivers (loopback sockets).
        #[arg(long, value_name = "N", default_value_t = 100)]
        receivers: usize,
        /// How long to send, in seconds.
        #[arg(long, value_name = "S", default_value_t = 10)]
        seconds: u64,
        /// Video frames this many times the sample's size, as for `fanout`.
        #[arg(long, value_name = "K", default_value_t = 7)]
        video_scale: usize,
        /// Send with `sendmmsg` alone (no UDP GSO), to see what GSO adds.
        #[arg(long)]
        no_gso: bool,
    },
    /// Viewers join a live room one by one at random points of the broadcaster's GOP; measures join →
    /// first video frame and ICE/DTLS connect → first video frame, beside one signaling round trip.
    Join {
        /// How many viewers join (one after another; each stays).
        #[arg(long, value_name = "N", default_value_t = 50)]
        viewers: usize,
        /// Each video frame of the sample is sent this many times its size (as in `fanout`).
        #[arg(long, value_name = "K", default_value_t = 7)]
        video_scale: usize,
        /// Seed of the random pauses between joins (0–1 s each), so a run can be repeated.
        #[arg(long, value_name = "N", default_value_t = 12)]
        seed: u64,
        /// Every other viewer joins over ICE-TCP only (`MediaOptions { udp: false }`), and the figures are
        /// reported per transport: first frames over TCP against UDP in the same run.
        #[arg(long)]
        compare_tcp: bool,
    },
    /// A node in a child process; N users log in, then join a live room as receive-only viewers;
    /// measures the node's memory per viewer session beside that of an idle logged-in user.
    ViewerMemory {
        /// How many viewers.
        #[arg(long, value_name = "N", default_value_t = 100)]
        viewers: usize,
        /// How long everyone receives while the node's memory is read each second.
        #[arg(long, value_name = "S", default_value_t = 15)]
        seconds: u64,
        /// Each video frame of the sample is sent this many times its size (as in `fanout`).
        #[arg(long, value_name = "K", default_value_t = 7)]
        video_scale: usize,
    },
    /// Viewer calls host with media; measures call() → both sides connected (first frame both ways).
    CallConnect {
        /// How many calls to place in all.
        #[arg(long, value_name = "N", default_value_t = 20)]
        calls: usize,
        /// How many viewer/host pairs call at the same time (each places its share in a row).
        #[arg(long, value_name = "N", default_value_t = 1)]
        concurrent: usize,
    },
    /// A live room with an audience; a viewer calls the host, connects, hangs up; measures hangup → each
    /// audience member receives the host's video again.
    Switch {
        /// How many call-and-hangup rounds.
        #[arg(long, value_name = "N", default_value_t = 10)]
        rounds: usize,
        /// How many audience members watch the live room.
        #[arg(long, value_name = "N", default_value_t = 3)]
        audience: usize,
        /// Nodes the live room spreads over (origin and edges, one etcd); the audience is spread over
        /// them.
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        nodes: u16,
    },
    /// A viewer changes its network (a new UDP socket) and restarts ICE over signaling, round after
    /// round; measures the change → its video again, beside a fresh join's first frame in the same run.
    IceRestart {
        /// How many network changes.
        #[arg(long, value_name = "N", default_value_t = 50)]
        rounds: usize,
        /// Each video frame of the sample is sent this many times its size (as in `fanout`).
        #[arg(long, value_name = "K", default_value_t = 7)]
        video_scale: usize,
        /// Seed of the random pauses between changes (0–1 s each), so a run can be repeated.
        #[arg(long, value_name = "N", default_value_t = 12)]
        seed: u64,
    },
    /// A viewer's link narrows (a user-space shaped link), then widens, round after round; measures the
    /// time until the router moves it to a lower simulcast layer and back to the top, and the loss
    /// meanwhile, beside the same switches asked for with SetVideoLayer (the floor) in the same run.
    Bandwidth {
        /// How many narrow-then-widen rounds (each takes about 10 s).
        #[arg(long, value_name = "N", default_value_t = 3)]
        rounds: usize,
        /// The narrowed link's rate in kbit/s (UDP payload).
        #[arg(long, value_name = "KBPS", default_value_t = 200)]
        narrow_kbps: u64,
        /// Video frames the shaped viewer receives after its latest keyframe before the link narrows.
        /// 0: as soon as the floor's switch up ends, while that switch's top-layer keyframe (larger
        /// than the narrowed link's queue) still crosses the link: the worst moment. 15: half a second
        /// into a GOP, as a link that narrows at any moment mostly does.
        #[arg(long, value_name = "N", default_value_t = 0)]
        frames_before_narrowing: u32,
    },
    /// A cluster on this machine (etcd from PATH + in-process nodes): ringing across 3 nodes vs 1 node,
    /// cross-node envelope throughput, time for a joining node to take its share, time from a node's
    /// crash (lease no longer renewed) to all its partitions re-owned.
    Cluster {
        /// How many caller/callee pairs ring at the same time.
        #[arg(long, value_name = "N", default_value_t = 100)]
        pairs: usize,
        /// How many calls each pair places, one after another (burst mode: every pair at once per round).
        #[arg(long, value_name = "N", default_value_t = 5)]
        rounds: usize,
        /// Fixed-rate mode instead of bursts: N call setups per second over one node and over three
        /// (open loop, each on the first free pair, latency from its scheduled time), and a bare relay
        /// at the same rate as the floor.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        rate: Option<u32>,
        /// How long each fixed-rate phase lasts.
        #[arg(long, value_name = "S", default_value_t = 20, requires = "rate")]
        seconds: u64,
        /// How many envelopes the throughput measurement sends from one node to another.
        #[arg(long, value_name = "N", default_value_t = 50_000)]
        envelopes: usize,
        /// Clients stay on the node they connected to (the nodes announce no `signal_public_url`):
        /// a session on another node is served through the node link. Without it, each client logs in
        /// at the node serving its session, as the SDK does when the nodes announce their URLs.
        #[arg(long)]
        clients_stay: bool,
    },
    /// Operating a cluster (etcd from PATH + in-process nodes): a graceful leave and a join under load
    /// (time until the partitions are served again, sessions handed over), and a rolling restart of 3
    /// nodes (resume latency of the stopped nodes' clients, calls lost, total time), each beside its floor.
    Lifecycle {
        /// Users logged in during the leave and the join (both ends of each socket are in this process).
        #[arg(long, value_name = "N", default_value_t = 4_000)]
        users: usize,
        /// Users logged in during the rolling restart.
        #[arg(long, value_name = "N", default_value_t = 1_000)]
        restart_users: usize,
        /// Connected calls during the rolling restart (between those users).
        #[arg(long, value_name = "N", default_value_t = 100)]
        calls: usize,
    },
    /// A soak: etcd and three nodes (child processes) under a long churn of users — logins and logouts
    /// on random nodes, calls placed, accepted, hung up and dropped, live rooms joined and left, media
    /// in a share of them; each node's memory, open files, actors and sessions over time, their return
    /// to the baseline once the churn stops, and the errors the nodes logged. Prints PASS/FAIL per goal.
    Soak {
        /// How long the churn lasts, in minutes.
        #[arg(long, value_name = "MIN", default_value_t = 30)]
        minutes: u64,
        /// The first minutes of churn are warm-up: memory growth is counted from their end.
        #[arg(long, value_name = "MIN", default_value_t = 5)]
        warmup_minutes: u64,
        /// Users in all (each room's host among them). The default keeps the clients and three nodes
        /// within two cores: about half are online at a time.
        #[arg(long, value_name = "N", default_value_t = 300)]
        users: usize,
        /// Live rooms, each with its own host (who also takes the calls: with fewer hosts most calls
        /// find them busy).
        #[arg(long, value_name = "N", default_value_t = 30)]
        rooms: usize,
        /// Share of calls, and of rooms, with real media (SDK media sessions in calls, RTP probes in
        /// rooms; capped at a few at a time).
        #[arg(long, value_name = "SHARE", default_value_t = 0.1)]
        media_share: f64,
        /// Seed of every user's choices, so a run can be repeated.
        #[arg(long, value_name = "N", default_value_t = 7)]
        seed: u64,
        /// Seconds between readings of the nodes [default: 30, or 10 for runs of 5 minutes or less].
        #[arg(long, value_name = "S")]
        sample_seconds: Option<u64>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn parse(args: &[&str]) -> Benchmark {
        Cli::try_parse_from(args).unwrap().benchmark
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_documents_every_flag() {
        fn check(cmd: &clap::Command, path: &str) {
            let path = format!("{path} {}", cmd.get_name());
            assert!(cmd.get_about().is_some(), "{path} has no about");
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} --{id} has no help");
            }
            for sub in cmd.get_subcommands() {
                check(sub, &path);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        check(&cmd, "");
    }

    #[test]
    fn node_bin_is_accepted_before_and_after_the_benchmark() {
        for args in [
            &["showcall-bench", "--node-bin", "/x/showcall", "idle"][..],
            &["showcall-bench", "idle", "--node-bin", "/x/showcall"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(cli.node_bin, Some(PathBuf::from("/x/showcall")), "{args:?}");
        }
    }

    #[test]
    fn defaults() {
        let Benchmark::Ringing {
            pairs,
            rounds,
            rate,
            url,
            ..
        } = parse(&["showcall-bench", "ringing"])
        else {
            panic!("expected ringing");
        };
        assert_eq!((pairs, rounds, rate, url), (200, 5, None, None));
        let Benchmark::Ringing { rate, seconds, .. } =
            parse(&["showcall-bench", "ringing", "--rate", "1000"])
        else {
            panic!("expected ringing");
        };
        assert_eq!((rate, seconds), (Some(1000), 20));
        let Benchmark::Cluster {
            pairs,
            rounds,
            rate,
            envelopes,
            ..
        } = parse(&["showcall-bench", "cluster"])
        else {
            panic!("expected cluster");
        };
        assert_eq!((pairs, rounds, rate, envelopes), (100, 5, None, 50_000));
        assert!(
            Cli::try_parse_from(["showcall-bench", "cluster", "--seconds", "5"]).is_err(),
            "--seconds without --rate means nothing"
        );
        let Benchmark::Idle { users, .. } = parse(&["showcall-bench", "idle"]) else {
            panic!("expected idle");
        };
        assert_eq!(users, 10_000);
        let Benchmark::Fanout {
            audience,
            seconds,
            video_scale,
            receiver,
            ..
        } = parse(&["showcall-bench", "fanout"])
        else {
            panic!("expected fanout");
        };
        assert_eq!((audience, seconds, video_scale), (50, 10, 7));
        assert_eq!(receiver, FanoutReceiver::Session);
        let Benchmark::Fanout { receiver, .. } =
            parse(&["showcall-bench", "fanout", "--receiver", "probe"])
        else {
            panic!("expected fanout");
        };
        assert_eq!(receiver, FanoutReceiver::Probe);
        let Benchmark::Fanout { receiver, .. } =
            parse(&["showcall-bench", "fanout", "--receiver", "session-tcp"])
        else {
            panic!("expected fanout");
        };
        assert_eq!(receiver, FanoutReceiver::SessionTcp);
        let Benchmark::CallConnect { calls, concurrent } =
            parse(&["showcall-bench", "call-connect"])
        else {
            panic!("expected call-connect");
        };
        assert_eq!((calls, concurrent), (20, 1));
        let Benchmark::Switch {
            rounds,
            audience,
            nodes,
        } = parse(&["showcall-bench", "switch"])
        else {
            panic!("expected switch");
        };
        assert_eq!((rounds, audience, nodes), (10, 3, 1));
        let Benchmark::IceRestart {
            rounds,
            video_scale,
            seed,
        } = parse(&["showcall-bench", "ice-restart"])
        else {
            panic!("expected ice-restart");
        };
        assert_eq!((rounds, video_scale, seed), (50, 7, 12));
        let Benchmark::Join {
            viewers,
            video_scale,
            seed,
            compare_tcp,
        } = parse(&["showcall-bench", "join"])
        else {
            panic!("expected join");
        };
        assert_eq!(
            (viewers, video_scale, seed, compare_tcp),
            (50, 7, 12, false)
        );
        let Benchmark::ViewerMemory {
            viewers,
            seconds,
            video_scale,
        } = parse(&["showcall-bench", "viewer-memory"])
        else {
            panic!("expected viewer-memory");
        };
        assert_eq!((viewers, seconds, video_scale), (100, 15, 7));
        let Benchmark::Soak {
            minutes,
            warmup_minutes,
            users,
            rooms,
            media_share,
            seed,
            sample_seconds,
        } = parse(&["showcall-bench", "soak"])
        else {
            panic!("expected soak");
        };
        assert_eq!(
            (minutes, warmup_minutes, users, rooms, seed, sample_seconds),
            (30, 5, 300, 30, 7, None)
        );
        assert_eq!(media_share, 0.1);
    }
}
