//! The `showcall` command line.
//!
//! `showcall` alone (or with only run flags) runs a node; `showcall token` mints a token from the
//! configured app secrets; `showcall admin-token` signs an admin token with an app's API key (for the
//! business gRPC API, e.g. with grpcurl). The benchmarks are a binary of their own, `showcall-bench`.

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
