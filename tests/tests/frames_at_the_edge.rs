//! Frames at the edge of the protocol get the documented answer, never a silent drop or a silent pass:
//! - every command before a successful login, `Ping` included, is refused with UNAUTHENTICATED;
//! - every data frame counts against the connection's rate limit, undecodable and oversized ones too;
//! - answers to frames whose request id cannot be read carry request id 0 and come in the order of the
//!   frames they answer;
//! - a frame over the transport limit (4 × `max_frame_bytes`) or a text frame that is not UTF-8 closes the
//!   connection with a WebSocket close frame saying why (1009, 1007), not a dropped TCP connection.

use serde_json::{Value, json};
use showcall_tests::{JsonClient, TestNode};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

#[tokio::test]
async fn ping_before_login_is_unauthenticated() {
    let node = TestNode::start().await;
    let mut c = JsonClient::connect(&node.url()).await;

    let r = c.request(json!({ "ping": {} })).await;
    assert_eq!(r["error"]["code"], "ERROR_CODE_UNAUTHENTICATED", "{r}");

    // After logging in, a ping is answered with success.
    let r = c
        .request(json!({ "login": { "token": node.token("alice") } }))
        .await;
    assert!(r.get("error").is_none(), "{r}");
    let r = c.request(json!({ "ping": {} })).await;
    assert!(r.get("error").is_none(), "{r}");
}

#[tokio::test]
async fn undecodable_and_oversized_frames_count_against_the_rate_limit() {
    const BURST: u32 = 5;
    const EACH: usize = 20;
    const MAX_FRAME: usize = 1024;
    let node = TestNode::start_with(|c| {
        c.rate_limit.per_second = 1;
        c.rate_limit.burst = BURST;
        c.max_frame_bytes = MAX_FRAME;
    })
    .await;
    let mut c = JsonClient::connect(&node.url()).await;

    // Garbage and frames over `max_frame_bytes` (but under the transport limit), back to back.
    let oversized = "x".repeat(MAX_FRAME + 1);
    for _ in 0..EACH {
        c.send_text("this is not json").await;
        c.send_text(&oversized).await;
    }
    let mut codes = Vec::new();
    for _ in 0..2 * EACH {
        let r = c.response_for(0).await;
        codes.push(r["error"]["code"].as_str().unwrap_or("none").to_owned());
    }
    let limited = codes
        .iter()
        .filter(|c| *c == "ERROR_CODE_RATE_LIMITED")
        .count();
    let malformed = codes
        .iter()
        .filter(|c| *c == "ERROR_CODE_MALFORMED_FRAME")
        .count();
    assert_eq!(
        limited + malformed,
        2 * EACH,
        "every frame answered once, MALFORMED_FRAME or RATE_LIMITED: {codes:?}"
    );
    assert!(
        limited > 0,
        "{} bad frames at once passed a limit of {BURST}: {codes:?}",
        2 * EACH
    );
}

#[tokio::test]
async fn answers_to_unreadable_frames_carry_request_id_zero_in_order() {
    let node = TestNode::start().await;
    let mut c = JsonClient::login(&node.url(), &node.token("alice")).await;

    // A valid ping, garbage, another valid ping: the answers come in that order, the middle one with id 0.
    c.send_text(r#"{"requestId":"7","ping":{}}"#).await;
    c.send_text("{ not json").await;
    c.send_text(r#"{"requestId":"8","ping":{}}"#).await;
    let ids: Vec<(String, Value)> = [
        c.response_for(7).await,
        c.response_for(0).await,
        c.response_for(8).await,
    ]
    .into_iter()
    .map(|r| {
        (
            r["requestId"].as_str().unwrap_or("0").to_owned(),
            r["error"]["code"].clone(),
        )
    })
    .collect();
    assert_eq!(
        ids,
        [
            ("7".to_owned(), Value::Null),
            ("0".to_owned(), json!("ERROR_CODE_MALFORMED_FRAME")),
            ("8".to_owned(), Value::Null),
        ]
    );
}

#[tokio::test]
async fn a_frame_over_the_transport_limit_is_closed_with_message_too_big() {
    const MAX_FRAME: usize = 1024;
    let node = TestNode::start_with(|c| c.max_frame_bytes = MAX_FRAME).await;
    let mut c = JsonClient::login(&node.url(), &node.token("alice")).await;

    c.send_text(&"x".repeat(4 * MAX_FRAME + 1)).await;
    let (closed, _) = c.closed().await;
    let (code, reason) = closed.expect("a close frame, not a dropped connection");
    assert_eq!(code, 1009, "RFC 6455 1009 message too big: {reason}");
    assert!(reason.contains("exceeds"), "{reason}");
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_is_closed_with_invalid_payload() {
    let node = TestNode::start().await;
    let mut c = JsonClient::login(&node.url(), &node.token("alice")).await;

    let not_utf8 = vec![b'{', 0xff, 0xfe, b'}'];
    c.send_message(Message::Frame(Frame::message(
        not_utf8,
        OpCode::Data(Data::Text),
        true,
    )))
    .await;
    let (closed, _) = c.closed().await;
    let (code, reason) = closed.expect("a close frame, not a dropped connection");
    assert_eq!(
        code, 1007,
        "RFC 6455 1007 invalid frame payload data: {reason}"
    );
    assert!(reason.contains("UTF-8"), "{reason}");
}
