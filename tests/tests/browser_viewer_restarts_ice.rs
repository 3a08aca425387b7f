//! A Chromium viewer restarts ICE on its live session and keeps watching: the web SDK's
//! `MediaClient.restartIce()` — what it runs by itself when the connection goes `failed` or stays
//! `disconnected` after a network change — sends Chromium's `createOffer({ iceRestart: true })` as
//! `RestartIce` over the page's signaling session, applies the node's answer, and the page goes on
//! decoding on the same session. The browser half of `media_viewer_network_change_restarts_ice` (the Rust
//! SDK's restart).
//!
//! The restart is started by the test (as an app that learns of a network change would call it), not by a
//! real network change: a headless Chromium on one loopback has no network to lose. What it checks is that
//! the router takes a real browser's ICE restart offer (Chromium's credentials, lines and directions) as one
//! and that the browser's media goes on through it: the node's credentials changed (the `usernameFragment`
//! of the remote candidate Chromium selected), more frames decoded after the restart, no renegotiation of
//! tracks, and the operator's counter.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use showcall_sdk::ChannelRole;
use showcall_tests::TestNode;
use showcall_tests::browser::{Browsers, Page};
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::SdkUser;

const HOST: &str = "host";
const LIVE: &str = "host_live";
/// Video frames that show the page is watching: a second of the host's 30 fps.
const FRAMES: u64 = 30;
const ICE_RESTARTS: &str = "showcall_media_ice_restarts_total";

/// Restarts ICE on the live view; the MediaClient's restart count after it, or the error.
const RESTART_ICE: &str = r#"
const done = arguments[arguments.length - 1];
window.demo.live.restartIce()
  .then(() => done({ restarts: window.demo.live.iceRestarts }), (e) => done({ error: String(e) }));
"#;

/// The ufrag of the remote candidate the live view's transport selected (`null` before one is).
const SELECTED_REMOTE_UFRAG: &str = r#"
const done = arguments[arguments.length - 1];
(async () => {
  const pc = window.demo.live && window.demo.live.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let ufrag = null;
  stats.forEach((s) => {
    if (s.type !== 'transport' || !s.selectedCandidatePairId) return;
    const pair = stats.get(s.selectedCandidatePairId);
    const remote = pair && stats.get(pair.remoteCandidateId);
    if (pair && pair.state === 'succeeded' && remote) ufrag = remote.usernameFragment || null;
  });
  return ufrag;
})().then(done, () => done(null));
"#;

async fn selected_remote_ufrag(page: &Page) -> Value {
    page.client
        .execute_async(SELECTED_REMOTE_UFRAG, vec![])
        .await
        .unwrap_or_else(|e| panic!("{}: getStats failed: {e}", page.name))
}

/// Waits until the selected pair's remote ufrag is a string other than `not` (`Null`: any); that ufrag.
async fn wait_selected_ufrag_other_than(page: &Page, not: &Value) -> Value {
    let seen = Arc::new(Mutex::new(Value::Null));
    page.wait_until(
        "a selected candidate pair with the node's current ufrag",
        || {
            let seen = seen.clone();
            let not = not.clone();
            async move {
                let ufrag = selected_remote_ufrag(page).await;
                let other = ufrag.is_string() && ufrag != not;
                *seen.lock().expect("not poisoned") = ufrag;
                other
            }
        },
    )
    .await;
    seen.lock().expect("not poisoned").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_viewer_restarts_ice_and_keeps_watching() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, HOST).await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    let browsers = Browsers::start("browser/ice_restart").await;
    let base = format!("http://{}", node.handle.signal_addr);
    let viewer = browsers
        .open("viewer", &format!("{base}/live.html?uid=fan-1&host={HOST}"))
        .await;
    viewer.click("watch").await;
    viewer.wait_state("live-state", "live").await;
    let before = viewer.wait_frames_above("live", FRAMES).await;
    let old_ufrag = wait_selected_ufrag_other_than(&viewer, &Value::Null).await;

    let restarted = viewer
        .client
        .execute_async(RESTART_ICE, vec![])
        .await
        .unwrap_or_else(|e| panic!("restartIce failed to run: {e}"));
    if restarted.get("error").is_some() {
        viewer
            .fail(&format!("the ICE restart was refused: {restarted}"))
            .await;
    }
    assert_eq!(restarted, json!({ "restarts": 1 }));

    // The page goes on decoding, over a pair checked with the node's new credentials.
    let new_ufrag = wait_selected_ufrag_other_than(&viewer, &old_ufrag).await;
    assert_ne!(new_ufrag, old_ufrag);
    viewer.wait_frames_above("live", before + FRAMES).await;
    viewer.screenshot("watching-after-restart").await;
    assert_eq!(viewer.media_status("live").await, "media:connected");
    assert_eq!(scrape(node.handle.http_addr).await.get(ICE_RESTARTS), 1.0);

    viewer.close().await;
    drop(browsers);
    node.handle.shutdown().await;
}
