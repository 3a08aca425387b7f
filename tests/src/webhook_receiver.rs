//! A business server's webhook endpoint, as an app would write one: a small axum HTTP server that checks
//! each POST's `Showcall-Signature` with the shared secret (written here from the documented steps, not
//! with the node's code), answers what the test wants, and reports every request it got, in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::DEADLINE;

/// The replay window the receiver allows (the README's advice).
const REPLAY_WINDOW_SECS: u64 = 300;

/// One POST the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// `Idempotency-Key`.
    pub id: String,
    /// `Showcall-Event-Type`.
    pub event_type: String,
    /// `Showcall-Delivery-Attempt`.
    pub attempt: u32,
    /// Whether `Showcall-Signature` verified (and why not).
    pub signature: Result<(), String>,
    /// The JSON body, parsed after it was verified.
    pub body: serde_json::Value,
    /// What the receiver answered.
    pub answered: StatusCode,
}

/// What the test's answer policy is told about a request.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: String,
    /// How many times this id has been received, this one included.
    pub nth: u32,
    /// Whether this id is the first one the receiver ever got.
    pub first_id: bool,
}

/// How the receiver answers one request.
pub enum Answer {
    Status(StatusCode),
    /// Never answers (the sender's attempt timeout must cut it off).
    Hang,
}

type Policy = Arc<dyn Fn(&Request) -> Answer + Send + Sync>;

struct Shared {
    secret: Vec<u8>,
    policy: Policy,
    counts: Mutex<(Option<String>, HashMap<String, u32>)>,
    report: mpsc::UnboundedSender<Received>,
}

/// See the module docs. Stops serving when dropped.
pub struct WebhookReceiver {
    /// The URL to configure as `webhook_url`.
    pub url: String,
    reports: mpsc::UnboundedReceiver<Received>,
    /// Every request reported by [`next`](Self::next) so far.
    pub seen: Vec<Received>,
    server: JoinHandle<()>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl WebhookReceiver {
    /// Listens on 127.0.0.1 (ephemeral port), verifying with `secret` and answering by `policy`.
    pub async fn start(
        secret: &str,
        policy: impl Fn(&Request) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let (report, reports) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            secret: secret.as_bytes().to_vec(),
            policy: Arc::new(policy),
            counts: Mutex::new((None, HashMap::new())),
            report,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let url = format!(
            "http://{}/showcall/events",
            listener.local_addr().expect("bound")
        );
        let app = Router::new()
            .route("/showcall/events", post(receive))
            .with_state(shared);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            reports,
            seen: Vec::new(),
            server,
        }
    }

    /// The next request received (any answer).
    pub async fn next(&mut self) -> Received {
        let received = tokio::time::timeout(DEADLINE, self.reports.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no webhook within {DEADLINE:?}; got {:#?}",
                    self.seen
                        .iter()
                        .map(|r| (&r.id, &r.event_type, r.answered))
                        .collect::<Vec<_>>()
                )
            })
            .expect("the receiver runs");
        self.seen.push(received.clone());
        received
    }

    /// The next request the receiver accepted (2xx): the next delivered event.
    pub async fn next_delivered(&mut self) -> Received {
        loop {
            let received = self.next().await;
            if received.answered.is_success() {
                return received;
            }
        }
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = header("idempotency-key");
    let signature = verify(
        &shared.secret,
        &header("showcall-signature"),
        &body,
        now_secs(),
    );
    let request = {
        let mut counts = shared.counts.lock().expect("not poisoned");
        let first = counts.0.get_or_insert_with(|| id.clone()).clone();
        let nth = counts.1.entry(id.clone()).or_default();
        *nth += 1;
        Request {
            id: id.clone(),
            nth: *nth,
            first_id: first == id,
        }
    };
    let answer = if signature.is_err() {
        // A real receiver refuses what it cannot authenticate.
        Answer::Status(StatusCode::UNAUTHORIZED)
    } else {
        (shared.policy)(&request)
    };
    let answered = match answer {
        Answer::Status(status) => status,
        Answer::Hang => StatusCode::REQUEST_TIMEOUT,
    };
    let _ = shared.report.send(Received {
        id,
        event_type: header("showcall-event-type"),
        attempt: header("showcall-delivery-attempt").parse().unwrap_or(0),
        signature,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        answered,
    });
    if let Answer::Hang = answer {
        std::future::pending::<()>().await;
    }
    answered
}

/// The README's steps: take `t` and `v1` from the header, HMAC-SHA256 the secret over `"<t>.<raw body>"`,
/// compare the lowercase hex in constant time, and refuse a `t` outside the replay window.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: u64) -> Result<(), String> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1.push(value.to_owned()),
            _ => {}
        }
    }
    let t = t.ok_or("no t= in the signature")?;
    let sent: u64 = t.parse().map_err(|_| "t= is not a number")?;
    if now.abs_diff(sent) > REPLAY_WINDOW_SECS {
        return Err(format!("t={sent} is outside the replay window"));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signed = [t.as_bytes(), b".", body].concat();
    let expected: String = hmac::sign(&key, &signed)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let ok = v1.iter().any(|candidate| {
        aws_lc_rs::constant_time::verify_slices_are_equal(candidate.as_bytes(), expected.as_bytes())
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("no v1= matches the body".into())
    }
}

fn now_secs() -> u64 {
    crate::now_secs()
}
