//! A client whose network changes keeps its media without leaving its channel: its SDK binds a new UDP
//! socket (a new port, as a switch from Wi-Fi to cellular gives it) and restarts ICE over the signaling
//! session it already has (`RestartIce`); the node answers on the same session, and media continues on the
//! same streams once the client's checks reach it from the new port.
//!
//! The viewer story counts the video frames the viewer missed across the change, from the RTP times of the
//! frames it decoded (the host's frames are 1/30 s apart, and the router keeps each receiver's timeline,
//! so a gap of n frame times is n − 1 frames missed); it is printed, not asserted: how many a change costs
//! is the benchmark's business (`showcall-bench ice-restart`). What is asserted is what a user sees: video
//! again, on the same session and timeline, the membership untouched, and the operator's counter.
//!
//! The call story is a participant of a 1v1 — which publishes as well as receives — changing its network:
//! both parties receive each other again and the call stays `connected`.

use std::time::Instant;

use showcall_sdk::media::{MediaOptions, MediaPeer, MediaSession, MediaStats};
use showcall_sdk::{CallState, ChannelRole, ErrorCode, PrepareConfig, ReceivedFrame, TrackKind};
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::{
    MediaCall, SdkUser, hang_up, is_member_joined, more_video, refusal, video_call_with_media,
};
use showcall_tests::{DEADLINE, TestNode};
use tokio::sync::broadcast;

const LIVE: &str = "host_live";
/// Video frames that show a viewer is watching: a second of the host's 30 fps.
const FRAMES: u64 = 30;
/// The host's video frames are 1/30 s apart: 3000 ticks of the 90 kHz RTP clock.
const FRAME_TICKS: u64 = 3000;
const ICE_RESTARTS: &str = "showcall_media_ice_restarts_total";

/// Waits until `media` has received `more` video frames and a keyframe past those counted in `from`; its
/// stats then.
async fn video_again(media: &MediaSession, from: &MediaStats, more: u64) -> MediaStats {
    tokio::time::timeout(
        DEADLINE,
        media.wait_for(|s| {
            s.video_frames_in >= from.video_frames_in + more
                && s.video_keyframes_in > from.video_keyframes_in
        }),
    )
    .await
    .expect("video again within the deadline")
    .expect("the session lives")
}

/// The video frames waiting in `frames`, in order.
fn video_frames(frames: &mut broadcast::Receiver<ReceivedFrame>) -> Vec<ReceivedFrame> {
    let mut video = Vec::new();
    loop {
        match frames.try_recv() {
            Ok(f) if f.kind == TrackKind::Video => video.push(f),
            Ok(_) => {}
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => {
                return video;
            }
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                panic!("the test fell {n} frames behind the session")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_changes_its_socket_restarts_ice_and_keeps_watching() {
    let node = TestNode::start().await;
    let mut host = SdkUser::login(&node, "host").await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;
    let viewer = SdkUser::login(&node, "viewer").await;
    let media = viewer.join_media(LIVE, ChannelRole::Audience).await;
    video_again(&media, &MediaStats::default(), FRAMES).await;
    let old_addr = media.local_addr();

    // Every frame from here on, across the change.
    let mut frames = media.subscribe_frames();
    media
        .restart_ice(None)
        .await
        .expect("the node answers the ICE restart");
    // From here on the session runs on its new socket alone.
    let moved_at = Instant::now();
    let moved = media.stats();
    assert_eq!(moved.ice_restarts, 1, "{moved:?}");
    let new_addr = media.local_addr();
    assert_ne!(new_addr.port(), old_addr.port(), "a new socket, a new port");
    assert_eq!(new_addr.ip(), old_addr.ip());

    // Video again, from the new socket: a keyframe and a second of frames past those seen before.
    let after = video_again(&media, &moved, FRAMES).await;
    assert!(after.connected && !after.closed, "{after:?}");
    assert_eq!(
        after.renegotiations, 0,
        "the same lines: nothing was renegotiated"
    );
    assert_eq!(after.local_addr, Some(new_addr));

    // One timeline: each frame's RTP time is past the one before, so the stream went on (a new stream
    // would start elsewhere); the frame times skipped are the frames missed.
    let received = video_frames(&mut frames);
    let on_the_new_socket = received.iter().filter(|f| f.received_at > moved_at).count();
    assert!(
        on_the_new_socket > 0,
        "frames came over the new socket ({} frames in all)",
        received.len()
    );
    let mut missed = 0;
    for pair in received.windows(2) {
        let step = pair[1].rtp_time.checked_sub(pair[0].rtp_time);
        let step = step.unwrap_or_else(|| {
            panic!(
                "RTP time runs backwards across the restart: {} → {}",
                pair[0].rtp_time, pair[1].rtp_time
            )
        });
        missed += (step + FRAME_TICKS / 2) / FRAME_TICKS - 1;
    }
    let stall = received
        .windows(2)
        .map(|pair| pair[1].received_at - pair[0].received_at)
        .max()
        .unwrap_or_default();
    eprintln!(
        "ice restart: {} video frames received across it, {missed} missed, longest wait between two {stall:?}",
        received.len()
    );

    // The operator sees the restart; the host never saw the viewer leave (a member joining after it
    // is the point the host's event stream is read to).
    let page = scrape(node.handle.http_addr).await;
    assert_eq!(page.get(ICE_RESTARTS), 1.0);
    let late = SdkUser::login(&node, "late").await;
    late.join(LIVE, ChannelRole::Audience).await;
    host.wait_channel(LIVE, |k| is_member_joined(k, "late"))
        .await;
    let left: Vec<_> = host
        .channel_events(LIVE)
        .into_iter()
        .filter(|k| matches!(k, showcall_sdk::channel_event::Kind::MemberLeft(_)))
        .collect();
    assert!(left.is_empty(), "nobody left the room: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_participant_that_changes_its_socket_stays_in_the_call() {
    let node = TestNode::start().await;
    let mut host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let MediaCall {
        created: _,
        caller_media: viewer_call,
        callee_media: host_call,
    } = video_call_with_media(&mut viewer, &mut host).await;
    more_video(&viewer_call, FRAMES).await;
    more_video(&host_call, FRAMES).await;

    // The viewer — who publishes to the host as well as receives — changes its network.
    viewer_call
        .restart_ice(None)
        .await
        .expect("the node answers the ICE restart");
    let (viewer_before, host_before) = (viewer_call.stats(), host_call.stats());

    // Both receive each other again: the viewer's media reaches the host from the new port, the host's
    // reaches the viewer there.
    video_again(&viewer_call, &viewer_before, FRAMES).await;
    video_again(&host_call, &host_before, FRAMES).await;
    host_call
        .wait_audio_frames(host_before.audio_frames_in + 50)
        .await
        .expect("the viewer's audio reaches the host again");
    assert_eq!(viewer_call.stats().ice_restarts, 1);

    // The call never left `connected`; it ends the ordinary way.
    assert_eq!(viewer.api.state(), CallState::Connected);
    assert_eq!(host.api.state(), CallState::Connected);
    hang_up(&mut viewer, &mut host).await;
}

/// What is not an ICE restart is refused with the error a client can act on, and changes nothing: the
/// session goes on on its path, the counter stays at zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_that_restart_nothing_are_refused_and_change_nothing() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    // A viewer that negotiated its session itself, so the test holds its join offer.
    let viewer = SdkUser::login(&node, "viewer").await;
    let mut peer = MediaPeer::new(MediaOptions::default()).expect("media peer");
    let join_offer = peer.create_offer(false).expect("receive-only offer");
    let joined = viewer
        .signal
        .join_channel_with_offer(LIVE, ChannelRole::Audience, &join_offer)
        .await
        .expect("the viewer joins");
    peer.accept_answer(&joined.sdp_answer)
        .expect("the answer applies");
    let media = peer.start().expect("the session starts");
    let watching = video_again(&media, &MediaStats::default(), FRAMES).await;

    let restart = |channel: &'static str, offer: String| {
        let signal = viewer.signal.clone();
        async move { signal.restart_ice(channel, &offer).await }
    };
    // Its own join offer again: the same ICE credentials restart nothing.
    assert_eq!(
        refusal(restart(LIVE, join_offer.clone()).await),
        ErrorCode::InvalidArgument
    );
    // Not SDP.
    assert_eq!(
        refusal(restart(LIVE, "v=0\r\n".to_owned()).await),
        ErrorCode::InvalidArgument
    );
    // Empty.
    assert_eq!(
        refusal(restart(LIVE, String::new()).await),
        ErrorCode::InvalidArgument
    );
    // An audience member offering to send (a fresh peer's offer: new credentials).
    let sending = MediaPeer::new(MediaOptions::default())
        .expect("media peer")
        .create_offer(true)
        .expect("offer");
    assert_eq!(
        refusal(restart(LIVE, sending).await),
        ErrorCode::PermissionDenied
    );
    // New credentials on other lines than the session's (a fresh receive-only peer's offer).
    let other_lines = MediaPeer::new(MediaOptions::default())
        .expect("media peer")
        .create_offer(false)
        .expect("offer");
    assert_eq!(
        refusal(restart(LIVE, other_lines.clone()).await),
        ErrorCode::InvalidArgument
    );
    // A channel the viewer is not in.
    assert_eq!(
        refusal(restart("elsewhere", other_lines.clone()).await),
        ErrorCode::NotInChannel
    );
    // A member without a media session.
    let bystander = SdkUser::login(&node, "bystander").await;
    bystander.join(LIVE, ChannelRole::Audience).await;
    assert_eq!(
        refusal(bystander.signal.restart_ice(LIVE, &other_lines).await),
        ErrorCode::NotAllowed
    );

    // Nothing changed: the viewer keeps watching on its path, and no restart was counted.
    more_video(&media, FRAMES).await;
    let still = media.stats();
    assert!(still.connected && !still.closed, "{still:?}");
    assert_eq!(still.local_addr, watching.local_addr);
    assert_eq!(scrape(node.handle.http_addr).await.get(ICE_RESTARTS), 0.0);
}
