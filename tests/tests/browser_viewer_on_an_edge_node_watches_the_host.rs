//! A Chromium viewer served by one node watches a host live on another (issue 15, one live room across
//! nodes): the page comes from, and its web SDK connects to, the node that is not the room's origin; its
//! media session opens on that node (the default edge rule, `client_node`), whose router subscribes to
//! the origin over the node-to-node relay, and the page decodes the host's video; it shows the room
//! paused while the host is in a 1v1 call, and decodes again after it. Real etcd, two real node
//! processes, the host and the caller on the Rust SDK, Chromium.
//!
//! Chromium and chromedriver must be installed (`./scripts/test` installs them); without them this test
//! fails, saying so. Screenshots go to `artifacts/browser/viewer_on_an_edge_node/`.

use showcall_sdk::ChannelRole;
use showcall_tests::browser::Browsers;
use showcall_tests::cluster::{
    Etcd, NodeOptions, NodeProcess, media_sessions, origin_of, start_converged,
};
use showcall_tests::sdk_helpers::{hang_up, video_call_with_media};

const HOST: &str = "host";
/// The live room the demo's `live.html` watches for `host`.
const LIVE: &str = "host_live";
/// Video frames that show the page is watching: a second of the host's 30 fps.
const FRAMES: u64 = 30;

/// The node's WebRTC UDP address, as it printed it at start.
fn media_addr(node: &NodeProcess) -> String {
    node.output
        .iter()
        .find(|l| l.contains("media (UDP, WebRTC)"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("{} printed its media address: {:?}", node.id, node.output))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chromium_viewer_served_by_an_edge_node_watches_the_host_through_it() {
    let etcd = Etcd::start().await;
    // One media worker each: a node's one UDP port is the one it prints, which Chromium's selected
    // pair can be compared with.
    let options = NodeOptions {
        env: vec![("SHOWCALL_MEDIA_WORKERS".to_owned(), "1".to_owned())],
        ..NodeOptions::default()
    };
    let nodes = start_converged(&etcd, &["n1", "n2"], &options).await;
    let (n1, n2): (&NodeProcess, &NodeProcess) = (&nodes[0], &nodes[1]);

    // The host goes live through n1 (Rust SDK); the room opens on its origin.
    let mut host = n1.prepared_user(HOST).await;
    let host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;
    let origin_id = origin_of(&[n1, n2], LIVE)
        .await
        .expect("the room runs somewhere");
    let (origin, edge) = if origin_id == n1.id {
        (n1, n2)
    } else {
        (n2, n1)
    };
    println!("origin {}, edge {}", origin.id, edge.id);

    // The viewer's page comes from the edge, and its SDK connects there (the page's own host).
    let browsers = Browsers::start("browser/viewer_on_an_edge_node").await;
    let base = edge
        .signal_url
        .replace("ws://", "http://")
        .trim_end_matches("/signal")
        .to_owned();
    let viewer = browsers
        .open(
            "viewer",
            &format!(
                "{base}/live.html?uid=fan-1&host={HOST}&token={}",
                edge.token("fan-1")
            ),
        )
        .await;
    viewer.click("watch").await;
    viewer.wait_state("live-state", "live").await;
    let decoded = viewer.wait_frames_above("live", FRAMES).await;
    viewer.screenshot("watching-through-the-edge").await;
    assert_eq!(viewer.media_status("live").await, "media:connected");
    let pair = viewer.selected_pair("live").await;
    assert!(
        pair["bytesReceived"].as_u64().unwrap_or(0) > 0,
        "media arrives over the selected pair: {pair}"
    );
    println!("the page decoded {decoded} frames over {pair}");
    let remote = format!(
        "{}:{}",
        pair["remote"]["address"].as_str().unwrap_or_default(),
        pair["remote"]["port"]
    );
    assert_eq!(
        remote,
        media_addr(edge),
        "Chromium's media comes from the edge's UDP socket"
    );

    // The edge carries the page's session; the origin only the host's.
    assert_eq!(
        media_sessions(edge).await,
        1.0,
        "the viewer's session is on the node that served its page ({})",
        edge.id
    );
    assert_eq!(
        media_sessions(origin).await,
        1.0,
        "the origin holds the host's session only"
    );

    // The host takes a 1v1 call: the page shows the room paused; after the hangup, live again, and
    // it decodes more frames (nothing was forwarded meanwhile).
    let mut caller = origin.prepared_user("caller").await;
    let call = video_call_with_media(&mut caller, &mut host).await;
    viewer.wait_state("live-state", "paused").await;
    let paused_at = viewer.frames_decoded("live").await;
    hang_up(&mut caller, &mut host).await;
    drop(call);
    viewer.wait_state("live-state", "resumed").await;
    viewer.wait_frames_above("live", paused_at + FRAMES).await;
    viewer.screenshot("watching-after-the-call").await;

    viewer.close().await;
    drop(browsers);
    drop(host_media);
}
