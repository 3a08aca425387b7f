//! A member's received tracks follow the channel's publishers: when the host leaves its live room, the
//! node renegotiates each audience session so the host's audio and video lines turn inactive (the tracks
//! end, the session stays up); when the host comes back, the lines turn active again and video restarts
//! at a keyframe. A host that only closes its peer connection politely (DTLS close_notify, what a
//! browser's `pc.close()` sends) while staying in the room counts the same as one that leaves. Answers to
//! the node's offers are checked: a stale revision or a malformed answer is refused and changes nothing.

use showcall_proto::signal::channel_event;
use showcall_sdk::media::{MediaOptions, MediaPeer, MediaSession};
use showcall_sdk::{ChannelRole, ErrorCode, MediaStats};
use showcall_tests::TestNode;
use showcall_tests::sdk_helpers::{SdkUser, refusal};

const LIVE: &str = "host_live";

async fn go_live(host: &SdkUser) -> MediaSession {
    host.join_media(LIVE, ChannelRole::Broadcaster).await
}

fn receives_both(s: &MediaStats) -> bool {
    s.receiving_audio && s.receiving_video
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_leaving_ends_the_audiences_tracks_and_coming_back_restores_them() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let host_media = go_live(&host).await;
    let fan = SdkUser::login(&node, "fan").await;
    let fan_media = fan.join_media(LIVE, ChannelRole::Audience).await;
    let before = fan_media.wait_video_frames(10).await.expect("live video");
    assert!(
        receives_both(&before),
        "both lines receive while the host is live: {before:?}"
    );

    // The host leaves its room: the audience's host tracks end; its session stays connected.
    host.signal.leave_channel(LIVE).await.expect("host leaves");
    host_media.close();
    let ended = fan_media
        .wait_for(|s| !s.receiving_audio && !s.receiving_video)
        .await
        .expect("the audience session outlives the host's tracks");
    assert!(ended.connected, "ICE and DTLS stay up: {ended:?}");
    assert_eq!(
        ended.renegotiations, 1,
        "one offer took both lines away: {ended:?}"
    );

    // The host comes back: the lines turn active again and video restarts at a keyframe.
    let _host_media = go_live(&host).await;
    let back = fan_media
        .wait_for(|s| receives_both(s) && s.video_keyframes_in > ended.video_keyframes_in)
        .await
        .expect("the host's tracks come back");
    assert_eq!(back.renegotiations, 2, "{back:?}");
    fan_media
        .wait_video_frames(back.video_frames_in + 10)
        .await
        .expect("video flows again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_closing_its_peer_connection_politely_is_removed_and_the_audience_reoffered() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let host_media = go_live(&host).await;
    let fan = SdkUser::login(&node, "fan").await;
    let fan_media = fan.join_media(LIVE, ChannelRole::Audience).await;
    fan_media.wait_video_frames(10).await.expect("live video");

    // The host stays in its room (signaling) but closes its media session with close_notify.
    host_media.close();
    host_media.closed().await;
    let ended = fan_media
        .wait_for(|s| !s.receiving_audio && !s.receiving_video)
        .await
        .expect("the audience is re-offered without the host's tracks");
    assert!(ended.connected, "{ended:?}");
    assert_eq!(ended.renegotiations, 1, "{ended:?}");

    // The host publishes again through a new session: the tracks come back.
    let _host_media = go_live(&host).await;
    let back = fan_media
        .wait_for(|s| s.receiving_audio && s.receiving_video)
        .await
        .expect("the host's tracks come back");
    fan_media
        .wait_video_frames(back.video_frames_in + 10)
        .await
        .expect("video flows again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_the_nodes_offer_are_checked_and_bad_ones_change_nothing() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let host_media = go_live(&host).await;
    let mut fan = SdkUser::login(&node, "fan").await;

    // A session started by hand (the app's own signaling): nothing answers the node's offers for it.
    let mut peer = MediaPeer::new(MediaOptions::default()).expect("media peer");
    let offer = peer.create_offer(false).expect("receive-only offer");
    let joined = fan
        .signal
        .join_channel_with_offer(LIVE, ChannelRole::Audience, &offer)
        .await
        .expect("audience joins");
    peer.accept_answer(&joined.sdp_answer)
        .expect("node's answer applies");
    let fan_media = peer.start().expect("session starts");
    fan_media.wait_video_frames(5).await.expect("live video");

    // Nothing is pending yet.
    assert_eq!(
        refusal(fan.signal.answer_media(LIVE, "v=0\r\n", 1).await),
        ErrorCode::NotAllowed
    );
    // Not a member of that channel.
    assert_eq!(
        refusal(fan.signal.answer_media("elsewhere", "v=0\r\n", 1).await),
        ErrorCode::NotInChannel
    );
    // Malformed at the edge.
    assert_eq!(
        refusal(fan.signal.answer_media(LIVE, "", 1).await),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        refusal(fan.signal.answer_media(LIVE, "v=0\r\n", 0).await),
        ErrorCode::InvalidArgument
    );

    host.signal.leave_channel(LIVE).await.expect("host leaves");
    host_media.close();
    let offered = fan
        .wait_channel(LIVE, |k| matches!(k, channel_event::Kind::MediaOffer(_)))
        .await;
    let channel_event::Kind::MediaOffer(offered) = offered else {
        unreachable!("matched a media offer")
    };
    let answer = fan_media
        .answer_offer(&offered.sdp_offer)
        .await
        .expect("the client applies the node's offer");

    // A stale revision and a malformed answer are refused...
    assert_eq!(
        refusal(
            fan.signal
                .answer_media(LIVE, &answer, offered.revision + 1)
                .await
        ),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        refusal(
            fan.signal
                .answer_media(LIVE, "not sdp", offered.revision)
                .await
        ),
        ErrorCode::InvalidArgument
    );
    // ...and changed nothing: the right answer still applies, once.
    fan.signal
        .answer_media(LIVE, &answer, offered.revision)
        .await
        .expect("the pending offer takes its answer");
    assert_eq!(
        refusal(
            fan.signal
                .answer_media(LIVE, &answer, offered.revision)
                .await
        ),
        ErrorCode::NotAllowed
    );
    let stats = fan_media.stats();
    assert!(stats.connected && !stats.receiving_video, "{stats:?}");
}
