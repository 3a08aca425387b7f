//! `idle`: logs in N users against a node started as a child process ([`ChildNode`]) and reports the
//! node's resident memory per idle user (connection + the user's resting state, once every user actor
//! has rested); with `--connect-only`, per bare connection (no login, so no session).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use showcall_node::config::NodeConfig;
use showcall_proto::signal::{self as pb, client_frame::Command};

use super::child_node::ChildNode;
use super::report::progress;
use super::signal_client::Client;
use super::tokens::token_factory;

pub(super) async fn run(users: usize, connect_only: bool, node_bin: &Path) -> anyhow::Result<()> {
    let node = ChildNode::start(node_bin).await?;
    let url = node.url.clone();
    let token = token_factory(&NodeConfig::default());
    let before = node.rss_bytes()?;

    let bar = progress(users as u64, "login");
    let mut conns = Vec::with_capacity(users);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0;
    // Log in with bounded concurrency so the listen backlog never overflows.
    while conns.len() < users {
        while next < users && tasks.len() < 256 {
            let t = token(&format!("idle-{next}"))?;
            let url = url.clone();
            tasks.spawn(async move {
                let mut c = Client::connect(&url).await?;
                if !connect_only {
                    c.request(Command::Login(pb::Login {
                        token: t,
                        follow_home: false,
                    }))
                    .await?;
                } else {
                    // A ping before login is answered UNAUTHENTICATED: the answer proves the
                    // connection is served, and no session was created.
                    let refused = c.request(Command::Ping(pb::Ping {})).await;
                    let code = pb::ErrorCode::Unauthenticated as i32;
                    match refused {
                        Err(e) if e.to_string().starts_with(&format!("refused: {code} ")) => {}
                        other => anyhow::bail!("a ping before login was not refused: {other:?}"),
                    }
                }
                anyhow::Ok(c)
            });
            next += 1;
        }
        let c = tasks.join_next().await.context("login tasks")???;
        conns.push(c);
        bar.inc(1);
    }
    bar.finish();
    let mut resting = 0;
    if !connect_only {
        // The figure is of idle users: wait until every user actor rests (its login's run is over), as
        // the node's metrics tell.
        while resting < users as u64 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            resting = node.metric("showcall_users_resting").await?;
        }
    }
    // Let the node finish any lazy allocation (freed actors' memory returns to the allocator's pools).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = node.rss_bytes()?;
    let per_user = after.saturating_sub(before) as f64 / users as f64;
    let result = serde_json::json!({
        "bench": "idle",
        "users": users,
        "logged_in": !connect_only,
        "users_resting": resting,
        "node_rss_before_mib": before as f64 / 1048576.0,
        "node_rss_after_mib": after as f64 / 1048576.0,
        "bytes_per_idle_user": per_user.round(),
        "kib_per_idle_user": (per_user / 1024.0 * 100.0).round() / 100.0,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    drop(conns);
    node.stop().await
}
