//! `showcall`: run a node, or mint a user or admin token. `showcall --help` documents everything.

use clap::Parser as _;
use showcall_node::cli::{Cli, Command};
use showcall_node::config::NodeConfig;
use showcall_node::telemetry::Telemetry;

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().into_command();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The configuration comes first: it says whether traces are exported.
    let config = match &command {
        Command::Run(args) => Some(NodeConfig::load(args)?),
        _ => None,
    };
    let telemetry = {
        // The OTLP exporter's gRPC channel is spawned on the runtime.
        let _in_runtime = runtime.enter();
        let otlp = config.as_ref().and_then(|c| c.otlp_endpoint.as_deref());
        let node_id = config.as_ref().map_or("", |c| c.node_id.as_str());
        Telemetry::init(otlp, node_id)?
    };
    match command {
        Command::Run(_) => {
            let config = config.expect("loaded above for `run`");
            let ran = runtime.block_on(run(config));
            // Off the runtime's threads, with the runtime still running: flushing needs both.
            telemetry.shutdown();
            ran
        }
        Command::Token(args) => {
            println!("{}", showcall_node::cli::run_token(&args)?);
            Ok(())
        }
        Command::AdminToken(args) => {
            println!("{}", showcall_node::cli::run_admin_token(&args)?);
            Ok(())
        }
    }
}

/// Ctrl-C, or SIGTERM (what container runtimes and Kubernetes send to stop a process).
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

async fn run(config: NodeConfig) -> anyhow::Result<()> {
    if config.uses_demo_secret() {
        tracing::warn!(
            "using the built-in demo app secret: set your own [[apps]] before production"
        );
    }
    if config.uses_demo_api_secret() {
        tracing::warn!(
            "an app still has the built-in demo API key: anyone can call its business API; set your own apps[].api_keys before production"
        );
    }
    let node = showcall_node::start(config).await?;
    println!("showcall node running");
    println!("  demo pages:            {}", node.pages_url());
    println!("  signaling (WebSocket): {}", node.signal_url());
    println!("  media (UDP, WebRTC):   {}", node.media_addr);
    if let Some(tcp) = node.media_tcp_addr {
        println!("  media (ICE-TCP):       {tcp}");
    }
    println!("  business API (gRPC):   {}", node.grpc_url());
    if let Some(link) = node.link_addr {
        println!("  node link (gRPC):      {link}");
    }
    println!("  health (HTTP):         http://{}/healthz", node.http_addr);
    if let Some(m) = node.membership() {
        println!("  cluster:               node {} (etcd placement)", m.me());
    }
    wait_for_stop_signal().await?;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}
