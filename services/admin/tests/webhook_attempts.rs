//! One webhook attempt against real sockets: what the sender reports for a receiver that is not there,
//! one that never answers, one that answers an error, and one that takes the event.

use std::time::Duration;

use showcall_admin::webhooks::{AttemptOutcome, WebhookMessage, WebhookSender, WebhookTarget};
use showcall_ports::event_log::{BusinessEvent, EventKind, LoggedEvent};
use showcall_protocol::AppId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECRET: &str = "whsec-0123456789abcdef";

fn message() -> WebhookMessage {
    WebhookMessage::new(LoggedEvent {
        cursor: 7,
        event: BusinessEvent {
            app: AppId("demo".into()),
            at: 1,
            kind: EventKind::UserOnline { user: "a".into() },
        },
    })
}

fn target(addr: std::net::SocketAddr) -> WebhookTarget {
    WebhookTarget::parse("demo", &format!("http://{addr}/hooks"), Some(SECRET)).expect("valid")
}

/// A one-connection HTTP/1.1 server that reads the request head and answers `response`; returns the
/// request head it read.
async fn answer_once(listener: TcpListener, response: &'static str) -> String {
    let (mut socket, _) = listener.accept().await.expect("a connection");
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await.expect("read");
        assert!(n > 0, "the request ended early");
        head.extend_from_slice(&buf[..n]);
    }
    socket.write_all(response.as_bytes()).await.expect("write");
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn nobody_listening_is_a_failed_attempt() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    drop(listener);
    let outcome = WebhookSender::new(Duration::from_secs(5))
        .attempt(&target(addr), &message(), 1, 1_000)
        .await;
    assert!(matches!(outcome, AttemptOutcome::Failed(_)), "{outcome:?}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    // Accepts and keeps the connection open without a word.
    let _held = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("a connection");
        std::future::pending::<()>().await;
        drop(socket);
    });
    let outcome = WebhookSender::new(Duration::from_millis(200))
        .attempt(&target(addr), &message(), 1, 1_000)
        .await;
    assert_eq!(outcome, AttemptOutcome::TimedOut);
}

#[tokio::test]
async fn an_error_status_is_reported_and_2xx_is_delivered() {
    for (response, want) in [
        (
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
            AttemptOutcome::Status(hyper::StatusCode::SERVICE_UNAVAILABLE),
        ),
        (
            "HTTP/1.1 302 Found\r\nlocation: http://elsewhere/\r\ncontent-length: 0\r\n\r\n",
            AttemptOutcome::Status(hyper::StatusCode::FOUND),
        ),
        (
            "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok",
            AttemptOutcome::Delivered,
        ),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let server = tokio::spawn(answer_once(listener, response));
        let outcome = WebhookSender::new(Duration::from_secs(5))
            .attempt(&target(addr), &message(), 3, 1_000)
            .await;
        assert_eq!(outcome, want);
        let head = server.await.expect("served").to_ascii_lowercase();
        assert!(head.starts_with("post /hooks http/1.1"), "{head}");
        assert!(head.contains("idempotency-key: evt-7"), "{head}");
        assert!(head.contains("showcall-event-type: user.online"), "{head}");
        assert!(head.contains("showcall-delivery-attempt: 3"), "{head}");
        assert!(head.contains("showcall-signature: t=1000,v1="), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
    }
}
