//! The showcall Rust client SDK, shaped like Agora's CallAPI so apps port line by line.
//!
//! ```no_run
//! # async fn demo() -> Result<(), showcall_sdk::SdkError> {
//! use std::{collections::HashMap, sync::Arc};
//! use showcall_sdk::*;
//!
//! let signal = Arc::new(SignalClient::connect("ws://127.0.0.1:8080/signal").await?);
//! let login = signal.login("<token>").await?;
//! let api = CallApi::new();
//! api.initialize(CallConfig { app_id: login.app_id, user_id: login.user_id, signal: signal.clone() });
//! api.prepare_for_call(PrepareConfig::default()).await?;
//! let created = api.call("host-1", CallType::Video, HashMap::new()).await?;
//! # let _ = created; Ok(()) }
//! ```
//!
//! The server is authoritative: the SDK sends commands and awaits their responses (a refused command is
//! [`SdkError::Refused`] with the server's [`ErrorCode`] and changed nothing), and reports the events the
//! server pushes. Call state is never inferred from the client's own commands.
//!
//! # Layout
//! - [`error`] — [`SdkError`].
//! - [`transport`] — the pluggable [`SignalTransport`] trait (≈ CallAPI's `ISignalClient`).
//! - [`ws`] — [`WsTransport`], the WebSocket transport (binary protobuf frames).
//! - [`signal_client`] — [`SignalClient`] (≈ `CallRtmManager`): login/logout/renew, request–response
//!   correlation, event dispatch, channels; [`SignalListener`].
//! - [`call_api`] — [`CallApi`] and [`CallApiListener`], the CallAPI-named call methods and callbacks.
//! - `mirror` — the client's copy of the server's call state, behind the getters.
//! - `listeners` — the listener registry and how callbacks are run.
//! - [`recorder`] — [`EventRecorder`], records callbacks so tests and benchmarks can await them.
//! - [`media`] — the media client (str0m): [`MediaSession`] joins a channel with real WebRTC audio and
//!   video, sends the shipped VP8/Opus sample and counts what it receives; [`MediaPeer`] below it;
//!   [`RtpProbe`] is a light receive-only peer that records the RTP packets themselves.
//!
//! The protocol enums and messages apps need are re-exported here, so apps depend on this crate only.
#![forbid(unsafe_code)]

pub mod call_api;
pub mod error;
mod listeners;
pub mod media;
mod mirror;
pub mod recorder;
pub mod signal_client;
pub mod transport;
pub mod ws;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use call_api::{CallApi, CallApiListener, CallConfig, DEINITIALIZE_REASON, PrepareConfig};
pub use error::SdkError;
pub use media::{
    MediaOptions, MediaPeer, MediaSession, MediaSource, MediaStats, MediaTransport, ProbeOptions,
    ProbePeer, ProbeStats, ReceivedFrame, RtpProbe, RtpRecord, StreamSummary, TrackKind,
};
pub use recorder::{EventRecorder, Recorded, RecorderError, RecordingListener};
pub use signal_client::{
    FOLLOW_HOME_CONNECT_TIMEOUT, LoginInfo, SignalClient, SignalListener, WeakSignalClient,
};
pub use transport::{
    SignalTransport, TransportEvent, TransportEventReceiver, TransportEventSender,
    transport_channel,
};
pub use ws::WsTransport;

/// The wire protocol (`showcall.signal.v1`), for custom transports and raw events.
pub use showcall_proto::signal as proto;
pub use showcall_proto::signal::{
    BroadcasterPaused, CallCreated, CallErrorEvent, CallErrorType, CallEvent, CallSnapshot,
    CallState, CallStateReason, CallType, ChannelEvent, ChannelJoined, ChannelMember, ChannelRole,
    ErrorCode, Event, EventInfo, IceServer, PublishState, SessionCloseReason, VideoLayer,
    channel_event,
};

/// Locks a mutex, ignoring poisoning: SDK state stays consistent across a panicking listener because
/// listeners never run under an SDK lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
