//! A Chromium viewer on a network that lets only TLS on port 443 out still watches the live room: the node
//! hands its login TURN servers with credentials of its own, the web SDK opens its peer connection with
//! them, and Chromium relays the media through coturn over TLS.
//!
//! The network is made by topology, not by rewriting anything: Chromium (and its chromedriver) run in a
//! network namespace joined to this one by a veth pair. From inside, the only addresses that answer are
//! on the link's far end (`outside_ip`): the node's signaling (and demo pages) and coturn, which listens
//! there for TURN over TLS on 443 and nothing else (no plain UDP or TCP listener, no DTLS). The node's media
//! — UDP and ICE-TCP — listens on 127.0.0.1 only, which inside the namespace is the namespace's own
//! loopback where nothing listens: Chromium's direct checks to the node's candidates are refused. coturn's
//! relay sockets are on 127.0.0.1 here, where the node's media is. Nothing in the web SDK, the demo page
//! or the node is special for the test; the node only has `[turn]` configured, as an operator would.
//!
//! Chromium is told to trust exactly coturn's key (`--ignore-certificate-errors-spki-list`), as a
//! deployment's TURN certificate would be trusted through its CA.
//!
//! What is checked is what a person and an operator see: the page decodes video; the pair Chromium
//! selected is its relay candidate, relayed over TLS, to the node's UDP candidate; coturn logged a
//! successful allocation for the viewer's own credentials (`<expiry>:demo:fan-1`); the node counts the
//! session as relayed (`showcall_media_sessions{path="relay"}`).
//!
//! Needs root (network namespaces), coturn, Chromium and chromedriver (`./scripts/test` installs them).
//! Screenshots go to `artifacts/browser/turn_tls/`.

use serde_json::json;
use showcall_sdk::ChannelRole;
use showcall_tests::browser::Browsers;
use showcall_tests::coturn::TlsOnlyNetwork;
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::SdkUser;

const HOST: &str = "host";
const LIVE: &str = "host_live";
const VIEWER: &str = "fan-1";
/// Video frames the page must decode: a second of the host's 30 fps, past its first keyframe.
const FRAMES: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_viewer_that_can_reach_only_tls_on_443_watches_through_turn() {
    let TlsOnlyNetwork {
        network,
        coturn,
        node,
    } = TlsOnlyNetwork::start(true).await;

    let host = SdkUser::login(&node, HOST).await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    let pin = format!(
        "--ignore-certificate-errors-spki-list={}",
        coturn.spki_sha256()
    );
    let browsers = Browsers::start_isolated("browser/turn_tls", &network, vec![pin]).await;
    let base = format!("http://{}", node.handle.signal_addr);
    let viewer = browsers
        .open(
            "viewer",
            &format!("{base}/live.html?uid={VIEWER}&host={HOST}"),
        )
        .await;
    viewer.click("watch").await;
    viewer.wait_state("live-state", "live").await;

    // The person sees video.
    viewer.wait_frames_above("live", FRAMES).await;
    viewer.screenshot("watching-through-turn").await;

    // Through the relay, over TLS, to the node's UDP media port.
    let pair = viewer.selected_pair("live").await;
    // The pair the transport selected and media flows on (its `state` may read "in-progress" while a
    // consent check on it runs: not what the person sees).
    assert_eq!(pair["nominated"], json!(true), "{pair}");
    assert!(pair["bytesReceived"].as_u64() > Some(0), "{pair}");
    assert_eq!(
        (
            &pair["local"]["candidateType"],
            &pair["local"]["relayProtocol"]
        ),
        (&json!("relay"), &json!("tls")),
        "the selected local candidate is a TURN relay reached over TLS: {pair}"
    );
    assert_eq!(
        (&pair["remote"]["protocol"], &pair["remote"]["port"]),
        (&json!("udp"), &json!(node.handle.media_addr.port())),
        "the relay sends to the node's UDP media port: {pair}"
    );

    // The node counts the viewer's session as relayed (the host's is direct).
    let page = scrape(node.handle.http_addr).await;
    for (path, sessions) in [("relay", 1.0), ("udp", 1.0)] {
        assert_eq!(
            page.get(&format!("showcall_media_sessions{{path=\"{path}\"}}")),
            sessions,
            "{path} sessions"
        );
    }

    // The operator sees it in coturn's log: an allocation with the viewer's own minted credentials.
    let log = coturn.log();
    let viewer_allocated = log.lines().any(|line| {
        line.contains(&format!(":demo:{VIEWER}>")) && line.contains("ALLOCATE processed, success")
    });
    assert!(
        viewer_allocated,
        "coturn allocated a relay for {VIEWER}'s credentials; its log:\n{log}"
    );

    viewer.close().await;
    drop(browsers);
    node.handle.shutdown().await;
}
