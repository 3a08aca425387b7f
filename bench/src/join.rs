//! `join`: a viewer joins a live room mid-GOP; how long until its first video frame.
//!
//! - The node is [`MediaNode`] (in this process, router workers on threads of their own). A broadcaster
//!   publishes the SDK's sample (a keyframe every 30 frames: a one-second GOP), each video frame
//!   `video_scale` times its size ([`clip::scaled`]) for a live room's bitrate.
//! - `viewers` receive-only viewers join one after another, each after a pause drawn from a seeded RNG
//!   (0–1000 ms, one GOP), so the join instants fall all over the GOP rather than on its grid. They stay
//!   joined and receiving, so later joins happen beside a growing audience.
//! - Per viewer: `JoinChannel` sent (with the viewer's offer, made just before) → the first video frame
//!   (`MediaStats::first_video_in`), and the session's ICE + DTLS connect (`MediaStats::connected_at`)
//!   → that frame. Before a viewer joins, its signaling client pings the node a few times: the median
//!   of those is `rtt_ms`, one WebSocket round trip through the node in this run; the goal is
//!   connect → first frame p99 ≤ `rtt_ms` + 20 ms. The connect itself (ICE + DTLS, ≥ 2 round trips) and
//!   the join request's reply are printed as phases.
//! - Where each first frame came from: the router's `keyframes_from_cache` counter, read before the join
//!   and after the first frame (joins do not overlap, and nothing else in the room starts a receiver),
//!   says whether the router served its kept keyframe; a viewer it did not is one that waited for a
//!   keyframe from the publisher, and is listed. Note that the SDK's publisher answers a keyframe
//!   request at once by skipping to its clip's next keyframe, so such a wait is a round trip plus up to
//!   one frame interval here, much less than a real encoder with a PLI throttle would cost.
//! - `--compare-tcp`: every other viewer joins over ICE-TCP only (`MediaOptions { udp: false }`: its
//!   session dials the router's passive TCP candidate), and the join → first frame and connect figures
//!   are also reported per transport (`by_transport`), so TCP's cost is read against UDP's in the same
//!   run, on the same room and GOP.

use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use showcall_sdk::{ChannelRole, MediaOptions, MediaPeer, MediaSession, SignalClient, TrackKind};
use tokio::sync::broadcast::error::RecvError;

use super::clip;
use super::media_node::MediaNode;
use super::report::{histogram, percentiles, progress};
use super::sdk_user::{guarded, login, publish};
use super::tokens::token_factory;

const ROOM: &str = "join_live";
/// Pings per viewer before its join: enough for a stable median, few enough not to matter.
const PINGS: usize = 5;
/// The longest pause between two joins: one GOP of the sample (a keyframe every 30 frames at 30 fps).
const MAX_PAUSE_MS: u64 = 1000;
/// The broadcaster runs this long before the first join, so its first keyframe is long kept.
const WARMUP: Duration = Duration::from_millis(1500);

/// One viewer's join, µs after `JoinChannel` was sent.
struct Joined {
    /// Making the viewer's peer and offer, before `JoinChannel` is sent (not part of the others).
    offer: u64,
    reply: u64,
    connected: u64,
    first_frame: u64,
    first_is_keyframe: bool,
    from_cache: bool,
}

fn micros(from: Instant, to: Instant) -> u64 {
    (to.saturating_duration_since(from).as_micros() as u64).max(1)
}

/// Joins one receive-only viewer and waits for its first video frame; the session stays open.
async fn join_one(
    node: &MediaNode,
    signal: &SignalClient,
    options: MediaOptions,
) -> anyhow::Result<(MediaSession, Joined)> {
    let cache_before = node.router.stats().await?.keyframes_from_cache;
    // The viewer's own peer (socket, str0m `Rtc`, offer) is made before the clock starts: it is the
    // client's work, and `offer` times it apart. No renegotiation is answered (`MediaSession::join`
    // would): a receive-only viewer of a room whose broadcaster stays is never re-offered.
    let made = Instant::now();
    let mut peer = MediaPeer::new(options)?;
    let offer = peer.create_offer(false)?;
    let t0 = Instant::now();
    let joined = signal
        .join_channel_with_offer(ROOM, ChannelRole::Audience, &offer)
        .await?;
    let replied = Instant::now();
    peer.accept_answer(&joined.sdp_answer)?;
    let media = peer.start()?;
    // Subscribed before ICE can have finished (that takes UDP round trips through the router), so the
    // first frame is seen here; `first_video_in` is the instant either way.
    let mut frames = media.subscribe_frames();
    let first_is_keyframe = guarded("first video frame", async {
        loop {
            match frames.recv().await {
                Ok(f) if f.kind == TrackKind::Video => return Ok(f.keyframe),
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => anyhow::bail!("media session ended"),
            }
        }
    })
    .await??;
    let stats = media.stats();
    let cache_after = node.router.stats().await?.keyframes_from_cache;
    let first = stats.first_video_in.unwrap_or_else(Instant::now);
    let connected = stats.connected_at.unwrap_or(first);
    let joined = Joined {
        offer: micros(made, t0),
        reply: micros(t0, replied),
        connected: micros(t0, connected),
        first_frame: micros(t0, first),
        first_is_keyframe,
        from_cache: cache_after > cache_before,
    };
    Ok((media, joined))
}

pub(super) async fn run(
    viewers: usize,
    video_scale: usize,
    seed: u64,
    compare_tcp: bool,
) -> anyhow::Result<()> {
    let config = super::report::loopback_node_config();
    let load = super::report::load_average();
    let node = MediaNode::start(&config).await?;
    let token = token_factory(&config);
    let source = clip::scaled(video_scale)?;

    let host = login(&node.url, &token("join-host")?).await?;
    let broadcaster = publish(&host, ROOM, source).await?;
    guarded("broadcaster connects", broadcaster.wait_connected()).await??;
    tokio::time::sleep(WARMUP).await;
    let requests_before = broadcaster.stats().keyframe_requests_in;

    let mut rng = StdRng::seed_from_u64(seed);
    let mut rtt = histogram();
    let (mut offer, mut reply, mut connect) = (histogram(), histogram(), histogram());
    let (mut join_to_frame, mut connect_to_frame) = (histogram(), histogram());
    let mut waited = Vec::new();
    let mut all = Vec::with_capacity(viewers);
    let mut not_keyframe = 0u64;
    let mut members = Vec::with_capacity(viewers);
    // Per transport (`--compare-tcp`): join → first frame, and join → connected.
    let (mut udp_first, mut udp_connect) = (histogram(), histogram());
    let (mut tcp_first, mut tcp_connect) = (histogram(), histogram());
    let bar = progress(viewers as u64, "viewers");
    for i in 0..viewers {
        let signal = login(&node.url, &token(&format!("joiner-{i}"))?).await?;
        for _ in 0..PINGS {
            let t = Instant::now();
            signal.ping().await?;
            rtt.record(micros(t, Instant::now()))?;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=MAX_PAUSE_MS))).await;
        let over_tcp = compare_tcp && i % 2 == 1;
        let options = MediaOptions {
            udp: !over_tcp,
            ..MediaOptions::default()
        };
        let (media, j) = join_one(&node, &signal, options).await?;
        let transport = media.stats().transport;
        if over_tcp && transport != Some(showcall_sdk::MediaTransport::Tcp) {
            anyhow::bail!("viewer {i} was to join over TCP and connected over {transport:?}");
        }
        let (first, connected) = if over_tcp {
            (&mut tcp_first, &mut tcp_connect)
        } else {
            (&mut udp_first, &mut udp_connect)
        };
        first.record(j.first_frame)?;
        connected.record(j.connected)?;
        offer.record(j.offer)?;
        reply.record(j.reply)?;
        connect.record(j.connected)?;
        join_to_frame.record(j.first_frame)?;
        let after_connect = j.first_frame.saturating_sub(j.connected).max(1);
        connect_to_frame.record(after_connect)?;
        not_keyframe += u64::from(!j.first_is_keyframe);
        if !j.from_cache {
            waited.push(serde_json::json!({
                "viewer": i,
                "connect_to_first_frame_ms": after_connect as f64 / 1000.0,
                "first_frame_is_keyframe": j.first_is_keyframe,
            }));
        }
        all.push((after_connect, i, j));
        members.push((signal, media));
        bar.inc(1);
    }
    bar.finish();
    let requests = broadcaster.stats().keyframe_requests_in - requests_before;
    drop(members);
    drop(broadcaster);
    node.shutdown().await;

    // The slowest few, whole: where a tail comes from (the join reply, the connect, or after it).
    all.sort_by_key(|(after_connect, ..)| std::cmp::Reverse(*after_connect));
    let ms = |us: u64| us as f64 / 1000.0;
    let slowest: Vec<_> = all
        .iter()
        .take(3)
        .map(|(_, i, j)| {
            serde_json::json!({
                "viewer": i,
                "join_to_reply_ms": ms(j.reply),
                "join_to_connected_ms": ms(j.connected),
                "join_to_first_frame_ms": ms(j.first_frame),
                "from_cache": j.from_cache,
            })
        })
        .collect();
    let rtt_ms = rtt.value_at_quantile(0.5) as f64 / 1000.0;
    let goal_ms = rtt_ms + 20.0;
    let p99_ms = connect_to_frame.value_at_quantile(0.99) as f64 / 1000.0;
    let by_transport = compare_tcp.then(|| {
        serde_json::json!({
            "udp": {
                "viewers": udp_first.len(),
                "join_to_first_video_frame": percentiles(&udp_first),
                "join_to_connected": percentiles(&udp_connect),
            },
            "tcp": {
                "viewers": tcp_first.len(),
                "join_to_first_video_frame": percentiles(&tcp_first),
                "join_to_connected": percentiles(&tcp_connect),
            },
            "tcp_over_udp_first_frame_p50": tcp_first.value_at_quantile(0.5) as f64
                / udp_first.value_at_quantile(0.5).max(1) as f64,
            "tcp_over_udp_first_frame_p99": tcp_first.value_at_quantile(0.99) as f64
                / udp_first.value_at_quantile(0.99).max(1) as f64,
        })
    });
    let result = serde_json::json!({
        "bench": "join",
        "viewers": viewers,
        "video_scale": video_scale,
        "seed": seed,
        "join_to_first_video_frame": percentiles(&join_to_frame),
        "connect_to_first_video_frame": percentiles(&connect_to_frame),
        "phases": {
            "client_makes_offer_before_join": percentiles(&offer),
            "join_to_reply": percentiles(&reply),
            "join_to_connected": percentiles(&connect),
        },
        "rtt": percentiles(&rtt),
        "rtt_ms": rtt_ms,
        "goal_ms": goal_ms,
        "connect_to_first_frame_p99_over_goal": p99_ms / goal_ms,
        "first_frames_from_cache": viewers - waited.len(),
        "first_frames_not_keyframes": not_keyframe,
        "keyframe_requests_to_broadcaster": requests,
        "waited_for_publisher": waited,
        "slowest_after_connect": slowest,
        "loadavg_at_start": load,
        "by_transport": by_transport,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
