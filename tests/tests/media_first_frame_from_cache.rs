//! A viewer who joins a live room mid-GOP starts at once from the host's latest keyframe, which the
//! router keeps, instead of waiting for the host to answer a keyframe request: its first video frame is
//! a keyframe the host sent before the viewer joined (the same RTP time another viewer saw it at), the
//! node counts one receiver started from its cache, and video goes on from the host's next keyframe.

use std::collections::HashSet;

use showcall_sdk::ChannelRole;
use showcall_sdk::media::{MediaSession, TrackKind};
use showcall_tests::prometheus::{delta, scrape};
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::{DEADLINE, TestNode};

const LIVE: &str = "host_live";
const FROM_CACHE: &str = "showcall_media_keyframes_from_cache_total";

async fn watch(node: &TestNode, id: &str) -> (SdkUser, MediaSession) {
    let fan = SdkUser::login(node, id).await;
    let media = fan.join_media(LIVE, ChannelRole::Audience).await;
    (fan, media)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joining_mid_gop_starts_at_the_kept_keyframe() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    // A first viewer watches; every keyframe it receives is recorded by RTP time.
    let (_first, first_media) = watch(&node, "fan-1").await;
    let mut first_frames = first_media.subscribe_frames();
    let mut keyframes_seen = HashSet::new();
    // Mid-GOP: a keyframe and then a few deltas after it.
    let mut deltas_after_keyframe = 0;
    tokio::time::timeout(DEADLINE, async {
        while deltas_after_keyframe < 5 {
            let frame = first_frames.recv().await.expect("frames flow");
            if frame.kind != TrackKind::Video {
                continue;
            }
            if frame.keyframe {
                keyframes_seen.insert(frame.rtp_time);
                deltas_after_keyframe = 0;
            } else if !keyframes_seen.is_empty() {
                deltas_after_keyframe += 1;
            }
        }
    })
    .await
    .expect("the first viewer sees a keyframe and deltas");

    let before = scrape(node.handle.http_addr).await;
    let (_second, second_media) = watch(&node, "fan-2").await;
    let mut second_frames = second_media.subscribe_frames();
    let first_video = tokio::time::timeout(DEADLINE, async {
        loop {
            let frame = second_frames.recv().await.expect("frames flow");
            if frame.kind == TrackKind::Video {
                return frame;
            }
        }
    })
    .await
    .expect("the second viewer gets video");
    assert!(first_video.keyframe, "it starts at a keyframe");

    // The first viewer saw that keyframe too (its reader may lag, so drain what it has).
    tokio::time::timeout(DEADLINE, async {
        while !keyframes_seen.contains(&first_video.rtp_time) {
            let frame = first_frames.recv().await.expect("frames flow");
            if frame.keyframe {
                keyframes_seen.insert(frame.rtp_time);
            }
        }
    })
    .await
    .expect("the second viewer's first frame is one of the host's keyframes, at its RTP time");
    let after = scrape(node.handle.http_addr).await;
    assert_eq!(
        delta(&before, &after, FROM_CACHE),
        1.0,
        "one receiver started from the cache: {} {}",
        before.get(FROM_CACHE),
        after.get(FROM_CACHE)
    );

    // Then video goes on from the host's next keyframe.
    let started = second_media.stats();
    second_media
        .wait_for(|s| {
            s.video_keyframes_in > started.video_keyframes_in
                && s.video_frames_in >= started.video_frames_in + 10
        })
        .await
        .expect("live video follows");
}
