//! A viewer whose UDP cannot reach the node still watches the live room: its session falls back to
//! ICE-TCP by itself and decodes the host's video over a TCP connection to the node's media port.
//!
//! How UDP is made unreachable, without netem or firewall rules: the node's answer reaches the viewer
//! with its UDP host candidate pointing at a **black hole** — a UDP socket the test holds and never
//! answers from, so the viewer's UDP checks go out and nothing comes back, exactly what a firewall that
//! drops UDP looks like to ICE. The TCP candidate is the node's real one. The viewer is the SDK's normal
//! session with default options (it offers UDP and TCP and chooses by itself); the test checks that its
//! UDP checks were really sent (so it did try UDP), that it connected over TCP, and that it decodes video
//! — keyframes and the frames after them. Rewriting the answer is the one artificial step; the
//! alternative, an SDK switch that stops sending UDP, would test a code path users of the default never
//! take.
//!
//! The second story is that switch as a user sets it: a client that knows UDP is blocked joins with
//! `MediaOptions { udp: false }` through the ordinary `join` and gets video over TCP too.

use showcall_sdk::media::{MediaOptions, MediaPeer, MediaSession, MediaStats};
use showcall_sdk::{ChannelRole, MediaTransport};
use showcall_tests::cluster::eventually;
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::udp_relay::rewrite_host_candidate;
use showcall_tests::{DEADLINE, TestNode};
use tokio::net::UdpSocket;

const LIVE: &str = "host_live";
/// Video frames the viewer must decode: a second of the host's 30 fps, past its first keyframe.
const FRAMES: u64 = 30;
const TCP_CONNECTIONS: &str = "showcall_media_tcp_connections";
const TCP_FRAMES: &str = "showcall_media_tcp_frames_total";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_whose_udp_cannot_reach_the_node_decodes_video_over_ice_tcp() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    let viewer = SdkUser::login(&node, "viewer").await;
    let mut peer = MediaPeer::new(MediaOptions::default()).expect("media peer");
    let offer = peer.create_offer(false).expect("receive-only offer");
    let joined = viewer
        .signal
        .join_channel_with_offer(LIVE, ChannelRole::Audience, &offer)
        .await
        .expect("the viewer joins");
    assert!(
        joined.sdp_answer.contains(" tcp ") && joined.sdp_answer.contains("tcptype passive"),
        "the node offers a passive TCP candidate: {}",
        joined.sdp_answer
    );
    // Where the viewer's UDP goes: a socket that never answers.
    let black_hole = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let nowhere = black_hole.local_addr().expect("local addr");
    peer.accept_answer(&rewrite_host_candidate(&joined.sdp_answer, nowhere))
        .expect("the answer applies");
    let media = peer.start().expect("the viewer's session starts");

    let connected = tokio::time::timeout(DEADLINE, media.wait_connected())
        .await
        .expect("the viewer connects within the deadline")
        .expect("the viewer connects");
    assert_eq!(
        connected.transport,
        Some(MediaTransport::Tcp),
        "it connected over ICE-TCP"
    );
    let seen = decodes_video(&media).await;
    assert!(seen.connected, "still connected while video flows");
    // The operator sees it: one ICE-TCP connection (the host's session stood its TCP down once its UDP
    // worked), carrying datagrams both ways.
    let page = eventually("one ICE-TCP connection open", DEADLINE, async || {
        let page = scrape(node.handle.http_addr).await;
        match page.get(TCP_CONNECTIONS) {
            1.0 => Ok(page),
            open => Err(format!("{open} open")),
        }
    })
    .await;
    for direction in ["in", "out"] {
        let frames = page.get(&format!("{TCP_FRAMES}{{direction=\"{direction}\"}}"));
        assert!(frames > 0.0, "datagrams {direction} over ICE-TCP: {frames}");
    }

    // It did try UDP first: its checks reached the black hole (and nothing answered them).
    let mut buf = [0u8; 2048];
    let (_, from) = black_hole
        .try_recv_from(&mut buf)
        .expect("the viewer's UDP checks were sent");
    assert_eq!(from, media.local_addr(), "from the viewer's UDP socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_turns_udp_off_watches_over_ice_tcp() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    let viewer = SdkUser::login(&node, "viewer").await;
    let (media, _) = MediaSession::join(
        &viewer.signal,
        LIVE,
        ChannelRole::Audience,
        MediaOptions {
            udp: false,
            ..MediaOptions::default()
        },
    )
    .await
    .expect("the viewer joins with media");
    let seen = decodes_video(&media).await;
    assert_eq!(seen.transport, Some(MediaTransport::Tcp));
}

/// The fallback does not take over where UDP works: a default viewer with a clean path offers TCP too,
/// connects over UDP (its pair has the higher priority), and then keeps no TCP connection to the node
/// (nor does the host).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_whose_udp_works_stays_on_udp() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    let viewer = SdkUser::login(&node, "viewer").await;
    let media = viewer.join_media(LIVE, ChannelRole::Audience).await;
    let seen = decodes_video(&media).await;
    assert_eq!(seen.transport, Some(MediaTransport::Udp));
    eventually(
        "no ICE-TCP connection stays open",
        DEADLINE,
        async || match scrape(node.handle.http_addr).await.get(TCP_CONNECTIONS) {
            0.0 => Ok(()),
            open => Err(format!("{open} open")),
        },
    )
    .await;
}
