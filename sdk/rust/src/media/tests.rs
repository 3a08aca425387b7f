//! `MediaSession::join` over the fake signaling transport, with a real str0m peer standing in for the
//! node's media router: the join's offer is answered by a [`MediaPeer`] and media flows over real UDP.
//! (The node itself answers ICE-lite; the end-to-end tests in `tests/` cover that.)

use std::time::Duration;

use showcall_proto::signal::client_frame::Command;
use showcall_proto::signal::{ChannelJoined, ChannelRole, ErrorCode, JoinChannel, response};
use str0m::media::Direction;

use super::peer::offer_direction;
use super::*;
use crate::SdkError;
use crate::fake::{FakeServer, fake_client};

/// Deadlock guard, not a speed assertion.
const GUARD: Duration = Duration::from_secs(20);

async fn guarded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: nothing within {GUARD:?}"),
    }
}

async fn expect_join(server: &mut FakeServer) -> (u64, JoinChannel) {
    match server.expect().await {
        (id, Command::JoinChannel(join)) => (id, join),
        (_, other) => panic!("expected a join, got {other:?}"),
    }
}

fn joined(channel: &str, role: ChannelRole, sdp_answer: String) -> Option<response::Result> {
    Some(response::Result::ChannelJoined(ChannelJoined {
        channel: channel.to_owned(),
        role: role as i32,
        members: vec![],
        broadcaster_paused: false,
        sdp_answer,
    }))
}

fn count(sdp: &str, line: &str) -> usize {
    sdp.lines().filter(|l| l.trim_end() == line).count()
}

#[test]
fn directions_follow_the_role() {
    assert_eq!(offer_direction(true, true), Direction::SendRecv);
    assert_eq!(offer_direction(true, false), Direction::SendOnly);
    assert_eq!(offer_direction(false, true), Direction::RecvOnly);
    assert_eq!(offer_direction(false, false), Direction::RecvOnly);
}

#[tokio::test]
async fn a_broadcaster_join_offers_vp8_and_opus_and_media_flows() {
    let (client, mut server) = fake_client();
    let join = tokio::spawn({
        let client = client.clone();
        async move {
            MediaSession::join(
                &client,
                "host-1_live",
                ChannelRole::Broadcaster,
                MediaOptions::default(),
            )
            .await
        }
    });
    let (id, j) = expect_join(&mut server).await;
    assert_eq!(j.channel, "host-1_live");
    assert_eq!(j.role, ChannelRole::Broadcaster as i32);
    let offer = &j.sdp_offer;
    assert!(
        offer.len() < 16_384,
        "fits the protocol's limit: {}",
        offer.len()
    );
    assert_eq!(count(offer, "a=sendrecv"), 2, "{offer}");
    assert!(offer.lines().any(|l| l.starts_with("m=audio ")));
    assert!(offer.lines().any(|l| l.starts_with("m=video ")));
    assert!(offer.contains("opus/48000/2") && offer.contains("VP8/90000"));
    assert!(!offer.contains("H264") && !offer.contains("VP9") && !offer.contains("AV1"));
    assert!(
        offer.contains(" typ host"),
        "the host candidate is in the offer"
    );
    assert!(
        !offer.contains("a=ice-lite"),
        "the client is a full ICE agent"
    );

    let mut node = MediaPeer::new(MediaOptions::default()).unwrap();
    let answer = node.accept_offer(offer).unwrap();
    let node = node.start().unwrap();
    server.respond(id, joined("host-1_live", ChannelRole::Broadcaster, answer));
    let (media, joined) = guarded("join", join).await.unwrap().unwrap();
    assert_eq!(joined.channel, "host-1_live");

    guarded("node gets video", node.wait_video_frames(10))
        .await
        .unwrap();
    guarded("node gets audio", node.wait_audio_frames(10))
        .await
        .unwrap();
    guarded("client gets video", media.wait_video_frames(10))
        .await
        .unwrap();
    assert!(media.stats().connected);
    server.assert_quiet();
}

#[tokio::test]
async fn an_audience_join_offers_receive_only() {
    let (client, mut server) = fake_client();
    let join = tokio::spawn({
        let client = client.clone();
        async move {
            MediaSession::join(
                &client,
                "host-1_live",
                ChannelRole::Audience,
                MediaOptions::default(),
            )
            .await
        }
    });
    let (id, j) = expect_join(&mut server).await;
    assert_eq!(j.role, ChannelRole::Audience as i32);
    assert_eq!(count(&j.sdp_offer, "a=recvonly"), 2, "{}", j.sdp_offer);
    assert_eq!(count(&j.sdp_offer, "a=sendrecv"), 0);
    assert_eq!(count(&j.sdp_offer, "a=sendonly"), 0);

    let mut node = MediaPeer::new(MediaOptions::default()).unwrap();
    let answer = node.accept_offer(&j.sdp_offer).unwrap();
    let node = node.start().unwrap();
    server.respond(id, joined("host-1_live", ChannelRole::Audience, answer));
    let (media, _) = guarded("join", join).await.unwrap().unwrap();
    guarded("video", media.wait_video_frames(10)).await.unwrap();
    guarded("audio", media.wait_audio_frames(10)).await.unwrap();
    let s = media.stats();
    assert_eq!((s.video_frames_out, s.audio_frames_out), (0, 0));
    assert_eq!(node.stats().video_frames_in, 0);
}

#[tokio::test]
async fn a_join_without_a_usable_answer_leaves_the_channel_again() {
    for bad_answer in ["", "not an sdp"] {
        let (client, mut server) = fake_client();
        let join = tokio::spawn({
            let client = client.clone();
            async move {
                MediaSession::join(
                    &client,
                    "call-x",
                    ChannelRole::Broadcaster,
                    MediaOptions::default(),
                )
                .await
            }
        });
        let (id, _) = expect_join(&mut server).await;
        server.respond(
            id,
            joined("call-x", ChannelRole::Broadcaster, bad_answer.to_owned()),
        );
        match server.expect().await {
            (id, Command::LeaveChannel(leave)) => {
                assert_eq!(leave.channel, "call-x");
                server.ok(id);
            }
            (_, other) => panic!("expected a leave, got {other:?}"),
        }
        let result = guarded("join", join).await.unwrap();
        assert!(
            matches!(result, Err(SdkError::Protocol(_))),
            "{bad_answer:?}: {result:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_join_is_the_servers_error_and_nothing_runs() {
    let (client, mut server) = fake_client();
    let join = tokio::spawn({
        let client = client.clone();
        async move {
            MediaSession::join(
                &client,
                "host-1_live",
                ChannelRole::Broadcaster,
                MediaOptions::default(),
            )
            .await
        }
    });
    let (id, _) = expect_join(&mut server).await;
    server.refuse(id, ErrorCode::PermissionDenied, "no publish grant");
    let result = guarded("join", join).await.unwrap();
    assert_eq!(
        result.unwrap_err().code(),
        Some(ErrorCode::PermissionDenied)
    );
    server.assert_quiet();
}
