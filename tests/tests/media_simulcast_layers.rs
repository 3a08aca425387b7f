//! A host publishes its video as three simulcast layers (the Rust SDK's `simulcast` option: the sample at
//! 320x240, 160x120 and 80x60, rids `h`, `m`, `l`) and the router forwards one layer to each receiver:
//! the top one by default — to the live room's viewers and to the host's 1v1 partner alike — and a
//! smaller one to a viewer that asks for it (`SetVideoLayer`, a small window), switched at that layer's
//! keyframe without a break: the viewer's decoder gets every frame in order (no gap, RTP time only going
//! forward), and on the wire one SSRC whose sequence numbers step by exactly one across the switches.
//!
//! Which layer a frame came from is read from the frame itself: the frames a viewer decodes are the very
//! VP8 frames of the sample's clips (the router rewrites RTP headers, never payloads), so each is found
//! in exactly one layer's clip, and a keyframe carries its picture size (RFC 6386 §9.1).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use showcall_sdk::media::{MediaOptions, MediaSession, ReceivedFrame};
use showcall_sdk::{
    CallState, CallStateReason, CallType, ChannelRole, ErrorCode, PrepareConfig, ProbeOptions,
    RtpProbe, TrackKind, VideoLayer,
};
use showcall_tests::narrow_link::{keyframe_size, layer_of_frames};
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::{SdkUser, refusal};
use showcall_tests::{DEADLINE, TestNode};
use tokio::sync::broadcast::{self, error::RecvError};

const LIVE: &str = "host_live";
const KEEP: usize = 1 << 16;

/// The sample's layers as the host sends them, best first.
const SIZES: [(u16, u16); 3] = [(320, 240), (160, 120), (80, 60)];

fn simulcast() -> MediaOptions {
    MediaOptions {
        simulcast: true,
        ..MediaOptions::default()
    }
}

/// Video frames as they arrive, until a keyframe of `size` (included); a stream that stops fails the
/// test after the harness's deadline instead of hanging it.
async fn video_until_keyframe_of(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
    size: (u16, u16),
) -> Vec<ReceivedFrame> {
    tokio::time::timeout(DEADLINE, receive_until_keyframe_of(frames, size))
        .await
        .unwrap_or_else(|_| panic!("no keyframe of {size:?} within {DEADLINE:?}"))
}

async fn receive_until_keyframe_of(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
    size: (u16, u16),
) -> Vec<ReceivedFrame> {
    let mut seen = Vec::new();
    loop {
        match frames.recv().await {
            Ok(frame) if frame.kind == TrackKind::Video => {
                let done = frame.keyframe && keyframe_size(&frame.data) == Some(size);
                seen.push(frame);
                if done {
                    return seen;
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => panic!("the test fell {n} frames behind"),
            Err(RecvError::Closed) => panic!("the viewer's session ended"),
        }
    }
}

/// The next `n` video frames.
async fn more_video_frames(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
    n: usize,
) -> Vec<ReceivedFrame> {
    let mut seen = Vec::new();
    while seen.len() < n {
        match frames.recv().await {
            Ok(frame) if frame.kind == TrackKind::Video => seen.push(frame),
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => panic!("the test fell {n} frames behind"),
            Err(RecvError::Closed) => panic!("the viewer's session ended"),
        }
    }
    seen
}

/// The layer of every frame, in order.
fn layers(frames: &[ReceivedFrame], of: &HashMap<Arc<[u8]>, usize>) -> Vec<usize> {
    frames
        .iter()
        .map(|f| {
            *of.get(&f.data)
                .unwrap_or_else(|| panic!("a frame of none of the host's clips: {f:?}"))
        })
        .collect()
}

/// The frames' layers run as `expected` runs of one layer each (e.g. top…, then low…).
fn assert_runs(layers: &[usize], expected: &[usize], what: &str) {
    let mut runs: Vec<usize> = Vec::new();
    for l in layers {
        if runs.last() != Some(l) {
            runs.push(*l);
        }
    }
    assert_eq!(runs, expected, "{what}: layer of each frame {layers:?}");
}

/// Every frame followed the previous one without a loss and later in RTP time.
fn assert_unbroken(frames: &[ReceivedFrame], what: &str) {
    for pair in frames.windows(2) {
        assert!(
            pair[1].contiguous,
            "{what}: a gap before a frame: {:?}",
            pair[1]
        );
        assert!(
            pair[1].rtp_time > pair[0].rtp_time,
            "{what}: RTP time went from {} to {}",
            pair[0].rtp_time,
            pair[1].rtp_time
        );
    }
}

/// The probe's video came on one SSRC, each sequence number the previous one's + 1 (mod 2^16).
fn assert_one_continuous_video_stream(probe: &RtpProbe) {
    let packets = probe.packets();
    assert!(packets.len() < KEEP, "every packet was kept");
    let video: Vec<_> = packets
        .iter()
        .filter(|p| p.kind == TrackKind::Video)
        .collect();
    let mut by_ssrc: BTreeMap<u32, u64> = BTreeMap::new();
    for p in &video {
        *by_ssrc.entry(p.ssrc).or_default() += 1;
    }
    assert_eq!(by_ssrc.len(), 1, "video on one SSRC: {by_ssrc:?}");
    for (i, pair) in video.windows(2).enumerate() {
        assert_eq!(
            pair[1].seq,
            pair[0].seq.wrapping_add(1),
            "video steps from {} to {} at packet {i}: {:#?}",
            pair[0].seq,
            pair[1].seq,
            pair
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_gets_the_top_layer_and_a_smaller_one_when_it_asks_without_a_break() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let (_host_live, _) =
        MediaSession::join(&host.signal, LIVE, ChannelRole::Broadcaster, simulcast())
            .await
            .expect("the host goes live with three layers");
    let of = layer_of_frames();

    let fan = SdkUser::login(&node, "fan").await;
    let fan_media = fan.join_media(LIVE, ChannelRole::Audience).await;
    let mut frames = fan_media.subscribe_frames();
    let prober = SdkUser::login(&node, "prober").await;
    let (probe, _) = RtpProbe::join(
        &prober.signal,
        LIVE,
        ProbeOptions {
            keep_packets: KEEP,
            ..ProbeOptions::default()
        },
    )
    .await
    .expect("the probe joins as audience");

    // By default: the top layer, full size.
    let first = video_until_keyframe_of(&mut frames, SIZES[0]).await;
    let top = more_video_frames(&mut frames, 30).await;
    assert_runs(&layers(&top, &of), &[0], "a viewer that asks nothing");
    probe
        .wait_packets(TrackKind::Video, 60)
        .await
        .expect("the probe's video arrives");

    // A small window: the low layer, from its next keyframe on. The probe asks first, so the keyframe
    // that switches the viewer (asked for after both) switches the probe too, if nothing before did.
    prober
        .signal
        .set_video_layer(LIVE, VideoLayer::Low)
        .await
        .expect("the probe's layer is capped");
    fan.signal
        .set_video_layer(LIVE, VideoLayer::Low)
        .await
        .expect("the layer is capped");
    let mut down = video_until_keyframe_of(&mut frames, SIZES[2]).await;
    down.extend(more_video_frames(&mut frames, 30).await);
    assert_runs(&layers(&down, &of), &[0, 2], "capped at the low layer");
    let all: Vec<ReceivedFrame> = first.iter().chain(&top).chain(&down).cloned().collect();
    assert_unbroken(&all, "switching down");

    // While it is there, the node's metrics count one switch per receiver and both on the low layer.
    let metrics = scrape(node.handle.http_addr).await;
    assert_eq!(
        metrics.get("showcall_media_layer_receivers{layer=\"low\"}"),
        2.0
    );
    assert_eq!(metrics.get("showcall_media_layer_switches_total"), 2.0);

    // The window grows again: back to the top layer at its keyframe.
    fan.signal
        .set_video_layer(LIVE, VideoLayer::High)
        .await
        .expect("the cap is lifted");
    prober
        .signal
        .set_video_layer(LIVE, VideoLayer::High)
        .await
        .expect("the probe's cap is lifted");
    let mut up = video_until_keyframe_of(&mut frames, SIZES[0]).await;
    up.extend(more_video_frames(&mut frames, 30).await);
    assert_runs(&layers(&up, &of), &[2, 0], "the cap lifted");
    let all: Vec<ReceivedFrame> = all.into_iter().chain(up).collect();
    assert_unbroken(&all, "switching down and up");

    let now = probe.stats().video_packets;
    probe
        .wait_packets(TrackKind::Video, now + 60)
        .await
        .expect("the probe's video goes on");
    assert_one_continuous_video_stream(&probe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_call_partner_receives_the_top_layer_both_sending_simulcast() {
    let node = TestNode::start().await;
    let mut host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let created = viewer
        .api
        .call("host", CallType::Video, Default::default())
        .await
        .expect("call placed");
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    host.api.accept("viewer").await.expect("accepted");
    // Both parties publish three layers (a line a party sends simulcast on is also the one it
    // receives on).
    let (viewer_media, _) = MediaSession::join(
        &viewer.signal,
        &created.channel,
        ChannelRole::Broadcaster,
        simulcast(),
    )
    .await
    .expect("the viewer joins the call with three layers");
    let mut frames = viewer_media.subscribe_frames();
    let (host_media, _) = MediaSession::join(
        &host.signal,
        &created.channel,
        ChannelRole::Broadcaster,
        simulcast(),
    )
    .await
    .expect("the host joins the call with three layers");
    viewer
        .wait_state(CallState::Connected, CallStateReason::RecvRemoteFirstFrame)
        .await;

    let mut host_frames = host_media.subscribe_frames();
    let of = layer_of_frames();
    video_until_keyframe_of(&mut frames, SIZES[0]).await;
    let call = more_video_frames(&mut frames, 30).await;
    assert_runs(&layers(&call, &of), &[0], "the call partner");
    assert_unbroken(&call, "the call");
    // And the host gets the partner's top layer the same way.
    video_until_keyframe_of(&mut host_frames, SIZES[0]).await;
    let back = more_video_frames(&mut host_frames, 30).await;
    assert_runs(&layers(&back, &of), &[0], "the host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_request_out_of_place_is_refused_and_changes_nothing() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let (_host_live, _) =
        MediaSession::join(&host.signal, LIVE, ChannelRole::Broadcaster, simulcast())
            .await
            .expect("the host goes live with three layers");
    let fan = SdkUser::login(&node, "fan").await;
    let fan_media = fan.join_media(LIVE, ChannelRole::Audience).await;
    let mut frames = fan_media.subscribe_frames();
    video_until_keyframe_of(&mut frames, SIZES[0]).await;

    assert_eq!(
        refusal(
            fan.signal
                .set_video_layer(LIVE, VideoLayer::Unspecified)
                .await
        ),
        ErrorCode::InvalidArgument,
        "no such layer"
    );
    assert_eq!(
        refusal(
            fan.signal
                .set_video_layer("elsewhere", VideoLayer::Low)
                .await
        ),
        ErrorCode::NotInChannel
    );
    // In the channel, but without media: nothing to cap.
    let lurker = SdkUser::login(&node, "lurker").await;
    lurker.join(LIVE, ChannelRole::Audience).await;
    assert_eq!(
        refusal(lurker.signal.set_video_layer(LIVE, VideoLayer::Low).await),
        ErrorCode::NotAllowed
    );

    // The viewer still gets the top layer, frame after frame.
    let after = more_video_frames(&mut frames, 40).await;
    assert_runs(
        &layers(&after, &layer_of_frames()),
        &[0],
        "after the refusals",
    );
    assert_unbroken(&after, "after the refusals");
}
