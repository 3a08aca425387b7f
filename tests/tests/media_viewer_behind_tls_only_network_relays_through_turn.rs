//! A Rust SDK viewer on a network that lets only TLS on port 443 out watches the live room through a TURN
//! relay, by itself: its login carries the node's TURN servers with credentials of its own, and
//! `MediaSession::join` allocates a relay on the `turns:` one before it offers. The Rust half of
//! `browser_viewer_behind_tls_only_network_watches_through_turn` (same topology).
//!
//! The viewer runs on a thread that joined a network namespace (`IsolatedHost::run_inside`): from there
//! the only addresses that answer are on the veth link's far end — the node's signaling and coturn, which
//! listens there for TURN over TLS on 443 only. The node's media, UDP and ICE-TCP alike, listens on
//! 127.0.0.1 here, which inside is the namespace's own loopback where nothing listens. coturn relays
//! from 127.0.0.1 here to the node. The viewer trusts the test CA that signed coturn's certificate
//! (`MediaOptions::turn_ca_pem`), as a client of a private deployment would.
//!
//! Checked: the viewer decodes video, its session says it connected through the relay
//! (`MediaTransport::Turn`), the node counts one relayed session beside the host's direct one
//! (`showcall_media_sessions{path}`), and coturn logged the allocation for its own credentials. A second viewer in
//! the same place, logged in to a node without TURN, never connects — the relay is what made the
//! difference.

use showcall_sdk::media::{MediaOptions, MediaSession, MediaStats};
use showcall_sdk::{ChannelRole, MediaTransport, SdkError};
use showcall_tests::DEADLINE;
use showcall_tests::coturn::TlsOnlyNetwork;
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::SdkUser;
use tokio::sync::oneshot;

const LIVE: &str = "host_live";
/// Video frames the viewer must decode: a second of the host's 30 fps, past its first keyframe.
const FRAMES: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_can_reach_only_tls_on_443_decodes_video_through_turn() {
    let TlsOnlyNetwork {
        network,
        coturn,
        node,
    } = TlsOnlyNetwork::start(true).await;
    let host = SdkUser::login(&node, "host").await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    let (url, app, token) = (node.url(), node.app().to_owned(), node.token("fan-1"));
    let ca = coturn.ca_pem().to_owned();
    let (watching_tx, watching) = oneshot::channel::<MediaStats>();
    let (seen_tx, seen) = oneshot::channel::<()>();
    let viewer = network.run_inside(async move || {
        let viewer = SdkUser::login_at(&url, &app, "fan-1", &token).await;
        let login = viewer.signal.login_info().expect("logged in");
        assert_eq!(
            login.ice_servers.len(),
            1,
            "the login carries the node's TURN server"
        );
        assert!(login.ice_servers[0].username.ends_with(":demo:fan-1"));
        let (media, _) = MediaSession::join(
            &viewer.signal,
            LIVE,
            ChannelRole::Audience,
            MediaOptions {
                turn_ca_pem: Some(ca),
                ..MediaOptions::default()
            },
        )
        .await
        .expect("the viewer joins with media");
        watching_tx
            .send(decodes_video(&media).await)
            .expect("the test waits");
        // Watching on until the operator's side has looked.
        seen.await.expect("the test says when");
    });
    let operator = async {
        let stats = watching.await.expect("the viewer watches");
        assert_eq!(
            stats.transport,
            Some(MediaTransport::Turn),
            "it connected through the relay"
        );
        assert!(stats.connected, "still connected while video flows");
        // The node tells the relayed session apart from the host's direct one.
        let page = scrape(node.handle.http_addr).await;
        for (path, sessions) in [("relay", 1.0), ("udp", 1.0), ("tcp", 0.0)] {
            assert_eq!(
                page.get(&format!("showcall_media_sessions{{path=\"{path}\"}}")),
                sessions,
                "{path} sessions"
            );
        }
        seen_tx.send(()).expect("the viewer waits");
    };
    tokio::join!(viewer, operator);

    let log = coturn.log();
    assert!(
        log.lines()
            .any(|line| line.contains(":demo:fan-1>")
                && line.contains("ALLOCATE processed, success")),
        "coturn allocated a relay for fan-1's credentials; its log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_turn_the_same_viewer_never_connects() {
    let TlsOnlyNetwork { network, node, .. } = TlsOnlyNetwork::start(false).await;
    let host = SdkUser::login(&node, "host").await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    let (url, app, token) = (node.url(), node.app().to_owned(), node.token("fan-2"));
    let connected = network
        .run_inside(async move || {
            let viewer = SdkUser::login_at(&url, &app, "fan-2", &token).await;
            let (media, _) = MediaSession::join(
                &viewer.signal,
                LIVE,
                ChannelRole::Audience,
                MediaOptions::default(),
            )
            .await
            .expect("the join itself succeeds (signaling reaches the node)");
            // Its checks all fail: it never connects (it may end, or keep restarting ICE in vain,
            // within the deadline).
            tokio::time::timeout(DEADLINE, media.wait_connected()).await
        })
        .await;
    assert!(
        matches!(connected, Err(_) | Ok(Err(SdkError::Disconnected))),
        "no path to the node's media without a relay: {connected:?}"
    );
}

/// Waits until `media` has decoded a keyframe and [`FRAMES`] video frames; its stats then.
async fn decodes_video(media: &MediaSession) -> MediaStats {
    tokio::time::timeout(
        DEADLINE,
        media.wait_for(|s| s.video_keyframes_in >= 1 && s.video_frames_in >= FRAMES),
    )
    .await
    .expect("video within the deadline")
    .expect("the session lives")
}
