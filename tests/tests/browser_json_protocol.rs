//! What a browser sends — JSON text frames in the proto3 JSON mapping — drives a whole call, and bad
//! frames get typed errors without changing anything.

use serde_json::json;
use showcall_tests::{JsonClient, TestNode};

#[tokio::test]
async fn json_clients_call_accept_connect_and_hang_up() {
    let node = TestNode::start().await;
    let mut viewer = JsonClient::login(&node.url(), &node.token("viewer")).await;
    let mut host = JsonClient::login(&node.url(), &node.token("host")).await;
    for c in [&mut viewer, &mut host] {
        let r = c
            .request(json!({ "prepareForCall": { "userExtension": { "nick": "n" } } }))
            .await;
        assert!(r.get("error").is_none(), "{r}");
    }

    let r = viewer
        .request(json!({ "call": { "remoteUserId": "host", "callType": "CALL_TYPE_VIDEO", "callExtension": { "gift": "rose" } } }))
        .await;
    let call_id = r["callCreated"]["callId"]
        .as_str()
        .expect("call id")
        .to_owned();
    let channel = r["callCreated"]["channel"]
        .as_str()
        .expect("channel")
        .to_owned();
    assert!(channel.starts_with("call-"));

    let caller_view = viewer.wait_state("CALL_STATE_CALLING").await;
    assert_eq!(caller_view["reason"], "CALL_STATE_REASON_LOCAL_VIDEO_CALL");
    let ringing = host.wait_state("CALL_STATE_CALLING").await;
    assert_eq!(ringing["reason"], "CALL_STATE_REASON_REMOTE_VIDEO_CALL");
    assert_eq!(ringing["eventInfo"]["fromUserId"], "viewer");
    assert_eq!(ringing["eventInfo"]["remoteUserId"], "host");
    assert_eq!(ringing["eventInfo"]["fromRoomId"], channel.as_str());
    assert_eq!(ringing["eventInfo"]["extension"]["gift"], "rose");
    assert_eq!(ringing["eventInfo"]["extension"]["nick"], "n");

    let r = host
        .request(json!({ "accept": { "callId": call_id } }))
        .await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(
        host.wait_state("CALL_STATE_CONNECTING").await["reason"],
        "CALL_STATE_REASON_LOCAL_ACCEPTED"
    );
    assert_eq!(
        viewer.wait_state("CALL_STATE_CONNECTING").await["reason"],
        "CALL_STATE_REASON_REMOTE_ACCEPTED"
    );

    for c in [&mut viewer, &mut host] {
        let r = c.request(json!({ "joinChannel": { "channel": channel, "role": "CHANNEL_ROLE_BROADCASTER" } })).await;
        assert!(r.get("error").is_none(), "{r}");
    }
    assert_eq!(
        viewer.wait_state("CALL_STATE_CONNECTED").await["reason"],
        "CALL_STATE_REASON_BOTH_JOINED"
    );
    host.wait_state("CALL_STATE_CONNECTED").await;

    let r = viewer
        .request(json!({ "hangup": { "callId": call_id, "reason": "bye" } }))
        .await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(
        viewer.wait_state("CALL_STATE_PREPARED").await["reason"],
        "CALL_STATE_REASON_LOCAL_HANGUP"
    );
    let ended = host.wait_state("CALL_STATE_PREPARED").await;
    assert_eq!(ended["reason"], "CALL_STATE_REASON_REMOTE_HANGUP");
    assert_eq!(ended["eventReason"], "bye");
    let disconnected = host
        .wait_event(|e| e.get("callDisconnected").is_some())
        .await;
    assert_eq!(disconnected["callDisconnected"]["hangupUserId"], "viewer");
    assert_eq!(disconnected["callDisconnected"]["currentUserId"], "host");
}

#[tokio::test]
async fn malformed_frames_get_typed_errors_and_change_nothing() {
    let node = TestNode::start().await;
    let mut c = JsonClient::connect(&node.url()).await;

    c.send_text("this is not json").await;
    let r = c.response_for(0).await;
    assert_eq!(r["error"]["code"], "ERROR_CODE_MALFORMED_FRAME");

    // Unknown fields are refused, not ignored.
    c.send_text(r#"{"requestId":"5","login":{"token":"x","isAdmin":true}}"#)
        .await;
    assert_eq!(
        c.response_for(0).await["error"]["code"],
        "ERROR_CODE_MALFORMED_FRAME"
    );

    // Commands before login.
    let r = c
        .request(json!({ "call": { "remoteUserId": "host" } }))
        .await;
    assert_eq!(r["error"]["code"], "ERROR_CODE_UNAUTHENTICATED");

    // A forged token.
    let r = c
        .request(json!({ "login": { "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln" } }))
        .await;
    assert_eq!(r["error"]["code"], "ERROR_CODE_TOKEN_INVALID");

    // The connection still works and logs in properly afterwards.
    let r = c
        .request(json!({ "login": { "token": node.token("alice") } }))
        .await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["login"]["userId"], "alice");

    // Invalid arguments name the field.
    let r = c.request(json!({ "call": { "remoteUserId": "" } })).await;
    assert_eq!(r["error"]["code"], "ERROR_CODE_INVALID_ARGUMENT");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("remote_user_id"),
        "{r}"
    );

    // Call before prepare.
    let r = c
        .request(json!({ "call": { "remoteUserId": "bob" } }))
        .await;
    assert_eq!(r["error"]["code"], "ERROR_CODE_NOT_PREPARED");
}
