//! `ice-restart`: a viewer's network changes; how long until its video comes again.
//!
//! - The node is [`MediaNode`] (in this process). A broadcaster publishes the SDK's sample (a keyframe
//!   every 30 frames), each video frame `video_scale` times its size, for a live room's bitrate.
//! - One viewer watches (`MediaSession::join`). Each round, after a pause drawn from a seeded RNG
//!   (0–1000 ms, one GOP, so the changes fall all over the GOP), it **changes its network**:
//!   `MediaSession::restart_ice` binds a new UDP socket and restarts ICE over signaling (`RestartIce`).
//!   From that call (t0): the node's answer applied (`answered`), the first video frame that arrived on
//!   the new socket (`media_again`: the first one the session took after the answer was applied, when
//!   the old socket is gone), and the first keyframe there (`keyframe_again`: the first frame a decoder
//!   that lost frames can show).
//! - **The floor, in the same run**: a fresh viewer joins the room (`JoinChannel` with its offer → its
//!   first video frame, the router serving its kept keyframe) and leaves, each round. A restart does
//!   what a join does minus the DTLS handshake and the new session (one signaling round trip, ICE checks
//!   on the new path), so it should land at or under the join.
//! - Here the old path still works until the answer is applied (loopback does not go away), so the
//!   frames a change loses are not what a real network switch loses (that is from the old path's end
//!   to `media_again`, plus the time the app or the ICE consent checks take to notice it); what this
//!   measures is the restart's own cost.

use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use showcall_sdk::{ChannelRole, MediaOptions, MediaSession, ReceivedFrame, TrackKind};
use tokio::sync::broadcast::{self, error::RecvError};

use super::clip;
use super::media_node::MediaNode;
use super::report::{histogram, percentiles, progress};
use super::sdk_user::{guarded, login, publish};
use super::tokens::token_factory;

const ROOM: &str = "restart_live";
/// The longest pause between two rounds: one GOP of the sample.
const MAX_PAUSE_MS: u64 = 1000;
/// The broadcaster runs this long before the first round, so its first keyframe is long kept.
const WARMUP: Duration = Duration::from_millis(1500);

fn micros(from: Instant, to: Instant) -> u64 {
    (to.saturating_duration_since(from).as_micros() as u64).max(1)
}

/// The first video frame taken after `after`, and the first keyframe taken after it.
async fn video_after(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
    after: Instant,
) -> anyhow::Result<(Instant, Instant)> {
    let mut first = None;
    loop {
        let f = match frames.recv().await {
            Ok(f) => f,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => anyhow::bail!("media session ended"),
        };
        if f.kind != TrackKind::Video || f.received_at <= after {
            continue;
        }
        let first = *first.get_or_insert(f.received_at);
        if f.keyframe {
            return Ok((first, f.received_at));
        }
    }
}

pub(super) async fn run(rounds: usize, video_scale: usize, seed: u64) -> anyhow::Result<()> {
    let config = super::report::loopback_node_config();
    let load = super::report::load_average();
    let node = MediaNode::start(&config).await?;
    let token = token_factory(&config);
    let source = clip::scaled(video_scale)?;

    let host = login(&node.url, &token("restart-host")?).await?;
    let broadcaster = publish(&host, ROOM, source).await?;
    guarded("broadcaster connects", broadcaster.wait_connected()).await??;
    let viewer_signal = login(&node.url, &token("restart-viewer")?).await?;
    let (viewer, _) = MediaSession::join(
        &viewer_signal,
        ROOM,
        ChannelRole::Audience,
        MediaOptions::default(),
    )
    .await?;
    guarded("viewer's video", viewer.wait_video_frames(1)).await??;
    let fresh_signal = login(&node.url, &token("restart-fresh")?).await?;
    tokio::time::sleep(WARMUP).await;

    let mut rng = StdRng::seed_from_u64(seed);
    let (mut answered, mut media_again, mut keyframe_again) =
        (histogram(), histogram(), histogram());
    let mut join_floor = histogram();
    let bar = progress(rounds as u64, "rounds");
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=MAX_PAUSE_MS))).await;
        let mut frames = viewer.subscribe_frames();
        let t0 = Instant::now();
        guarded("ice restart answered", viewer.restart_ice(None)).await??;
        let applied = Instant::now();
        let (first, keyframe) =
            guarded("video after the restart", video_after(&mut frames, applied)).await??;
        answered.record(micros(t0, applied))?;
        media_again.record(micros(t0, first))?;
        keyframe_again.record(micros(t0, keyframe))?;

        // The floor: a fresh join's first frame, in the same room at the same moment.
        let t0 = Instant::now();
        let (fresh, _) = MediaSession::join(
            &fresh_signal,
            ROOM,
            ChannelRole::Audience,
            MediaOptions::default(),
        )
        .await?;
        let stats = guarded("fresh viewer's video", fresh.wait_video_frames(1)).await??;
        join_floor.record(micros(
            t0,
            stats.first_video_in.unwrap_or_else(Instant::now),
        ))?;
        fresh.close();
        fresh_signal.leave_channel(ROOM).await?;
        bar.inc(1);
    }
    bar.finish();
    let restarts = viewer.stats().ice_restarts;
    let router_restarts = node.router.stats().await?.ice_restarts;
    drop(viewer);
    drop(broadcaster);
    node.shutdown().await;

    let result = serde_json::json!({
        "bench": "ice-restart",
        "rounds": rounds,
        "video_scale": video_scale,
        "seed": seed,
        "restart_to_answer_applied": percentiles(&answered),
        "restart_to_first_video_frame": percentiles(&media_again),
        "restart_to_first_keyframe": percentiles(&keyframe_again),
        "floor_fresh_join_to_first_video_frame": percentiles(&join_floor),
        "first_frame_p50_over_floor_p50": media_again.value_at_quantile(0.5) as f64
            / join_floor.value_at_quantile(0.5).max(1) as f64,
        "first_frame_p99_over_floor_p99": media_again.value_at_quantile(0.99) as f64
            / join_floor.value_at_quantile(0.99).max(1) as f64,
        "viewer_ice_restarts": restarts,
        "router_ice_restarts": router_restarts,
        "loadavg_at_start": load,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
