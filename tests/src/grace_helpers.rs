//! An SDK user for the end-to-end stories about sessions and turns (glare, out-of-turn commands, token
//! expiry, reconnect within grace, drop past grace, replaced logins).
//!
//! A [`Party`] is what an app holds: a [`SignalClient`] logged in over a real WebSocket, a [`CallApi`] bound
//! to it, and an [`EventRecorder`] on both. It also keeps the raw event stream (`seq`, `call_id` and all),
//! so a test can assert exactly which state changes a user saw for which call, and in which order.
//!
//! Every wait is "until this event arrives", bounded only by [`DEADLINE`] so a hang fails
//! with the events seen so far.

use std::collections::HashMap;
use std::sync::Arc;

use showcall_sdk::proto::client_frame::Command;
use showcall_sdk::proto::{CallDisconnected, CallStateChanged, Ping, event};
use showcall_sdk::{
    CallApi, CallConfig, CallCreated, CallState, CallStateReason, CallType, ChannelRole, ErrorCode,
    Event, EventRecorder, LoginInfo, PrepareConfig, SdkError, SignalClient,
};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{DEADLINE, TestNode};

/// One user of the app, logged in through the Rust SDK.
pub struct Party {
    pub user: String,
    pub signal: Arc<SignalClient>,
    pub api: CallApi,
    /// Callbacks of `api` and `signal`, in order (session closed, disconnected, token warnings...).
    pub rec: EventRecorder,
    /// What the last login returned.
    pub login: LoginInfo,
    events: UnboundedReceiver<Event>,
    /// Every raw event taken from the stream so far, in order.
    pub log: Vec<Event>,
}

impl Party {
    /// Connects and logs in `user` with a one-hour full-grant token.
    pub async fn login(node: &TestNode, user: &str) -> Party {
        Self::login_with(node, user, &node.token(user)).await
    }

    /// Connects and logs in with `token` (which must name `user`); panics if the login is refused.
    pub async fn login_with(node: &TestNode, user: &str, token: &str) -> Party {
        let signal = Arc::new(
            SignalClient::connect(&node.url())
                .await
                .expect("websocket connects"),
        );
        let rec = EventRecorder::with_guard(DEADLINE);
        rec.attach_signal(&signal);
        let events = signal.subscribe_events();
        let login = signal
            .login(token)
            .await
            .unwrap_or_else(|e| panic!("{user} login refused: {e}"));
        assert_eq!(login.user_id, user, "the token names the user");
        let api = CallApi::new();
        rec.attach_call_api(&api);
        api.initialize(CallConfig {
            app_id: login.app_id.clone(),
            user_id: user.to_owned(),
            signal: signal.clone(),
        });
        Party {
            user: user.to_owned(),
            signal,
            api,
            rec,
            login,
            events,
            log: Vec::new(),
        }
    }

    /// Logs in and prepares for calls with the defaults.
    pub async fn prepared(node: &TestNode, user: &str) -> Party {
        let p = Self::login(node, user).await;
        p.prepare().await;
        p
    }

    pub async fn prepare(&self) {
        self.api
            .prepare_for_call(PrepareConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{} prepare refused: {e}", self.user));
    }

    /// Calls `callee` (video, no extension) and returns the created call.
    pub async fn call(&self, callee: &str) -> CallCreated {
        self.api
            .call(callee, CallType::Video, HashMap::new())
            .await
            .unwrap_or_else(|e| panic!("{} calling {callee} refused: {e}", self.user))
    }

    /// A round trip that must succeed: the session is alive and answers on this connection.
    pub async fn ping(&self) {
        self.signal
            .request(Command::Ping(Ping {}))
            .await
            .unwrap_or_else(|e| panic!("{} ping failed: {e}", self.user));
    }

    /// Joins the call's private channel as broadcaster (both parties do this to connect).
    pub async fn join(&self, channel: &str) {
        self.signal
            .join_channel(channel, ChannelRole::Broadcaster)
            .await
            .unwrap_or_else(|e| panic!("{} joining {channel} refused: {e}", self.user));
    }

    /// The next raw event.
    pub async fn next_event(&mut self) -> Event {
        let next = tokio::time::timeout(DEADLINE, self.events.recv()).await;
        match next {
            Ok(Some(e)) => {
                self.log.push(e.clone());
                e
            }
            Ok(None) => panic!(
                "{}: the event stream ended; seen: {:#?}",
                self.user, self.log
            ),
            Err(_) => panic!(
                "{}: no event within {DEADLINE:?}; seen: {:#?}",
                self.user, self.log
            ),
        }
    }

    /// Takes the events already received, without waiting.
    pub fn drain_ready(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.log.push(e);
        }
    }

    /// Skips raw events until one matches.
    pub async fn wait_event(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        loop {
            let e = self.next_event().await;
            if pred(&e) {
                return e;
            }
        }
    }

    /// Waits for this user's state of `call_id` to become `state`; returns the change.
    pub async fn wait_state(&mut self, call_id: &str, state: CallState) -> CallStateChanged {
        let e = self
            .wait_event(|e| {
                state_change(e).is_some_and(|c| c.call_id == call_id && c.state == state as i32)
            })
            .await;
        state_change(&e).cloned().expect("matched a state change")
    }

    /// Waits for the call event `event` about `call_id`; returns its event reason.
    pub async fn wait_call_event(&mut self, call_id: &str, ev: showcall_sdk::CallEvent) -> String {
        let e = self
            .wait_event(|e| {
                matches!(&e.kind, Some(event::Kind::CallEventChanged(c)) if c.call_id == call_id && c.event == ev as i32)
            })
            .await;
        match e.kind {
            Some(event::Kind::CallEventChanged(c)) => c.event_reason,
            _ => unreachable!("matched a call event"),
        }
    }

    /// Waits for onCallDisconnected of `call_id` (sent only for a call that was connected).
    pub async fn wait_disconnected(&mut self, call_id: &str) -> CallDisconnected {
        let e = self
            .wait_event(|e| {
                matches!(&e.kind, Some(event::Kind::CallDisconnected(d)) if d.call_id == call_id)
            })
            .await;
        match e.kind {
            Some(event::Kind::CallDisconnected(d)) => d,
            _ => unreachable!("matched a disconnect"),
        }
    }

    /// The (state, reason) changes this user was shown for `call_id`, from the events taken so far.
    pub fn states_of(&self, call_id: &str) -> Vec<(CallState, CallStateReason)> {
        self.log
            .iter()
            .filter_map(state_change)
            .filter(|c| c.call_id == call_id)
            .map(|c| {
                (
                    CallState::try_from(c.state).expect("a known state"),
                    CallStateReason::try_from(c.reason).expect("a known reason"),
                )
            })
            .collect()
    }

    /// Every call id this user was shown any event about, from the events taken so far.
    pub fn calls_seen(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for e in &self.log {
            let id = match &e.kind {
                Some(event::Kind::CallStateChanged(c)) => &c.call_id,
                Some(event::Kind::CallEventChanged(c)) => &c.call_id,
                Some(event::Kind::CallConnected(c)) => &c.call_id,
                Some(event::Kind::CallDisconnected(c)) => &c.call_id,
                Some(event::Kind::CallError(c)) => &c.call_id,
                _ => continue,
            };
            // `prepared` after PrepareForCall belongs to no call.
            if !id.is_empty() && !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }
}

/// The state change in an event, if it is one.
pub fn state_change(e: &Event) -> Option<&CallStateChanged> {
    match &e.kind {
        Some(event::Kind::CallStateChanged(c)) => Some(c),
        _ => None,
    }
}

/// The server's refusal code; panics when the command succeeded or failed otherwise.
pub fn refusal<T: std::fmt::Debug>(what: &str, r: Result<T, SdkError>) -> ErrorCode {
    match r {
        Err(SdkError::Refused { code, .. }) => code,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// `caller` calls `callee`, the callee accepts, both join the call channel, and both see `connected`.
/// Returns the call.
pub async fn connect_call(caller: &mut Party, callee: &mut Party) -> CallCreated {
    let created = caller.call(&callee.user).await;
    let id = created.call_id.clone();
    callee.wait_state(&id, CallState::Calling).await;
    callee
        .api
        .accept_with_call_id(&id)
        .await
        .unwrap_or_else(|e| panic!("{} accept refused: {e}", callee.user));
    caller.wait_state(&id, CallState::Connecting).await;
    callee.wait_state(&id, CallState::Connecting).await;
    caller.join(&created.channel).await;
    callee.join(&created.channel).await;
    caller.wait_state(&id, CallState::Connected).await;
    callee.wait_state(&id, CallState::Connected).await;
    created
}

/// `by` hangs up `call_id`; both parties end it `prepared` with localHangup / remoteHangup.
pub async fn hang_up(by: &mut Party, peer: &mut Party, call_id: &str) {
    let by_user = by.user.clone();
    by.api
        .hangup_with_call_id(call_id, "bye")
        .await
        .unwrap_or_else(|e| panic!("{} hangup refused: {e}", by.user));
    let own = by.wait_state(call_id, CallState::Prepared).await;
    assert_eq!(own.reason, CallStateReason::LocalHangup as i32, "{own:?}");
    let theirs = peer.wait_state(call_id, CallState::Prepared).await;
    assert_eq!(
        theirs.reason,
        CallStateReason::RemoteHangup as i32,
        "{theirs:?}"
    );
    assert_eq!(theirs.event_reason, "bye");
    // onCallDisconnected is the last thing a connected call tells either party.
    for p in [by, peer] {
        let d = p.wait_disconnected(call_id).await;
        assert_eq!(d.hangup_user_id, by_user, "{d:?}");
    }
}

/// The state changes a caller sees for a video call that connected once both joined and was hung up by
/// `hung_up_locally` (true: by this user).
pub fn connected_then_hung_up(
    caller: bool,
    hung_up_locally: bool,
) -> Vec<(CallState, CallStateReason)> {
    use CallState as S;
    use CallStateReason as R;
    vec![
        if caller {
            (S::Calling, R::LocalVideoCall)
        } else {
            (S::Calling, R::RemoteVideoCall)
        },
        if caller {
            (S::Connecting, R::RemoteAccepted)
        } else {
            (S::Connecting, R::LocalAccepted)
        },
        (S::Connected, R::BothJoined),
        if hung_up_locally {
            (S::Prepared, R::LocalHangup)
        } else {
            (S::Prepared, R::RemoteHangup)
        },
    ]
}
