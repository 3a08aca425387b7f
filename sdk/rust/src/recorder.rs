//! [`EventRecorder`]: records every SDK callback so tests and benchmarks can wait for "state X with reason
//! Y" without sleeping. Callbacks from one source (the `CallApi`, or the `SignalClient`) are recorded in
//! server order; between the two sources the order is not guaranteed (each source reports from its own
//! task), so wait on each source's stream separately when the relative order matters.
//!
//! Register its [`listener`](EventRecorder::listener) with a `CallApi` and/or a `SignalClient`; then
//! [`wait_for`](EventRecorder::wait_for) skips what does not match but keeps everything in
//! [`seen`](EventRecorder::seen), and fails with that whole log when nothing matching arrived within the
//! guard (a deadlock guard so a broken run fails with a useful message instead of hanging; it is not a
//! speed assertion — default 30 s). The recorder keeps its own listener alive, so its stream never ends
//! while it exists.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use showcall_proto::signal::{
    CallErrorEvent, CallErrorType, CallEvent, CallState, CallStateReason, ChannelEvent, EventInfo,
    SessionCloseReason,
};
use tokio::sync::mpsc;

use crate::call_api::{CallApi, CallApiListener};
use crate::signal_client::{SignalClient, SignalListener};

/// The default deadlock guard of [`EventRecorder`].
pub const DEFAULT_GUARD: Duration = Duration::from_secs(30);

/// One recorded callback.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// `CallApiListener::on_call_state_changed`.
    State {
        state: CallState,
        reason: CallStateReason,
        event_reason: String,
        info: EventInfo,
    },
    /// `CallApiListener::on_call_event_changed`.
    Event {
        event: CallEvent,
        event_reason: String,
    },
    /// `CallApiListener::on_call_error`.
    Error {
        event: CallErrorEvent,
        error_type: CallErrorType,
        code: i32,
        message: String,
    },
    /// `CallApiListener::on_call_connected`.
    Connected {
        room_id: String,
        call_user_id: String,
        current_user_id: String,
        timestamp_ms: u64,
    },
    /// `CallApiListener::on_call_disconnected`.
    Disconnected {
        room_id: String,
        hangup_user_id: String,
        current_user_id: String,
        timestamp_ms: u64,
        duration_ms: u64,
    },
    /// `CallApiListener::on_token_privilege_will_expire`.
    CallTokenWillExpire,
    /// `SignalListener::on_connected`.
    SignalConnected,
    /// `SignalListener::on_disconnected`.
    SignalDisconnected { reason: String },
    /// `SignalListener::on_token_privilege_will_expire`.
    TokenWillExpire { expires_at_ms: u64 },
    /// `SignalListener::on_session_closed`.
    SessionClosed {
        reason: SessionCloseReason,
        message: String,
    },
    /// `SignalListener::on_channel_event`.
    Channel(ChannelEvent),
}

impl Recorded {
    /// Whether this is a state change to `state` with `reason`.
    pub fn is_state(&self, state: CallState, reason: CallStateReason) -> bool {
        matches!(self, Recorded::State { state: s, reason: r, .. } if *s == state && *r == reason)
    }

    /// Whether this is the call event `event`.
    pub fn is_event(&self, event: CallEvent) -> bool {
        matches!(self, Recorded::Event { event: e, .. } if *e == event)
    }
}

/// Why a wait on the recorder failed; `Display` prints the whole log.
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderError {
    /// What happened: the stream ended, or the guard elapsed.
    pub what: String,
    /// Everything recorded so far, in order.
    pub log: Vec<Recorded>,
}

impl fmt::Display for RecorderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}; recorded so far ({}):", self.what, self.log.len())?;
        for (i, r) in self.log.iter().enumerate() {
            writeln!(f, "  {i:>3}: {r:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RecorderError {}

/// The listener half of an [`EventRecorder`]: implements [`CallApiListener`] and [`SignalListener`].
pub struct RecordingListener {
    tx: mpsc::UnboundedSender<Recorded>,
}

impl RecordingListener {
    fn record(&self, r: Recorded) {
        let _ = self.tx.send(r);
    }
}

impl CallApiListener for RecordingListener {
    fn on_call_state_changed(
        &self,
        state: CallState,
        reason: CallStateReason,
        event_reason: &str,
        event_info: &EventInfo,
    ) {
        self.record(Recorded::State {
            state,
            reason,
            event_reason: event_reason.to_owned(),
            info: event_info.clone(),
        });
    }
    fn on_call_event_changed(&self, event: CallEvent, event_reason: &str) {
        self.record(Recorded::Event {
            event,
            event_reason: event_reason.to_owned(),
        });
    }
    fn on_call_error(
        &self,
        event: CallErrorEvent,
        error_type: CallErrorType,
        code: i32,
        message: &str,
    ) {
        self.record(Recorded::Error {
            event,
            error_type,
            code,
            message: message.to_owned(),
        });
    }
    fn on_call_connected(
        &self,
        room_id: &str,
        call_user_id: &str,
        current_user_id: &str,
        timestamp_ms: u64,
    ) {
        self.record(Recorded::Connected {
            room_id: room_id.to_owned(),
            call_user_id: call_user_id.to_owned(),
            current_user_id: current_user_id.to_owned(),
            timestamp_ms,
        });
    }
    fn on_call_disconnected(
        &self,
        room_id: &str,
        hangup_user_id: &str,
        current_user_id: &str,
        timestamp_ms: u64,
        duration_ms: u64,
    ) {
        self.record(Recorded::Disconnected {
            room_id: room_id.to_owned(),
            hangup_user_id: hangup_user_id.to_owned(),
            current_user_id: current_user_id.to_owned(),
            timestamp_ms,
            duration_ms,
        });
    }
    fn on_token_privilege_will_expire(&self) {
        self.record(Recorded::CallTokenWillExpire);
    }
}

impl SignalListener for RecordingListener {
    fn on_connected(&self) {
        self.record(Recorded::SignalConnected);
    }
    fn on_disconnected(&self, reason: &str) {
        self.record(Recorded::SignalDisconnected {
            reason: reason.to_owned(),
        });
    }
    fn on_token_privilege_will_expire(&self, expires_at_ms: u64) {
        self.record(Recorded::TokenWillExpire { expires_at_ms });
    }
    fn on_session_closed(&self, reason: SessionCloseReason, message: &str) {
        self.record(Recorded::SessionClosed {
            reason,
            message: message.to_owned(),
        });
    }
    fn on_channel_event(&self, event: &ChannelEvent) {
        self.record(Recorded::Channel(event.clone()));
    }
}

/// Records callbacks and lets a test await them in order.
pub struct EventRecorder {
    listener: Arc<RecordingListener>,
    rx: mpsc::UnboundedReceiver<Recorded>,
    seen: Vec<Recorded>,
    guard: Duration,
}

impl Default for EventRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventRecorder")
            .field("seen", &self.seen)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl EventRecorder {
    /// A recorder with the [`DEFAULT_GUARD`].
    pub fn new() -> Self {
        Self::with_guard(DEFAULT_GUARD)
    }

    /// A recorder whose waits fail after `guard` without a matching callback.
    pub fn with_guard(guard: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        EventRecorder {
            listener: Arc::new(RecordingListener { tx }),
            rx,
            seen: Vec::new(),
            guard,
        }
    }

    /// The listener to register (it implements both listener traits).
    pub fn listener(&self) -> Arc<RecordingListener> {
        self.listener.clone()
    }

    /// Registers the listener with `api`.
    pub fn attach_call_api(&self, api: &CallApi) {
        api.add_listener(self.listener.clone());
    }

    /// Registers the listener with `signal`.
    pub fn attach_signal(&self, signal: &SignalClient) {
        signal.add_listener(self.listener.clone());
    }

    /// Everything received so far (including what `wait_for` skipped), in order.
    pub fn seen(&self) -> &[Recorded] {
        &self.seen
    }

    /// Takes everything already received but not yet returned by `next`/`wait_for`, without waiting.
    pub fn drain_ready(&mut self) -> Vec<Recorded> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            self.seen.push(r.clone());
            out.push(r);
        }
        out
    }

    /// The next callback.
    pub async fn try_next(&mut self) -> Result<Recorded, RecorderError> {
        match tokio::time::timeout(self.guard, self.rx.recv()).await {
            Ok(Some(r)) => {
                self.seen.push(r.clone());
                Ok(r)
            }
            Ok(None) => Err(self.error("the callback stream ended")),
            Err(_) => Err(self.error(&format!("no callback within the {:?} guard", self.guard))),
        }
    }

    /// The next callback; panics with the full log on failure.
    pub async fn next(&mut self) -> Recorded {
        self.try_next().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The first callback (from now on) that matches `pred`; earlier ones are skipped but kept in `seen`.
    /// The guard applies to the whole wait.
    pub async fn try_wait_for(
        &mut self,
        pred: impl Fn(&Recorded) -> bool,
    ) -> Result<Recorded, RecorderError> {
        let deadline = tokio::time::Instant::now() + self.guard;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(r)) => {
                    self.seen.push(r.clone());
                    if pred(&r) {
                        return Ok(r);
                    }
                }
                Ok(None) => return Err(self.error("the callback stream ended before a match")),
                Err(_) => {
                    return Err(self.error(&format!(
                        "no matching callback within the {:?} guard",
                        self.guard
                    )));
                }
            }
        }
    }

    /// [`try_wait_for`](Self::try_wait_for), panicking with the full log on failure.
    pub async fn wait_for(&mut self, pred: impl Fn(&Recorded) -> bool) -> Recorded {
        self.try_wait_for(pred)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for a state change to `state` with `reason`; returns its event info.
    pub async fn wait_for_state(&mut self, state: CallState, reason: CallStateReason) -> EventInfo {
        match self.wait_for(|r| r.is_state(state, reason)).await {
            Recorded::State { info, .. } => info,
            _ => unreachable!("the predicate only matches states"),
        }
    }

    /// Waits for the call event `event`; returns its event reason.
    pub async fn wait_for_event(&mut self, event: CallEvent) -> String {
        match self.wait_for(|r| r.is_event(event)).await {
            Recorded::Event { event_reason, .. } => event_reason,
            _ => unreachable!("the predicate only matches events"),
        }
    }

    fn error(&self, what: &str) -> RecorderError {
        RecorderError {
            what: what.to_owned(),
            log: self.seen.clone(),
        }
    }
}
