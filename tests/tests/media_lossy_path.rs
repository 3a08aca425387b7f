//! A viewer behind a lossy path still gets every frame: a UDP relay between the viewer and the node drops
//! 5 % of the node's RTP packets to it (a seeded, replayable choice), and the viewer — the SDK's normal
//! `MediaSession`, which NACKs what is missing and depacketizes whole frames — still receives, complete
//! and in order, every video frame a clean viewer received in the same window, because the router
//! retransmits what was lost.
//!
//! Frames are told apart by their RTP time (the host stamps each with its send instant; the router
//! forwards it unchanged), as the fanout bench does. "What the host sent" is what a second viewer on a
//! clean path received: on loopback that is every frame, and it needs no knowledge of the host's pacing.

use std::collections::BTreeSet;

use showcall_sdk::media::{MediaOptions, MediaPeer};
use showcall_sdk::{ChannelRole, ReceivedFrame, TrackKind};
use showcall_tests::cluster::eventually;
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::udp_relay::{
    DropPolicy, UdpRelay, host_candidate, payload_types, rewrite_host_candidate,
};
use showcall_tests::{DEADLINE, TestNode};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

const LIVE: &str = "host_live";
/// 5 % of the node → viewer RTP packets, the same ones on every run.
const LOSS: DropPolicy = DropPolicy::Seeded {
    seed: 0x5eed,
    percent: 5,
};
/// Video frames in the window checked (five seconds of the host's 30 fps).
const WINDOW: usize = 150;
/// Frames the clean viewer's window starts after, so both viewers were surely reading by then.
const LEAD: usize = 10;

/// The next `n` video frames of a subscription (each wait bounded by the harness deadline).
async fn video_frames(
    mut frames: broadcast::Receiver<ReceivedFrame>,
    n: usize,
) -> Vec<ReceivedFrame> {
    let mut video = Vec::with_capacity(n);
    while video.len() < n {
        video.push(next_video_frame(&mut frames, video.len()).await);
    }
    video
}

/// The subscription's next video frame, within the harness deadline; `so_far` names the frames read
/// before it when it does not come.
async fn next_video_frame(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
    so_far: usize,
) -> ReceivedFrame {
    loop {
        match tokio::time::timeout(DEADLINE, frames.recv()).await {
            Ok(Ok(f)) if f.kind == TrackKind::Video => return f,
            Ok(Ok(_)) => {}
            Ok(Err(RecvError::Lagged(k))) => panic!("the test's reader fell {k} frames behind"),
            Ok(Err(RecvError::Closed)) => panic!("the session ended after {so_far} frames"),
            Err(_) => panic!("no frame within {DEADLINE:?} after {so_far} frames"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_losing_five_percent_of_packets_still_gets_every_frame_by_retransmission() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    // The clean viewer: straight to the node.
    let clean_user = SdkUser::login(&node, "clean").await;
    let clean = clean_user.join_media(LIVE, ChannelRole::Audience).await;

    // The lossy viewer: its answer's host candidate names the relay, which forwards to the node's.
    let lossy_user = SdkUser::login(&node, "lossy").await;
    // UDP only: an ICE-TCP path straight to the node would bypass the relay.
    let mut peer = MediaPeer::new(MediaOptions {
        tcp: false,
        ..MediaOptions::default()
    })
    .expect("media peer");
    let offer = peer.create_offer(false).expect("receive-only offer");
    let joined = lossy_user
        .signal
        .join_channel_with_offer(LIVE, ChannelRole::Audience, &offer)
        .await
        .expect("lossy viewer joins");
    let node_media = host_candidate(&joined.sdp_answer).expect("the answer has a host candidate");
    let relay = UdpRelay::start(node_media, LOSS).await;
    peer.accept_answer(&rewrite_host_candidate(&joined.sdp_answer, relay.addr()))
        .expect("the rewritten answer applies");
    let lossy = peer.start().expect("lossy viewer starts");
    // Retransmissions travel on the RTX payload type the node's answer names (RFC 4588).
    let rtx = payload_types(&joined.sdp_answer, "rtx");
    assert!(
        !rtx.is_empty(),
        "the node negotiates RTX: {}",
        joined.sdp_answer
    );

    // Both decode before the window: their first keyframe is behind them.
    for viewer in [&clean, &lossy] {
        viewer
            .wait_video_frames(30)
            .await
            .expect("video arrives on both paths");
    }

    // Both subscribed before the window starts. The lossy viewer may be behind the clean one (a frame
    // waits for its lost packets, and the frames after it for it), so it is read until it reached the
    // window's last frame, however many frames that takes.
    // Its frames are read as they come (the subscription keeps only so many), into the test's queue.
    let mut lossy_subscription = lossy.subscribe_frames();
    let (lossy_tx, mut lossy_rx) = mpsc::unbounded_channel();
    let lossy_reader = tokio::spawn(async move {
        for so_far in 0.. {
            let frame = next_video_frame(&mut lossy_subscription, so_far).await;
            if lossy_tx.send(frame).is_err() {
                break;
            }
        }
    });
    let clean_frames = video_frames(clean.subscribe_frames(), LEAD + WINDOW).await;
    let window: BTreeSet<u64> = clean_frames[LEAD..].iter().map(|f| f.rtp_time).collect();
    assert_eq!(window.len(), WINDOW, "one RTP time per frame");
    let (first, last) = (window.first().copied(), window.last().copied());
    let mut lossy_frames: Vec<ReceivedFrame> = Vec::new();
    while lossy_frames.last().map(|f| f.rtp_time) < last {
        match lossy_rx.recv().await {
            Some(frame) => lossy_frames.push(frame),
            None => panic!("the lossy reader stopped: {:?}", lossy_reader.await),
        }
    }
    lossy_reader.abort();
    let got: BTreeSet<u64> = lossy_frames.iter().map(|f| f.rtp_time).collect();
    let missing: Vec<u64> = window.difference(&got).copied().collect();
    assert!(
        missing.is_empty(),
        "the lossy viewer missed {} of {WINDOW} frames (RTP times {missing:?}); relay: {:?}",
        missing.len(),
        relay.counts()
    );
    // Whole and in order: no frame in the window followed a gap a decoder would have to recover from.
    let broken: Vec<u64> = lossy_frames
        .iter()
        .filter(|f| window.contains(&f.rtp_time) && !f.contiguous)
        .map(|f| f.rtp_time)
        .collect();
    assert!(
        broken.is_empty(),
        "frames after a gap in [{first:?}, {last:?}]: {broken:?}"
    );

    // The path did lose packets, and the router resent them.
    let counts = relay.counts();
    assert!(
        counts.to_client.dropped > 0,
        "the relay dropped nothing: {counts:?}"
    );
    // The router heard the viewer's NACKs (counted from str0m's periodic stream stats, so observed on
    // /metrics as an operator would) and answered them: retransmissions on the wire to the viewer.
    eventually("the node counts the viewer's NACKs", DEADLINE, async || {
        let nacks = scrape(node.handle.http_addr)
            .await
            .get("showcall_media_nacks_total");
        if nacks > 0.0 { Ok(nacks) } else { Err(nacks) }
    })
    .await;
    let resent = counts.to_client.rtp_with(&rtx);
    assert!(
        resent > 0,
        "no retransmission (RTX payload types {rtx:?}) reached the viewer: {counts:?}"
    );
    assert!(
        lossy.stats().keyframe_requests_out <= clean.stats().keyframe_requests_out + 1,
        "losses were repaired, not recovered by keyframes: lossy {:?}, clean {:?}",
        lossy.stats(),
        clean.stats()
    );
}
