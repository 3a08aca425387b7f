//! A node holds at most `max_connections` signaling connections, and one client address at most
//! `max_connections_per_ip`. One more is refused before the WebSocket upgrade with an HTTP status and a
//! body saying why — 429 for the address, 503 for the node — and counted; other addresses still
//! connect, and a connection that ends gives its place back.
//!
//! Clients connect from 127.0.0.1, 127.0.0.2 and 127.0.0.3 (all loopback on Linux) to the node on
//! 127.0.0.1, over real TCP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use futures_util::SinkExt;
use showcall_tests::prometheus::scrape;
use showcall_tests::{DEADLINE, TestNode};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const REFUSED_ADDRESS: &str =
    "showcall_signaling_connections_refused_total{reason=\"address_full\"}";
const REFUSED_NODE: &str = "showcall_signaling_connections_refused_total{reason=\"node_full\"}";
const OPEN: &str = "showcall_signaling_connections";

#[tokio::test]
async fn a_connection_over_the_per_address_cap_is_refused_while_another_address_connects() {
    let node = TestNode::start_with(|c| c.max_connections_per_ip = 2).await;

    let _first = connect_from(&node, 1).await.expect("the first connection");
    let _second = connect_from(&node, 1).await.expect("the second connection");
    let (status, body) = connect_from(&node, 1)
        .await
        .expect_err("the third connection from one address");
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        body,
        "this address holds its limit of 2 signaling connections"
    );

    // Another address is not held to the first one's share.
    let mut other = connect_from(&node, 2).await.expect("another address");
    other
        .send(Message::Text(r#"{"requestId":"1","ping":{}}"#.into()))
        .await
        .expect("the accepted connection is served");

    let page = scrape(node.handle.http_addr).await;
    assert_eq!(page.get(REFUSED_ADDRESS), 1.0);
    assert_eq!(page.get(REFUSED_NODE), 0.0);
}

#[tokio::test]
async fn a_full_node_refuses_every_address_until_a_connection_ends() {
    let node = TestNode::start_with(|c| c.max_connections = 2).await;

    let first = connect_from(&node, 1).await.expect("the first connection");
    let _second = connect_from(&node, 2).await.expect("the second connection");
    let (status, body) = connect_from(&node, 3)
        .await
        .expect_err("a third connection to a node capped at two");
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        "this node holds its limit of 2 signaling connections; try again later"
    );
    assert_eq!(scrape(node.handle.http_addr).await.get(REFUSED_NODE), 1.0);

    // A connection that ends gives its place back.
    close(first).await;
    tokio::time::timeout(DEADLINE, async {
        while scrape(node.handle.http_addr).await.get(OPEN) > 1.0 {}
    })
    .await
    .expect("the closed connection ends on the node");
    connect_from(&node, 3)
        .await
        .expect("a place was given back");
}

/// A WebSocket to the node from 127.0.0.`host`; `Err((status, body))` when the upgrade is refused.
async fn connect_from(node: &TestNode, host: u8) -> Result<Ws, (u16, String)> {
    let socket = TcpSocket::new_v4().expect("a socket");
    let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), 0);
    socket.bind(from).expect("binds a loopback address");
    let tcp = socket
        .connect(node.handle.signal_addr)
        .await
        .expect("TCP connects");
    match tokio_tungstenite::client_async(node.url(), MaybeTlsStream::Plain(tcp)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            Err((
                response.status().as_u16(),
                String::from_utf8(body).expect("a text body"),
            ))
        }
        Err(e) => panic!("neither accepted nor refused with a status: {e}"),
    }
}

async fn close(mut ws: Ws) {
    ws.close(None).await.expect("closes");
}
