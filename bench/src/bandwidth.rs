//! `bandwidth`: a viewer's link narrows, then widens; how long until the router moves it down a
//! simulcast layer, and back up, and what is lost meanwhile.
//!
//! - The node is [`MediaNode`] (in this process). A host publishes the SDK's sample as three simulcast
//!   layers (320x240, 160x120, 80x60: about 210, 90 and 40 kbit/s of video, with 35 kbit/s of audio).
//! - One viewer watches through a user-space shaped link (the tests' `shaped_relay`: a bottleneck with a
//!   200 ms queue that drops what does not fit). Each round the link **narrows** to `narrow_kbps`
//!   (default 200: under the top layer with audio, over the medium one) at t0; `adapt_down` is t0 → the
//!   first keyframe of a lower layer the viewer receives (the router's estimate fell, it chose a lower
//!   layer and asked for its keyframe). Then the link **widens** (no limit) at t1; `adapt_up` is t1 →
//!   the first top-layer keyframe (the estimate had to grow while the router padded towards the next
//!   layer, then the better layer had to fit for 2 s). Loss: the datagrams the link dropped and the
//!   video frames the viewer received after a gap, from t0 until the viewer is on the lower layer.
//! - **When in the GOP the link narrows** (`frames_before_narrowing`): each round's floor switch (below)
//!   ends with a top-layer keyframe, which the shaped viewer gets too. With 0 the link narrows at once,
//!   while that keyframe (larger than the narrowed link's whole queue) still crosses it: the worst
//!   moment, every round. With N it narrows once the shaped viewer has received N video frames after
//!   its latest keyframe.
//! - **The floor, in the same run**: a second viewer on an open path is switched by asking
//!   (`SetVideoLayer` low, then high): request → the target layer's first keyframe. That is the switch
//!   alone (a keyframe request and the encoder's answer); what adaptation adds is noticing the link.

use std::time::{Duration, Instant};

use showcall_sdk::media::MediaPeer;
use showcall_sdk::{ChannelRole, MediaOptions, MediaSession, ReceivedFrame, TrackKind, VideoLayer};
use tokio::sync::broadcast::{self, error::RecvError};

use super::media_node::MediaNode;
use super::report::{histogram, percentiles, progress};
use super::sdk_user::{guarded, login};
use super::tokens::token_factory;

// The tests' shaped link and candidate rewriting, compiled in here rather than depending on the test
// harness (which brings a WebDriver client and more): plain tokio and std.
#[path = "../../tests/src/shaped_relay.rs"]
#[allow(dead_code)]
mod shaped_relay;
#[path = "../../tests/src/udp_relay.rs"]
#[allow(dead_code)]
mod udp_relay;

use shaped_relay::{Shape, ShapedRelay};
use udp_relay::{host_candidate, rewrite_host_candidate};

const ROOM: &str = "bandwidth_live";
/// The host runs this long before the first round.
const WARMUP: Duration = Duration::from_millis(1500);
/// The top layer's picture width.
const TOP_WIDTH: u16 = 320;

fn micros(from: Instant, to: Instant) -> u64 {
    (to.saturating_duration_since(from).as_micros() as u64).max(1)
}

/// A VP8 keyframe's picture width (RFC 6386 §9.1).
fn keyframe_width(frame: &[u8]) -> Option<u16> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    Some(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff)
}

/// The next frame the viewer received (frames missed by a lagging reader are skipped).
async fn next_frame(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
) -> anyhow::Result<ReceivedFrame> {
    loop {
        match frames.recv().await {
            Ok(f) => return Ok(f),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => anyhow::bail!("media session ended"),
        }
    }
}

/// The first video keyframe received after `after` whose width `wanted` accepts, with the video
/// frames received after a gap until then.
async fn keyframe_after(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
    after: Instant,
    wanted: impl Fn(u16) -> bool,
) -> anyhow::Result<(Instant, u64)> {
    let mut broken = 0;
    loop {
        let f = next_frame(frames).await?;
        if f.kind != TrackKind::Video || f.received_at <= after {
            continue;
        }
        if !f.contiguous {
            broken += 1;
        }
        if f.keyframe && keyframe_width(&f.data).is_some_and(&wanted) {
            return Ok((f.received_at, broken));
        }
    }
}

/// Returns once `n` video frames have come after the latest keyframe (at once for 0).
async fn frames_after_keyframe(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
    n: u32,
) -> anyhow::Result<()> {
    let mut since_keyframe = 0;
    while since_keyframe < n {
        let f = next_frame(frames).await?;
        if f.kind != TrackKind::Video {
            continue;
        }
        since_keyframe = if f.keyframe { 0 } else { since_keyframe + 1 };
    }
    Ok(())
}

pub(super) async fn run(
    rounds: usize,
    narrow_kbps: u64,
    frames_before_narrowing: u32,
) -> anyhow::Result<()> {
    let config = super::report::loopback_node_config();
    let load = super::report::load_average();
    let node = MediaNode::start(&config).await?;
    let token = token_factory(&config);

    let host = login(&node.url, &token("bw-host")?).await?;
    let (host_media, _) = MediaSession::join(
        &host,
        ROOM,
        ChannelRole::Broadcaster,
        MediaOptions {
            simulcast: true,
            ..MediaOptions::default()
        },
    )
    .await?;
    guarded("host connects", host_media.wait_connected()).await??;

    // The shaped viewer: its node → viewer path through the relay (UDP only, so nothing bypasses it).
    let narrow_signal = login(&node.url, &token("bw-narrow")?).await?;
    let mut peer = MediaPeer::new(MediaOptions {
        tcp: false,
        ..MediaOptions::default()
    })?;
    let offer = peer.create_offer(false)?;
    let joined = narrow_signal
        .join_channel_with_offer(ROOM, ChannelRole::Audience, &offer)
        .await?;
    let node_media = host_candidate(&joined.sdp_answer)
        .ok_or_else(|| anyhow::anyhow!("the answer has no host candidate"))?;
    let relay = ShapedRelay::start(node_media, Shape::open()).await;
    peer.accept_answer(&rewrite_host_candidate(&joined.sdp_answer, relay.addr()))?;
    let narrow = peer.start()?;
    guarded("narrow viewer's video", narrow.wait_video_frames(1)).await??;

    // The floor's viewer, on an open path.
    let floor_signal = login(&node.url, &token("bw-floor")?).await?;
    let (floor_viewer, _) = MediaSession::join(
        &floor_signal,
        ROOM,
        ChannelRole::Audience,
        MediaOptions::default(),
    )
    .await?;
    guarded("floor viewer's video", floor_viewer.wait_video_frames(1)).await??;
    tokio::time::sleep(WARMUP).await;

    let (mut down, mut up) = (histogram(), histogram());
    let (mut floor_down, mut floor_up) = (histogram(), histogram());
    let mut rounds_out = Vec::new();
    let bar = progress(rounds as u64, "rounds");
    for _ in 0..rounds {
        // Narrow.
        let mut frames = narrow.subscribe_frames();
        guarded(
            "frames after a keyframe",
            frames_after_keyframe(&mut frames, frames_before_narrowing),
        )
        .await??;
        let before = relay.counts();
        let t0 = Instant::now();
        relay.set_rate(Some(narrow_kbps * 1000));
        let (lower, broken) = guarded(
            "a lower layer",
            keyframe_after(&mut frames, t0, |w| w < TOP_WIDTH),
        )
        .await??;
        let at_switch = relay.counts();
        down.record(micros(t0, lower))?;

        // Widen.
        let t1 = Instant::now();
        relay.set_rate(None);
        let (top, _) = guarded(
            "back to the top layer",
            keyframe_after(&mut frames, t1, |w| w == TOP_WIDTH),
        )
        .await??;
        up.record(micros(t1, top))?;
        rounds_out.push(serde_json::json!({
            "adapt_down_ms": micros(t0, lower) / 1000,
            "adapt_up_ms": micros(t1, top) / 1000,
            "link_drops_until_down": at_switch.dropped - before.dropped,
            "link_datagrams_until_down": at_switch.delivered - before.delivered,
            "frames_after_a_gap_until_down": broken,
        }));

        // The floor: the same switches asked for.
        let mut frames = floor_viewer.subscribe_frames();
        let t0 = Instant::now();
        floor_signal.set_video_layer(ROOM, VideoLayer::Low).await?;
        let (low, _) = guarded(
            "the floor's low layer",
            keyframe_after(&mut frames, t0, |w| w < TOP_WIDTH),
        )
        .await??;
        floor_down.record(micros(t0, low))?;
        let t1 = Instant::now();
        floor_signal.set_video_layer(ROOM, VideoLayer::High).await?;
        let (high, _) = guarded(
            "the floor's top layer",
            keyframe_after(&mut frames, t1, |w| w == TOP_WIDTH),
        )
        .await??;
        floor_up.record(micros(t1, high))?;
        bar.inc(1);
    }
    bar.finish();
    let stats = node.router.stats().await?;
    drop(narrow);
    drop(floor_viewer);
    drop(host_media);
    node.shutdown().await;

    let result = serde_json::json!({
        "bench": "bandwidth",
        "rounds": rounds,
        "narrow_kbps": narrow_kbps,
        "frames_before_narrowing": frames_before_narrowing,
        "link_queue_ms": 200,
        "adapt_down": percentiles(&down),
        "adapt_up": percentiles(&up),
        "floor_asked_switch_down": percentiles(&floor_down),
        "floor_asked_switch_up": percentiles(&floor_up),
        "per_round": rounds_out,
        "router_estimates": stats.estimate_count,
        "router_video_held": stats.video_held,
        "router_layer_switches": stats.layer_switches,
        "loadavg_at_start": load,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
