//! Unit tests of the SDK's logic over the in-memory fake transport (`crate::fake`), plus the WebSocket
//! transport over real local sockets.

mod call_api;
mod signal_client;
mod ws;

/// Apps share these across tasks.
#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<crate::SignalClient>();
    send_sync::<crate::CallApi>();
    send_sync::<crate::WsTransport>();
    send_sync::<crate::SdkError>();
    fn send<T: Send>() {}
    send::<crate::EventRecorder>();
}
