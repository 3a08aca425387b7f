//! With `pause_live_at = "ringing"` a host's live room pauses the moment a private call rings (the seed's
//! host stops publishing on `calling`), so the audience never sees the host deciding; however the ringing
//! call ends — rejected, cancelled, timed out, or accepted and later hung up — the room resumes, once.

use std::collections::HashMap;

use showcall_node::config::PauseAt;
use showcall_sdk::{
    CallState, CallStateReason, CallType, ChannelRole, PrepareConfig, PublishState,
};
use showcall_tests::TestNode;
use showcall_tests::sdk_helpers::{SdkUser, is_paused, is_resumed, member};

const LIVE: &str = "host_live";

struct Room {
    node: TestNode,
    host: SdkUser,
    viewer: SdkUser,
    fans: Vec<SdkUser>,
}

/// A node pausing at ringing; the host live in its room; a viewer (who will call) and two fans watching.
async fn room(viewer_prepare: PrepareConfig) -> Room {
    let node = TestNode::start_with(|c| c.pause_live_at = PauseAt::Ringing).await;
    let host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let viewer = SdkUser::prepared(&node, "viewer", viewer_prepare).await;
    host.join(LIVE, ChannelRole::Broadcaster).await;
    viewer.join(LIVE, ChannelRole::Audience).await;
    let mut fans = Vec::new();
    for id in ["fan-1", "fan-2"] {
        let fan = SdkUser::login(&node, id).await;
        fan.join(LIVE, ChannelRole::Audience).await;
        fans.push(fan);
    }
    Room {
        node,
        host,
        viewer,
        fans,
    }
}

impl Room {
    /// The viewer calls the host and the host's phone rings.
    async fn ring(&mut self) -> String {
        let created = self
            .viewer
            .api
            .call("host", CallType::Video, HashMap::new())
            .await
            .expect("call placed");
        let ring = self
            .host
            .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
            .await;
        assert_eq!(ring.call_id, created.call_id);
        created.call_id
    }

    /// Everyone in the room (the host included) hears the host paused.
    async fn all_see_paused(&mut self) {
        for u in self.everyone() {
            u.wait_paused(LIVE, "host").await;
        }
    }

    /// Everyone in the room hears the host back live, and has heard exactly one pause and one resume
    /// per call so far (`calls`).
    async fn all_see_resumed(&mut self, calls: usize) {
        for u in self.everyone() {
            u.wait_resumed(LIVE, "host").await;
            let events = u.channel_events(LIVE);
            let pauses = events.iter().filter(|k| is_paused(k, "host")).count();
            let resumes = events.iter().filter(|k| is_resumed(k, "host")).count();
            assert_eq!((pauses, resumes), (calls, calls), "{}: {events:?}", u.id);
        }
    }

    fn everyone(&mut self) -> impl Iterator<Item = &mut SdkUser> {
        [&mut self.host, &mut self.viewer]
            .into_iter()
            .chain(self.fans.iter_mut())
    }
}

#[tokio::test]
async fn the_room_pauses_when_the_call_rings_and_resumes_when_the_host_rejects_it() {
    let mut room = room(PrepareConfig::default()).await;
    room.ring().await;

    // Nobody has accepted or rejected anything yet, and the room is already paused.
    room.all_see_paused().await;
    let latecomer = SdkUser::login(&room.node, "latecomer").await;
    let joined = latecomer.join(LIVE, ChannelRole::Audience).await;
    assert!(joined.broadcaster_paused);
    assert_eq!(
        member(&joined, "host").publish_state,
        PublishState::Paused as i32
    );

    room.host
        .api
        .reject("viewer", "not now")
        .await
        .expect("rejected");
    let (why, _) = room
        .viewer
        .wait_state_text(CallState::Prepared, CallStateReason::RemoteRejected)
        .await;
    assert_eq!(why, "not now");
    room.all_see_resumed(1).await;
    let mut latecomer = latecomer;
    latecomer.wait_resumed(LIVE, "host").await;
    let again = latecomer.join(LIVE, ChannelRole::Audience).await;
    assert!(!again.broadcaster_paused);
    assert_eq!(
        member(&again, "host").publish_state,
        PublishState::Publishing as i32
    );
}

#[tokio::test]
async fn a_call_paused_at_ringing_is_not_paused_again_at_accept_and_resumes_at_hangup() {
    let mut room = room(PrepareConfig::default()).await;
    room.ring().await;
    room.all_see_paused().await;

    room.host.api.accept("viewer").await.expect("accepted");
    room.viewer
        .wait_state(CallState::Connecting, CallStateReason::RemoteAccepted)
        .await;
    room.host.api.join_call_channel().await.expect("host joins");
    room.viewer
        .api
        .join_call_channel()
        .await
        .expect("viewer joins");
    room.host
        .wait_state(CallState::Connected, CallStateReason::BothJoined)
        .await;
    room.viewer.api.hangup("host", "").await.expect("hung up");
    room.host
        .wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
    // One pause (at ringing) and one resume (at the end) for the whole call.
    room.all_see_resumed(1).await;
}

#[tokio::test]
async fn a_ring_that_is_cancelled_or_times_out_resumes_the_room() {
    // No timeout while the viewer cancels; then a short one for the ring nobody answers.
    let mut room = room(PrepareConfig {
        call_timeout_ms: Some(0),
        ..PrepareConfig::default()
    })
    .await;

    room.ring().await;
    room.all_see_paused().await;
    room.viewer.api.cancel_call().await.expect("cancelled");
    room.host
        .wait_state(CallState::Prepared, CallStateReason::RemoteCancelled)
        .await;
    room.all_see_resumed(1).await;

    room.viewer
        .api
        .prepare_for_call(PrepareConfig {
            call_timeout_ms: Some(300),
            ..PrepareConfig::default()
        })
        .await
        .expect("prepares again");
    room.ring().await;
    room.all_see_paused().await;
    room.host
        .wait_state(CallState::Prepared, CallStateReason::RemoteCallingTimeout)
        .await;
    room.all_see_resumed(2).await;
    // And the room says so to a newcomer.
    let newcomer = SdkUser::login(&room.node, "newcomer").await;
    let joined = newcomer.join(LIVE, ChannelRole::Audience).await;
    assert!(!joined.broadcaster_paused);
    assert!(
        !joined
            .members
            .iter()
            .any(|m| m.publish_state == PublishState::Paused as i32),
        "{joined:?}"
    );
}
