//! A client that stops reading its WebSocket while its live room is busy does not make the node queue
//! events for it without limit: once its outbox holds `max_outbox_frames` events (on top of what the
//! TCP buffers take), the node closes the connection with 4008 "slow consumer", counts it, and holds
//! nothing more for it. The actors pushing the room's events never wait on it: the room goes on.
//!
//! The slow client is a real WebSocket over TCP with a small receive buffer that the test stops
//! polling; other members joining and leaving the room over and over produce its events. Every wait is
//! on the node's own counters (its `/metrics` page), bounded by a generous deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use showcall_tests::prometheus::scrape;
use showcall_tests::{JsonClient, TestNode};
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;

const OUTBOX: usize = 512;
/// Long names (the protocol's 64 bytes) make every event bigger, so the TCP buffers fill sooner.
const ROOM: &str = "busy-room-with-a-name-as-long-as-the-protocol-allows-0123456789a";
const SPAMMERS: usize = 3;
const SLOW_CONSUMERS: &str = "showcall_signaling_slow_consumer_disconnects_total";
const QUEUED: &str = "showcall_signaling_outbox_frames";
/// Bounds each whole wait below (a hang becomes a failure, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_in_a_busy_room_is_closed_as_a_slow_consumer() {
    let node = TestNode::start_with(|c| {
        c.max_outbox_frames = OUTBOX;
        // The spammers join and leave as fast as they can.
        c.rate_limit.per_second = 1_000_000;
        c.rate_limit.burst = 1_000_000;
    })
    .await;
    let metrics = node.handle.http_addr;
    assert_eq!(scrape(metrics).await.get(SLOW_CONSUMERS), 0.0);

    // The slow client: a small receive buffer, so the node's writes back up soon after it stops
    // reading. It joins the room, then is never polled again until the end.
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let tcp = socket
        .connect(node.handle.signal_addr)
        .await
        .expect("connects");
    let (ws, _) = tokio_tungstenite::client_async(node.url(), MaybeTlsStream::Plain(tcp))
        .await
        .expect("websocket upgrade");
    let mut slow = JsonClient::over(ws);
    join_room(&mut slow, &node, "slow").await;

    // Members come and go: every join and leave is an event for each member, the slow one included.
    let stop = Arc::new(AtomicBool::new(false));
    let mut spammers = Vec::new();
    for n in 0..SPAMMERS {
        let mut c = JsonClient::login(
            &node.url(),
            &node.token(&format!("spammer-{n}-{}", "x".repeat(54))),
        )
        .await;
        let stop = stop.clone();
        spammers.push(tokio::spawn(async move {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = c
                    .request(json!({ "joinChannel": { "channel": ROOM, "role": "CHANNEL_ROLE_AUDIENCE" } }))
                    .await;
                assert!(r.get("error").is_none(), "{r}");
                let r = c.request(json!({ "leaveChannel": { "channel": ROOM } })).await;
                assert!(r.get("error").is_none(), "{r}");
                rounds += 1;
            }
            rounds
        }));
    }

    // The node gives up on the slow client by itself.
    tokio::time::timeout(PATIENCE, async {
        while scrape(metrics).await.get(SLOW_CONSUMERS) < 1.0 {}
    })
    .await
    .expect("the slow client is disconnected within the deadline");
    stop.store(true, Ordering::Relaxed);
    let mut rounds = 0;
    for s in spammers {
        rounds += s
            .await
            .expect("the room kept working for the other members");
    }

    // Reading again, the slow client finds what the TCP buffers held, then the close saying why.
    let (closed, read) = slow.closed().await;
    assert_eq!(
        closed,
        Ok((
            4008,
            format!("slow consumer: outbound backlog over {OUTBOX} frames")
        )),
        "after {read} frames ({rounds} join/leave rounds per spammer, summed)"
    );
    assert!(
        read < 2 * rounds as usize,
        "the slow client did not get every event ({read} of {} read): some were dropped",
        2 * rounds
    );

    // Nothing stays queued: the node holds no backlog for the closed connection.
    tokio::time::timeout(PATIENCE, async {
        while scrape(metrics).await.get(QUEUED) != 0.0 {}
    })
    .await
    .expect("every outbox drains once the room is quiet");
    assert_eq!(scrape(metrics).await.get(SLOW_CONSUMERS), 1.0);
}

async fn join_room(c: &mut JsonClient, node: &TestNode, uid: &str) {
    let r = c
        .request(json!({ "login": { "token": node.token(uid) } }))
        .await;
    assert!(r.get("error").is_none(), "{r}");
    let r = c
        .request(json!({ "joinChannel": { "channel": ROOM, "role": "CHANNEL_ROLE_AUDIENCE" } }))
        .await;
    assert!(r.get("error").is_none(), "{r}");
}
