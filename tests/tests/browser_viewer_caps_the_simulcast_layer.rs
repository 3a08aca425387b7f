//! Simulcast in real Chromium, through the demo pages and the web SDK (simulcast on by default): the host's
//! page publishes its camera as up to three layers (rids `h`, `m`, `l`; Chromium decides how many a
//! 640x360 camera picture gets), an audience page decodes the best one, then caps its layer at the low one
//! (`MediaClient.setVideoLayer`, a small window) and decodes smaller frames from the switch on, without
//! its decoder stopping — Chromium's VP8 decoder checks PictureID and TL0PICIDX continuity, which the
//! router rewrites across the switch — and back at full size when the cap is lifted.
//!
//! What is read is what the page's own `getStats()` says: inbound-rtp `frameWidth`/`frameHeight` (the
//! last decoded frame's size) and `framesDecoded`; the host page's outbound-rtp reports show which layers
//! it sends (printed on failure). Chromium and chromedriver must be installed (`./scripts/test` installs
//! them). Screenshots go to `artifacts/browser/simulcast/`.

use serde_json::Value;
use showcall_tests::TestNode;
use showcall_tests::browser::{Browsers, Page};

/// Decoded frames after a switch that show the decoder goes on (a second at 30 fps).
const FRAMES: u64 = 30;

/// The layers the host page sends (rid, width, frames sent).
async fn sent_layers(host: &Page) -> Value {
    let script = "const done = arguments[arguments.length - 1]; \
                  window.demo.sentLayers('live').then(done, (e) => done(String(e)));";
    host.client
        .execute_async(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{}: getStats failed: {e}", host.name))
}

/// The widths of the layers the host page is sending (those with frames).
async fn sending_widths(host: &Page) -> Vec<u64> {
    let layers = sent_layers(host).await;
    layers
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| l["width"].as_u64().unwrap_or(0))
                .filter(|w| *w > 0)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_viewer_caps_the_simulcast_layer_and_lifts_it() {
    let node = TestNode::start().await;
    let base = format!("http://{}", node.handle.signal_addr);
    let browsers = Browsers::start("browser/simulcast").await;

    let host = browsers
        .open("host", &format!("{base}/host.html?uid=host"))
        .await;
    host.click("go-live").await;
    host.wait_state("live-state", "live").await;
    let audience = browsers
        .open("audience", &format!("{base}/live.html?uid=fan-1&host=host"))
        .await;
    audience.click("watch").await;
    audience.wait_state("live-state", "live").await;
    audience.wait_frames_above("live", 0).await;

    // The host's browser sends several layers (it starts with fewer while its bandwidth estimate
    // grows); the viewer decodes the biggest.
    host.wait_until("the host to send two layers or more", || async {
        sending_widths(&host).await.len() >= 2
    })
    .await;
    let top = sending_widths(&host).await.into_iter().max().unwrap_or(0);
    let full = audience
        .decodes_width(
            FRAMES,
            &format!("frames of the top layer, {top} wide"),
            |w| w == top,
        )
        .await;
    host.screenshot("1-full-host").await;
    audience.screenshot("1-full").await;

    audience.set_video_layer("VIDEO_LAYER_LOW").await;
    let layers = sent_layers(&host).await;
    let small = audience
        .decodes_width(
            FRAMES,
            &format!("frames smaller than {full} wide (host sends {layers})"),
            |w| w > 0 && w < full,
        )
        .await;
    audience.screenshot("2-low").await;

    audience.set_video_layer("VIDEO_LAYER_HIGH").await;
    audience
        .decodes_width(
            FRAMES,
            &format!("frames {full} wide again (from {small})"),
            |w| w == full,
        )
        .await;
    audience.screenshot("3-full-again").await;

    for page in [host, audience] {
        page.close().await;
    }
    drop(browsers);
    node.handle.shutdown().await;
}
