//! A business server written as a test (a tonic client of the admin API, as an app's backend is): it
//! mints the users' tokens, reads presence, the host directory, the live rooms and their members, reads a
//! running call, ends one with a reason ("balance exhausted"), kicks a viewer out of a call (the viewer's
//! client hears onCallError 123 and the call ends for both), bans a viewer from a live room (its rejoin is
//! refused until the ban is lifted), and sends requests that are wrong (each refused, naming the field,
//! changing nothing: no event follows them). The events it watches tell the same story.

use std::collections::HashMap;

use futures_util::StreamExt;
use showcall_proto::admin::event::Kind;
use showcall_proto::admin::{
    CallPhase, EndCallRequest, Event, GetCallRequest, GetChannelRequest, GetUserRequest,
    KickUserRequest, ListChannelsRequest, ListUsersRequest, MemberRole, MintTokenRequest, Presence,
    PublishState, UnbanUserRequest,
};
use showcall_sdk::{
    CallErrorEvent, CallErrorType, CallState, CallStateReason, CallType, ChannelRole, ErrorCode,
    PrepareConfig, Recorded,
};
use showcall_tests::admin::{admin_at, watch_events};
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::{DEADLINE, TestNode};
use tonic::{Code, Streaming};

const APP: &str = "demo";
const LIVE: &str = "host_live";

struct BusinessServer {
    admin: showcall_tests::admin::Admin,
    events: Streaming<Event>,
}

impl BusinessServer {
    async fn connect(node: &TestNode) -> Self {
        let mut admin = admin_at(&format!("http://{}", node.handle.grpc_addr)).await;
        let events = watch_events(&mut admin, APP, None).await;
        Self { admin, events }
    }

    async fn token(&mut self, user: &str, publish: bool) -> String {
        self.admin
            .mint_token(MintTokenRequest {
                app_id: APP.into(),
                user_id: user.into(),
                ttl_seconds: 3600,
                channel: "*".into(),
                publish,
                subscribe: None,
            })
            .await
            .expect("token minted")
            .into_inner()
            .token
    }

    /// Skips events until one `pick` accepts; returns what it returned.
    async fn until<T>(&mut self, what: &str, pick: impl Fn(&Kind) -> Option<T>) -> T {
        loop {
            let event = tokio::time::timeout(DEADLINE, self.events.next())
                .await
                .unwrap_or_else(|_| panic!("no {what} event within {DEADLINE:?}"))
                .expect("the stream goes on")
                .expect("an event");
            if let Some(found) = event.kind.as_ref().and_then(&pick) {
                return found;
            }
        }
    }

    async fn user(&mut self, user: &str) -> showcall_proto::admin::User {
        self.admin
            .get_user(GetUserRequest {
                app_id: APP.into(),
                user_id: user.into(),
            })
            .await
            .expect("user read")
            .into_inner()
    }

    async fn hosts(&mut self) -> Vec<String> {
        self.admin
            .list_available_hosts(ListUsersRequest {
                app_id: APP.into(),
                page_size: 10,
                page_token: String::new(),
            })
            .await
            .expect("hosts listed")
            .into_inner()
            .users
            .into_iter()
            .map(|u| u.user_id)
            .collect()
    }
}

fn presence(user: &showcall_proto::admin::User) -> Presence {
    Presence::try_from(user.presence).expect("a known presence")
}

#[tokio::test]
async fn a_business_server_reads_presence_ends_kicks_and_bans() {
    let node = TestNode::start().await;
    let mut biz = BusinessServer::connect(&node).await;

    // Tokens come from the business server, as in the seed.
    let host_token = biz.token("host", true).await;
    let viewer_token = biz.token("viewer", false).await;
    let mut host = SdkUser::login_with_token(&node, "host", &host_token).await;
    let mut viewer = SdkUser::login_with_token(&node, "viewer", &viewer_token).await;
    for user in [&host, &viewer] {
        user.api
            .prepare_for_call(PrepareConfig::default())
            .await
            .expect("prepared");
    }
    assert_eq!(presence(&biz.user("host").await), Presence::Online);
    assert_eq!(presence(&biz.user("nobody").await), Presence::Offline);
    assert!(biz.hosts().await.is_empty(), "nobody is live yet");

    host.signal
        .join_channel(LIVE, ChannelRole::Broadcaster)
        .await
        .expect("host goes live");
    viewer
        .signal
        .join_channel(LIVE, ChannelRole::Audience)
        .await
        .expect("viewer watches");
    biz.until("viewer joined", |k| match k {
        Kind::MemberJoined(m) if m.user_id == "viewer" => Some(()),
        _ => None,
    })
    .await;
    let host_now = biz.user("host").await;
    assert_eq!(presence(&host_now), Presence::Live);
    assert!(host_now.prepared && !host_now.away);
    assert_eq!(biz.hosts().await, ["host"], "the host directory");
    let online = biz
        .admin
        .list_online_users(ListUsersRequest {
            app_id: APP.into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(online.users[0].user_id, "host", "id order, one per page");
    let second = biz
        .admin
        .list_online_users(ListUsersRequest {
            app_id: APP.into(),
            page_size: 1,
            page_token: online.next_page_token,
        })
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(second.users[0].user_id, "viewer");
    let rooms = biz
        .admin
        .list_channels(ListChannelsRequest {
            app_id: APP.into(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("rooms listed")
        .into_inner();
    assert_eq!(rooms.channels.len(), 1);
    let room = biz
        .admin
        .get_channel(GetChannelRequest {
            app_id: APP.into(),
            channel: LIVE.into(),
        })
        .await
        .expect("room read")
        .into_inner();
    let roles: Vec<(String, MemberRole, PublishState)> = room
        .members
        .iter()
        .map(|m| {
            (
                m.user_id.clone(),
                MemberRole::try_from(m.role).expect("role"),
                PublishState::try_from(m.publish).expect("publish state"),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            (
                "host".into(),
                MemberRole::Broadcaster,
                PublishState::Publishing
            ),
            ("viewer".into(), MemberRole::Audience, PublishState::None),
        ]
    );

    // A paid call; the balance runs out: the business server ends it with a reason.
    let call = connect_call(&mut viewer, &mut host).await;
    let running = biz
        .admin
        .get_call(GetCallRequest {
            app_id: APP.into(),
            call_id: call.clone(),
        })
        .await
        .expect("call read")
        .into_inner();
    assert_eq!(running.phase, CallPhase::Connected as i32);
    assert_eq!(
        (
            running.caller_user_id.as_str(),
            running.callee_user_id.as_str()
        ),
        ("viewer", "host")
    );
    assert!(running.connected_at_ms.is_some());
    assert_eq!(presence(&biz.user("viewer").await), Presence::InCall);
    assert!(
        biz.hosts().await.is_empty(),
        "a host in a call is not available"
    );
    biz.admin
        .end_call(EndCallRequest {
            app_id: APP.into(),
            call_id: call.clone(),
            reason: "balance exhausted".into(),
        })
        .await
        .expect("call ended");
    for user in [&mut viewer, &mut host] {
        let (reason_text, _) = user
            .wait_state_text(CallState::Prepared, CallStateReason::EndedByServer)
            .await;
        assert_eq!(reason_text, "balance exhausted");
    }
    let record = biz
        .until("call ended", |k| match k {
            Kind::CallEnded(e) => Some(e.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (record.call_id.as_str(), record.end_reason.as_str()),
        (call.as_str(), "terminated")
    );
    assert_eq!(record.detail, "balance exhausted");
    assert!(record.connected_duration_ms > 0 || record.connected_at_ms.is_some());
    let gone = biz
        .admin
        .get_call(GetCallRequest {
            app_id: APP.into(),
            call_id: call.clone(),
        })
        .await
        .expect_err("an ended call is not running");
    assert_eq!(gone.code(), Code::NotFound);
    let again = biz
        .admin
        .end_call(EndCallRequest {
            app_id: APP.into(),
            call_id: call,
            reason: "twice".into(),
        })
        .await
        .expect_err("an ended call cannot end again");
    assert_eq!(again.code(), Code::NotFound);

    // A viewer misbehaves in a call: kicked from the call's channel, its client hears code 123.
    let call = connect_call(&mut viewer, &mut host).await;
    let call_channel = biz
        .user("viewer")
        .await
        .channels
        .iter()
        .find(|c| c.channel != LIVE)
        .expect("in the call channel")
        .channel
        .clone();
    biz.admin
        .kick_user(KickUserRequest {
            app_id: APP.into(),
            channel: call_channel.clone(),
            user_id: "viewer".into(),
            ..Default::default()
        })
        .await
        .expect("kicked");
    let error = viewer
        .wait_call(|r| matches!(r, Recorded::Error { .. }))
        .await;
    let Recorded::Error {
        event,
        error_type,
        code,
        ..
    } = error
    else {
        unreachable!()
    };
    assert_eq!(
        (event, error_type, code),
        (CallErrorEvent::RtcOccurError, CallErrorType::Rtc, 123)
    );
    for user in [&mut viewer, &mut host] {
        user.wait_state(CallState::Prepared, CallStateReason::EndedByServer)
            .await;
    }
    let kicked = biz
        .until("kicked", |k| match k {
            Kind::MemberKicked(m) => Some(m.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (
            kicked.channel.as_str(),
            kicked.user_id.as_str(),
            kicked.banned_until_ms
        ),
        (call_channel.as_str(), "viewer", 0)
    );
    let record = biz
        .until("call ended", |k| match k {
            Kind::CallEnded(e) => Some(e.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (
            record.call_id.as_str(),
            record.end_reason.as_str(),
            record.detail.as_str()
        ),
        (call.as_str(), "terminated", "kicked: viewer")
    );

    // The call's last events: the host back live and out of the call channel.
    let mut last = (false, false);
    while last != (true, true) {
        let (resumed, left) = biz
            .until("the call's last events", |k| match k {
                Kind::HostResumed(_) => Some((true, false)),
                Kind::MemberLeft(m) if m.user_id == "host" && m.channel == call_channel => {
                    Some((false, true))
                }
                _ => None,
            })
            .await;
        last = (last.0 || resumed, last.1 || left);
    }

    // Wrong requests change nothing: refused with the field named.
    let wrong = [
        KickUserRequest {
            app_id: APP.into(),
            channel: LIVE.into(),
            user_id: "viewer".into(),
            ban_seconds: 0,
            ban_join: true,
            ..Default::default()
        },
        KickUserRequest {
            app_id: APP.into(),
            channel: LIVE.into(),
            user_id: "viewer".into(),
            ban_seconds: 60,
            ..Default::default()
        },
        KickUserRequest {
            app_id: APP.into(),
            channel: LIVE.into(),
            user_id: String::new(),
            ..Default::default()
        },
    ];
    for (request, field) in wrong
        .into_iter()
        .zip(["ban_seconds", "ban_join", "user_id"])
    {
        let refused = biz.admin.kick_user(request).await.expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(
            refused.message().starts_with(field),
            "{}",
            refused.message()
        );
    }
    let refused = biz
        .admin
        .end_call(EndCallRequest {
            app_id: APP.into(),
            call_id: "not/a/call".into(),
            reason: "x".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);

    // Banned from the live room for ten minutes: out at once, and a rejoin is refused until unbanned.
    let banned = biz
        .admin
        .kick_user(KickUserRequest {
            app_id: APP.into(),
            channel: LIVE.into(),
            user_id: "viewer".into(),
            ban_seconds: 600,
            ban_join: true,
            ..Default::default()
        })
        .await
        .expect("banned")
        .into_inner();
    assert!(banned.banned_until_ms > 0);
    // The first event after the wrong requests is this kick: they left nothing behind.
    let next = biz.until("any", |k| Some(k.clone())).await;
    assert!(
        matches!(&next, Kind::MemberKicked(m) if m.channel == LIVE && m.ban_join && m.banned_until_ms == banned.banned_until_ms),
        "{next:?}"
    );
    biz.until("viewer left the room", |k| match k {
        Kind::MemberLeft(m) if m.user_id == "viewer" && m.channel == LIVE => Some(()),
        _ => None,
    })
    .await;
    let error = viewer
        .wait_call(|r| matches!(r, Recorded::Error { .. }))
        .await;
    assert!(matches!(error, Recorded::Error { code: 123, .. }));
    let refused = viewer
        .signal
        .join_channel(LIVE, ChannelRole::Audience)
        .await
        .expect_err("a banned user may not rejoin");
    assert_eq!(refused.code(), Some(ErrorCode::Banned));
    let lifted = biz
        .admin
        .unban_user(UnbanUserRequest {
            app_id: APP.into(),
            channel: LIVE.into(),
            user_id: "viewer".into(),
        })
        .await
        .expect("unbanned")
        .into_inner();
    assert!(lifted.lifted);
    viewer
        .signal
        .join_channel(LIVE, ChannelRole::Audience)
        .await
        .expect("rejoins once unbanned");
}

/// The viewer calls the host, who accepts; both join the call channel; the call connects. The call id.
async fn connect_call(viewer: &mut SdkUser, host: &mut SdkUser) -> String {
    let created = viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    host.api.accept("viewer").await.expect("accepted");
    viewer.api.join_call_channel().await.expect("viewer joins");
    host.api.join_call_channel().await.expect("host joins");
    for user in [&mut *viewer, &mut *host] {
        user.wait_call(|r| {
            matches!(
                r,
                Recorded::State {
                    state: CallState::Connected,
                    ..
                }
            )
        })
        .await;
    }
    created.call_id
}
