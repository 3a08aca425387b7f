//! A Chromium viewer whose media path goes dead under it — its network drops for a while, signaling stays
//! — has the web SDK restart ICE by itself and watches again on the same session: Chromium reports the
//! connection `disconnected` (its consent checks go unanswered), the MediaClient restarts ICE once that
//! lasts `iceRestartDelayMs` (or at once on `failed`), and when the path is back the new checks get through
//! and the page decodes again. The browser half of `media_viewer_whose_path_dies_restarts_ice_by_itself`
//! (same topology); the restart an app starts itself is `browser_viewer_restarts_ice`.
//!
//! Chromium and its chromedriver run in a network namespace (`Browsers::start_isolated`). The node's
//! signaling and pages listen on the link's first address, its media on a second one
//! (`IsolatedHost::add_outside_address`). The test takes that second address away — the media path dies,
//! signaling goes on — waits until the page has restarted ICE, gives the address back, and waits for
//! frames again. The host publishes from outside and loses its path too; the Rust SDK restarts it by
//! itself.
//!
//! Needs root (network namespaces), Chromium and chromedriver. Screenshots go to
//! `artifacts/browser/ice_auto_restart/`.

use showcall_sdk::ChannelRole;
use showcall_tests::browser::Browsers;
use showcall_tests::netns::MediaPathThatDies;
use showcall_tests::sdk_helpers::SdkUser;

const HOST: &str = "host";
const LIVE: &str = "host_live";
/// Video frames that show the page is watching: a second of the host's 30 fps.
const FRAMES: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_viewer_whose_media_path_dies_restarts_ice_by_itself_and_watches_again() {
    let world = MediaPathThatDies::start().await;
    let node = &world.node;
    let host = SdkUser::login(node, HOST).await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    let browsers =
        Browsers::start_isolated("browser/ice_auto_restart", &world.network, Vec::new()).await;
    let base = format!("http://{}", node.handle.signal_addr);
    let viewer = browsers
        .open("viewer", &format!("{base}/live.html?uid=fan-1&host={HOST}"))
        .await;
    viewer.click("watch").await;
    viewer.wait_state("live-state", "live").await;
    let before = viewer.wait_frames_above("live", FRAMES).await;
    let restarts = async || {
        viewer
            .eval("return window.demo.live.iceRestarts;", vec![])
            .await
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(restarts().await, 0);

    world.kill();
    viewer
        .wait_until("the page restarted ICE by itself", async || {
            restarts().await >= 1
        })
        .await;
    world.revive();

    viewer.wait_frames_above("live", before + FRAMES).await;
    viewer.screenshot("watching-after-the-path-came-back").await;
    assert_eq!(viewer.media_status("live").await, "media:connected");

    viewer.close().await;
    drop(browsers);
    world.node.handle.shutdown().await;
}
