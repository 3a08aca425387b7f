//! `showcall`: run a node, mint a token, or run a benchmark. `showcall --help` documents everything.

use clap::Parser as _;
use showcall_node::cli::{Cli, Command};
use showcall_node::config::NodeConfig;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let command = Cli::parse().into_command();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match command {
        Command::Run(args) => runtime.block_on(run(NodeConfig::load(&args)?)),
        Command::Token(args) => {
            println!("{}", showcall_node::cli::run_token(&args)?);
            Ok(())
        }
        Command::Bench(args) => runtime.block_on(showcall_node::bench::run(args)),
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
    let node = showcall_node::start(config).await?;
    println!("showcall node running");
    println!("  demo pages:            {}", node.pages_url());
    println!("  signaling (WebSocket): {}", node.signal_url());
    println!("  media (UDP, WebRTC):   {}", node.media_addr);
    println!("  business API (gRPC):   http://{}", node.grpc_addr);
    println!("  health (HTTP):         http://{}/healthz", node.http_addr);
    if let Some(m) = node.membership() {
        println!("  cluster:               node {} (etcd placement)", m.me());
    }
    wait_for_stop_signal().await?;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}
