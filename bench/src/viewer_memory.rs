//! `viewer-memory`: what one viewer of a live room costs the node in memory.
//!
//! The node runs as a child process ([`ChildNode`]), so its resident memory is its own; the broadcaster
//! and the viewers are Rust SDK clients in this process. The broadcaster publishes the sample at a live
//! room's bitrate ([`clip::scaled`]) and runs a while before anything is read, so the node's baseline
//! includes the room and its publisher. Then, in the same run:
//!
//! 1. the floor: `viewers` users log in, no media → Δ RSS ÷ N = an idle user (connection + user actor),
//!    what `bench idle` measures;
//! 2. the same users join the room receive-only and receive video → Δ RSS from the baseline ÷ N = a
//!    viewer session (connection + user actor + channel membership + the router's session for it).
//!
//! The router's per-receiver state grows with the stream for a while: str0m keeps each receiver's
//! recent video packets (1,000 by default) to answer NACKs, so the node is read every second for
//! `seconds` while everyone receives, and each reading is printed; the last is the figure.

use std::time::Duration;

use showcall_node::config::NodeConfig;
use showcall_sdk::{ChannelRole, MediaOptions, MediaSession};

use super::child_node::ChildNode;
use super::clip;
use super::report::progress;
use super::sdk_user::{guarded, login, publish};
use super::tokens::token_factory;

const ROOM: &str = "memory_live";
/// Time for the node to settle (lazy allocation, the publisher's first keyframes) before a reading.
const SETTLE: Duration = Duration::from_secs(2);

fn per_viewer(delta: i64, viewers: usize) -> f64 {
    (delta as f64 / viewers.max(1) as f64).round()
}

pub(super) async fn run(
    viewers: usize,
    seconds: u64,
    video_scale: usize,
    node_bin: &std::path::Path,
) -> anyhow::Result<()> {
    let node = ChildNode::start(node_bin).await?;
    let token = token_factory(&NodeConfig::default());
    let host = login(&node.url, &token("memory-host")?).await?;
    let broadcaster = publish(&host, ROOM, clip::scaled(video_scale)?).await?;
    guarded("broadcaster connects", broadcaster.wait_connected()).await??;
    tokio::time::sleep(SETTLE).await;
    let baseline = node.rss_bytes()? as i64;

    let bar = progress(viewers as u64, "login");
    let mut users = Vec::with_capacity(viewers);
    for i in 0..viewers {
        users.push(login(&node.url, &token(&format!("viewer-{i}"))?).await?);
        bar.inc(1);
    }
    bar.finish();
    tokio::time::sleep(SETTLE).await;
    let logged_in = node.rss_bytes()? as i64;

    let bar = progress(viewers as u64, "join");
    let mut sessions = Vec::with_capacity(viewers);
    for signal in &users {
        let (media, _) =
            MediaSession::join(signal, ROOM, ChannelRole::Audience, MediaOptions::default())
                .await?;
        sessions.push(media);
        bar.inc(1);
    }
    for media in &sessions {
        guarded("first video", media.wait_video_frames(1)).await??;
    }
    bar.finish();
    let frames_before: u64 = sessions.iter().map(|m| m.stats().video_frames_in).sum();

    let mut readings = Vec::with_capacity(seconds as usize);
    let bar = progress(seconds, "receiving");
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        readings.push(per_viewer(node.rss_bytes()? as i64 - baseline, viewers));
        bar.inc(1);
    }
    bar.finish();
    let receiving = node.rss_bytes()? as i64;
    let frames_after: u64 = sessions.iter().map(|m| m.stats().video_frames_in).sum();
    drop(sessions);
    drop(users);
    drop(broadcaster);
    node.stop().await?;

    let idle_user = per_viewer(logged_in - baseline, viewers);
    let session = per_viewer(receiving - baseline, viewers);
    let mib = |b: i64| b as f64 / 1_048_576.0;
    let result = serde_json::json!({
        "bench": "viewer-memory",
        "viewers": viewers,
        "video_scale": video_scale,
        "seconds_receiving": seconds,
        "video_fps_per_viewer": (frames_after - frames_before) as f64 / seconds.max(1) as f64 / viewers.max(1) as f64,
        "node_rss_mib": {
            "baseline": mib(baseline),
            "logged_in": mib(logged_in),
            "receiving": mib(receiving),
        },
        "bytes_per_idle_user": idle_user,
        "bytes_per_viewer_session": session,
        "kib_per_viewer_session": (session / 1024.0 * 10.0).round() / 10.0,
        "media_bytes_per_viewer": session - idle_user,
        "viewer_session_over_idle_user": session / idle_user,
        "bytes_per_viewer_session_each_second": readings,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
