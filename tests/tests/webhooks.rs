//! An app's business server hears the events over webhooks: every POST is signed with the app's webhook
//! secret (checked here the way a receiver would), retried with backoff while the receiver fails, with
//! the same idempotency id on every attempt, and delivered one at a time in the order things happened.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use showcall_node::config::WebhooksConfig;
use showcall_sdk::{CallState, CallStateReason, CallType};
use showcall_tests::TestNode;
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::webhook_receiver::{Answer, Received, WebhookReceiver};

const SECRET: &str = "whsec-test-0123456789abcdef";

/// Quick retries, so a test spends milliseconds in backoff, and a generous attempt timeout.
fn quick(max_attempts: u32, attempt_timeout: Duration) -> WebhooksConfig {
    WebhooksConfig {
        attempt_timeout,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_attempts,
    }
}

async fn node_posting_to(receiver: &WebhookReceiver, webhooks: WebhooksConfig) -> TestNode {
    let url = receiver.url.clone();
    TestNode::start_with(move |config| {
        config.apps[0].webhook_url = Some(url);
        config.apps[0].webhook_secret = Some(SECRET.into());
        config.webhooks = webhooks;
    })
    .await
}

/// A delivered event as one line.
fn line(r: &Received) -> String {
    let body = &r.body;
    let user = |kind: &str| body[kind]["userId"].as_str().unwrap_or("?").to_owned();
    match r.event_type.as_str() {
        "user.online" => format!("user.online {}", user("userOnline")),
        "user.offline" => format!("user.offline {}", user("userOffline")),
        "member.joined" => format!("member.joined {}", user("memberJoined")),
        "member.left" => format!("member.left {}", user("memberLeft")),
        "call.created" => format!(
            "call.created {} -> {}",
            body["callCreated"]["callerUserId"].as_str().unwrap_or("?"),
            body["callCreated"]["calleeUserId"].as_str().unwrap_or("?")
        ),
        "call.ended" => format!(
            "call.ended {} by {}",
            body["callEnded"]["endReason"].as_str().unwrap_or("?"),
            body["callEnded"]["endedByUserId"].as_str().unwrap_or("?")
        ),
        other => other.to_owned(),
    }
}

/// The next delivered event, checked for what every delivery must carry.
async fn delivered(receiver: &mut WebhookReceiver) -> Received {
    let r = receiver.next_delivered().await;
    assert_eq!(r.signature, Ok(()), "{r:?}");
    assert_eq!(
        r.body["id"],
        r.id.as_str(),
        "the idempotency id is the event id"
    );
    assert_eq!(r.body["appId"], "demo");
    r
}

async fn expect(receiver: &mut WebhookReceiver, want: &[&str]) -> Vec<Received> {
    let mut got = Vec::new();
    for _ in want {
        got.push(delivered(receiver).await);
    }
    let lines: Vec<String> = got.iter().map(line).collect();
    assert_eq!(lines, want);
    got
}

#[tokio::test]
async fn a_call_arrives_as_signed_webhooks_in_order_after_the_receiver_fails_twice() {
    // The first event the receiver ever sees is answered 500 twice, then accepted; the rest at once.
    let mut receiver = WebhookReceiver::start(SECRET, |req| {
        if req.first_id && req.nth <= 2 {
            Answer::Status(StatusCode::INTERNAL_SERVER_ERROR)
        } else {
            Answer::Status(StatusCode::OK)
        }
    })
    .await;
    let node = node_posting_to(&receiver, quick(5, Duration::from_secs(5))).await;

    let mut host = SdkUser::prepared(&node, "host", Default::default()).await;
    // Three attempts of the same event: the same id each time, numbered, each signed.
    let attempts: Vec<Received> = [
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ]
    .into();
    assert_eq!(
        attempts.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::OK
        ]
    );
    assert_eq!(
        attempts.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for r in &attempts {
        assert_eq!(r.id, attempts[0].id, "one idempotency id on every retry");
        assert_eq!(r.signature, Ok(()), "every attempt is signed");
        assert_eq!(line(r), "user.online host");
        assert_eq!(r.body, attempts[0].body, "the same body on every retry");
    }
    let online_id = attempts[0].id.clone();
    assert!(online_id.starts_with("evt-"), "{online_id}");

    let mut viewer = SdkUser::prepared(&node, "viewer", Default::default()).await;
    expect(&mut receiver, &["user.online viewer"]).await;

    let created = viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    let call_events = expect(
        &mut receiver,
        &["call.created viewer -> host", "call.ringing"],
    )
    .await;
    assert_eq!(
        call_events[0].body["callCreated"]["callId"],
        created.call_id.as_str()
    );
    assert_eq!(
        call_events[1].body["callRinging"]["callId"],
        created.call_id.as_str()
    );

    host.api.accept("viewer").await.expect("accepted");
    expect(&mut receiver, &["call.accepted"]).await;
    viewer.api.join_call_channel().await.expect("viewer joins");
    expect(&mut receiver, &["member.joined viewer"]).await;
    host.api.join_call_channel().await.expect("host joins");
    expect(&mut receiver, &["member.joined host", "call.connected"]).await;

    viewer.api.hangup("host", "bye").await.expect("hangup");
    // The call actor and the channel report the end concurrently: these three in any order.
    let mut ending = Vec::new();
    for _ in 0..3 {
        ending.push(delivered(&mut receiver).await);
    }
    let mut lines: Vec<String> = ending.iter().map(line).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "call.ended hangup by viewer",
            "member.left host",
            "member.left viewer"
        ]
    );
    let record = &ending
        .iter()
        .find(|r| r.event_type == "call.ended")
        .expect("a call.ended")
        .body["callEnded"];
    assert_eq!(record["callId"], created.call_id.as_str());
    assert_eq!(record["endReason"], "hangup");
    assert_eq!(record["endedByUserId"], "viewer");
    assert_eq!(record["detail"], "bye");
    assert!(
        record["connectedAtMs"].is_string(),
        "it connected: {record}"
    );

    // Delivered once each, in cursor order; the retried one only counted once.
    let delivered: Vec<&Received> = receiver
        .seen
        .iter()
        .filter(|r| r.answered.is_success())
        .collect();
    let cursors: Vec<u64> = delivered
        .iter()
        .map(|r| {
            r.id.trim_start_matches("evt-")
                .parse()
                .expect("evt-<cursor>")
        })
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "in order, no repeats: {cursors:?}"
    );
    assert_eq!(cursors.len(), 11);
    assert_eq!(node.handle.webhook_counters().failures(), 0);
    let _ = (&mut host, &mut viewer);
}

#[tokio::test]
async fn an_event_the_receiver_never_takes_is_given_up_on_counted_and_the_next_one_follows() {
    // Everything about "doomed" is refused; a hang on the first attempt of "late" is cut off by the
    // attempt timeout and retried.
    let mut receiver = WebhookReceiver::start(SECRET, |req| {
        if req.first_id {
            Answer::Status(StatusCode::BAD_REQUEST)
        } else if req.nth == 1 {
            Answer::Hang
        } else {
            Answer::Status(StatusCode::NO_CONTENT)
        }
    })
    .await;
    let node = node_posting_to(&receiver, quick(3, Duration::from_millis(300))).await;

    let doomed = SdkUser::login(&node, "doomed").await;
    let refused: Vec<Received> = [
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ]
    .into();
    for (n, r) in refused.iter().enumerate() {
        assert_eq!(line(r), "user.online doomed");
        assert_eq!(r.answered, StatusCode::BAD_REQUEST);
        assert_eq!(r.attempt, n as u32 + 1);
    }

    let late = SdkUser::login(&node, "late").await;
    let hung = receiver.next().await;
    assert_eq!(line(&hung), "user.online late");
    assert_eq!(hung.attempt, 1);
    let retried = delivered(&mut receiver).await;
    assert_eq!(line(&retried), "user.online late");
    assert_eq!(
        (retried.id.as_str(), retried.attempt),
        (hung.id.as_str(), 2)
    );

    // "late" came after "doomed" was given up on (one at a time, in order): it is counted by now.
    assert_eq!(node.handle.webhook_counters().failures(), 1);
    assert_eq!(
        receiver
            .seen
            .iter()
            .filter(|r| r.id == refused[0].id)
            .count(),
        3,
        "max_attempts, no more"
    );
    drop((doomed, late));
}
