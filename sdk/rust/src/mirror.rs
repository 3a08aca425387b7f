//! [`CallMirror`]: the client's copy of the server's call state, for getters.
//!
//! The server is the authority; this is only ever changed by what the server said, in the order it said it:
//! a `CallStateChanged` event, the call snapshot of a `LoginResult`, or the success response of a
//! `PrepareForCall` (idle → prepared; the server has no call-less state event). It never guesses from the
//! client's own commands.

use std::collections::VecDeque;

use showcall_proto::signal::{CallState, CallStateChanged, CallStateReason, EventInfo};

use crate::signal_client::LoginInfo;

/// How many recent call ids are remembered, so `call()` can tell that the server's first event for the new
/// call was applied even if events for other calls (glare) came right after it.
const RECENT_CALLS: usize = 16;

#[derive(Debug, Clone, Default)]
pub(crate) struct CallMirror {
    pub state: CallState,
    pub reason: CallStateReason,
    /// The call in progress (calling, connecting or connected); `None` otherwise.
    pub call_id: Option<String>,
    /// What the server last said about the current or most recent call.
    pub event_info: Option<EventInfo>,
    recent: VecDeque<String>,
}

/// States in which a call exists.
pub(crate) fn is_active(state: CallState) -> bool {
    matches!(
        state,
        CallState::Calling | CallState::Connecting | CallState::Connected
    )
}

impl CallMirror {
    pub fn is_active(&self) -> bool {
        is_active(self.state)
    }

    /// Whether any state event for `call_id` has been applied.
    pub fn has_seen(&self, call_id: &str) -> bool {
        self.recent.iter().any(|c| c == call_id)
    }

    /// An event that carries what the party is shown of its current call now (the caller's
    /// `remoteUserRecvCall` with the callee's user extension); one for another call is ignored.
    pub fn apply_event_info(&mut self, call_id: &str, info: &EventInfo) {
        if self.call_id.as_deref() == Some(call_id) {
            self.event_info = Some(info.clone());
        }
    }

    pub fn apply_state(&mut self, ev: &CallStateChanged) {
        let state = CallState::try_from(ev.state).unwrap_or_else(|_| {
            tracing::warn!(
                state = ev.state,
                "unknown call state from server; mirrored as idle"
            );
            CallState::Idle
        });
        self.state = state;
        self.reason = CallStateReason::try_from(ev.reason).unwrap_or_default();
        self.call_id = (is_active(state) && !ev.call_id.is_empty()).then(|| ev.call_id.clone());
        // A state outside any call (`prepared` after PrepareForCall) keeps the last call's info.
        if let Some(info) = ev.event_info.as_ref().filter(|_| !ev.call_id.is_empty()) {
            self.event_info = Some(info.clone());
        }
        if !ev.call_id.is_empty() {
            self.remember(&ev.call_id);
        }
    }

    /// The server accepted PrepareForCall: an idle (or failed) user is now prepared. The server reports this
    /// only in its success response (call events always name a call), so the response is the truth here.
    /// Returns whether the state changed.
    pub fn apply_prepared(&mut self) -> bool {
        if matches!(self.state, CallState::Idle | CallState::Failed) {
            self.state = CallState::Prepared;
            self.reason = CallStateReason::None;
            true
        } else {
            false
        }
    }

    /// Reconciles with a login. Returns true when the state or the call changed, so the caller can tell the
    /// app (the state moved while the client was away).
    ///
    /// - a snapshot is the truth;
    /// - a resumed session without one means the call ended while away, the user stays prepared;
    /// - a fresh session starts idle (the server forgot the old one, so the app must prepare again).
    pub fn apply_login(&mut self, info: &LoginInfo) -> bool {
        let before = (self.state, self.call_id.clone());
        if let Some(snap) = &info.call {
            self.state = CallState::try_from(snap.state).unwrap_or_default();
            self.reason = CallStateReason::None;
            self.call_id =
                (is_active(self.state) && !snap.call_id.is_empty()).then(|| snap.call_id.clone());
            if let Some(ev_info) = &snap.event_info {
                self.event_info = Some(ev_info.clone());
            }
            if !snap.call_id.is_empty() {
                self.remember(&snap.call_id);
            }
        } else if info.resumed {
            if self.is_active() {
                self.state = CallState::Prepared;
                self.reason = CallStateReason::None;
                self.call_id = None;
            }
        } else {
            self.state = CallState::Idle;
            self.reason = CallStateReason::None;
            self.call_id = None;
        }
        before != (self.state, self.call_id.clone())
    }

    fn remember(&mut self, call_id: &str) {
        if self.has_seen(call_id) {
            return;
        }
        if self.recent.len() == RECENT_CALLS {
            self.recent.pop_front();
        }
        self.recent.push_back(call_id.to_owned());
    }
}
