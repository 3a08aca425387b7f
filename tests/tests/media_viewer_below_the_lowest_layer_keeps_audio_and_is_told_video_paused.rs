//! Below the lowest layer: a viewer whose link narrows to 70 kbit/s — room for the host's audio
//! (about 47 kbit/s on the wire) but not for audio and even the lowest video layer (about 95) — keeps
//! its audio, gets no video, and is told so (`ChannelEvent.video_paused_for_bandwidth`, paused); when
//! the link widens, it is told video is back and its video resumes (at a keyframe, decodable at once).
//! The node counts the pause on /metrics.

use showcall_sdk::proto::{channel_event, event};
use showcall_sdk::{Event, TrackKind};
use showcall_tests::narrow_link::{host_live_with_layers, join_behind, video_frames};
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::shaped_relay::Shape;
use showcall_tests::{DEADLINE, TestNode};
use tokio::sync::mpsc;

const LIVE: &str = "host_live";
/// Audio fits, audio and the lowest video layer do not.
const AUDIO_ONLY_BPS: u64 = 70_000;
/// Audio frames (20 ms each) in each window looked at while video is paused: 2 s.
const AUDIO_WHILE_PAUSED: usize = 100;
/// Video frames from before the pause that may still complete late (see below).
const STRAGGLERS: usize = 2;

/// The next `VideoPausedForBandwidth` for `channel`, within the deadline.
async fn video_paused(events: &mut mpsc::UnboundedReceiver<Event>, channel: &str) -> bool {
    let wait = async {
        loop {
            let event = events.recv().await.expect("the signaling session goes on");
            if let Some(event::Kind::ChannelEvent(ce)) = event.kind
                && ce.channel == channel
                && let Some(channel_event::Kind::VideoPausedForBandwidth(p)) = ce.kind
            {
                return p.paused;
            }
        }
    };
    tokio::time::timeout(2 * DEADLINE, wait)
        .await
        .expect("told within the deadline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_below_the_lowest_layer_keeps_audio_and_is_told_its_video_paused() {
    // What the router decided for the viewer, shown if this fails.
    showcall_tests::test_log::log_to_test_output("info,showcall_media=debug");
    let node = TestNode::start().await;
    let (_host, _host_live) = host_live_with_layers(&node, LIVE).await;

    let viewer = SdkUser::login(&node, "viewer").await;
    let mut events = viewer.signal.subscribe_events();
    let (media, relay) = join_behind(&viewer, LIVE, Shape::open()).await;
    video_frames(&mut media.subscribe_frames(), 30).await;

    relay.set_rate(Some(AUDIO_ONLY_BPS));
    assert!(
        video_paused(&mut events, LIVE).await,
        "told its video is paused"
    );
    // Audio goes on; video stops. What was already on its way — queued in the router's pacer, which
    // sends at the receiver's estimate and holds up to 2 s, and in the link's queue — still comes in
    // the first two windows; in the third, a straggler at most (a frame completed by a late
    // retransmission), where a flowing stream brings 60.
    let mut frames = media.subscribe_frames();
    let draining = [
        count_frames(&mut frames, AUDIO_WHILE_PAUSED).await,
        count_frames(&mut frames, AUDIO_WHILE_PAUSED).await,
    ];
    let paused = count_frames(&mut frames, AUDIO_WHILE_PAUSED).await;
    println!(
        "paused: {draining:?} then {paused:?} (video, audio) frames; relay {:?}",
        relay.counts()
    );
    assert!(
        paused.0 <= STRAGGLERS,
        "{} video frames came beside {AUDIO_WHILE_PAUSED} audio frames, 4 s after the pause",
        paused.0
    );
    let metrics = scrape(node.handle.http_addr).await;
    assert_eq!(metrics.get("showcall_media_video_pauses_total"), 1.0);

    // Widened: told video is back, and it comes, from a keyframe. (Read from before the link widens, by
    // a reader of its own, so nothing is missed or piles up while the test waits for the event.)
    let resumed = tokio::spawn({
        let mut frames = media.subscribe_frames();
        async move { video_frames(&mut frames, 30).await }
    });
    drop(frames);
    relay.set_rate(None);
    assert!(
        !video_paused(&mut events, LIVE).await,
        "told its video resumed"
    );
    let resumed = resumed.await.expect("the reader");
    // From a keyframe (a straggler of before the pause — a late retransmission — may come first), and
    // whole from there.
    let start = resumed
        .iter()
        .position(|f| f.keyframe)
        .unwrap_or_else(|| panic!("video resumes at a keyframe: {resumed:?}"));
    assert!(
        resumed[start + 1..].iter().all(|f| f.contiguous),
        "video goes on whole after it resumed: {resumed:?}"
    );
}

/// (video, audio) frames until `audio` audio frames came.
async fn count_frames(
    frames: &mut tokio::sync::broadcast::Receiver<showcall_sdk::ReceivedFrame>,
    audio: usize,
) -> (usize, usize) {
    let mut counted = (0, 0);
    while counted.1 < audio {
        match tokio::time::timeout(DEADLINE, frames.recv()).await {
            Ok(Ok(frame)) if frame.kind == TrackKind::Audio => counted.1 += 1,
            Ok(Ok(_)) => counted.0 += 1,
            Ok(Err(e)) => panic!("the viewer's frames: {e}"),
            Err(_) => panic!("no frame within {DEADLINE:?}: audio stopped too"),
        }
    }
    counted
}
