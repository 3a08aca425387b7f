//! End-to-end test harness: a real node on 127.0.0.1 (ephemeral ports), tokens minted with its secret,
//! and a plain JSON WebSocket client that speaks what a browser sends.
//!
//! Tests wait for events, never for time: every wait is "until this event arrives", bounded only by a
//! generous deadline that turns a hang into a failure with the events seen so far.
#![forbid(unsafe_code)]

pub mod admin;
pub mod browser;
pub mod cluster;
/// A real coturn, TURN over TLS only (`turnserver`).
pub mod coturn;

pub mod grace_helpers;
/// A network namespace on a veth pair: a client that reaches only chosen addresses.
pub mod narrow_link;
pub mod netns;
/// An in-process OTLP trace collector.
pub mod otlp_collector;

pub mod prometheus;

pub mod sdk_helpers;

/// A UDP relay between a media client and the node that drops node → client RTP packets.
pub mod shaped_relay;
/// The node's tracing in a test's captured output (shown when the test fails).
pub mod test_log;
pub mod udp_relay;

pub mod webhook_receiver;

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use showcall_auth::{AppKeys, Grants, TokenIssuer};
use showcall_node::NodeHandle;
use showcall_node::config::NodeConfig;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait may take before the test fails (a hang, not a timing assertion).
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A node started in-process for one test.
pub struct TestNode {
    pub handle: NodeHandle,
    keys: AppKeys,
    app: String,
}

impl TestNode {
    /// A node with default settings on ephemeral ports.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A node with settings adjusted by `tweak` (ports are always ephemeral).
    pub async fn start_with(tweak: impl FnOnce(&mut NodeConfig)) -> Self {
        let any_port = "127.0.0.1:0".parse().expect("literal address");
        let mut config = NodeConfig {
            signal_addr: any_port,
            grpc_addr: any_port,
            http_addr: any_port,
            media_addr: any_port,
            ..NodeConfig::default()
        };
        tweak(&mut config);
        let keys = config.app_keys();
        let app = config.apps[0].id.clone();
        let handle = showcall_node::start(config).await.expect("node starts");
        Self { handle, keys, app }
    }

    pub fn url(&self) -> String {
        self.handle.signal_url()
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    /// A token for `uid` with every grant (signal, any channel, publish, subscribe), valid for an hour.
    pub fn token(&self, uid: &str) -> String {
        self.token_with(uid, Duration::from_secs(3600), full_grants())
    }

    pub fn token_with(&self, uid: &str, ttl: Duration, grants: Grants) -> String {
        let now = now_secs();
        TokenIssuer::mint(&self.keys, &self.app, uid, ttl, grants, now)
            .expect("valid token arguments")
            .0
    }
}

/// A file of the test TLS fixtures (`tests/fixtures/tls`: a CA and a `localhost`/127.0.0.1
/// certificate it signed).
pub fn tls_fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

/// Every grant.
pub fn full_grants() -> Grants {
    Grants {
        signal: true,
        channel: Some("*".into()),
        publish: true,
        subscribe: true,
    }
}

/// Audience-only grants for a channel (or `*`).
pub fn audience_grants(channel: &str) -> Grants {
    Grants {
        signal: true,
        channel: Some(channel.into()),
        publish: false,
        subscribe: true,
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A browser-like client: JSON text frames, proto3 JSON mapping.
pub struct JsonClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Events received while waiting for a response, kept in order.
    events: VecDeque<Value>,
    /// Every event seen, for failure messages.
    log: Vec<Value>,
}

impl JsonClient {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Self::over(ws)
    }

    /// A client over a WebSocket the test opened itself (its own socket options, source address...).
    pub fn over(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            ws,
            next_id: 1,
            events: VecDeque::new(),
            log: Vec::new(),
        }
    }

    /// Connects and logs in; panics if login fails.
    pub async fn login(url: &str, token: &str) -> Self {
        let mut c = Self::connect(url).await;
        let r = c.request(json!({ "login": { "token": token } })).await;
        assert!(r.get("error").is_none(), "login refused: {r}");
        c
    }

    /// Sends raw text (for malformed-input tests).
    pub async fn send_text(&mut self, text: &str) {
        self.send_message(Message::Text(text.into())).await;
    }

    /// Sends any WebSocket message, raw frames included (for malformed-input tests).
    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// Reads until the connection ends and says how: `Ok((code, reason))` for a close frame, `Err` with
    /// what the client saw instead (an error, or the stream ending without a close frame: code 1006).
    /// Frames before the close are skipped (their count is returned for failure messages).
    pub async fn closed(&mut self) -> (Result<(u16, String), String>, usize) {
        let mut skipped = 0;
        loop {
            let next = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("the connection ends within the deadline");
            match next {
                Some(Ok(Message::Close(Some(c)))) => {
                    return (Ok((c.code.into(), c.reason.to_string())), skipped);
                }
                Some(Ok(Message::Close(None))) => {
                    return (Err("a close frame without a code".into()), skipped);
                }
                Some(Ok(_)) => skipped += 1,
                Some(Err(e)) => return (Err(format!("error: {e}")), skipped),
                None => return (Err("stream ended without a close frame".into()), skipped),
            }
        }
    }

    /// Sends a command (an object with one command field) and returns its Response object.
    pub async fn request(&mut self, command: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = command;
        frame["requestId"] = json!(id.to_string());
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send");
        self.response_for(id).await
    }

    /// Waits for the Response with this request id, queueing events that arrive first.
    pub async fn response_for(&mut self, id: u64) -> Value {
        loop {
            let frame = self.next_frame().await;
            if let Some(r) = frame.get("response") {
                let rid = r.get("requestId").and_then(Value::as_str).unwrap_or("0");
                if rid == id.to_string() || (id == 0 && rid == "0") {
                    return r.clone();
                }
                panic!("response for another request: {r}");
            }
            if let Some(e) = frame.get("event") {
                self.log.push(e.clone());
                self.events.push_back(e.clone());
            }
        }
    }

    async fn next_frame(&mut self) -> Value {
        let next = tokio::time::timeout(DEADLINE, self.ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!("no frame within the deadline; events seen: {:#?}", self.log)
            });
        match next {
            Some(Ok(Message::Text(t))) => {
                serde_json::from_str(t.as_str()).expect("server sends valid json")
            }
            Some(Ok(Message::Close(c))) => json!({ "closed": c.map(|c| c.reason.to_string()) }),
            Some(Ok(other)) => panic!("unexpected frame: {other:?}"),
            Some(Err(e)) => json!({ "closed": e.to_string() }),
            None => json!({ "closed": "stream ended" }),
        }
    }

    /// The next event (queued or from the socket).
    pub async fn next_event(&mut self) -> Value {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        loop {
            let frame = self.next_frame().await;
            if let Some(e) = frame.get("event") {
                self.log.push(e.clone());
                return e.clone();
            }
            if frame.get("closed").is_some() {
                return frame;
            }
        }
    }

    /// Skips events until one matches.
    pub async fn wait_event(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let e = self.next_event().await;
            if pred(&e) {
                return e;
            }
            if e.get("closed").is_some() {
                panic!(
                    "connection closed while waiting; events seen: {:#?}",
                    self.log
                );
            }
        }
    }

    /// Waits for a call state change to `state` (e.g. "CALL_STATE_CALLING") and returns it.
    pub async fn wait_state(&mut self, state: &str) -> Value {
        self.wait_event(|e| e["callStateChanged"]["state"] == state)
            .await["callStateChanged"]
            .clone()
    }
}
