//! Per-viewer bandwidth adaptation seen from Chromium: a host publishes three simulcast layers (the Rust
//! SDK's sample: 320x240, 160x120 and 80x60, about 210, 90 and 40 kbit/s of video, with 35 kbit/s of
//! audio) and a Chromium viewer watches through a link the test narrows to 200 kbit/s (the user-space
//! shaped relay: a bottleneck with a 200 ms queue that drops what does not fit). The router's estimate of
//! the viewer's bandwidth (str0m's GoogCC over Chromium's transport-wide feedback) falls and the page
//! decodes smaller frames — its own `getStats()` inbound-rtp `frameWidth` — and goes on decoding; the
//! limit lifted, it is back at full width. The browser half of
//! `media_viewer_on_a_narrow_link_gets_a_lower_layer_and_climbs_back`.
//!
//! The viewer's media can only go through the relay (`narrow_link::ChromiumBehindLink`): Chromium and
//! its chromedriver run in a network namespace (`Browsers::start_isolated`) that reaches the node's signaling and pages (on the link's
//! address) and the relay (on the same address), not the node's media socket (on 127.0.0.1 of this
//! namespace). The page is pointed at the relay the way the Rust test points its viewer: the host
//! candidate of the node's SDP is rewritten — here by wrapping the page's `setRemoteDescription` before
//! it watches. The host publishes from this namespace, straight to the node.
//!
//! Needs root (network namespaces), Chromium and chromedriver. Screenshots go to
//! `artifacts/browser/narrow_link/`.

use showcall_tests::narrow_link::{ChromiumBehindLink, SIZES};

const LIVE: &str = "host_live";
/// The narrowed link: between the medium layer with audio and the top layer with audio.
const NARROW_BPS: u64 = 200_000;
/// Decoded frames at a width that show the decoder goes on there (a second of the sample's 30 fps).
const FRAMES: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_viewer_whose_link_narrows_decodes_a_smaller_layer_and_climbs_back() {
    // What the router decided for the viewer, shown if this fails.
    showcall_tests::test_log::log_to_test_output("info,showcall_media=debug");
    let link = ChromiumBehindLink::start("browser/narrow_link", LIVE).await;
    let (viewer, relay) = (&link.viewer, &link.relay);
    assert!(
        relay.counts().delivered > 0,
        "the page's media comes through the relay"
    );

    // An open link: the top layer.
    let top = u64::from(SIZES[0].0);
    viewer
        .decodes_width(FRAMES, &format!("frames {top} wide"), |w| w == top)
        .await;
    viewer.screenshot("1-open").await;

    // The link narrows: smaller frames, and the decoder goes on.
    relay.set_rate(Some(NARROW_BPS));
    let small = viewer
        .decodes_width(
            FRAMES,
            &format!("frames narrower than {top} behind {NARROW_BPS} bit/s"),
            |w| w > 0 && w < top,
        )
        .await;
    println!("narrowed: {small} wide, relay {:?}", relay.counts());
    viewer.screenshot("2-narrow").await;

    // Widened again: back at full width (the estimate grows while the router pads towards the next
    // layer, then a better layer must fit for a while before the switch).
    relay.set_rate(None);
    viewer
        .decodes_width(
            FRAMES,
            &format!("frames {top} wide again (from {small})"),
            |w| w == top,
        )
        .await;
    viewer.screenshot("3-open-again").await;
    assert_eq!(viewer.media_status("live").await, "media:connected");

    link.close().await;
}
