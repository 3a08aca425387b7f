//! One app user driven through the Rust SDK, the way the seed's app wires it: a `SignalClient`
//! (≈ CallRtmManager) with a listener, a `CallApi` bound to it with a listener, then login. Every callback
//! goes to one [`EventRecorder`], and a test waits for what that user would see next — never for time.
//!
//! The SDK promises order per listener, not across them: `CallApi` callbacks run on the call API's task,
//! `SignalClient` callbacks (channel and session events) on the signaling task, so a channel event the
//! server sent after a state change may be recorded before it. [`SdkUser`] therefore reads the recording as
//! two streams, each in server order, with a cursor each: a wait skips earlier callbacks of its own stream
//! only, and never loses one of the other.

use showcall_sdk::media::{MediaOptions, MediaSession};
use showcall_sdk::{
    CallApi, CallConfig, CallEvent, CallState, CallStateReason, ChannelJoined, ChannelMember,
    ChannelRole, EventInfo, EventRecorder, PrepareConfig, Recorded, SdkError, SignalClient,
    channel_event,
};

use crate::{DEADLINE, TestNode};

/// One SDK user: its signaling session, its call API and everything they reported.
pub struct SdkUser {
    pub id: String,
    pub signal: SignalClient,
    pub api: CallApi,
    /// Every callback of both listeners, as recorded. Its guard is the harness [`DEADLINE`]. Wait through
    /// the methods below, which keep the two streams' cursors.
    pub rec: EventRecorder,
    /// Index in `rec.seen()` past the last call callback a wait returned or skipped.
    call_cursor: usize,
    /// The same for signaling callbacks.
    signal_cursor: usize,
}

/// Whether a callback comes from the `SignalListener` (else from the `CallApiListener`).
pub fn is_signal(r: &Recorded) -> bool {
    matches!(
        r,
        Recorded::SignalConnected
            | Recorded::SignalDisconnected { .. }
            | Recorded::TokenWillExpire { .. }
            | Recorded::SessionClosed { .. }
            | Recorded::Channel(_)
    )
}

impl SdkUser {
    /// Seed steps 2–7: connect, add the signaling listener, initialize `CallApi` and add its listener, log
    /// in with a full-grant token and wait for `onConnected`. The user is logged in but not prepared.
    pub async fn login(node: &TestNode, id: &str) -> Self {
        Self::login_with_token(node, id, &node.token(id)).await
    }

    /// [`login`](Self::login) with a given token.
    pub async fn login_with_token(node: &TestNode, id: &str, token: &str) -> Self {
        Self::login_at(&node.url(), node.app(), id, token).await
    }

    /// [`login`](Self::login) at a signaling URL (any node of a cluster) with a given token.
    pub async fn login_at(url: &str, app: &str, id: &str, token: &str) -> Self {
        Self::try_login_at(url, app, id, token)
            .await
            .expect("login accepted")
    }

    /// [`login_at`](Self::login_at), or the server's refusal of the login.
    pub async fn try_login_at(
        url: &str,
        app: &str,
        id: &str,
        token: &str,
    ) -> Result<Self, SdkError> {
        let signal = SignalClient::connect(url)
            .await
            .expect("websocket connects");
        let rec = EventRecorder::with_guard(DEADLINE);
        rec.attach_signal(&signal);
        let api = CallApi::new();
        api.initialize(CallConfig {
            app_id: app.to_owned(),
            user_id: id.to_owned(),
            signal: signal.clone().into(),
        });
        rec.attach_call_api(&api);
        let info = signal.login(token).await?;
        assert_eq!(info.user_id, id, "the token names this user");
        let mut user = Self {
            id: id.to_owned(),
            signal,
            api,
            rec,
            call_cursor: 0,
            signal_cursor: 0,
        };
        user.wait_signal(|r| matches!(r, Recorded::SignalConnected))
            .await;
        Ok(user)
    }

    /// `channel`'s events received since the last signaling callback waited for (left for the next
    /// wait).
    pub fn channel_events_since(&self, channel: &str) -> Vec<channel_event::Kind> {
        self.rec.seen()[self.signal_cursor..]
            .iter()
            .filter_map(|r| match r {
                Recorded::Channel(e) if e.channel == channel => e.kind.clone(),
                _ => None,
            })
            .collect()
    }

    /// The first call callback (`CallApiListener`) after the last one waited for that `pred` accepts.
    pub async fn wait_call(&mut self, pred: impl Fn(&Recorded) -> bool) -> Recorded {
        self.wait_in(false, pred).await
    }

    /// The first signaling callback (`SignalListener`) after the last one waited for that `pred` accepts.
    pub async fn wait_signal(&mut self, pred: impl Fn(&Recorded) -> bool) -> Recorded {
        self.wait_in(true, pred).await
    }

    async fn wait_in(&mut self, signal: bool, pred: impl Fn(&Recorded) -> bool) -> Recorded {
        let mut at = if signal {
            self.signal_cursor
        } else {
            self.call_cursor
        };
        loop {
            while at < self.rec.seen().len() {
                let r = &self.rec.seen()[at];
                at += 1;
                if is_signal(r) == signal && pred(r) {
                    let found = r.clone();
                    if signal {
                        self.signal_cursor = at;
                    } else {
                        self.call_cursor = at;
                    }
                    return found;
                }
            }
            // Nothing recorded matches yet: take the next callback (panics with the log at the guard).
            self.rec.next().await;
        }
    }

    /// Logs in and prepares for calls with the given settings (seed step 8).
    pub async fn prepared(node: &TestNode, id: &str, prepare: PrepareConfig) -> Self {
        let user = Self::login(node, id).await;
        user.api
            .prepare_for_call(prepare)
            .await
            .expect("prepare accepted");
        assert_eq!(user.api.state(), CallState::Prepared);
        user
    }

    /// Waits for the call state change to `state` with `reason`; returns its event info.
    pub async fn wait_state(&mut self, state: CallState, reason: CallStateReason) -> EventInfo {
        self.wait_state_text(state, reason).await.1
    }

    /// Waits for a state change to `state` with `reason`; returns its free-text event reason and info.
    pub async fn wait_state_text(
        &mut self,
        state: CallState,
        reason: CallStateReason,
    ) -> (String, EventInfo) {
        match self.wait_call(|r| r.is_state(state, reason)).await {
            Recorded::State {
                event_reason, info, ..
            } => (event_reason, info),
            _ => unreachable!("the predicate only matches states"),
        }
    }

    /// Waits for the call event `event`; returns its event reason.
    pub async fn wait_event(&mut self, event: CallEvent) -> String {
        match self.wait_call(|r| r.is_event(event)).await {
            Recorded::Event { event_reason, .. } => event_reason,
            _ => unreachable!("the predicate only matches events"),
        }
    }

    /// Waits for a channel event of `channel` that `pred` accepts.
    pub async fn wait_channel(
        &mut self,
        channel: &str,
        pred: impl Fn(&channel_event::Kind) -> bool,
    ) -> channel_event::Kind {
        let found = self
            .wait_signal(|r| match r {
                Recorded::Channel(e) => e.channel == channel && e.kind.as_ref().is_some_and(&pred),
                _ => false,
            })
            .await;
        match found {
            Recorded::Channel(e) => e.kind.expect("matched a kind"),
            _ => unreachable!("the predicate only matches channel events"),
        }
    }

    /// Waits until `channel` says `host` went into a private call (its live publication paused).
    pub async fn wait_paused(&mut self, channel: &str, host: &str) {
        self.wait_channel(channel, |k| is_paused(k, host)).await;
    }

    /// Waits until `channel` says `host` is back live.
    pub async fn wait_resumed(&mut self, channel: &str, host: &str) {
        self.wait_channel(channel, |k| is_resumed(k, host)).await;
    }

    /// Joins a channel; panics with the server's refusal if there is one.
    pub async fn join(&self, channel: &str, role: ChannelRole) -> ChannelJoined {
        self.signal
            .join_channel(channel, role)
            .await
            .unwrap_or_else(|e| panic!("{} could not join {channel}: {e}", self.id))
    }

    /// Joins `channel` with media (the SDK's sample, default options): the session, once the node
    /// answered.
    pub async fn join_media(&self, channel: &str, role: ChannelRole) -> MediaSession {
        let (media, _) = MediaSession::join(&self.signal, channel, role, MediaOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{} could not join {channel} with media: {e}", self.id));
        media
    }

    /// The channel events recorded so far, in server order.
    pub fn channel_events(&self, channel: &str) -> Vec<channel_event::Kind> {
        self.rec
            .seen()
            .iter()
            .filter_map(|r| match r {
                Recorded::Channel(e) if e.channel == channel => e.kind.clone(),
                _ => None,
            })
            .collect()
    }
}

/// Whether a channel event says `host` was paused for a private call.
pub fn is_paused(kind: &channel_event::Kind, host: &str) -> bool {
    matches!(kind, channel_event::Kind::BroadcasterPaused(p) if p.user_id == host)
}

/// Whether a channel event says `host` is back live.
pub fn is_resumed(kind: &channel_event::Kind, host: &str) -> bool {
    matches!(kind, channel_event::Kind::BroadcasterResumed(u) if u == host)
}

/// Whether a channel event says `user` left.
pub fn is_member_left(kind: &channel_event::Kind, user: &str) -> bool {
    matches!(kind, channel_event::Kind::MemberLeft(u) if u == user)
}

/// Whether a channel event says `user` joined.
pub fn is_member_joined(kind: &channel_event::Kind, user: &str) -> bool {
    matches!(kind, channel_event::Kind::MemberJoined(m) if m.user_id == user)
}

/// A member of a join snapshot; panics with the snapshot when absent.
pub fn member<'a>(joined: &'a ChannelJoined, user: &str) -> &'a ChannelMember {
    joined
        .members
        .iter()
        .find(|m| m.user_id == user)
        .unwrap_or_else(|| panic!("{user} is not in the snapshot {joined:?}"))
}

/// The server's error code of a refused command; panics on any other outcome.
pub fn refusal<T: std::fmt::Debug>(result: Result<T, SdkError>) -> showcall_sdk::ErrorCode {
    match result {
        Err(SdkError::Refused { code, .. }) => code,
        other => panic!("expected a refusal from the server, got {other:?}"),
    }
}

/// A video call with media both ways, as the seed's 1v1: `caller` calls `callee`, who accepts; both join
/// the call's channel with media and see it connected (each side's first frame reached the other).
pub struct MediaCall {
    pub created: showcall_sdk::CallCreated,
    pub caller_media: MediaSession,
    pub callee_media: MediaSession,
}

/// Places and connects a [`MediaCall`].
pub async fn video_call_with_media(caller: &mut SdkUser, callee: &mut SdkUser) -> MediaCall {
    let created = caller
        .api
        .call(
            &callee.id,
            showcall_sdk::CallType::Video,
            Default::default(),
        )
        .await
        .expect("call placed");
    callee
        .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    callee.api.accept(&caller.id).await.expect("accepted");
    let caller_media = caller
        .join_media(&created.channel, ChannelRole::Broadcaster)
        .await;
    let callee_media = callee
        .join_media(&created.channel, ChannelRole::Broadcaster)
        .await;
    caller
        .wait_state(CallState::Connected, CallStateReason::RecvRemoteFirstFrame)
        .await;
    callee
        .wait_state(CallState::Connected, CallStateReason::RecvRemoteFirstFrame)
        .await;
    MediaCall {
        created,
        caller_media,
        callee_media,
    }
}

/// `caller` hangs up its call with `callee`: both are back to `prepared` (local / remote hangup).
pub async fn hang_up(caller: &mut SdkUser, callee: &mut SdkUser) {
    caller
        .api
        .hangup(&callee.id, "bye")
        .await
        .expect("the caller hangs up");
    caller
        .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
        .await;
    callee
        .wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
}

/// Waits for `more` video frames beyond what `session` received so far.
pub async fn more_video(session: &showcall_sdk::media::MediaSession, more: u64) {
    let now = session.stats().video_frames_in;
    session
        .wait_video_frames(now + more)
        .await
        .expect("video keeps arriving");
}

/// Whether a callback is a call state change to `connected` (with any reason).
pub fn is_connected(r: &Recorded) -> bool {
    matches!(
        r,
        Recorded::State {
            state: CallState::Connected,
            ..
        }
    )
}
