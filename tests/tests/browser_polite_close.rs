//! A host whose browser closes its peer connection (`pc.close()`, which sends DTLS close_notify) while
//! it stays in its live room is removed from the media router at once, like any other ending: the
//! audience is re-offered without the host's tracks, their own sessions staying up.
//!
//! Chromium and chromedriver must be installed (`./scripts/test` installs them); without them this test
//! fails, saying so. Screenshots go to `artifacts/browser/polite_close/`.

use serde_json::json;
use showcall_sdk::ChannelRole;
use showcall_tests::TestNode;
use showcall_tests::browser::Browsers;
use showcall_tests::sdk_helpers::SdkUser;

const LIVE: &str = "host_live";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_host_closing_its_peer_connection_is_removed_and_the_audience_reoffered() {
    let node = TestNode::start().await;
    let base = format!("http://{}", node.handle.signal_addr);
    let browsers = Browsers::start("polite_close").await;
    let host = browsers
        .open("host", &format!("{base}/host.html?uid=host"))
        .await;
    host.click("go-live").await;
    host.wait_state("live-state", "live").await;

    let fan = SdkUser::login(&node, "fan").await;
    let fan_media = fan.join_media(LIVE, ChannelRole::Audience).await;
    let watching = fan_media
        .wait_video_frames(10)
        .await
        .expect("the fan sees the browser host");
    assert!(watching.receiving_audio && watching.receiving_video);

    // The page closes its peer connection; the host stays in the room (signaling untouched).
    let closed = host
        .eval("window.demo.live.pc.close(); return true;", vec![])
        .await;
    assert_eq!(closed, json!(true));
    let ended = fan_media
        .wait_for(|s| !s.receiving_audio && !s.receiving_video)
        .await
        .expect("the fan is re-offered without the host's tracks");
    assert!(ended.connected, "the fan's own session stays up: {ended:?}");
    assert_eq!(ended.renegotiations, 1, "{ended:?}");
    host.close().await;
}
