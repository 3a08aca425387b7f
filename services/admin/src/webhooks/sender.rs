//! [`WebhookSender`]: one attempt to POST one message, over HTTP or HTTPS, bounded by a timeout.
//!
//! hyper-util's pooled client (hyper is already in the tree through axum and tonic); TLS through rustls
//! with aws-lc (already used by tokens and media) and the webpki root certificates compiled in, so a
//! container without a system certificate store still verifies receivers. HTTP/1.1 only: one request at
//! a time per app needs no multiplexing. Redirects are not followed (a 3xx is a failed attempt): the
//! signature is for the configured URL, and following one could leak events to wherever it points.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::message::{ATTEMPT_HEADER, EVENT_TYPE_HEADER, IDEMPOTENCY_HEADER, WebhookMessage};
use super::signing::{SIGNATURE_HEADER, sign};
use super::target::WebhookTarget;

/// The most of a receiver's answer that is read (and thrown away).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How one attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx: the event is delivered.
    Delivered,
    /// The receiver answered something else.
    Status(StatusCode),
    /// No answer within the attempt timeout.
    TimedOut,
    /// The connection (or TLS handshake, or request) failed.
    Failed(String),
}

/// See the module docs. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct WebhookSender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl WebhookSender {
    /// A sender whose attempts each last at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            // The default protocol versions of aws-lc's provider are always supported.
            .expect("aws-lc supports TLS 1.2 and 1.3")
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self { client, timeout }
    }

    /// POSTs `message` to `target`, signed at `now_secs`, as attempt number `attempt`.
    pub async fn attempt(
        &self,
        target: &WebhookTarget,
        message: &WebhookMessage,
        attempt: u32,
        now_secs: u64,
    ) -> AttemptOutcome {
        let signature = sign(&target.secret, now_secs, &message.body);
        let request = Request::builder()
            .method(Method::POST)
            .uri(target.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(
                USER_AGENT,
                concat!("showcall-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header(IDEMPOTENCY_HEADER, message.id.as_str())
            .header(EVENT_TYPE_HEADER, message.event_type)
            .header(ATTEMPT_HEADER, attempt)
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(message.body.clone()));
        let request = match request {
            Ok(request) => request,
            // Every part was checked (the URL at start-up, ids and types are ASCII).
            Err(e) => return AttemptOutcome::Failed(format!("request not built: {e}")),
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // Reading the (small) answer lets the connection go back to the pool for the next event; what
            // it says does not matter, and a huge one is cut off rather than buffered.
            let _ = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => AttemptOutcome::TimedOut,
            Ok(Err(e)) => AttemptOutcome::Failed(error_chain(&e)),
            Ok(Ok(status)) if status.is_success() => AttemptOutcome::Delivered,
            Ok(Ok(status)) => AttemptOutcome::Status(status),
        }
    }
}

/// An error with its causes ("client error (Connect): tcp connect error: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
