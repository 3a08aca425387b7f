//! Real media through the node's str0m router, with Rust media clients on real UDP: the host's live room
//! reaches its audience; during a 1v1 the audience receives nothing of the host while the two parties
//! receive each other; after the hangup the audience sees the host again (a keyframe is requested at once).
//! Audience members cannot publish; strangers and old call channels are refused.

use std::collections::HashMap;

use showcall_sdk::media::{MediaOptions, MediaPeer, MediaSession};
use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole, ErrorCode, PrepareConfig};
use showcall_tests::TestNode;
use showcall_tests::sdk_helpers::{MediaCall, video_call_with_media};
use showcall_tests::sdk_helpers::{SdkUser, is_paused, is_resumed, refusal};

const LIVE: &str = "host_live";

async fn watch(node: &TestNode, id: &str) -> (SdkUser, MediaSession) {
    let fan = SdkUser::login(node, id).await;
    let media = fan.join_media(LIVE, ChannelRole::Audience).await;
    (fan, media)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_room_pauses_for_the_call_and_resumes_after_it() {
    let node = TestNode::start().await;
    let mut host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let host_live = host.join_media(LIVE, ChannelRole::Broadcaster).await;
    let (mut fan1, fan1_media) = watch(&node, "fan1").await;
    let (mut fan2, fan2_media) = watch(&node, "fan2").await;

    // Audiences receive the host's video and audio.
    for media in [&fan1_media, &fan2_media] {
        let stats = media
            .wait_video_frames(30)
            .await
            .expect("live video arrives");
        assert!(
            stats.video_keyframes_in >= 1,
            "decoding starts at a keyframe: {stats:?}"
        );
        media
            .wait_audio_frames(20)
            .await
            .expect("live audio arrives");
    }

    // A viewer calls; the host accepts; both join the private channel with media.
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    // Connected once media flows both ways: the server saw each side's first frame reach the other.
    let MediaCall {
        created: _,
        caller_media: viewer_call,
        callee_media: host_call,
    } = video_call_with_media(&mut viewer, &mut host).await;
    let info = viewer.api.event_info().expect("event info");
    assert!(
        info.timing.contains_key("caller_first_frame"),
        "{:?}",
        info.timing
    );
    assert!(
        info.timing.contains_key("callee_first_frame"),
        "{:?}",
        info.timing
    );

    // The audience was told, and receives nothing of the host while the two parties receive each other.
    fan1.wait_channel(LIVE, |k| is_paused(k, "host")).await;
    fan2.wait_channel(LIVE, |k| is_paused(k, "host")).await;
    let parties_now = viewer_call.stats().video_frames_in;
    viewer_call
        .wait_video_frames(parties_now + 30)
        .await
        .expect("1v1 video flows");
    host_call
        .wait_audio_frames(20)
        .await
        .expect("1v1 audio flows");
    let fans_before = (
        fan1_media.stats().video_frames_in,
        fan2_media.stats().video_frames_in,
    );
    let parties_now = viewer_call.stats().video_frames_in;
    viewer_call
        .wait_video_frames(parties_now + 45)
        .await
        .expect("1v1 video keeps flowing");
    host_call
        .wait_video_frames(45)
        .await
        .expect("the host sees the viewer");
    let fans_after = (
        fan1_media.stats().video_frames_in,
        fan2_media.stats().video_frames_in,
    );
    assert_eq!(
        fans_after, fans_before,
        "no host video reaches the audience during the call"
    );
    assert!(host_live.stats().video_frames_out > 0);

    // Hang up: the audience is told, and host video arrives again starting with a keyframe.
    let keyframes_before = fan1_media.stats().video_keyframes_in;
    viewer.api.hangup("host", "bye").await.expect("hung up");
    viewer
        .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
        .await;
    fan1.wait_channel(LIVE, |k| is_resumed(k, "host")).await;
    fan2.wait_channel(LIVE, |k| is_resumed(k, "host")).await;
    fan1_media
        .wait_video_frames(fans_after.0 + 30)
        .await
        .expect("live video again after the call");
    fan2_media
        .wait_video_frames(fans_after.1 + 30)
        .await
        .expect("live video again after the call");
    assert!(
        fan1_media.stats().video_keyframes_in > keyframes_before,
        "a keyframe came right after the resume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_cannot_publish_and_strangers_cannot_join_a_call() {
    let node = TestNode::start().await;
    let host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let _live = MediaSession::join(
        &host.signal,
        LIVE,
        ChannelRole::Broadcaster,
        MediaOptions::default(),
    )
    .await
    .expect("host goes live");

    // An audience member offering to send is refused, and is not in the room afterwards.
    let fan = SdkUser::login(&node, "fan").await;
    let mut peer = MediaPeer::new(MediaOptions::default()).expect("peer");
    let sending_offer = peer.create_offer(true).expect("offer");
    let refused = fan
        .signal
        .join_channel_with_offer(LIVE, ChannelRole::Audience, &sending_offer)
        .await;
    assert_eq!(refusal(refused), ErrorCode::PermissionDenied);
    assert_eq!(
        refusal(fan.signal.leave_channel(LIVE).await),
        ErrorCode::NotInChannel
    );

    // A malformed offer is an invalid argument.
    let garbage = fan
        .signal
        .join_channel_with_offer(LIVE, ChannelRole::Audience, "v=0 this is not sdp")
        .await;
    assert_eq!(refusal(garbage), ErrorCode::InvalidArgument);

    // A call between viewer and host; a stranger with a wildcard token cannot join its channel, during
    // the call or after it — the seed's stream-theft case.
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let mut host = host;
    let created = viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    host.api.accept("viewer").await.expect("accepted");
    let stranger = SdkUser::login(&node, "stranger").await;
    let stolen = MediaSession::join(
        &stranger.signal,
        &created.channel,
        ChannelRole::Broadcaster,
        MediaOptions::default(),
    )
    .await;
    assert_eq!(refusal(stolen.map(|(_, j)| j)), ErrorCode::NotAParticipant);

    viewer.api.hangup("host", "bye").await.expect("hung up");
    viewer
        .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
        .await;
    // Even the former callee cannot reuse the old channel name.
    let reused = MediaSession::join(
        &host.signal,
        &created.channel,
        ChannelRole::Broadcaster,
        MediaOptions::default(),
    )
    .await;
    assert_eq!(refusal(reused.map(|(_, j)| j)), ErrorCode::NotAParticipant);
}
