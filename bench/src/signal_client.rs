//! A minimal binary-frame signaling client — the protocol with nothing on top, no SDK between the
//! clock and the wire — for the benchmarks that measure signaling (`ringing`, `idle`, `cluster`,
//! `lifecycle`).

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use showcall_proto::signal::response::Result as Answer;
use showcall_proto::signal::{self as pb, client_frame::Command, event::Kind, server_frame::Frame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A minimal binary-frame signaling client: the protocol with nothing on top.
pub(super) struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// The benchmark clients' WebSocket settings (showcall's and the relay's alike): a 4 KiB read buffer.
/// tungstenite's default (128 KiB) is zeroed on every read, which cost the clients ≈ 6 % of all CPU
/// samples in a fixed-rate ringing run — time charged to both sides' latency, not to the node.
pub(super) fn client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4 * 1024)
}

impl Client {
    pub(super) async fn connect(url: &str) -> anyhow::Result<Self> {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(client_config()), false)
                .await
                .context("connecting")?;
        Ok(Self { ws, next_id: 1 })
    }

    pub(super) async fn send(&mut self, command: Command) -> anyhow::Result<u64> {
        let request_id = self.next_id;
        self.next_id += 1;
        let frame = pb::ClientFrame {
            request_id,
            command: Some(command),
        };
        self.ws
            .send(Message::Binary(frame.encode_to_vec().into()))
            .await?;
        Ok(request_id)
    }

    pub(super) async fn next(&mut self) -> anyhow::Result<pb::ServerFrame> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(pb::ServerFrame::decode(b.as_ref())?),
                Some(Ok(Message::Close(_))) | None => bail!("connection closed"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Sends a command and waits for its response, skipping events.
    pub(super) async fn request(&mut self, command: Command) -> anyhow::Result<pb::Response> {
        let id = self.send(command).await?;
        self.response(id).await
    }

    /// Waits for the response to request `id`, skipping events; a refusal is an error.
    pub(super) async fn response(&mut self, id: u64) -> anyhow::Result<pb::Response> {
        loop {
            if let Some(Frame::Response(r)) = self.next().await?.frame
                && r.request_id == id
            {
                if let Some(e) = &r.error {
                    bail!("refused: {} {}", e.code, e.message);
                }
                return Ok(r);
            }
        }
    }

    /// Sends a command and waits both for its response and for the call state change to `state`,
    /// which may come first (they travel different paths through a cluster).
    pub(super) async fn request_until_state(
        &mut self,
        command: Command,
        state: pb::CallState,
    ) -> anyhow::Result<pb::Response> {
        let id = self.send(command).await?;
        let (mut response, mut reached) = (None, false);
        while response.is_none() || !reached {
            match self.next().await?.frame {
                Some(Frame::Response(r)) if r.request_id == id => {
                    if let Some(e) = &r.error {
                        bail!("refused: {} {}", e.code, e.message);
                    }
                    response = Some(r);
                }
                Some(Frame::Event(pb::Event {
                    kind: Some(Kind::CallStateChanged(c)),
                    ..
                })) if c.state == state as i32 => reached = true,
                _ => {}
            }
        }
        Ok(response.expect("the loop ends with a response"))
    }

    /// Waits for a call state change to `state`; returns its call id.
    pub(super) async fn wait_state(&mut self, state: pb::CallState) -> anyhow::Result<String> {
        loop {
            if let Some(Frame::Event(pb::Event {
                kind: Some(Kind::CallStateChanged(c)),
                ..
            })) = self.next().await?.frame
                && c.state == state as i32
            {
                return Ok(c.call_id);
            }
        }
    }

    /// Connects to `url`, logs in — following the session to its node when the node at `url` sends it
    /// there (`Login.follow_home`, as the SDK does) — and prepares for calls.
    pub(super) async fn login_prepared(url: &str, token: String) -> anyhow::Result<Self> {
        let mut c = Self::connect(url).await?;
        let login = |follow_home| {
            Command::Login(pb::Login {
                token: token.clone(),
                follow_home,
            })
        };
        if let Some(Answer::LoginElsewhere(home)) = c.request(login(true)).await?.result {
            c = Self::connect(&home.signal_url).await?;
            c.request(login(false)).await?;
        }
        c.request(Command::PrepareForCall(pb::PrepareForCall {
            call_timeout_ms: Some(0),
            ..Default::default()
        }))
        .await?;
        Ok(c)
    }
}
