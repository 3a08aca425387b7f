//! A live room whose audience outgrows one media worker spreads over several: the node here runs two
//! workers that take two sessions of a room each, so the host and the first viewer sit on the room's
//! home worker and the others on the second one, which gets the host's packets handed over by the first.
//! Every viewer on both workers sees the host; a viewer joining on the second worker mid-GOP starts at the
//! host's kept keyframe; when the host leaves, the audience on both workers is re-offered without its
//! tracks, and when it comes back they return everywhere.

use showcall_sdk::ChannelRole;
use showcall_sdk::media::{MediaOptions, MediaSession, MediaStats};
use showcall_tests::TestNode;
use showcall_tests::prometheus::{delta, scrape};
use showcall_tests::sdk_helpers::SdkUser;

const LIVE: &str = "big_live";
const FROM_CACHE: &str = "showcall_media_keyframes_from_cache_total";

fn worker_out(worker: usize) -> String {
    format!("showcall_media_worker_packets_out_total{{worker=\"{worker}\"}}")
}

async fn join(node: &TestNode, id: &str, role: ChannelRole) -> (SdkUser, MediaSession) {
    let user = SdkUser::login(node, id).await;
    let (media, _) = MediaSession::join(&user.signal, LIVE, role, MediaOptions::default())
        .await
        .expect("joins with media");
    (user, media)
}

fn receives_both(s: &MediaStats) -> bool {
    s.receiving_audio && s.receiving_video
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spread_over_two_workers_delivers_the_host_to_every_viewer() {
    let node = TestNode::start_with(|c| {
        c.media_workers = 2;
        c.media_room_capacity = 2;
    })
    .await;
    let (host, host_media) = join(&node, "host", ChannelRole::Broadcaster).await;
    let mut fans = Vec::new();
    for i in 1..=3 {
        fans.push(join(&node, &format!("fan-{i}"), ChannelRole::Audience).await);
    }
    let before = scrape(node.handle.http_addr).await;
    for (_, media) in &fans {
        let seen = media.wait_video_frames(10).await.expect("live video");
        media.wait_audio_frames(10).await.expect("live audio");
        assert!(receives_both(&seen), "{seen:?}");
    }
    let after = scrape(node.handle.http_addr).await;
    for worker in 0..2 {
        assert!(
            delta(&before, &after, &worker_out(worker)) > 0.0,
            "worker {worker} sends to its share of the audience"
        );
    }

    // A viewer joining mid-GOP on the second worker starts at the host's kept keyframe there.
    let (late_user, late) = join(&node, "fan-4", ChannelRole::Audience).await;
    let mut frames = late.subscribe_frames();
    let first = loop {
        let frame = frames.recv().await.expect("frames flow");
        if frame.kind == showcall_sdk::media::TrackKind::Video {
            break frame;
        }
    };
    assert!(first.keyframe, "it starts at a keyframe");
    let cached = scrape(node.handle.http_addr).await;
    assert_eq!(delta(&after, &cached, FROM_CACHE), 1.0);
    late.wait_video_frames(10)
        .await
        .expect("live video follows");
    fans.push((late_user, late));

    // The host leaves: the audience on both workers loses its tracks, sessions up.
    host.signal.leave_channel(LIVE).await.expect("host leaves");
    host_media.close();
    for (_, media) in &fans {
        let ended = media
            .wait_for(|s| !s.receiving_audio && !s.receiving_video)
            .await
            .expect("re-offered without the host");
        assert!(ended.connected, "{ended:?}");
    }

    // The host comes back: the tracks return everywhere and video flows.
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;
    for (_, media) in &fans {
        let back = media.wait_for(receives_both).await.expect("tracks return");
        media
            .wait_video_frames(back.video_frames_in + 10)
            .await
            .expect("video flows again");
    }
}
