//! The WebSocket transport over real local sockets, against a minimal scripted WebSocket peer (it checks
//! framing only; the showcall server is exercised by the end-to-end tests).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use showcall_proto::signal::client_frame::Command;
use showcall_proto::signal::server_frame::Frame;
use showcall_proto::signal::{
    ClientFrame, Event, Ping, Response, ServerFrame, TokenWillExpire, event,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{WebSocketStream, accept_async};

use crate::{
    SdkError, SignalClient, SignalTransport, TransportEvent, WsTransport, transport_channel,
};

const GUARD: Duration = Duration::from_secs(10);

/// Serves one WebSocket connection with `script`; returns the URL.
async fn serve_one<F, Fut>(script: F) -> String
where
    F: FnOnce(WebSocketStream<TcpStream>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = accept_async(tcp).await.unwrap();
        script(ws).await;
    });
    format!("ws://{addr}/signal")
}

/// What the peer saw after the client went away: whether a close frame came.
async fn read_until_end(ws: &mut WebSocketStream<TcpStream>) -> bool {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Close(_)) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

async fn next_event(rx: &mut crate::TransportEventReceiver) -> TransportEvent {
    tokio::time::timeout(GUARD, rx.recv())
        .await
        .expect("guard")
        .expect("channel open")
}

#[tokio::test]
async fn binary_protobuf_round_trip_and_json_text_fallback() {
    let url = serve_one(|mut ws| async move {
        let Some(Ok(Message::Binary(bytes))) = ws.next().await else {
            panic!("expected a binary frame")
        };
        let frame = ClientFrame::decode(bytes.as_ref()).unwrap();
        assert!(matches!(frame.command, Some(Command::Ping(_))));
        let reply = ServerFrame {
            frame: Some(Frame::Response(Response {
                request_id: frame.request_id,
                error: None,
                result: None,
            })),
        };
        ws.send(Message::binary(reply.encode_to_vec()))
            .await
            .unwrap();
        let ev = ServerFrame {
            frame: Some(Frame::Event(Event {
                seq: 1,
                server_time_ms: 5,
                kind: Some(event::Kind::TokenWillExpire(TokenWillExpire {
                    expires_at_ms: 42,
                })),
            })),
        };
        ws.send(Message::text(serde_json::to_string(&ev).unwrap()))
            .await
            .unwrap();
        read_until_end(&mut ws).await;
    })
    .await;

    let client = SignalClient::connect(&url).await.unwrap();
    let mut events = client.subscribe_events();
    client.ping().await.unwrap();
    let ev = tokio::time::timeout(GUARD, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        ev.kind,
        Some(event::Kind::TokenWillExpire(TokenWillExpire {
            expires_at_ms: 42
        }))
    ));
}

#[tokio::test]
async fn close_sends_a_close_frame() {
    let (seen_tx, seen_rx) = oneshot::channel();
    let url = serve_one(|mut ws| async move {
        let _ = seen_tx.send(read_until_end(&mut ws).await);
    })
    .await;
    let (tx, mut rx) = transport_channel();
    let transport = WsTransport::connect(&url, tx).await.unwrap();
    transport.close();
    assert!(seen_rx.await.unwrap(), "the peer should see a close frame");
    assert_eq!(
        next_event(&mut rx).await,
        TransportEvent::Closed {
            reason: "closed by client".to_owned()
        }
    );
    let ping = ClientFrame {
        request_id: 1,
        command: Some(Command::Ping(Ping {})),
    };
    assert_eq!(
        SignalTransport::send(&transport, ping),
        Err(SdkError::Disconnected)
    );
}

#[tokio::test]
async fn abort_drops_the_connection_without_a_close_frame() {
    let (seen_tx, seen_rx) = oneshot::channel();
    let url = serve_one(|mut ws| async move {
        let _ = seen_tx.send(read_until_end(&mut ws).await);
    })
    .await;
    let (tx, mut rx) = transport_channel();
    let transport = WsTransport::connect(&url, tx).await.unwrap();
    let handle = transport.clone();
    handle.abort();
    assert_eq!(
        next_event(&mut rx).await,
        TransportEvent::Closed {
            reason: "aborted".to_owned()
        }
    );
    assert!(
        !seen_rx.await.unwrap(),
        "the peer must not see a close frame"
    );
    let ping = ClientFrame {
        request_id: 1,
        command: Some(Command::Ping(Ping {})),
    };
    assert_eq!(
        SignalTransport::send(&transport, ping),
        Err(SdkError::Disconnected)
    );
}

#[tokio::test]
async fn server_close_reason_reaches_the_client() {
    let url = serve_one(|mut ws| async move {
        let frame = CloseFrame {
            code: CloseCode::Away,
            reason: "node shutting down".into(),
        };
        ws.send(Message::Close(Some(frame))).await.unwrap();
        read_until_end(&mut ws).await;
    })
    .await;
    let (tx, mut rx) = transport_channel();
    let _transport = WsTransport::connect(&url, tx).await.unwrap();
    let TransportEvent::Closed { reason } = next_event(&mut rx).await else {
        panic!("expected closed")
    };
    assert!(reason.contains("node shutting down"), "{reason}");
}

#[tokio::test]
async fn connect_failure_is_a_transport_error() {
    // A port nothing listens on: bind, note it, release it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = SignalClient::connect(&format!("ws://{addr}/"))
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::Transport(_)), "{err:?}");
}
