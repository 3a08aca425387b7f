//! The pluggable signaling transport (CallAPI's `ISignalClient`).
//!
//! [`SignalClient`](crate::SignalClient) speaks the protocol (request ids, responses, events); a transport
//! only moves whole frames. The trait is deliberately synchronous and object-safe: `send` enqueues and
//! returns, and incoming frames flow through a channel handed to the transport when it is built. That keeps
//! it usable as `Box<dyn SignalTransport>` without boxed futures, and lets a transport run its I/O on its own
//! tasks.

use std::sync::Arc;

use showcall_proto::signal::{ClientFrame, ServerFrame};
use tokio::sync::mpsc;

use crate::SdkError;

/// What a transport delivers to the client.
// Nearly every item is a Frame; boxing it would add an allocation per frame and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum TransportEvent {
    /// A frame from the server, in the order received.
    Frame(ServerFrame),
    /// The connection is gone. A transport reports this at most once, and nothing after it.
    Closed {
        /// Why, for logs and `SignalListener::on_disconnected`.
        reason: String,
    },
}

/// Sending half of the channel a transport delivers [`TransportEvent`]s into.
pub type TransportEventSender = mpsc::UnboundedSender<TransportEvent>;
/// Receiving half, handed to [`SignalClient::with_transport`](crate::SignalClient::with_transport).
pub type TransportEventReceiver = mpsc::UnboundedReceiver<TransportEvent>;

/// A new channel for a transport's events.
pub fn transport_channel() -> (TransportEventSender, TransportEventReceiver) {
    mpsc::unbounded_channel()
}

/// Moves frames between the client and the signaling server.
///
/// Contract:
/// - `send` never blocks; frames are sent in the order `send` was called. It fails with
///   [`SdkError::Disconnected`] once the connection is closed.
/// - Incoming frames go, in order, into the [`TransportEventSender`] given at construction, followed by
///   exactly one [`TransportEvent::Closed`] when the connection ends for any reason (dropping the sender
///   also counts as closed).
pub trait SignalTransport: Send + Sync {
    /// Enqueues one frame for sending.
    fn send(&self, frame: ClientFrame) -> Result<(), SdkError>;

    /// Closes the connection cleanly (a WebSocket close handshake). Idempotent.
    fn close(&self) {}

    /// Drops the connection at once, without a close handshake, as a network loss would. Tests use it to
    /// exercise the server's grace period. Defaults to [`close`](Self::close).
    fn abort(&self) {
        self.close()
    }
}

/// Lets a caller keep a handle on a transport it boxed into a client (tests abort it this way).
impl<T: SignalTransport + ?Sized> SignalTransport for Arc<T> {
    fn send(&self, frame: ClientFrame) -> Result<(), SdkError> {
        (**self).send(frame)
    }
    fn close(&self) {
        (**self).close()
    }
    fn abort(&self) {
        (**self).abort()
    }
}
