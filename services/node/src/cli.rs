//! The `showcall` command line.
//!
//! `showcall` alone (or with only run flags) runs a node; `showcall token` mints a token from the
//! configured app secrets; `showcall admin-token` signs an admin token with an app's API key (for the
//! business gRPC API, e.g. with grpcurl); `showcall bench` drives load against a node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use showcall_admin::{AdminError, MintToken};
use showcall_auth::{AdminTokenIssuer, TokenIssuer};
use showcall_proto::admin::MintTokenRequest;

use crate::config::NodeConfig;

/// showcall: a backend for showroom-to-1v1 live streaming.
///
/// With no command, runs a node (the same as `showcall run`). Configuration comes from built-in
/// defaults, then the `--config` TOML file, then `SHOWCALL_*` environment variables (nested keys joined
/// by `__`, e.g. `SHOWCALL_RATE_LIMIT__PER_SECOND`), then flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "showcall", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; none means `run`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The `run` flags, accepted without the word `run` too.
    #[command(flatten)]
    pub run: RunArgs,
}

impl Cli {
    /// The command to carry out: the subcommand given, or `run` with the top-level flags.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Run(self.run))
    }
}

/// The commands of `showcall`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run a node: signaling, the gRPC admin API, health and metrics.
    Run(RunArgs),
    /// Mint a token for a user and print it to stdout.
    Token(TokenArgs),
    /// Mint an admin token (for the business gRPC API) with one of an app's API keys and print it.
    AdminToken(AdminTokenArgs),
    /// Measure a node under load.
    Bench(BenchArgs),
}

/// Flags of `showcall run`; each given flag overrides the file and the environment.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "PATH", env = "SHOWCALL_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id in the cluster; unique among nodes [config: node_id].
    #[arg(long, value_name = "ID")]
    pub node_id: Option<String>,
    /// Address for client WebSocket signaling [config: signal_addr; default 127.0.0.1:7800].
    #[arg(long, value_name = "ADDR")]
    pub signal_addr: Option<SocketAddr>,
    /// Address for the gRPC admin API [config: grpc_addr; default 127.0.0.1:7801].
    #[arg(long, value_name = "ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// Address for health checks and Prometheus metrics [config: http_addr; default 127.0.0.1:7802].
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// UDP address of the WebRTC media router [config: media_addr; default 127.0.0.1:7803].
    #[arg(long, value_name = "ADDR")]
    pub media_addr: Option<SocketAddr>,
    /// Media router workers, each a thread with its own UDP port (media_addr's port + index) [config:
    /// media_workers; default 0 = one per core].
    #[arg(long, value_name = "N")]
    pub media_workers: Option<usize>,
    /// IP announced in ICE candidates when it differs from the media address's [config:
    /// media_advertise_ip].
    #[arg(long, value_name = "IP")]
    pub media_advertise_ip: Option<std::net::IpAddr>,
    /// PEM certificate chain: serve signaling and the demo pages over HTTPS/WSS [config: tls_cert].
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert` [config: tls_key].
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How long a dropped session (and its call) waits for a reconnect, e.g. `30s`
    /// [config: grace_period].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub grace_period: Option<Duration>,
    /// How long a call rings unanswered before it times out, e.g. `15s` [config: call_timeout].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub call_timeout: Option<Duration>,
    /// etcd endpoint to join a cluster through; repeat for several [config: etcd_endpoints; default
    /// none = single node].
    #[arg(long, value_name = "URL")]
    pub etcd: Vec<String>,
}

/// Flags of `showcall token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The app the token is for; its secret comes from the configuration.
    #[arg(long, value_name = "ID", default_value = crate::config::DEMO_APP_ID)]
    pub app: String,
    /// The user id (1 to 64 bytes of A-Z a-z 0-9 _ . - @ :).
    #[arg(long, value_name = "USER_ID")]
    pub uid: String,
    /// How long the token is valid, in whole seconds, at most a week, e.g. `1h`, `30m`, `7d`.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Grant a channel: its name, or `*` for every channel. Grants subscribing too, unless
    /// `--no-subscribe`.
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
    /// Grant publishing: join as broadcaster, publish media in calls.
    #[arg(long)]
    pub publish: bool,
    /// Do not grant subscribing (joining the channel as audience).
    #[arg(long)]
    pub no_subscribe: bool,
    /// TOML configuration file holding the app secrets (otherwise the built-in demo app).
    #[arg(long, value_name = "PATH", env = "SHOWCALL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Flags of `showcall admin-token`.
#[derive(Debug, Clone, Args)]
pub struct AdminTokenArgs {
    /// The API key to sign with (its secret comes from the configuration); the token acts for that
    /// key's app.
    #[arg(long, value_name = "KEY_ID", default_value = crate::config::DEMO_API_KEY)]
    pub key: String,
    /// How long the token is valid, whole seconds, at most an hour, e.g. `5m`.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// TOML configuration file holding the API keys (otherwise the built-in demo app's).
    #[arg(long, value_name = "PATH", env = "SHOWCALL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Flags of `showcall bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Which load to run.
    #[command(subcommand)]
    pub kind: BenchKind,
}

/// The audience members of `bench fanout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FanoutReceiver {
    /// The SDK's `MediaSession`: depacketizes every frame, as an app's receiver does.
    Session,
    /// The SDK's `RtpProbe`: counts packets and assembles frames from their records afterwards.
    Probe,
}

/// The benchmarks.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchKind {
    /// Pairs of users call each other; measures ring and answer latency.
    Ringing {
        /// How many caller/callee pairs call at the same time.
        #[arg(long, value_name = "N", default_value_t = 200)]
        pairs: usize,
        /// How many calls each pair places, one after another.
        #[arg(long, value_name = "N", default_value_t = 5)]
        rounds: usize,
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
    },
    /// A cluster on this machine (etcd from PATH + in-process nodes): ringing across 3 nodes vs 1 node,
    /// cross-node envelope throughput, time for a joining node to take its share, time from a node's
    /// crash (lease no longer renewed) to all its partitions re-owned.
    Cluster {
        /// How many caller/callee pairs ring at the same time.
        #[arg(long, value_name = "N", default_value_t = 100)]
        pairs: usize,
        /// How many calls each pair places, one after another.
        #[arg(long, value_name = "N", default_value_t = 5)]
        rounds: usize,
        /// How many envelopes the throughput measurement sends from one node to another.
        #[arg(long, value_name = "N", default_value_t = 50_000)]
        envelopes: usize,
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

/// `showcall token`: loads the configuration and mints the token, with the same checks as the
/// `MintToken` RPC. Returns the token; printing it is the caller's job.
pub fn run_token(args: &TokenArgs) -> anyhow::Result<String> {
    let (config, now) = config_and_now(args.config.as_ref())?;
    mint_token(args, &config, now)
}

/// What a minting command needs: the configuration (`path` or the built-in defaults) and the Unix time.
fn config_and_now(path: Option<&PathBuf>) -> anyhow::Result<(NodeConfig, u64)> {
    let config = NodeConfig::load(&RunArgs {
        config: path.cloned(),
        ..RunArgs::default()
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock is before 1970")?
        .as_secs();
    Ok((config, now))
}

/// `showcall admin-token`: loads the configuration and signs an admin token with the named API key.
pub fn run_admin_token(args: &AdminTokenArgs) -> anyhow::Result<String> {
    let (config, now) = config_and_now(args.config.as_ref())?;
    mint_admin_token(args, &config, now)
}

/// The clock-free part of [`run_admin_token`].
fn mint_admin_token(
    args: &AdminTokenArgs,
    config: &NodeConfig,
    now_unix: u64,
) -> anyhow::Result<String> {
    if args.ttl.subsec_nanos() != 0 {
        anyhow::bail!("--ttl: must be whole seconds");
    }
    let keys = config.api_keys();
    if keys.app_of(&args.key).is_none() {
        anyhow::bail!("--key: no API key {:?} in the configuration", args.key);
    }
    let (token, _exp) = AdminTokenIssuer::mint(&keys, &args.key, args.ttl, now_unix)
        .map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
    Ok(token)
}

/// The clock-free part of [`run_token`].
fn mint_token(args: &TokenArgs, config: &NodeConfig, now_unix: u64) -> anyhow::Result<String> {
    if args.ttl.subsec_nanos() != 0 {
        anyhow::bail!("--ttl: must be whole seconds");
    }
    let request = MintTokenRequest {
        app_id: args.app.clone(),
        user_id: args.uid.clone(),
        // Too large for u32 is also too large for the one-week cap; let the shared check say so.
        ttl_seconds: u32::try_from(args.ttl.as_secs()).unwrap_or(u32::MAX),
        channel: args.channel.clone().unwrap_or_default(),
        publish: args.publish,
        subscribe: args.no_subscribe.then_some(false),
    };
    let keys = config.app_keys();
    let mint = MintToken::parse(request, &keys).map_err(flag_error)?;
    let (token, _exp) = TokenIssuer::mint(
        &keys,
        &mint.app_id,
        &mint.user_id,
        mint.ttl,
        mint.grants,
        now_unix,
    )?;
    Ok(token)
}

/// Names the flag, not the proto field, in a refused request.
fn flag_error(e: AdminError) -> anyhow::Error {
    match e {
        AdminError::InvalidArgument { field, reason } => {
            let flag = match field {
                "app_id" => "--app",
                "user_id" => "--uid",
                "ttl_seconds" => "--ttl",
                "channel" => "--channel",
                other => other,
            };
            anyhow::anyhow!("{flag}: {reason}")
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;
    use showcall_auth::{AppKeys, TokenVerifier};

    use super::*;
    use crate::config::DEMO_SECRET;

    const NOW: u64 = 1_700_000_000;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(args).unwrap().into_command()
    }

    fn token_args(args: &[&str]) -> TokenArgs {
        match parse(&[&["showcall", "token"], args].concat()) {
            Command::Token(t) => t,
            other => panic!("expected token, got {other:?}"),
        }
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
    fn no_subcommand_means_run() {
        let Command::Run(args) = parse(&["showcall"]) else {
            panic!("expected run");
        };
        assert_eq!(args.signal_addr, None);
        let Command::Run(args) = parse(&["showcall", "--signal-addr", "0.0.0.0:1"]) else {
            panic!("expected run");
        };
        assert_eq!(args.signal_addr, Some("0.0.0.0:1".parse().unwrap()));
    }

    #[test]
    fn run_flags_parse() {
        let Command::Run(args) = parse(&[
            "showcall",
            "run",
            "--node-id",
            "n2",
            "--grpc-addr",
            "127.0.0.1:9",
            "--http-addr",
            "127.0.0.1:10",
            "--grace-period",
            "1m",
            "--call-timeout",
            "20s",
            "--config",
            "x.toml",
        ]) else {
            panic!("expected run");
        };
        assert_eq!(args.node_id.as_deref(), Some("n2"));
        assert_eq!(args.grace_period, Some(Duration::from_secs(60)));
        assert_eq!(args.call_timeout, Some(Duration::from_secs(20)));
        assert_eq!(args.config, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn bench_defaults() {
        let Command::Bench(BenchArgs {
            kind: BenchKind::Ringing { pairs, rounds, url },
        }) = parse(&["showcall", "bench", "ringing"])
        else {
            panic!("expected bench ringing");
        };
        assert_eq!((pairs, rounds, url), (200, 5, None));
        let Command::Bench(BenchArgs {
            kind: BenchKind::Idle { users, .. },
        }) = parse(&["showcall", "bench", "idle"])
        else {
            panic!("expected bench idle");
        };
        assert_eq!(users, 10_000);
        let Command::Bench(BenchArgs {
            kind:
                BenchKind::Fanout {
                    audience,
                    seconds,
                    video_scale,
                    receiver,
                    ..
                },
        }) = parse(&["showcall", "bench", "fanout"])
        else {
            panic!("expected bench fanout");
        };
        assert_eq!((audience, seconds, video_scale), (50, 10, 7));
        assert_eq!(receiver, FanoutReceiver::Session);
        let Command::Bench(BenchArgs {
            kind: BenchKind::Fanout { receiver, .. },
        }) = parse(&["showcall", "bench", "fanout", "--receiver", "probe"])
        else {
            panic!("expected bench fanout");
        };
        assert_eq!(receiver, FanoutReceiver::Probe);
        let Command::Bench(BenchArgs {
            kind: BenchKind::CallConnect { calls, concurrent },
        }) = parse(&["showcall", "bench", "call-connect"])
        else {
            panic!("expected bench call-connect");
        };
        assert_eq!((calls, concurrent), (20, 1));
        let Command::Bench(BenchArgs {
            kind: BenchKind::Switch { rounds, audience },
        }) = parse(&["showcall", "bench", "switch"])
        else {
            panic!("expected bench switch");
        };
        assert_eq!((rounds, audience), (10, 3));
        let Command::Bench(BenchArgs {
            kind:
                BenchKind::Join {
                    viewers,
                    video_scale,
                    seed,
                },
        }) = parse(&["showcall", "bench", "join"])
        else {
            panic!("expected bench join");
        };
        assert_eq!((viewers, video_scale, seed), (50, 7, 12));
        let Command::Bench(BenchArgs {
            kind:
                BenchKind::ViewerMemory {
                    viewers,
                    seconds,
                    video_scale,
                },
        }) = parse(&["showcall", "bench", "viewer-memory"])
        else {
            panic!("expected bench viewer-memory");
        };
        assert_eq!((viewers, seconds, video_scale), (100, 15, 7));
        let Command::Bench(BenchArgs {
            kind:
                BenchKind::Soak {
                    minutes,
                    warmup_minutes,
                    users,
                    rooms,
                    media_share,
                    seed,
                    sample_seconds,
                },
        }) = parse(&["showcall", "bench", "soak"])
        else {
            panic!("expected bench soak");
        };
        assert_eq!(
            (minutes, warmup_minutes, users, rooms, seed, sample_seconds),
            (30, 5, 300, 30, 7, None)
        );
        assert_eq!(media_share, 0.1);
    }

    #[test]
    fn token_verifies_with_the_configured_secret() {
        let args = token_args(&[
            "--app",
            "demo",
            "--uid",
            "42",
            "--ttl",
            "1h",
            "--channel",
            "*",
            "--publish",
        ]);
        let token = mint_token(&args, &NodeConfig::default(), NOW).unwrap();
        let keys = AppKeys::from_pairs([("demo", DEMO_SECRET)]);
        let claims = TokenVerifier::verify(&keys, &token, NOW).unwrap();
        assert_eq!(claims.sub, "42");
        assert_eq!(claims.exp, NOW + 3600);
        assert!(claims.grants.signal && claims.grants.publish && claims.grants.subscribe);
        assert!(claims.grants.allows_channel("any-room"));
    }

    #[test]
    fn token_without_subscribe() {
        let args = token_args(&["--uid", "7", "--channel", "room-1", "--no-subscribe"]);
        let token = mint_token(&args, &NodeConfig::default(), NOW).unwrap();
        let keys = AppKeys::from_pairs([("demo", DEMO_SECRET)]);
        let claims = TokenVerifier::verify(&keys, &token, NOW).unwrap();
        assert!(!claims.grants.subscribe && !claims.grants.publish);
        assert_eq!(claims.exp, NOW + 3600, "default ttl is an hour");
    }

    #[test]
    fn token_errors_name_the_flag() {
        let config = NodeConfig::default();
        for (args, flag) in [
            (&["--uid", "bad id"][..], "--uid"),
            (&["--uid", "1", "--app", "nope"][..], "--app"),
            (&["--uid", "1", "--ttl", "8d"][..], "--ttl"),
            (&["--uid", "1", "--ttl", "1500ms"][..], "--ttl"),
            (&["--uid", "1", "--channel", "a b"][..], "--channel"),
        ] {
            let msg = mint_token(&token_args(args), &config, NOW)
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with(flag), "{args:?}: {msg}");
        }
    }

    fn admin_token_args(args: &[&str]) -> AdminTokenArgs {
        match parse(&[&["showcall", "admin-token"], args].concat()) {
            Command::AdminToken(t) => t,
            other => panic!("expected admin-token, got {other:?}"),
        }
    }

    #[test]
    fn admin_token_acts_for_the_demo_app_by_default() {
        let config = NodeConfig::default();
        let token = mint_admin_token(&admin_token_args(&[]), &config, NOW).unwrap();
        let caller =
            showcall_auth::AdminTokenVerifier::verify(&config.api_keys(), &token, NOW).unwrap();
        assert_eq!(caller.app, "demo");
        assert_eq!(caller.key_id, crate::config::DEMO_API_KEY);
    }

    #[test]
    fn admin_token_errors_name_the_flag() {
        let config = NodeConfig::default();
        for (args, flag) in [
            (&["--key", "nope"][..], "--key"),
            (&["--ttl", "2h"][..], "--ttl"),
            (&["--ttl", "1500ms"][..], "--ttl"),
        ] {
            let msg = mint_admin_token(&admin_token_args(args), &config, NOW)
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with(flag), "{args:?}: {msg}");
        }
    }
}
