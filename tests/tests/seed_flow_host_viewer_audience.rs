//! The seed's showroom-to-1v1 story (steps 1–17), end to end over real sockets: a host is live in its
//! room, a viewer and two fans watch, the viewer pays for a private video call, the host takes it, the
//! room pauses for everyone watching, the call connects in its own private channel, the viewer hangs up,
//! the room resumes, a second call gets a fresh channel the old name cannot reach, and everyone leaves.
//!
//! Every user runs the Rust SDK (binary frames) as the seed's app would; the last tests put a browser
//! (JSON frames) on one side of the same call to prove both encodings interoperate.

use std::collections::HashMap;

use serde_json::{Value, json};
use showcall_sdk::{
    CallEvent, CallState, CallStateReason, CallType, ChannelRole, ErrorCode, PrepareConfig,
    PublishState, Recorded, SessionCloseReason,
};
use showcall_tests::sdk_helpers::{SdkUser, is_paused, member, refusal};
use showcall_tests::{JsonClient, TestNode};

const LIVE: &str = "host_live";

fn extension(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn prepare_with_nick(nick: &str) -> PrepareConfig {
    PrepareConfig {
        room_id: format!("{nick}-room-1"),
        user_extension: extension(&[("nick", nick)]),
        ..PrepareConfig::default()
    }
}

#[tokio::test]
async fn showroom_to_1v1_as_the_seed_tells_it() {
    let node = TestNode::start().await;

    // Steps 1–7: each app connects its signaling client, initializes CallApi with listeners, logs in, and
    // hears onConnected. Nothing about calls has happened yet: CallApi is idle.
    let mut host = SdkUser::login(&node, "host").await;
    let mut viewer = SdkUser::login(&node, "viewer").await;
    let mut fan1 = SdkUser::login(&node, "fan-1").await;
    let mut fan2 = SdkUser::login(&node, "fan-2").await;
    for u in [&host, &viewer, &fan1, &fan2] {
        assert_eq!(u.api.state(), CallState::Idle, "{} before prepare", u.id);
        assert!(u.api.get_call_id().is_none());
    }

    // Step 8: host and viewer prepare for calls; each app hears `prepared`.
    host.api
        .prepare_for_call(prepare_with_nick("Host"))
        .await
        .expect("host prepares");
    viewer
        .api
        .prepare_for_call(prepare_with_nick("Viewer"))
        .await
        .expect("viewer prepares");
    for u in [&mut host, &mut viewer] {
        u.wait_state(CallState::Prepared, CallStateReason::None)
            .await;
        assert_eq!(u.api.state(), CallState::Prepared);
    }

    // Step 9: the host goes live in "<host>_live" as its broadcaster.
    let joined = host.join(LIVE, ChannelRole::Broadcaster).await;
    assert_eq!(joined.channel, LIVE);
    assert_eq!(joined.role, ChannelRole::Broadcaster as i32);
    assert!(!joined.broadcaster_paused);
    assert_eq!(
        member(&joined, "host").publish_state,
        PublishState::Publishing as i32
    );

    // Step 10: the viewer and both fans come in as audience and see the host broadcasting.
    let mut last = None;
    for u in [&viewer, &fan1, &fan2] {
        let snapshot = u.join(LIVE, ChannelRole::Audience).await;
        assert_eq!(snapshot.role, ChannelRole::Audience as i32);
        assert!(!snapshot.broadcaster_paused);
        let h = member(&snapshot, "host");
        assert_eq!(h.role, ChannelRole::Broadcaster as i32);
        assert_eq!(h.publish_state, PublishState::Publishing as i32);
        let me = member(&snapshot, &u.id);
        assert_eq!(me.role, ChannelRole::Audience as i32);
        assert_eq!(me.publish_state, PublishState::None as i32);
        last = Some(snapshot);
    }
    // The last one in sees the whole room.
    let everyone = last.expect("three joins");
    let mut ids: Vec<_> = everyone
        .members
        .iter()
        .map(|m| m.user_id.as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["fan-1", "fan-2", "host", "viewer"]);

    // Step 11: the viewer calls the host (video, with a gift in the call extension).
    let created = viewer
        .api
        .call("host", CallType::Video, extension(&[("gift", "rose")]))
        .await
        .expect("call placed");
    assert!(
        created.channel.starts_with("call-"),
        "a server-minted channel: {created:?}"
    );
    let first_channel = created.channel.clone();
    let info = viewer
        .wait_state(CallState::Calling, CallStateReason::LocalVideoCall)
        .await;
    assert_eq!(info.call_id, created.call_id);
    assert_eq!(info.from_user_id, "viewer");
    assert_eq!(info.remote_user_id, "host");
    assert_eq!(info.from_room_id, first_channel);
    assert_eq!(
        info.extension,
        extension(&[("gift", "rose")]),
        "the caller is shown its call extension at once (the host's user extension is not known yet)"
    );
    assert_eq!(viewer.api.get_call_id(), Some(created.call_id.clone()));
    viewer.wait_event(CallEvent::LocalVideoCall).await;

    // Step 12: the host's app sees the incoming call with who, where and what came with it...
    let ring = host
        .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    assert_eq!(ring.call_id, created.call_id);
    assert_eq!(ring.from_user_id, "viewer");
    assert_eq!(ring.from_room_id, first_channel);
    assert_eq!(
        ring.remote_user_id, "host",
        "the callee, i.e. the host itself"
    );
    assert_eq!(ring.call_type, CallType::Video as i32);
    assert_eq!(ring.extension.get("gift").map(String::as_str), Some("rose"));
    assert_eq!(
        ring.extension.get("nick").map(String::as_str),
        Some("Viewer")
    );
    assert!(ring.timing.contains_key("ringing"), "{ring:?}");
    host.wait_event(CallEvent::RemoteVideoCall).await;
    viewer.wait_event(CallEvent::RemoteUserRecvCall).await;
    // Once it rings, the caller's app is shown the host's user extension too (the proto's rule: the peer's
    // user extension with the call extension merged over it).
    let ringing = viewer.api.event_info().expect("the caller's call info");
    assert_eq!(
        ringing.extension,
        extension(&[("gift", "rose"), ("nick", "Host")])
    );
    assert!(ringing.timing.contains_key("ringing"), "{ringing:?}");

    // ...and accepts at once, as the seed's host does. Both sides move to `connecting`.
    host.api.accept("viewer").await.expect("host accepts");
    host.wait_state(CallState::Connecting, CallStateReason::LocalAccepted)
        .await;
    let info = viewer
        .wait_state(CallState::Connecting, CallStateReason::RemoteAccepted)
        .await;
    assert_eq!(
        info.extension,
        extension(&[("gift", "rose"), ("nick", "Host")]),
        "the caller sees the callee's user extension and its own call extension"
    );

    // The room pauses: every audience member (the caller too, still watching) is told the host went into a
    // private call; the host's own app hears it as well.
    for u in [&mut fan1, &mut fan2, &mut viewer, &mut host] {
        let paused = u.wait_channel(LIVE, |k| is_paused(k, "host")).await;
        let showcall_sdk::channel_event::Kind::BroadcasterPaused(p) = paused else {
            unreachable!("matched a pause");
        };
        assert_eq!(p.reason, "private_call");
    }
    // A fan who steps out and comes back during the call finds the room still open and the host paused.
    fan2.signal.leave_channel(LIVE).await.expect("fan-2 leaves");
    let back = fan2.join(LIVE, ChannelRole::Audience).await;
    assert!(back.broadcaster_paused);
    let h = member(&back, "host");
    assert_eq!(h.role, ChannelRole::Broadcaster as i32);
    assert_eq!(h.publish_state, PublishState::Paused as i32);

    // Both join the call's private channel: the host right after accepting, the viewer on `connecting`.
    let host_side = host.api.join_call_channel().await.expect("host joins");
    assert_eq!(host_side.channel, first_channel);
    assert_eq!(host_side.role, ChannelRole::Broadcaster as i32);
    let viewer_side = viewer.api.join_call_channel().await.expect("viewer joins");
    let mut in_call: Vec<_> = viewer_side
        .members
        .iter()
        .map(|m| m.user_id.as_str())
        .collect();
    in_call.sort_unstable();
    assert_eq!(in_call, ["host", "viewer"]);

    // Step 13: connected on both sides, with onCallConnected naming the room and the caller.
    for u in [&mut viewer, &mut host] {
        u.wait_state(CallState::Connected, CallStateReason::BothJoined)
            .await;
        let connected = u
            .wait_call(|r| matches!(r, Recorded::Connected { .. }))
            .await;
        let Recorded::Connected {
            room_id,
            call_user_id,
            current_user_id,
            ..
        } = connected
        else {
            unreachable!("matched connected");
        };
        assert_eq!(room_id, first_channel);
        assert_eq!(call_user_id, "viewer");
        assert_eq!(current_user_id, u.id);
        assert_eq!(u.api.state(), CallState::Connected);
    }

    // Step 14: the viewer hangs up.
    viewer
        .api
        .hangup("host", "")
        .await
        .expect("viewer hangs up");

    // Step 15: both are back to `prepared`; onCallDisconnected tells who hung up and for how long the call
    // was connected (from the call's own milestones).
    let ends = [
        (
            &mut viewer,
            CallStateReason::LocalHangup,
            CallEvent::LocalHangup,
        ),
        (
            &mut host,
            CallStateReason::RemoteHangup,
            CallEvent::RemoteHangup,
        ),
    ];
    for (u, reason, event) in ends {
        let (_, info) = u.wait_state_text(CallState::Prepared, reason).await;
        u.wait_event(event).await;
        let disconnected = u
            .wait_call(|r| matches!(r, Recorded::Disconnected { .. }))
            .await;
        let Recorded::Disconnected {
            room_id,
            hangup_user_id,
            current_user_id,
            timestamp_ms,
            duration_ms,
        } = disconnected
        else {
            unreachable!("matched disconnected");
        };
        assert_eq!(room_id, first_channel);
        assert_eq!(hangup_user_id, "viewer");
        assert_eq!(current_user_id, u.id);
        let connected_at = info.timing["connected"];
        let ended_at = info.timing["end"];
        assert_eq!(timestamp_ms, ended_at);
        assert_eq!(duration_ms, ended_at - connected_at, "{info:?}");
        assert_eq!(u.api.state(), CallState::Prepared);
        assert!(u.api.get_call_id().is_none());
    }
    // The host is back live for everyone watching.
    for u in [&mut fan1, &mut fan2, &mut viewer, &mut host] {
        u.wait_resumed(LIVE, "host").await;
    }

    // Step 16: the viewer prepares again with a new room id before calling again. Whatever the app does,
    // the old call's channel is worthless now: neither party can get back into it.
    viewer
        .api
        .prepare_for_call(PrepareConfig {
            room_id: "Viewer-room-2".into(),
            ..prepare_with_nick("Viewer")
        })
        .await
        .expect("viewer prepares again");
    for u in [&viewer, &host] {
        let old = u
            .signal
            .join_channel(&first_channel, ChannelRole::Broadcaster)
            .await;
        assert_eq!(refusal(old), ErrorCode::NotAParticipant, "{}", u.id);
    }
    let second = viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("second call placed");
    assert_ne!(
        second.channel, first_channel,
        "every call gets a fresh channel"
    );
    assert_ne!(second.call_id, created.call_id);
    let ring = host
        .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    assert_eq!(ring.from_room_id, second.channel);
    host.api.accept("").await.expect("host accepts again");
    viewer
        .wait_state(CallState::Connecting, CallStateReason::RemoteAccepted)
        .await;
    // Only the two participants get into the new channel; a fan who learnt its name cannot watch.
    let stolen = fan1
        .signal
        .join_channel(&second.channel, ChannelRole::Audience)
        .await;
    assert_eq!(refusal(stolen), ErrorCode::NotAParticipant);
    host.api.join_call_channel().await.expect("host joins");
    viewer.api.join_call_channel().await.expect("viewer joins");
    for u in [&mut viewer, &mut host] {
        let info = u
            .wait_state(CallState::Connected, CallStateReason::BothJoined)
            .await;
        assert_eq!(info.call_id, second.call_id);
    }
    // Still no way back into the first call's channel.
    let old = viewer
        .signal
        .join_channel(&first_channel, ChannelRole::Broadcaster)
        .await;
    assert_eq!(refusal(old), ErrorCode::NotAParticipant);

    // Step 17: the viewer leaves the room and tears CallApi down in the middle of the call, as an app
    // leaving the scene does: the call is hung up for it, the state goes to idle, `deinitialize` is
    // reported; the host hears the hangup with the reason.
    viewer
        .signal
        .leave_channel(LIVE)
        .await
        .expect("viewer leaves");
    viewer
        .api
        .deinitialize()
        .await
        .expect("viewer deinitializes");
    assert_eq!(viewer.api.state(), CallState::Idle);
    assert!(!viewer.api.is_initialized());
    viewer
        .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
        .await;
    viewer
        .wait_state(CallState::Idle, CallStateReason::None)
        .await;
    viewer.wait_event(CallEvent::Deinitialize).await;
    let (why, _) = host
        .wait_state_text(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
    assert_eq!(why, showcall_sdk::DEINITIALIZE_REASON);
    for u in [&mut fan1, &mut fan2, &mut host] {
        u.wait_resumed(LIVE, "host").await;
    }

    // The fans and then the host leave the room; the host tears down too; everyone logs out and the
    // server closes each session as logged out.
    for u in [&fan1, &fan2, &host] {
        u.signal.leave_channel(LIVE).await.expect("leaves the room");
    }
    host.api.deinitialize().await.expect("host deinitializes");
    host.wait_state(CallState::Idle, CallStateReason::None)
        .await;
    host.wait_event(CallEvent::Deinitialize).await;
    for u in [&mut viewer, &mut host, &mut fan1, &mut fan2] {
        u.signal.logout().await.expect("logout accepted");
        let closed = u
            .wait_signal(|r| matches!(r, Recorded::SessionClosed { .. }))
            .await;
        assert!(
            matches!(
                closed,
                Recorded::SessionClosed {
                    reason: SessionCloseReason::LoggedOut,
                    ..
                }
            ),
            "{closed:?}"
        );
        u.wait_signal(|r| matches!(r, Recorded::SignalDisconnected { .. }))
            .await;
    }
}

/// A browser (JSON text frames) on one side of a call, the SDK (binary frames) on the other.
mod browser_and_sdk {
    use super::*;

    async fn ok(c: &mut JsonClient, command: Value) -> Value {
        let r = c.request(command).await;
        assert!(r.get("error").is_none(), "refused: {r}");
        r
    }

    fn is_json_paused(e: &Value, host: &str) -> bool {
        e["channelEvent"]["channel"] == LIVE
            && e["channelEvent"]["broadcasterPaused"]["userId"] == host
    }

    fn is_json_resumed(e: &Value, host: &str) -> bool {
        e["channelEvent"]["channel"] == LIVE && e["channelEvent"]["broadcasterResumed"] == host
    }

    #[tokio::test]
    async fn a_browser_viewer_calls_an_sdk_host_while_an_sdk_fan_watches() {
        let node = TestNode::start().await;
        let mut host = SdkUser::prepared(&node, "host", prepare_with_nick("Host")).await;
        let mut fan = SdkUser::login(&node, "fan-1").await;
        let mut viewer = JsonClient::login(&node.url(), &node.token("viewer")).await;
        host.join(LIVE, ChannelRole::Broadcaster).await;
        fan.join(LIVE, ChannelRole::Audience).await;
        let r = ok(
            &mut viewer,
            json!({ "joinChannel": { "channel": LIVE, "role": "CHANNEL_ROLE_AUDIENCE" } }),
        )
        .await;
        let members = r["channelJoined"]["members"].as_array().expect("members");
        let h = members
            .iter()
            .find(|m| m["userId"] == "host")
            .expect("host listed");
        assert_eq!(h["role"], "CHANNEL_ROLE_BROADCASTER");
        assert_eq!(h["publishState"], "PUBLISH_STATE_PUBLISHING");

        ok(
            &mut viewer,
            json!({ "prepareForCall": { "userExtension": { "nick": "Viewer" } } }),
        )
        .await;
        let r = ok(
            &mut viewer,
            json!({ "call": { "remoteUserId": "host", "callType": "CALL_TYPE_VIDEO", "callExtension": { "gift": "rose" } } }),
        )
        .await;
        let call_id = r["callCreated"]["callId"].as_str().expect("id").to_owned();
        let channel = r["callCreated"]["channel"]
            .as_str()
            .expect("channel")
            .to_owned();
        let calling = viewer.wait_state("CALL_STATE_CALLING").await;
        assert_eq!(calling["reason"], "CALL_STATE_REASON_LOCAL_VIDEO_CALL");

        let ring = host
            .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
            .await;
        assert_eq!(ring.call_id, call_id);
        assert_eq!(ring.from_user_id, "viewer");
        assert_eq!(ring.from_room_id, channel);
        assert_eq!(ring.extension.get("gift").map(String::as_str), Some("rose"));
        assert_eq!(
            ring.extension.get("nick").map(String::as_str),
            Some("Viewer")
        );

        host.api.accept("viewer").await.expect("host accepts");
        host.wait_state(CallState::Connecting, CallStateReason::LocalAccepted)
            .await;
        let connecting = viewer.wait_state("CALL_STATE_CONNECTING").await;
        assert_eq!(connecting["reason"], "CALL_STATE_REASON_REMOTE_ACCEPTED");
        assert_eq!(connecting["eventInfo"]["extension"]["nick"], "Host");
        // Paused for both kinds of audience.
        fan.wait_paused(LIVE, "host").await;
        let paused = viewer.wait_event(|e| is_json_paused(e, "host")).await;
        assert_eq!(
            paused["channelEvent"]["broadcasterPaused"]["reason"],
            "private_call"
        );

        host.api.join_call_channel().await.expect("host joins");
        ok(
            &mut viewer,
            json!({ "joinChannel": { "channel": channel, "role": "CHANNEL_ROLE_BROADCASTER" } }),
        )
        .await;
        host.wait_state(CallState::Connected, CallStateReason::BothJoined)
            .await;
        let connected = viewer
            .wait_event(|e| e.get("callConnected").is_some())
            .await;
        assert_eq!(connected["callConnected"]["roomId"], channel.as_str());
        assert_eq!(connected["callConnected"]["callUserId"], "viewer");
        assert_eq!(connected["callConnected"]["currentUserId"], "viewer");

        ok(
            &mut viewer,
            json!({ "hangup": { "callId": call_id, "reason": "thanks!" } }),
        )
        .await;
        let ended = viewer.wait_state("CALL_STATE_PREPARED").await;
        assert_eq!(ended["reason"], "CALL_STATE_REASON_LOCAL_HANGUP");
        let (why, _) = host
            .wait_state_text(CallState::Prepared, CallStateReason::RemoteHangup)
            .await;
        assert_eq!(why, "thanks!");
        let disconnected = host
            .wait_call(|r| matches!(r, Recorded::Disconnected { .. }))
            .await;
        assert!(
            matches!(&disconnected, Recorded::Disconnected { hangup_user_id, .. } if hangup_user_id == "viewer"),
            "{disconnected:?}"
        );
        fan.wait_resumed(LIVE, "host").await;
        viewer.wait_event(|e| is_json_resumed(e, "host")).await;
    }

    #[tokio::test]
    async fn an_sdk_viewer_calls_a_browser_host_while_a_browser_fan_watches() {
        let node = TestNode::start().await;
        let mut viewer = SdkUser::prepared(&node, "viewer", prepare_with_nick("Viewer")).await;
        let mut host = JsonClient::login(&node.url(), &node.token("host")).await;
        let mut fan = JsonClient::login(&node.url(), &node.token("fan-1")).await;
        ok(
            &mut host,
            json!({ "prepareForCall": { "userExtension": { "nick": "Host" } } }),
        )
        .await;
        ok(
            &mut host,
            json!({ "joinChannel": { "channel": LIVE, "role": "CHANNEL_ROLE_BROADCASTER" } }),
        )
        .await;
        ok(
            &mut fan,
            json!({ "joinChannel": { "channel": LIVE, "role": "CHANNEL_ROLE_AUDIENCE" } }),
        )
        .await;
        viewer.join(LIVE, ChannelRole::Audience).await;

        let created = viewer
            .api
            .call("host", CallType::Audio, extension(&[("gift", "rose")]))
            .await
            .expect("call placed");
        viewer
            .wait_state(CallState::Calling, CallStateReason::LocalAudioCall)
            .await;
        let ring = host.wait_state("CALL_STATE_CALLING").await;
        assert_eq!(ring["reason"], "CALL_STATE_REASON_REMOTE_AUDIO_CALL");
        assert_eq!(ring["callId"], created.call_id.as_str());
        assert_eq!(ring["eventInfo"]["fromUserId"], "viewer");
        assert_eq!(ring["eventInfo"]["remoteUserId"], "host");
        assert_eq!(ring["eventInfo"]["fromRoomId"], created.channel.as_str());
        assert_eq!(ring["eventInfo"]["callType"], "CALL_TYPE_AUDIO");
        assert_eq!(ring["eventInfo"]["extension"]["gift"], "rose");

        ok(
            &mut host,
            json!({ "accept": { "callId": created.call_id } }),
        )
        .await;
        assert_eq!(
            host.wait_state("CALL_STATE_CONNECTING").await["reason"],
            "CALL_STATE_REASON_LOCAL_ACCEPTED"
        );
        viewer
            .wait_state(CallState::Connecting, CallStateReason::RemoteAccepted)
            .await;
        fan.wait_event(|e| is_json_paused(e, "host")).await;
        host.wait_event(|e| is_json_paused(e, "host")).await;
        viewer.wait_paused(LIVE, "host").await;

        viewer.api.join_call_channel().await.expect("viewer joins");
        ok(
            &mut host,
            json!({ "joinChannel": { "channel": created.channel, "role": "CHANNEL_ROLE_BROADCASTER" } }),
        )
        .await;
        viewer
            .wait_state(CallState::Connected, CallStateReason::BothJoined)
            .await;
        assert_eq!(
            host.wait_state("CALL_STATE_CONNECTED").await["reason"],
            "CALL_STATE_REASON_BOTH_JOINED"
        );

        // This time the host ends it.
        ok(
            &mut host,
            json!({ "hangup": { "callId": created.call_id, "reason": "next fan" } }),
        )
        .await;
        assert_eq!(
            host.wait_state("CALL_STATE_PREPARED").await["reason"],
            "CALL_STATE_REASON_LOCAL_HANGUP"
        );
        let (why, _) = viewer
            .wait_state_text(CallState::Prepared, CallStateReason::RemoteHangup)
            .await;
        assert_eq!(why, "next fan");
        let disconnected = viewer
            .wait_call(|r| matches!(r, Recorded::Disconnected { .. }))
            .await;
        assert!(
            matches!(&disconnected, Recorded::Disconnected { hangup_user_id, current_user_id, .. }
                if hangup_user_id == "host" && current_user_id == "viewer"),
            "{disconnected:?}"
        );
        fan.wait_event(|e| is_json_resumed(e, "host")).await;
        viewer.wait_resumed(LIVE, "host").await;
    }
}
