//! `ringing`'s floor: a bare WebSocket relay (client A → server task → client B, same process) that
//! moves one frame per pair, of the size of a `Call`, as the ringing rounds do — what moving a frame
//! costs with no call engine.

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

use super::report::{histogram, progress};

/// Relay routing table: pair id → the B side's outbox.
type Relay = Arc<Mutex<HashMap<usize, mpsc::UnboundedSender<AxMessage>>>>;

async fn relay_socket(mut socket: WebSocket, relay: Relay, pair: usize, side_b: bool) {
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
    State(relay): State<Relay>,
    Query(q): Query<RelayQuery>,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    ws.on_upgrade(move |s| relay_socket(s, relay, q.pair, q.side == "b"))
}

/// Moves one `frame_size`-byte frame through each of `pairs` relayed connections, all pairs at once,
/// `rounds` times; returns the latencies.
pub(super) async fn relay_floor(
    pairs: usize,
    rounds: usize,
    frame_size: usize,
) -> anyhow::Result<Histogram<u64>> {
    let relay: Relay = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/relay", axum::routing::get(relay_upgrade))
        .with_state(relay.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut conns = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let (b, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/relay?pair={i}&side=b")).await?;
        let (a, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/relay?pair={i}&side=a")).await?;
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
    let payload = vec![7u8; frame_size];
    let mut h = histogram();
    let bar = progress((pairs * rounds) as u64, "relay");
    for _ in 0..rounds {
        let mut tasks = tokio::task::JoinSet::new();
        for (mut a, mut b) in conns.drain(..) {
            let payload = payload.clone();
            tasks.spawn(async move {
                let t0 = Instant::now();
                a.send(Message::Binary(payload.into())).await?;
                loop {
                    match b.next().await {
                        Some(Ok(Message::Binary(_))) => break,
                        Some(Ok(_)) => continue,
                        _ => bail!("relay closed"),
                    }
                }
                anyhow::Ok((a, b, t0.elapsed()))
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (a, b, latency) = done??;
            h.record(latency.as_micros().max(1) as u64)?;
            conns.push((a, b));
            bar.inc(1);
        }
    }
    bar.finish();
    server.abort();
    Ok(h)
}
