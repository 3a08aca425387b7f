//! Unit tests of the SDK's logic over the in-memory fake transport (`crate::fake`), plus the WebSocket
//! transport over real local sockets.

mod call_api;
mod signal_client;
mod ws;
