//! [`WsTransport`]: the WebSocket transport the Rust SDK uses by default.
//!
//! The Rust SDK speaks *binary* frames holding the protobuf encoding (browsers use JSON text frames; the
//! server answers in the encoding of the frame it answers and pushes events in the encoding of the Login
//! frame, so a Rust client sees only binary). A text frame is still decoded as proto3 JSON, so a server that
//! answers in JSON does not wedge the client.
//!
//! Two tasks per connection: a writer fed by an unbounded channel (so `send` never blocks and frames leave in
//! call order; it batches whatever is queued into one flush), and a reader that decodes and forwards. Nagle
//! is disabled: signaling frames are small and latency matters more than packet count.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use showcall_proto::signal::{ClientFrame, ServerFrame};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::SdkError;
use crate::transport::{SignalTransport, TransportEvent, TransportEventSender};

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a clean close waits for the server's close reply before dropping the socket anyway.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A WebSocket connection to a showcall gateway. Cheap to clone: clones share the connection, so a test
/// can keep one to [`abort`](WsTransport::abort) while the client owns another. The connection closes
/// cleanly when the last clone is dropped.
#[derive(Clone)]
pub struct WsTransport {
    inner: Arc<Inner>,
}

struct Inner {
    out: mpsc::UnboundedSender<Outgoing>,
    reader: AbortHandle,
    writer: AbortHandle,
    link: Arc<Link>,
}

enum Outgoing {
    Frame(Message),
    Close,
}

/// State shared by the handle and both tasks: where events go, and whether `Closed` was reported (the
/// transport contract allows it once, with nothing after it).
struct Link {
    tx: TransportEventSender,
    reported: AtomicBool,
    closing: AtomicBool,
}

impl Link {
    fn deliver(&self, frame: ServerFrame) {
        if !self.reported.load(Ordering::Acquire) {
            let _ = self.tx.send(TransportEvent::Frame(frame));
        }
    }

    fn report_closed(&self, reason: impl Into<String>) {
        if !self.reported.swap(true, Ordering::AcqRel) {
            let reason = reason.into();
            tracing::debug!(%reason, "signaling connection closed");
            let _ = self.tx.send(TransportEvent::Closed { reason });
        }
    }

    fn is_closed(&self) -> bool {
        self.reported.load(Ordering::Acquire) || self.closing.load(Ordering::Acquire)
    }
}

impl WsTransport {
    /// Connects to `url` (`ws://host:port/path`) and starts delivering frames into `events_tx`.
    pub async fn connect(url: &str, events_tx: TransportEventSender) -> Result<Self, SdkError> {
        let (ws, _response) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .map_err(|e| SdkError::Transport(format!("connect {url}: {e}")))?;
        let (sink, stream) = ws.split();
        let link = Arc::new(Link {
            tx: events_tx,
            reported: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        });
        let (out, out_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(stream, link.clone()));
        let reader_abort = reader.abort_handle();
        let writer = tokio::spawn(write_loop(sink, out_rx, link.clone(), reader));
        Ok(WsTransport {
            inner: Arc::new(Inner {
                out,
                reader: reader_abort,
                writer: writer.abort_handle(),
                link,
            }),
        })
    }

    /// Closes cleanly: sends a WebSocket close frame and waits (in the background) for the server's reply.
    pub fn close(&self) {
        let _ = self.inner.out.send(Outgoing::Close);
    }

    /// Drops the TCP connection at once, without a close frame, as a crash or network loss would; the
    /// server sees the socket end and starts its grace period. Reports `Closed { reason: "aborted" }`.
    pub fn abort(&self) {
        self.inner.writer.abort();
        self.inner.reader.abort();
        self.inner.link.report_closed("aborted");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The writer sees Close before the channel ends, so dropping the last handle closes cleanly.
        let _ = self.out.send(Outgoing::Close);
    }
}

impl SignalTransport for WsTransport {
    fn send(&self, frame: ClientFrame) -> Result<(), SdkError> {
        if self.inner.link.is_closed() {
            return Err(SdkError::Disconnected);
        }
        let bytes = frame.encode_to_vec();
        self.inner
            .out
            .send(Outgoing::Frame(Message::binary(bytes)))
            .map_err(|_| SdkError::Disconnected)
    }

    fn close(&self) {
        WsTransport::close(self)
    }

    fn abort(&self) {
        WsTransport::abort(self)
    }
}

async fn read_loop(mut stream: SplitStream<WsStream>, link: Arc<Link>) {
    let mut server_close: Option<String> = None;
    let reason = loop {
        match stream.next().await {
            Some(Ok(Message::Binary(bytes))) => match ServerFrame::decode(bytes.as_ref()) {
                Ok(frame) => link.deliver(frame),
                // One bad frame is the server's bug; dropping it keeps the session usable (a request it
                // answered stays pending, which the caller can time out).
                Err(e) => tracing::warn!(error = %e, "undecodable binary server frame dropped"),
            },
            Some(Ok(Message::Text(text))) => {
                match serde_json::from_str::<ServerFrame>(text.as_str()) {
                    Ok(frame) => link.deliver(frame),
                    Err(e) => tracing::warn!(error = %e, "undecodable text server frame dropped"),
                }
            }
            Some(Ok(Message::Close(frame))) => {
                server_close = Some(match frame {
                    Some(f) if !f.reason.is_empty() => {
                        format!("closed by server ({}): {}", u16::from(f.code), f.reason)
                    }
                    Some(f) => format!("closed by server ({})", u16::from(f.code)),
                    None => "closed by server".to_owned(),
                });
            }
            // Pings are answered by tungstenite itself.
            Some(Ok(_)) => {}
            Some(Err(e)) => break server_close.unwrap_or_else(|| format!("websocket error: {e}")),
            None => break server_close.unwrap_or_else(|| "connection closed".to_owned()),
        }
    };
    if link.closing.load(Ordering::Acquire) {
        link.report_closed("closed by client");
    } else {
        link.report_closed(reason);
    }
}

async fn write_loop(
    mut sink: SplitSink<WsStream, Message>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    link: Arc<Link>,
    reader: JoinHandle<()>,
) {
    while let Some(out) = rx.recv().await {
        let mut close = matches!(out, Outgoing::Close);
        if let Outgoing::Frame(msg) = out {
            if let Err(e) = sink.feed(msg).await {
                return fail(&link, &reader, e);
            }
            // Batch whatever else is already queued into the same flush.
            while let Ok(next) = rx.try_recv() {
                match next {
                    Outgoing::Frame(msg) => {
                        if let Err(e) = sink.feed(msg).await {
                            return fail(&link, &reader, e);
                        }
                    }
                    Outgoing::Close => {
                        close = true;
                        break;
                    }
                }
            }
            if let Err(e) = sink.flush().await {
                return fail(&link, &reader, e);
            }
        }
        if close {
            break;
        }
    }
    // Close requested (or every handle dropped): close handshake, then wait for the reader to see the
    // server's reply so the socket is released promptly, but not forever.
    link.closing.store(true, Ordering::Release);
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "client close".into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let mut reader = reader;
    if tokio::time::timeout(CLOSE_REPLY_TIMEOUT, &mut reader)
        .await
        .is_err()
    {
        reader.abort();
        link.report_closed("closed by client (no close reply)");
    }
}

fn fail(link: &Link, reader: &JoinHandle<()>, e: impl std::fmt::Display) {
    reader.abort();
    link.report_closed(format!("websocket write error: {e}"));
}
