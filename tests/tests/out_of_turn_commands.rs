//! Commands out of turn are refused with a typed error and change nothing: after every refusal the call
//! goes on and both parties finish it with exactly the states they would have seen without the refusals.
//! Also: a connection flooding frames faster than its rate limit gets RATE_LIMITED for the excess, which is
//! dropped unprocessed, and the session keeps working.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use showcall_sdk::proto::client_frame::Command;
use showcall_sdk::proto::{Call, channel_event, event};
use showcall_sdk::{
    CallState, CallType, ChannelRole, ErrorCode, PrepareConfig, PublishState, SdkError,
};
use showcall_tests::grace_helpers::{Party, connected_then_hung_up, hang_up, refusal};
use showcall_tests::{TestNode, audience_grants};

/// A well-formed call id no call ever had.
const UNKNOWN_CALL: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn refusals_while_ringing_leave_the_call_ringing() {
    let node = TestNode::start().await;
    let mut viewer = Party::prepared(&node, "viewer").await;
    let mut host = Party::prepared(&node, "host").await;
    let mut stranger = Party::prepared(&node, "stranger").await;

    let created = viewer.call("host").await;
    let id = created.call_id.as_str();
    host.wait_state(id, CallState::Calling).await;

    // Each side tries what only the other side may do, or what only an accepted call allows.
    let r = viewer.api.accept_with_call_id(id).await;
    assert_eq!(refusal("accept by the caller", r), ErrorCode::NotAllowed);
    let r = host.api.cancel_call_with_call_id(id).await;
    assert_eq!(refusal("cancel by the callee", r), ErrorCode::NotAllowed);
    let r = viewer.api.hangup_with_call_id(id, "x").await;
    assert_eq!(
        refusal("caller hangup while ringing", r),
        ErrorCode::NotAllowed
    );
    let r = host.api.hangup_with_call_id(id, "x").await;
    assert_eq!(
        refusal("callee hangup while ringing", r),
        ErrorCode::NotAllowed
    );

    // Neither may start another call or re-prepare while in this one.
    let r = viewer
        .api
        .call("stranger", CallType::Video, HashMap::new())
        .await;
    assert_eq!(refusal("call while calling", r), ErrorCode::AlreadyInCall);
    let r = host
        .api
        .call("stranger", CallType::Video, HashMap::new())
        .await;
    assert_eq!(refusal("call while ringing", r), ErrorCode::AlreadyInCall);
    let r = viewer.api.prepare_for_call(PrepareConfig::default()).await;
    assert_eq!(
        refusal("prepare while calling", r),
        ErrorCode::AlreadyInCall
    );
    let r = host.api.prepare_for_call(PrepareConfig::default()).await;
    assert_eq!(
        refusal("prepare while ringing", r),
        ErrorCode::AlreadyInCall
    );

    // A stranger who learned the call id (and holds a wildcard channel token) gets nowhere.
    let r = stranger.api.hangup_with_call_id(id, "x").await;
    assert_eq!(refusal("hangup by a stranger", r), ErrorCode::NoSuchCall);
    let r = stranger.api.accept_with_call_id(id).await;
    assert_eq!(refusal("accept by a stranger", r), ErrorCode::NoSuchCall);
    let r = stranger.api.cancel_call_with_call_id(id).await;
    assert_eq!(refusal("cancel by a stranger", r), ErrorCode::NoSuchCall);
    let r = stranger
        .signal
        .join_channel(&created.channel, ChannelRole::Broadcaster)
        .await;
    assert_eq!(
        refusal("stranger joins the call channel", r),
        ErrorCode::NotAParticipant
    );
    let r = stranger
        .signal
        .join_channel(&created.channel, ChannelRole::Audience)
        .await;
    assert_eq!(
        refusal("stranger watches the call channel", r),
        ErrorCode::NotAParticipant
    );

    // Nothing changed: the call is still ringing, is accepted, connects and ends as any call does.
    finish_call(&mut viewer, &mut host, &created.call_id, &created.channel).await;
    assert_eq!(viewer.states_of(id), connected_then_hung_up(true, true));
    assert_eq!(host.states_of(id), connected_then_hung_up(false, false));
    assert_no_member_event_about(&viewer, "stranger");
    assert_no_member_event_about(&host, "stranger");
    stranger.ping().await;
    stranger.drain_ready();
    assert_eq!(
        stranger.calls_seen(),
        Vec::<String>::new(),
        "the stranger heard of the call: {:#?}",
        stranger.log
    );
}

#[tokio::test]
async fn refusals_after_accept_leave_the_call_going() {
    let node = TestNode::start().await;
    let mut viewer = Party::prepared(&node, "viewer").await;
    let mut host = Party::prepared(&node, "host").await;
    let stranger = Party::prepared(&node, "stranger").await;

    let created = viewer.call("host").await;
    let id = created.call_id.as_str();
    host.wait_state(id, CallState::Calling).await;
    host.api
        .accept_with_call_id(id)
        .await
        .expect("first accept");
    viewer.wait_state(id, CallState::Connecting).await;
    host.wait_state(id, CallState::Connecting).await;

    let r = host.api.accept_with_call_id(id).await;
    assert_eq!(refusal("accept twice", r), ErrorCode::NotAllowed);
    let r = viewer.api.cancel_call_with_call_id(id).await;
    assert_eq!(refusal("cancel after accept", r), ErrorCode::NotAllowed);
    let r = host.api.reject_with_call_id(id, "x").await;
    assert_eq!(refusal("reject after accept", r), ErrorCode::NotAllowed);
    let r = stranger.api.hangup_with_call_id(id, "x").await;
    assert_eq!(refusal("hangup by a stranger", r), ErrorCode::NoSuchCall);

    viewer.join(&created.channel).await;
    host.join(&created.channel).await;
    viewer.wait_state(id, CallState::Connected).await;
    host.wait_state(id, CallState::Connected).await;

    let r = host.api.accept_with_call_id(id).await;
    assert_eq!(refusal("accept when connected", r), ErrorCode::NotAllowed);
    let r = viewer.api.prepare_for_call(PrepareConfig::default()).await;
    assert_eq!(
        refusal("prepare during a call", r),
        ErrorCode::AlreadyInCall
    );
    let r = host
        .api
        .call("stranger", CallType::Audio, HashMap::new())
        .await;
    assert_eq!(refusal("call during a call", r), ErrorCode::AlreadyInCall);
    let r = stranger
        .signal
        .join_channel(&created.channel, ChannelRole::Broadcaster)
        .await;
    assert_eq!(
        refusal("stranger joins a live call's channel", r),
        ErrorCode::NotAParticipant
    );

    hang_up(&mut host, &mut viewer, id).await;
    assert_eq!(viewer.states_of(id), connected_then_hung_up(true, false));
    assert_eq!(host.states_of(id), connected_then_hung_up(false, true));
    assert_no_member_event_about(&viewer, "stranger");
    assert_no_member_event_about(&host, "stranger");
}

#[tokio::test]
async fn stale_unknown_and_self_calls_are_refused_and_the_next_call_is_unharmed() {
    let node = TestNode::start().await;
    let mut viewer = Party::prepared(&node, "viewer").await;
    let mut host = Party::prepared(&node, "host").await;

    let r = viewer
        .api
        .call("viewer", CallType::Video, HashMap::new())
        .await;
    assert_eq!(refusal("call to self", r), ErrorCode::CallToSelf);
    let r = viewer.api.hangup_with_call_id(UNKNOWN_CALL, "x").await;
    assert_eq!(
        refusal("hangup of an unknown call", r),
        ErrorCode::NoSuchCall
    );
    let r = host.api.accept_with_call_id(UNKNOWN_CALL).await;
    assert_eq!(
        refusal("accept of an unknown call", r),
        ErrorCode::NoSuchCall
    );

    let first = viewer.call("host").await;
    host.wait_state(&first.call_id, CallState::Calling).await;
    finish_call(&mut viewer, &mut host, &first.call_id, &first.channel).await;
    let old = first.call_id.as_str();

    // The next call is under way; commands naming the previous call must not touch it.
    let second = host.call("viewer").await;
    let id = second.call_id.as_str();
    viewer.wait_state(id, CallState::Calling).await;
    let r = viewer.api.hangup_with_call_id(old, "late").await;
    assert_eq!(
        refusal("hangup of the previous call", r),
        ErrorCode::NoSuchCall
    );
    let r = host.api.hangup_with_call_id(old, "late").await;
    assert_eq!(
        refusal("hangup of the previous call", r),
        ErrorCode::NoSuchCall
    );
    let r = viewer.api.accept_with_call_id(old).await;
    assert_eq!(
        refusal("accept of the previous call", r),
        ErrorCode::NoSuchCall
    );
    let r = host.api.cancel_call_with_call_id(old).await;
    assert_eq!(
        refusal("cancel of the previous call", r),
        ErrorCode::NoSuchCall
    );
    let r = viewer.api.reject_with_call_id(old, "late").await;
    assert_eq!(
        refusal("reject of the previous call", r),
        ErrorCode::NoSuchCall
    );
    let r = viewer
        .signal
        .join_channel(&first.channel, ChannelRole::Broadcaster)
        .await;
    assert_eq!(
        refusal("joining the previous call's channel", r),
        ErrorCode::NotAParticipant
    );
    let r = viewer
        .api
        .call("viewer", CallType::Video, HashMap::new())
        .await;
    assert_eq!(
        refusal("call to self while ringing", r),
        ErrorCode::CallToSelf
    );

    finish_call(&mut host, &mut viewer, &second.call_id, &second.channel).await;
    assert_eq!(viewer.states_of(old), connected_then_hung_up(true, true));
    assert_eq!(host.states_of(old), connected_then_hung_up(false, false));
    assert_eq!(host.states_of(id), connected_then_hung_up(true, true));
    assert_eq!(viewer.states_of(id), connected_then_hung_up(false, false));
    assert_eq!(viewer.calls_seen(), [old, id]);
    assert_eq!(host.calls_seen(), [old, id]);
}

#[tokio::test]
async fn live_channel_refusals_admit_nobody() {
    let node = TestNode::start().await;
    let mut host = Party::login(&node, "host").await;
    let fan_token = node.token_with(
        "fan",
        Duration::from_secs(3600),
        audience_grants("live-host"),
    );
    let mut fan = Party::login_with(&node, "fan", &fan_token).await;
    let rival = Party::login(&node, "rival").await;

    let joined = host
        .signal
        .join_channel("live-host", ChannelRole::Broadcaster)
        .await
        .expect("the host goes live");
    assert_eq!(joined.members.len(), 1);
    fan.signal
        .join_channel("live-host", ChannelRole::Audience)
        .await
        .expect("the fan watches");

    let r = rival
        .signal
        .join_channel("live-host", ChannelRole::Broadcaster)
        .await;
    assert_eq!(
        refusal("a second broadcaster", r),
        ErrorCode::ChannelHasBroadcaster
    );
    let r = fan
        .signal
        .join_channel("live-host", ChannelRole::Broadcaster)
        .await;
    assert_eq!(
        refusal("an audience-only token broadcasting", r),
        ErrorCode::PermissionDenied
    );
    let r = fan
        .signal
        .join_channel("another-room", ChannelRole::Audience)
        .await;
    assert_eq!(
        refusal("a room the token does not name", r),
        ErrorCode::PermissionDenied
    );

    // The rival may still watch; what it sees is the room unchanged by the refusals.
    let view = rival
        .signal
        .join_channel("live-host", ChannelRole::Audience)
        .await
        .expect("the rival watches");
    let members: Vec<(String, ChannelRole, PublishState)> = view
        .members
        .iter()
        .map(|m| {
            (
                m.user_id.clone(),
                ChannelRole::try_from(m.role).expect("a role"),
                PublishState::try_from(m.publish_state).expect("a publish state"),
            )
        })
        .collect();
    assert_eq!(
        members,
        [
            ("fan".to_owned(), ChannelRole::Audience, PublishState::None),
            (
                "host".to_owned(),
                ChannelRole::Broadcaster,
                PublishState::Publishing
            ),
            (
                "rival".to_owned(),
                ChannelRole::Audience,
                PublishState::None
            ),
        ]
    );
    assert!(!view.broadcaster_paused);

    // The host and the fan were told of exactly the joins that happened.
    let joined_audience = |who: &'static str| {
        move |e: &showcall_sdk::Event| match &e.kind {
            Some(event::Kind::ChannelEvent(c)) => matches!(
                &c.kind,
                Some(channel_event::Kind::MemberJoined(m)) if m.user_id == who
            ),
            _ => false,
        }
    };
    host.wait_event(joined_audience("rival")).await;
    fan.wait_event(joined_audience("rival")).await;
    assert_eq!(
        member_events(&host),
        ["fan joined as Audience", "rival joined as Audience"]
    );
    assert_eq!(member_events(&fan), ["rival joined as Audience"]);
}

#[tokio::test]
async fn a_flood_is_rate_limited_and_the_session_keeps_working() {
    const PER_SECOND: u32 = 10;
    const FLOOD: usize = 40;
    let node = TestNode::start_with(|c| {
        c.rate_limit.per_second = PER_SECOND;
        c.rate_limit.burst = 5;
    })
    .await;
    let mut viewer = Party::prepared(&node, "viewer").await;
    let mut host = Party::prepared(&node, "host").await;

    // Forty Call commands at once, each with its own tag; the frames leave back to back.
    let calls = (0..FLOOD).map(|n| {
        let call = Call {
            remote_user_id: "host".into(),
            call_type: CallType::Video as i32,
            call_extension: HashMap::from([("n".to_owned(), n.to_string())]),
            call_timeout_ms: None,
            traceparent: String::new(),
        };
        viewer.signal.request(Command::Call(call))
    });
    let answers = join_all(calls).await;

    let mut created = Vec::new();
    let (mut limited, mut busy) = (0, 0);
    for (n, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(response) => created.push((n, response)),
            Err(SdkError::Refused {
                code: ErrorCode::RateLimited,
                ..
            }) => limited += 1,
            // Passed the limiter after the first call was placed.
            Err(SdkError::Refused {
                code: ErrorCode::AlreadyInCall,
                ..
            }) => busy += 1,
            Err(e) => panic!("frame {n}: unexpected answer {e}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one call was placed: {created:?}");
    assert!(
        limited > 0,
        "a flood of {FLOOD} frames must be rate limited"
    );
    assert_eq!(
        created.len() + limited + busy,
        FLOOD,
        "every frame answered once"
    );
    let (n, response) = created.pop().expect("one call");
    let Some(showcall_sdk::proto::response::Result::CallCreated(call)) = response.result else {
        panic!("a placed call answers with call_created: {response:?}");
    };

    // The refused frames changed nothing: the host rings once, for the one call placed, with its tag.
    let ring = host.wait_state(&call.call_id, CallState::Calling).await;
    let info = ring.event_info.expect("a ring carries event info");
    assert_eq!(info.extension.get("n"), Some(&n.to_string()));

    // The flooded session still works: events keep coming and, once it slows down, commands pass.
    host.api
        .accept_with_call_id(&call.call_id)
        .await
        .expect("accept");
    viewer
        .wait_state(&call.call_id, CallState::Connecting)
        .await;
    paced(PER_SECOND, || {
        viewer
            .signal
            .join_channel(&call.channel, ChannelRole::Broadcaster)
    })
    .await
    .expect("the viewer joins once it slows down");
    host.join(&call.channel).await;
    viewer.wait_state(&call.call_id, CallState::Connected).await;
    paced(PER_SECOND, || {
        viewer.api.hangup_with_call_id(&call.call_id, "bye")
    })
    .await
    .expect("the viewer hangs up once it slows down");
    host.wait_state(&call.call_id, CallState::Prepared).await;
    viewer.wait_state(&call.call_id, CallState::Prepared).await;
    assert_eq!(
        viewer.states_of(&call.call_id),
        connected_then_hung_up(true, true)
    );
    assert_eq!(
        host.states_of(&call.call_id),
        connected_then_hung_up(false, false)
    );
    assert_eq!(host.calls_seen(), [call.call_id.as_str()]);
}

/// Retries a command refused as RATE_LIMITED, at the configured rate, as a well-behaved client would.
/// This paces the client; it synchronises nothing.
async fn paced<T, F, Fut>(per_second: u32, mut command: F) -> Result<T, SdkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SdkError>>,
{
    let interval = Duration::from_secs(1) / per_second;
    for _ in 0..100 {
        match command().await {
            Err(SdkError::Refused {
                code: ErrorCode::RateLimited,
                ..
            }) => tokio::time::sleep(interval).await,
            other => return other,
        }
    }
    panic!("still rate limited after 100 paced attempts");
}

/// The call ringing `callee` (which has seen it ring) is accepted, connected and hung up by the caller.
async fn finish_call(caller: &mut Party, callee: &mut Party, call_id: &str, channel: &str) {
    callee
        .api
        .accept_with_call_id(call_id)
        .await
        .expect("the callee accepts");
    caller.wait_state(call_id, CallState::Connecting).await;
    callee.wait_state(call_id, CallState::Connecting).await;
    caller.join(channel).await;
    callee.join(channel).await;
    caller.wait_state(call_id, CallState::Connected).await;
    callee.wait_state(call_id, CallState::Connected).await;
    hang_up(caller, callee, call_id).await;
}

/// Member joins/leaves this party was told of, as text.
fn member_events(p: &Party) -> Vec<String> {
    p.log
        .iter()
        .filter_map(|e| match &e.kind {
            Some(event::Kind::ChannelEvent(c)) => match &c.kind {
                Some(channel_event::Kind::MemberJoined(m)) => Some(format!(
                    "{} joined as {:?}",
                    m.user_id,
                    ChannelRole::try_from(m.role).expect("a role")
                )),
                Some(channel_event::Kind::MemberLeft(u)) => Some(format!("{u} left")),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn assert_no_member_event_about(p: &Party, user: &str) {
    let about: Vec<String> = member_events(p)
        .into_iter()
        .filter(|e| e.starts_with(user))
        .collect();
    assert!(about.is_empty(), "{} was told {about:?}", p.user);
}
