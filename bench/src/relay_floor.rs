//! `ringing`'s floor: a bare WebSocket relay (client A → server task → client B, same process) that
//! moves one frame per pair, of the size of a `Call`, as the ringing rounds do — what moving a frame
//! costs with no call engine. In bursts (every pair at once, round after round) or at a fixed rate
//! ([`open_loop`]), as the ringing it is the floor of.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::open_loop::{self, OpenLoop, Schedule, Timing};
use super::report::{histogram, progress};

/// Relay routing table: pair id → the B side's outbox.
type Routes = Arc<Mutex<HashMap<usize, mpsc::UnboundedSender<AxMessage>>>>;

async fn relay_socket(mut socket: WebSocket, relay: Routes, pair: usize, side_b: bool) {
    if side_b {
        let (tx, mut rx) = mpsc::unbounded_channel();
        relay.lock().expect("relay lock").insert(pair, tx);
        loop {
            tokio::select! {
                out = rx.recv() => {
                    let Some(m) = out else { break };
                    if socket.send(m).await.is_err() { break; }
                }
                inc = socket.recv() => if !matches!(inc, Some(Ok(_))) { break },
            }
        }
    } else {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, AxMessage::Binary(_)) {
                let peer = relay.lock().expect("relay lock").get(&pair).cloned();
                if let Some(peer) = peer {
                    let _ = peer.send(m);
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct RelayQuery {
    pair: usize,
    side: String,
}

async fn relay_upgrade(
    State(relay): State<Routes>,
    Query(q): Query<RelayQuery>,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    // The gateway's buffer sizes, so the floor's server reads as the node's does.
    ws.read_buffer_size(1024)
        .write_buffer_size(0)
        .on_upgrade(move |s| relay_socket(s, relay, q.pair, q.side == "b"))
}

/// A bare relay server and `pairs` connected A/B client pairs, every route proven.
pub(super) struct Relay {
    conns: Vec<RelayPair>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// One relayed pair: A's frames arrive at B.
type RelayPair = (RelayStream, RelayStream);
type RelayStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Drop for Relay {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Relay {
    /// Starts the relay server and connects `pairs` pairs through it.
    pub(super) async fn start(pairs: usize) -> anyhow::Result<Self> {
        let relay: Routes = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .route("/relay", axum::routing::get(relay_upgrade))
            .with_state(relay.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let mut conns = Vec::with_capacity(pairs);
        for i in 0..pairs {
            let config = || Some(super::signal_client::client_config());
            let (b, _) = tokio_tungstenite::connect_async_with_config(
                format!("ws://{addr}/relay?pair={i}&side=b"),
                config(),
                false,
            )
            .await?;
            let (a, _) = tokio_tungstenite::connect_async_with_config(
                format!("ws://{addr}/relay?pair={i}&side=a"),
                config(),
                false,
            )
            .await?;
            conns.push((a, b));
        }
        // Each B registers on its own task; one frame through every pair proves the routes exist.
        for (a, b) in &mut conns {
            loop {
                a.send(Message::Binary(vec![0u8; 1].into())).await?;
                if tokio::time::timeout(Duration::from_millis(200), b.next())
                    .await
                    .is_ok()
                {
                    break;
                }
            }
        }
        Ok(Self { conns, server })
    }

    /// Moves one `frame_size`-byte frame through every pair, all pairs at once, `rounds` times;
    /// returns the latencies.
    pub(super) async fn burst(
        &mut self,
        rounds: usize,
        frame_size: usize,
    ) -> anyhow::Result<Histogram<u64>> {
        let pairs = self.conns.len();
        let payload = vec![7u8; frame_size];
        let mut h = histogram();
        let bar = progress((pairs * rounds) as u64, "relay");
        for _ in 0..rounds {
            let mut tasks = tokio::task::JoinSet::new();
            for pair in self.conns.drain(..) {
                let payload = payload.clone();
                tasks.spawn(async move {
                    let (pair, timing) = relay_one(pair, payload).await?;
                    anyhow::Ok((pair, timing.answered - timing.sent))
                });
            }
            while let Some(done) = tasks.join_next().await {
                let (pair, latency) = done??;
                h.record(latency.as_micros().max(1) as u64)?;
                self.conns.push(pair);
                bar.inc(1);
            }
        }
        bar.finish();
        Ok(h)
    }

    /// Moves `frame_size`-byte frames on `schedule` (open loop, [`open_loop`]), each through the
    /// first free pair; latency from the scheduled time.
    pub(super) async fn at_rate(
        &mut self,
        schedule: Schedule,
        frame_size: usize,
    ) -> anyhow::Result<OpenLoop> {
        let conns = std::mem::take(&mut self.conns);
        let payload = vec![7u8; frame_size];
        let (measured, conns) = open_loop::run(conns, schedule, "relay", move |pair| {
            relay_one(pair, payload.clone())
        })
        .await?;
        self.conns = conns;
        Ok(measured)
    }
}

/// One frame A → relay → B.
async fn relay_one(
    (mut a, mut b): RelayPair,
    payload: Vec<u8>,
) -> anyhow::Result<(RelayPair, Timing)> {
    let sent = Instant::now();
    a.send(Message::Binary(payload.into())).await?;
    loop {
        match b.next().await {
            Some(Ok(Message::Binary(_))) => break,
            Some(Ok(_)) => continue,
            _ => bail!("relay closed"),
        }
    }
    let answered = Instant::now();
    let timing = Timing {
        sent,
        answered,
        also_answered: None,
    };
    Ok(((a, b), timing))
}
