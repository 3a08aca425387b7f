//! Per-viewer bandwidth adaptation: a host publishes three simulcast layers (the Rust SDK's sample:
//! 320x240, 160x120 and 80x60, about 210, 90 and 40 kbit/s of video, with 35 kbit/s of audio); three
//! viewers watch, one of them through a link the test narrows to 200 kbit/s (a user-space shaped relay:
//! a bottleneck with a 200 ms queue that drops what does not fit). The router's estimate of that viewer's
//! bandwidth (str0m's GoogCC over the viewer's TWCC feedback) falls, and it is switched to a lower layer
//! — the frames it decodes are smaller ones — while the other two keep the top layer; its video goes on
//! with little loss. The limit lifted, the estimate climbs (the router pads towards the next layer) and
//! the viewer is back on the top layer. (200 rather than the 300 kbit/s: the sample's top layer
//! and audio together are under 300 kbit/s, so 300 would narrow nothing.)
//!
//! The node's /metrics show the estimates as a histogram.

use showcall_sdk::ChannelRole;
use showcall_sdk::media::MediaSession;
use showcall_tests::narrow_link::{
    SIZES, host_live_with_layers, join_behind, layer_of_frames, layers, video_frames,
    video_until_keyframe,
};
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::shaped_relay::Shape;
use showcall_tests::{DEADLINE, TestNode};

const LIVE: &str = "host_live";
/// The narrowed link: between the medium layer with audio and the top layer with audio.
const NARROW_BPS: u64 = 200_000;
/// Frames looked at on a layer once a viewer is on it.
const RUN: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_whose_link_narrows_gets_a_lower_layer_and_climbs_back_when_it_widens() {
    // What the router decided for the viewer, shown if this fails.
    showcall_tests::test_log::log_to_test_output("info,showcall_media=debug");
    let node = TestNode::start().await;
    let (_host, _host_live) = host_live_with_layers(&node, LIVE).await;
    let of = layer_of_frames();

    let wide: Vec<(SdkUser, MediaSession)> = {
        let mut wide = Vec::new();
        for id in ["wide-1", "wide-2"] {
            let user = SdkUser::login(&node, id).await;
            let media = user.join_media(LIVE, ChannelRole::Audience).await;
            wide.push((user, media));
        }
        wide
    };
    let narrow_user = SdkUser::login(&node, "narrow").await;
    let (narrow, relay) = join_behind(&narrow_user, LIVE, Shape::open()).await;
    let mut frames = narrow.subscribe_frames();

    // An open link: the top layer, like everyone.
    video_until_keyframe(&mut frames, DEADLINE, |size| size == SIZES[0]).await;
    let top = layers(&video_frames(&mut frames, 30).await, &of);
    assert!(top.iter().all(|l| *l == 0), "on an open link: {top:?}");

    // The link narrows: a smaller picture from a lower layer's keyframe on.
    relay.set_rate(Some(NARROW_BPS));
    let before = relay.counts();
    let down = video_until_keyframe(&mut frames, DEADLINE, |size| size != SIZES[0]).await;
    println!(
        "narrowed: {} frames until the switch, relay {:?}",
        down.len(),
        relay.counts()
    );
    let at_switch = relay.counts();
    let run = video_frames(&mut frames, RUN).await;
    let run_layers = layers(&run, &of);
    assert!(
        run_layers.iter().all(|l| *l > 0),
        "behind {NARROW_BPS} bit/s, no top-layer frame: {run_layers:?}"
    );
    // Little loss once it is there: the frames follow each other whole (the router resends what the
    // link dropped, and a lower layer leaves the queue room).
    let broken = run.iter().filter(|f| !f.contiguous).count();
    let after = relay.counts();
    println!(
        "on the lower layers: {broken} of {RUN} frames after a gap; relay drops {} while switching, {} after",
        at_switch.dropped - before.dropped,
        after.dropped - at_switch.dropped
    );
    assert!(
        broken * 10 <= RUN,
        "{broken} of {RUN} frames followed a gap on the narrow link: {run_layers:?}, relay {after:?}"
    );

    // The others were never touched.
    for (user, media) in &wide {
        let mut theirs = media.subscribe_frames();
        let got = layers(&video_frames(&mut theirs, 30).await, &of);
        assert!(
            got.iter().all(|l| *l == 0),
            "{} on an open link: {got:?}",
            user.id
        );
    }

    // Widened again: back to the top layer (the estimate grows while the router pads towards the next
    // layer, then a better layer must fit for a while before the switch: a generous wait).
    relay.set_rate(None);
    let up = video_until_keyframe(&mut frames, 3 * DEADLINE, |size| size == SIZES[0]).await;
    println!("widened: {} frames until the top layer", up.len());
    let back = layers(&video_frames(&mut frames, 30).await, &of);
    assert!(back.iter().all(|l| *l == 0), "the link widened: {back:?}");

    // Every estimate was counted.
    let metrics = scrape(node.handle.http_addr).await;
    let count = metrics.get("showcall_media_bandwidth_estimate_bps_count");
    assert!(count > 0.0, "estimates counted: {count}");
    assert!(
        metrics.get("showcall_media_bandwidth_estimate_bps_bucket{le=\"300000\"}") > 0.0,
        "the narrow link's estimates are in the low buckets"
    );
    assert_eq!(
        metrics.get("showcall_media_bandwidth_estimate_bps_bucket{le=\"+Inf\"}"),
        count
    );
}
