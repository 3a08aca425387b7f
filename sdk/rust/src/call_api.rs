//! [`CallApi`]: the 1v1 call API, named like Agora's CallAPI so apps port line by line.
//!
//! The server owns the call state machine. `CallApi` sends commands through its [`SignalClient`] and reports
//! what the server pushes; its getters ([`state`](CallApi::state), [`get_call_id`](CallApi::get_call_id),
//! [`event_info`](CallApi::event_info)) read a mirror that only the server's `CallStateChanged` events (and
//! login snapshots) change. Differences from CallAPI that apps notice:
//! - commands are bound to a call id (taken from the mirror; the `_with_call_id` variants take one
//!   explicitly) and the server refuses stale ones with `NO_SUCH_CALL`, so a late hangup cannot end a newer
//!   call;
//! - a refused command returns [`SdkError::Refused`] and changes nothing; no state callback follows it;
//! - media is not joined implicitly: after `accept` (callee) or on `connecting` (caller) the app calls
//!   [`join_call_channel`](CallApi::join_call_channel), the call's private channel minted by the server.
//!
//! Listener callbacks run on one task per `CallApi`, in the server's order; inside a state callback the
//! getters already return the new state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use showcall_proto::signal::client_frame::Command;
use showcall_proto::signal::{
    Accept, Call, CallCreated, CallErrorEvent, CallErrorType, CallEvent, CallState,
    CallStateReason, CallType, CancelCall, ChannelJoined, ChannelRole, ErrorCode, EventInfo,
    Hangup, PrepareForCall, Reject, event, response,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::listeners::ListenerSet;
use crate::mirror::{CallMirror, is_active};
use crate::signal_client::{SignalClient, Update};
use crate::{SdkError, lock};

/// How long a command waits, after the server's success response, for the server's state event that
/// reflects it (so that getters agree with the command when it returns). Only a misbehaving server makes
/// this expire; the command still succeeds then.
const STATE_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// The reason text `deinitialize` sends with the reject/hangup it issues.
pub const DEINITIALIZE_REASON: &str = "deinitialize";

/// Call callbacks (≈ CallAPI's `ICallApiListener`). All have no-op defaults. Do not block in them.
pub trait CallApiListener: Send + Sync {
    /// The server moved this user's call state. `event_reason` is free text (the peer's reject/hangup
    /// reason, or the server's explanation).
    fn on_call_state_changed(
        &self,
        state: CallState,
        reason: CallStateReason,
        event_reason: &str,
        event_info: &EventInfo,
    ) {
        let _ = (state, reason, event_reason, event_info);
    }
    /// A call milestone (delivered, accepted, joined, first frame, ...), and `Deinitialize`.
    fn on_call_event_changed(&self, event: CallEvent, event_reason: &str) {
        let _ = (event, event_reason);
    }
    /// An error in the call (e.g. kicked from the channel: `RtcOccurError` with code 123).
    fn on_call_error(
        &self,
        event: CallErrorEvent,
        error_type: CallErrorType,
        code: i32,
        message: &str,
    ) {
        let _ = (event, error_type, code, message);
    }
    /// The call became connected.
    fn on_call_connected(
        &self,
        room_id: &str,
        call_user_id: &str,
        current_user_id: &str,
        timestamp_ms: u64,
    ) {
        let _ = (room_id, call_user_id, current_user_id, timestamp_ms);
    }
    /// A connected call ended (only connected → prepared).
    fn on_call_disconnected(
        &self,
        room_id: &str,
        hangup_user_id: &str,
        current_user_id: &str,
        timestamp_ms: u64,
        duration_ms: u64,
    ) {
        let _ = (
            room_id,
            hangup_user_id,
            current_user_id,
            timestamp_ms,
            duration_ms,
        );
    }
    /// The session token expires soon; renew it (`CallApi::renew_token` or `SignalClient::renew_token`).
    fn on_token_privilege_will_expire(&self) {}
}

/// ≈ CallAPI's `CallConfig`. `user_id` must be the user the signal client is logged in as.
#[derive(Clone, Debug)]
pub struct CallConfig {
    pub app_id: String,
    pub user_id: String,
    pub signal: Arc<SignalClient>,
}

/// ≈ CallAPI's `PrepareConfig` (media views and tokens are the media client's business).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrepareConfig {
    /// The app's own room id, kept for porting; the server mints a fresh private channel per call.
    pub room_id: String,
    /// Calling timeout for calls this user makes; `None` = server default (15000 ms), `Some(0)` = off.
    pub call_timeout_ms: Option<u32>,
    /// Sent to the peer in `EventInfo.extension` of every call.
    pub user_extension: HashMap<String, String>,
    /// Connected as soon as both parties joined the call channel, instead of on first media.
    pub first_frame_waiting_disabled: bool,
}

/// The 1v1 call API. Cheap to clone (clones share the same instance).
#[derive(Clone, Default)]
pub struct CallApi {
    inner: Arc<Inner>,
}

struct Inner {
    listeners: ListenerSet<dyn CallApiListener>,
    session: Mutex<Option<Session>>,
    /// What getters read; updated before listeners are called.
    mirror: Mutex<CallMirror>,
    /// The mirror republished after listeners were called; commands wait on it.
    applied: watch::Sender<CallMirror>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            listeners: ListenerSet::default(),
            session: Mutex::new(None),
            mirror: Mutex::new(CallMirror::default()),
            applied: watch::Sender::new(CallMirror::default()),
        }
    }
}

struct Session {
    config: CallConfig,
    /// Dropping or firing this stops the dispatch task (it first drains what already arrived).
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for CallApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = lock(&self.inner.mirror);
        f.debug_struct("CallApi")
            .field("initialized", &self.is_initialized())
            .field("state", &m.state)
            .field("call_id", &m.call_id)
            .finish_non_exhaustive()
    }
}

impl CallApi {
    /// A new, uninitialized instance.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds the instance to a signal client and starts reporting its events. The state starts from what
    /// the server last said (e.g. `prepared`, or a call resumed at login). Initializing again replaces the
    /// previous binding without telling the server anything. Must be called within a tokio runtime.
    pub fn initialize(&self, config: CallConfig) {
        let previous = lock(&self.inner.session).take();
        if previous.is_some() {
            tracing::warn!("CallApi initialized twice; the previous binding is dropped");
        }
        drop(previous);
        let (seed, updates) = config.signal.subscribe_updates();
        *lock(&self.inner.mirror) = seed.clone();
        self.inner.applied.send_replace(seed);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run(Arc::downgrade(&self.inner), updates, stop_rx));
        *lock(&self.inner.session) = Some(Session {
            config,
            stop: Some(stop_tx),
            task: Some(task),
        });
    }

    /// Whether `initialize` was called (and not undone by `deinitialize`).
    pub fn is_initialized(&self) -> bool {
        lock(&self.inner.session).is_some()
    }

    /// Registers a listener (no effect if already registered).
    pub fn add_listener(&self, listener: Arc<dyn CallApiListener>) {
        self.inner.listeners.add(listener);
    }

    /// Unregisters a listener; returns whether it was registered.
    pub fn remove_listener(&self, listener: &Arc<dyn CallApiListener>) -> bool {
        self.inner.listeners.remove(listener)
    }

    /// The call state as last reported by the server (`Idle` when not initialized).
    pub fn state(&self) -> CallState {
        lock(&self.inner.mirror).state
    }

    /// The call in progress (calling, connecting or connected).
    pub fn get_call_id(&self) -> Option<String> {
        lock(&self.inner.mirror).call_id.clone()
    }

    /// What the server last said about the current or most recent call.
    pub fn event_info(&self) -> Option<EventInfo> {
        lock(&self.inner.mirror).event_info.clone()
    }

    fn config(&self) -> Result<CallConfig, SdkError> {
        lock(&self.inner.session)
            .as_ref()
            .map(|s| s.config.clone())
            .ok_or(SdkError::NotInitialized)
    }

    async fn command(&self, command: Command) -> Result<response::Result, SdkError> {
        let signal = self.config()?.signal;
        let response = signal.request(command).await?;
        response
            .result
            .ok_or_else(|| SdkError::Protocol("response without the expected result".to_owned()))
    }

    async fn command_unit(&self, command: Command) -> Result<(), SdkError> {
        let signal = self.config()?.signal;
        signal.request(command).await.map(drop)
    }

    /// Makes this user callable and sets the call defaults. Refused while a call is in progress.
    ///
    /// On success an idle (or failed) user becomes `prepared`, reported as
    /// `on_call_state_changed(Prepared, None, "", <empty info>)` before this returns. The server says so in
    /// its success response (it pushes call events only for calls), so that response is the source here.
    pub async fn prepare_for_call(&self, prepare: PrepareConfig) -> Result<(), SdkError> {
        self.command_unit(Command::PrepareForCall(PrepareForCall {
            room_id: prepare.room_id,
            user_extension: prepare.user_extension,
            call_timeout_ms: prepare.call_timeout_ms,
            first_frame_waiting_disabled: prepare.first_frame_waiting_disabled,
        }))
        .await?;
        self.wait_applied("prepare_for_call", |m| {
            !matches!(m.state, CallState::Idle | CallState::Failed)
        })
        .await;
        Ok(())
    }

    /// Calls `remote_user_id`. Returns once the server created the call and its first state event (normally
    /// `calling`, or `prepared` with e.g. `remoteOffline`) has been reported to listeners.
    pub async fn call(
        &self,
        remote_user_id: &str,
        call_type: CallType,
        extension: HashMap<String, String>,
    ) -> Result<CallCreated, SdkError> {
        let result = self
            .command(Command::Call(Call {
                remote_user_id: remote_user_id.to_owned(),
                call_type: call_type as i32,
                call_extension: extension,
                call_timeout_ms: None,
                traceparent: String::new(),
            }))
            .await?;
        let response::Result::CallCreated(created) = result else {
            return Err(SdkError::Protocol(
                "call response without call_created".to_owned(),
            ));
        };
        let call_id = created.call_id.clone();
        self.wait_applied("call", |m| m.has_seen(&call_id)).await;
        Ok(created)
    }

    /// Withdraws the ringing call this user placed.
    pub async fn cancel_call(&self) -> Result<(), SdkError> {
        let call_id = self.current_call("")?;
        self.cancel_call_with_call_id(&call_id).await
    }

    /// `cancel_call` for an explicit call id.
    pub async fn cancel_call_with_call_id(&self, call_id: &str) -> Result<(), SdkError> {
        self.command_unit(Command::CancelCall(CancelCall {
            call_id: call_id.to_owned(),
        }))
        .await
    }

    /// Accepts the ringing call from `remote_user_id` (empty = whoever is calling).
    pub async fn accept(&self, remote_user_id: &str) -> Result<(), SdkError> {
        let call_id = self.current_call(remote_user_id)?;
        self.accept_with_call_id(&call_id).await
    }

    /// `accept` for an explicit call id.
    pub async fn accept_with_call_id(&self, call_id: &str) -> Result<(), SdkError> {
        self.command_unit(Command::Accept(Accept {
            call_id: call_id.to_owned(),
        }))
        .await
    }

    /// Rejects the ringing call from `remote_user_id` (empty = whoever is calling); `reason` is shown to
    /// the caller as `event_reason`.
    pub async fn reject(&self, remote_user_id: &str, reason: &str) -> Result<(), SdkError> {
        let call_id = self.current_call(remote_user_id)?;
        self.reject_with_call_id(&call_id, reason).await
    }

    /// `reject` for an explicit call id.
    pub async fn reject_with_call_id(&self, call_id: &str, reason: &str) -> Result<(), SdkError> {
        self.command_unit(Command::Reject(Reject {
            call_id: call_id.to_owned(),
            reason: reason.to_owned(),
        }))
        .await
    }

    /// Ends the accepted call with `remote_user_id` (empty = the current peer); `reason` is shown to the
    /// peer as `event_reason`.
    pub async fn hangup(&self, remote_user_id: &str, reason: &str) -> Result<(), SdkError> {
        let call_id = self.current_call(remote_user_id)?;
        self.hangup_with_call_id(&call_id, reason).await
    }

    /// `hangup` for an explicit call id.
    pub async fn hangup_with_call_id(&self, call_id: &str, reason: &str) -> Result<(), SdkError> {
        self.command_unit(Command::Hangup(Hangup {
            call_id: call_id.to_owned(),
            reason: reason.to_owned(),
        }))
        .await
    }

    /// Joins the current call's private channel (`EventInfo.from_room_id`) as broadcaster. The callee calls
    /// it after `accept`, the caller on `connecting`; the server admits only the call's two participants.
    pub async fn join_call_channel(&self) -> Result<ChannelJoined, SdkError> {
        let config = self.config()?;
        let channel = {
            let m = lock(&self.inner.mirror);
            match (&m.call_id, &m.event_info) {
                (Some(_), Some(info)) if !info.from_room_id.is_empty() => info.from_room_id.clone(),
                _ => return Err(SdkError::NoCall),
            }
        };
        config
            .signal
            .join_channel(&channel, ChannelRole::Broadcaster)
            .await
    }

    /// Leaves the private channel of the current or most recent call.
    pub async fn leave_call_channel(&self) -> Result<(), SdkError> {
        let config = self.config()?;
        let channel = lock(&self.inner.mirror)
            .event_info
            .as_ref()
            .map(|i| i.from_room_id.clone())
            .filter(|c| !c.is_empty())
            .ok_or(SdkError::NoCall)?;
        config.signal.leave_channel(&channel).await
    }

    /// Renews the session token (one token covers signaling and media in showcall).
    pub async fn renew_token(&self, token: &str) -> Result<(), SdkError> {
        self.config()?.signal.renew_token(token).await
    }

    /// Ends the call in progress as CallAPI does — `calling` → cancel (caller) or reject (callee),
    /// `connecting`/`connected` → hangup, each with reason [`DEINITIALIZE_REASON`] — waits for the server's
    /// resulting state to be reported, then stops reporting, sets the local state to `idle` (reported as a
    /// state change when it was not idle) and reports the event `Deinitialize`.
    ///
    /// The local teardown always happens; the result says whether the server accepted the command ending
    /// the call (a call the server already ended counts as success) and then `Deinitialize` (the server stops
    /// offering calls to this user until the next `prepare_for_call`). No-op when not initialized.
    pub async fn deinitialize(&self) -> Result<(), SdkError> {
        let Ok(config) = self.config() else {
            return Ok(());
        };
        let result = self.end_call_for_deinitialize(&config).await;
        // Stop taking calls: callers now hear REMOTE_OFFLINE at once instead of ringing an app that is gone.
        let result = match result {
            Ok(()) => config
                .signal
                .request(Command::Deinitialize(
                    showcall_proto::signal::Deinitialize {},
                ))
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        let session = lock(&self.inner.session).take();
        if let Some(mut session) = session {
            drop(session.stop.take());
            if let Some(task) = session.task.take() {
                let _ = task.await;
            }
        }
        let previous = std::mem::take(&mut *lock(&self.inner.mirror));
        self.inner.applied.send_replace(CallMirror::default());
        let info = previous.event_info.unwrap_or_default();
        if previous.state != CallState::Idle {
            self.inner.listeners.each(|l| {
                l.on_call_state_changed(CallState::Idle, CallStateReason::None, "", &info)
            });
        }
        self.inner
            .listeners
            .each(|l| l.on_call_event_changed(CallEvent::Deinitialize, ""));
        result
    }

    async fn end_call_for_deinitialize(&self, config: &CallConfig) -> Result<(), SdkError> {
        // A few rounds: the state can move under us (e.g. the caller accepts... the callee's reject is then
        // NOT_ALLOWED and a hangup is needed instead).
        for _ in 0..3 {
            let (state, call_id, caller) = {
                let m = lock(&self.inner.mirror);
                let caller = m
                    .event_info
                    .as_ref()
                    .is_none_or(|i| i.from_user_id == config.user_id);
                (m.state, m.call_id.clone(), caller)
            };
            let Some(call_id) = call_id.filter(|_| is_active(state)) else {
                return Ok(());
            };
            let outcome = match state {
                CallState::Calling if caller => self.cancel_call_with_call_id(&call_id).await,
                CallState::Calling => {
                    self.reject_with_call_id(&call_id, DEINITIALIZE_REASON)
                        .await
                }
                _ => {
                    self.hangup_with_call_id(&call_id, DEINITIALIZE_REASON)
                        .await
                }
            };
            let ended = |m: &CallMirror| m.call_id.as_deref() != Some(call_id.as_str());
            match outcome {
                Ok(()) => {
                    self.wait_applied("deinitialize", ended).await;
                    return Ok(());
                }
                Err(SdkError::Refused {
                    code: ErrorCode::NoSuchCall,
                    ..
                }) => {
                    // The server already ended it; its event is on the way.
                    self.wait_applied("deinitialize", ended).await;
                    return Ok(());
                }
                Err(SdkError::Refused {
                    code: ErrorCode::NotAllowed,
                    ..
                }) => {
                    self.wait_applied("deinitialize", |m| ended(m) || m.state != state)
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The call id to act on for `remote_user_id`: the mirror's call, if it is with that user.
    fn current_call(&self, remote_user_id: &str) -> Result<String, SdkError> {
        let config = self.config()?;
        let m = lock(&self.inner.mirror);
        let call_id = m.call_id.clone().ok_or(SdkError::NoCall)?;
        if !remote_user_id.is_empty()
            && let Some(info) = &m.event_info
        {
            let peer = if info.from_user_id == config.user_id {
                Some(&info.remote_user_id)
            } else if info.remote_user_id == config.user_id {
                Some(&info.from_user_id)
            } else {
                None
            };
            if peer.is_some_and(|p| p != remote_user_id) {
                return Err(SdkError::NoCall);
            }
        }
        Ok(call_id)
    }

    /// Waits until the state reported to listeners satisfies `done` (bounded; see STATE_CONFIRM_TIMEOUT).
    async fn wait_applied(&self, what: &str, done: impl FnMut(&CallMirror) -> bool) {
        let mut rx = self.inner.applied.subscribe();
        if tokio::time::timeout(STATE_CONFIRM_TIMEOUT, rx.wait_for(done))
            .await
            .is_err()
        {
            tracing::warn!(
                what,
                "the server did not report the state change a command implies"
            );
        }
    }
}

/// The dispatch task: applies updates in order until stopped, then drains what already arrived.
async fn run(
    inner: Weak<Inner>,
    mut updates: mpsc::UnboundedReceiver<Update>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            update = updates.recv() => {
                let (Some(update), Some(inner)) = (update, inner.upgrade()) else { return };
                inner.handle(update);
            }
        }
    }
    while let Ok(update) = updates.try_recv() {
        let Some(inner) = inner.upgrade() else { return };
        inner.handle(update);
    }
}

impl Inner {
    fn handle(&self, update: Update) {
        match update {
            Update::Event(ev) => self.handle_event(ev.kind),
            Update::LoggedIn(info) => {
                let changed = lock(&self.mirror).apply_login(&info);
                if changed {
                    let m = lock(&self.mirror).clone();
                    let why = if info.resumed {
                        "session resumed"
                    } else {
                        "new session"
                    };
                    let ev_info = m.event_info.unwrap_or_default();
                    self.listeners.each(|l| {
                        l.on_call_state_changed(m.state, CallStateReason::None, why, &ev_info)
                    });
                }
                self.publish_applied();
            }
            Update::Prepared => {
                if lock(&self.mirror).apply_prepared() {
                    let info = EventInfo::default();
                    self.listeners.each(|l| {
                        l.on_call_state_changed(
                            CallState::Prepared,
                            CallStateReason::None,
                            "",
                            &info,
                        )
                    });
                }
                self.publish_applied();
            }
        }
    }

    fn handle_event(&self, kind: Option<event::Kind>) {
        use event::Kind;
        match kind {
            Some(Kind::CallStateChanged(change)) => {
                let redundant = {
                    let mut m = lock(&self.mirror);
                    // A server that also pushes "prepared" after PrepareForCall must not make apps see it
                    // twice (the response already moved the state).
                    let redundant = change.call_id.is_empty()
                        && change.state == CallState::Prepared as i32
                        && m.state == CallState::Prepared
                        && m.call_id.is_none();
                    m.apply_state(&change);
                    redundant
                };
                if redundant {
                    self.publish_applied();
                    return;
                }
                let state = CallState::try_from(change.state).unwrap_or_default();
                let reason = CallStateReason::try_from(change.reason).unwrap_or_default();
                let info = change.event_info.unwrap_or_default();
                self.listeners
                    .each(|l| l.on_call_state_changed(state, reason, &change.event_reason, &info));
                self.publish_applied();
            }
            Some(Kind::CallEventChanged(ev)) => {
                let event = CallEvent::try_from(ev.event).unwrap_or_else(|_| {
                    tracing::debug!(event = ev.event, "unknown call event reported as none");
                    CallEvent::None
                });
                if let Some(info) = &ev.event_info {
                    // Before the listeners hear the event, so `event_info()` shows it to them.
                    lock(&self.mirror).apply_event_info(&ev.call_id, info);
                }
                self.listeners
                    .each(|l| l.on_call_event_changed(event, &ev.event_reason));
            }
            Some(Kind::CallConnected(c)) => self.listeners.each(|l| {
                l.on_call_connected(
                    &c.room_id,
                    &c.call_user_id,
                    &c.current_user_id,
                    c.timestamp_ms,
                )
            }),
            Some(Kind::CallDisconnected(d)) => self.listeners.each(|l| {
                l.on_call_disconnected(
                    &d.room_id,
                    &d.hangup_user_id,
                    &d.current_user_id,
                    d.timestamp_ms,
                    d.duration_ms,
                )
            }),
            Some(Kind::CallError(e)) => {
                let event = CallErrorEvent::try_from(e.error_event).unwrap_or_default();
                let error_type = CallErrorType::try_from(e.error_type).unwrap_or_default();
                self.listeners
                    .each(|l| l.on_call_error(event, error_type, e.error_code, &e.message));
            }
            Some(Kind::TokenWillExpire(_)) => {
                self.listeners.each(|l| l.on_token_privilege_will_expire())
            }
            // Session and channel events are the signal client's (SignalListener).
            Some(Kind::SessionClosed(_)) | Some(Kind::ChannelEvent(_)) | None => {}
        }
    }

    fn publish_applied(&self) {
        let m = lock(&self.mirror).clone();
        self.applied.send_replace(m);
    }
}
