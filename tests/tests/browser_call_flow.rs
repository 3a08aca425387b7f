//! The showroom-to-1v1 flow in real Chromium, through the demo pages the node serves and the web SDK:
//! a host goes live with camera and microphone (auto-accept on), a viewer and an audience member watch,
//! the viewer places a paid call, the host's page accepts it, the room pauses for the audience while the
//! two talk 1v1, the viewer hangs up and the host is back live for everyone.
//!
//! `browser_media_live_then_1v1_then_live_again` checks what people see *and* that video really decodes
//! in each view (`getStats()` inbound-rtp `framesDecoded`), so it needs the node's media router;
//! `browser_signaling_flow_host_viewer_audience` is the same story without the media checks. Screenshots
//! of every phase go to `artifacts/browser/` (`artifacts/browser/signaling/` for the second).
//!
//! Chromium and chromedriver must be installed (`./scripts/test` installs them); without them these tests
//! fail, saying so.

use showcall_tests::TestNode;
use showcall_tests::browser::{Browsers, Page};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_media_live_then_1v1_then_live_again() {
    showroom_to_1v1(Media::Checked, "browser").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signaling_flow_host_viewer_audience() {
    showroom_to_1v1(Media::NotChecked, "browser/signaling").await;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Media {
    /// Every view must decode video.
    Checked,
    /// Only what the pages show from signaling is checked.
    NotChecked,
}

async fn showroom_to_1v1(media: Media, artifacts: &str) {
    let node = TestNode::start().await;
    let base = format!("http://{}", node.handle.signal_addr);
    let browsers = Browsers::start(artifacts).await;

    // The host goes live with camera and microphone, taking calls automatically.
    let host = browsers
        .open("host", &format!("{base}/host.html?uid=host"))
        .await;
    host.set_checked("auto-accept", true).await;
    host.click("go-live").await;
    host.wait_state("live-state", "live").await;
    host.wait_state("call-state", "prepared").await;

    // A viewer and an audience member watch the live room and see the host live.
    let viewer = browsers
        .open(
            "viewer",
            &format!("{base}/viewer.html?uid=viewer&host=host"),
        )
        .await;
    viewer.click("watch").await;
    let audience = browsers
        .open("audience", &format!("{base}/live.html?uid=fan-1&host=host"))
        .await;
    audience.click("watch").await;
    for page in [&viewer, &audience] {
        page.wait_state("live-state", "live").await;
    }
    viewer.wait_state("call-state", "prepared").await;
    if media == Media::Checked {
        for page in [&viewer, &audience] {
            page.wait_frames_above("live", 0).await;
        }
    }
    shoot(&[&host, &viewer, &audience], "1-live").await;

    // The viewer pays and calls; the host's page accepts on its own; both talk 1v1.
    viewer.click("call").await;
    for page in [&viewer, &host] {
        page.wait_state("call-state", "connected").await;
        page.wait_until("the 1v1 view", || page.is_visible("call-view"))
            .await;
    }
    // The live room pauses: the audience (and the viewer's live view) is told the host is in a private
    // call; the host's page shows its live publication paused.
    for page in [&audience, &viewer] {
        page.wait_state("live-state", "paused").await;
        assert_eq!(
            page.text("live-state").await,
            "host in a private call",
            "{}",
            page.name
        );
    }
    host.wait_state("live-state", "paused").await;
    if media == Media::Checked {
        for page in [&viewer, &host] {
            page.wait_frames_above("call", 0).await;
        }
    }
    shoot(&[&host, &viewer, &audience], "2-call").await;

    // The viewer hangs up: both are back to prepared, the 1v1 view closes, and the host is back live.
    let live_frames_before = if media == Media::Checked {
        Some((
            viewer.frames_decoded("live").await,
            audience.frames_decoded("live").await,
        ))
    } else {
        None
    };
    viewer.click("hangup").await;
    for page in [&viewer, &host] {
        page.wait_state("call-state", "prepared").await;
        page.wait_until("the 1v1 view to close", || async {
            !page.is_visible("call-view").await
        })
        .await;
    }
    assert!(
        viewer.text("last-call").await.contains("local hangup"),
        "viewer: {}",
        viewer.text("last-call").await
    );
    let host_end = host.text("last-call").await;
    assert!(
        host_end.contains("remote hangup") && host_end.contains("bye"),
        "host: {host_end}"
    );
    for page in [&audience, &viewer] {
        page.wait_state("live-state", "resumed").await;
        assert_eq!(page.text("live-state").await, "host back", "{}", page.name);
    }
    host.wait_state("live-state", "live").await;
    if let Some((viewer_before, audience_before)) = live_frames_before {
        // Decoding again: more frames than when the call was still on (paused, nothing was forwarded).
        viewer.wait_frames_above("live", viewer_before).await;
        audience.wait_frames_above("live", audience_before).await;
    }
    shoot(&[&host, &viewer, &audience], "3-back-live").await;

    for page in [host, viewer, audience] {
        page.close().await;
    }
    drop(browsers);
    node.handle.shutdown().await;
}

/// Saves `<phase>-<page>.png` for every page.
async fn shoot(pages: &[&Page], phase: &str) {
    for page in pages {
        page.screenshot(&format!("{phase}-{}", page.name)).await;
    }
}
