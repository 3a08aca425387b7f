//! `UserActor`: runs one user's [`UserMachine`] and carries out its effects: pushes events to the
//! connection, starts calls, forwards commands to calls and channels, arms timers.
//!
//! A user actor is not a task of its own. The registry (`showcall-runtime`'s `users`) keeps it, and
//! runs it only while it has messages: the first message for a resting user starts a task that hands
//! the actor its messages one at a time, in order, and gives the actor back to the registry when none
//! is left — virtual-actor style. An idle logged-in user (nearly all of a showroom's users) then costs
//! its state alone: no task, no mailbox. Its timers are the node's timer wheel's (armed through the
//! [`Context`]) and come as messages, so they reach it whether it runs or rests.

use showcall_machines::channel::ChannelInput;
use showcall_machines::user::{CloseReason, UserEffect, UserInput, UserSnapshotError, UserTimer};
use showcall_machines::{ChannelName, ConnId, Millis, Role, UserId, UserMachine};

use crate::context::{Context, TimerKey};
use showcall_protocol::commands::{CommandOk, LoginOk, Outbound, UserCommand};
use showcall_protocol::directory::{UserCall, UserEntry};
use showcall_protocol::error::CommandError;
use showcall_protocol::events::EventKind;
use showcall_protocol::keys::{ActorKey, AppId, NodeId};
use showcall_protocol::media_edge::MemberMedia;
use showcall_protocol::messages::{LostKeys, Responder, UserMsg, UserStanding};
use showcall_protocol::messages::{SessionSink, TraceContext};
use showcall_protocol::trace::{self, TARGET};
use tracing::Instrument;

/// How soon a timer that fired while this node was fenced is tried again (ms).
pub const SUSPENDED_RECHECK_MS: Millis = 250;

/// A session handed over by another node (`showcall-runtime`'s `handoff`): the actor starts from it instead of anew.
pub struct RestoredUser {
    pub snapshot: showcall_machines::user::UserSnapshot,
    pub sinks: Vec<(ConnId, SessionSink)>,
    pub online: bool,
}

/// What a user actor starts from.
pub enum UserStart {
    /// A new session (a first login).
    New,
    /// A session another node handed over: its timers are armed anew here ([`UserActor::begin`]).
    HandedOver(Box<RestoredUser>),
}

/// See the module docs.
pub struct UserActor {
    ctx: Context,
    app: AppId,
    machine: UserMachine,
    /// Sinks of the connections this session knows: the live one, and briefly the one being replaced
    /// (a list: nearly always one entry, and a map's table would cost more than the entry).
    sinks: Vec<(ConnId, SessionSink)>,
    /// Whether `UserOnline` was reported for this session (and `UserOffline` is due at its end).
    online: bool,
    /// Timers armed for this session, disarmed when it ends.
    timers: Vec<TimerKey>,
    /// The session is over: the registry drops the actor after this message.
    stopped: bool,
}

impl UserActor {
    /// An actor for `user`; a handed-over session is refused if its snapshot cannot be read.
    pub fn new(
        ctx: Context,
        app: AppId,
        user: UserId,
        start: UserStart,
    ) -> Result<Self, UserSnapshotError> {
        let config = ctx.user_config().clone();
        let (machine, sinks, online) = match start {
            UserStart::New => (UserMachine::new(user, config), Vec::new(), false),
            UserStart::HandedOver(restored) => {
                let RestoredUser {
                    snapshot,
                    sinks,
                    online,
                } = *restored;
                (UserMachine::restore(snapshot, config)?, sinks, online)
            }
        };
        Ok(Self {
            ctx,
            app,
            machine,
            sinks,
            online,
            timers: Vec::new(),
            stopped: false,
        })
    }

    /// A handed-over session's timers go on here (a new session arms them at login).
    pub async fn begin(&mut self) {
        let timers = self.machine.restored_timers(self.ctx.now_ms());
        run(self, timers, None).await;
        publish(self);
    }

    /// Handles one message.
    pub async fn handle(&mut self, msg: UserMsg) {
        // A running actor's task is sized for the largest state of this future: boxed, it stays small.
        Box::pin(handle(msg, self)).await;
        publish(self);
    }

    /// Whether the session is over (the actor is dropped, its timers disarmed).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The session's state as a handover sends it.
    pub fn standing(&self) -> UserStanding {
        UserStanding {
            snapshot: self.machine.snapshot(),
            sinks: self.sinks.clone(),
            online: self.online,
        }
    }

    /// Whether node `node`'s death matters to this session: a connection it held, the call it ran, or
    /// a channel it ran. A resting session it does not concern need not be woken.
    pub fn concerns(&self, node: &NodeId, lost: &LostKeys) -> bool {
        self.sinks
            .iter()
            .any(|(_, sink)| sink.node().is_some_and(|n| n == node))
            || self
                .machine
                .call()
                .is_some_and(|call| lost(&ActorKey::Call(self.app.clone(), call.id.clone())))
            || !self.lost_channels(lost).is_empty()
    }

    /// This session's channels whose actor ran on a node that died (`lost` owned them).
    fn lost_channels(&self, lost: &LostKeys) -> Vec<ChannelName> {
        self.machine
            .channels()
            .map(|(channel, _)| channel)
            .filter(|channel| lost(&ActorKey::Channel(self.app.clone(), (*channel).clone())))
            .cloned()
            .collect()
    }

    /// The timers armed for this session (the registry disarms them when it drops the actor).
    pub fn timers(&self) -> &[TimerKey] {
        &self.timers
    }

    /// This node lost its lease: the session's connections are closed (see [`UserMsg::Evict`]).
    pub fn evict(&mut self) {
        let reason = CloseReason::NodeLost;
        let now = self.ctx.now_ms();
        for (_, sink) in &self.sinks {
            let _ = sink.send(Outbound::closing_notice(now, reason));
            let _ = sink.send(Outbound::Close(reason));
        }
        self.stopped = true;
    }

    fn sink(&self, conn: ConnId) -> Option<&SessionSink> {
        self.sinks.iter().find(|(c, _)| *c == conn).map(|(_, s)| s)
    }

    fn remove_sink(&mut self, conn: ConnId) -> Option<SessionSink> {
        let at = self.sinks.iter().position(|(c, _)| *c == conn)?;
        Some(self.sinks.swap_remove(at).1)
    }

    /// Arms `timer` at `at`, forgetting the keys of timers already due.
    fn arm(&mut self, timer: UserTimer, at: Millis) {
        let now = self.ctx.now_ms();
        self.timers.retain(|t| t.at > now);
        let key = self
            .ctx
            .arm_user_timer(&self.app, self.machine.user(), timer, at);
        self.timers.push(key);
    }
}

/// Writes the user's entry in the node's directory (removed when the actor stops).
fn publish(state: &UserActor) {
    let m = &state.machine;
    if m.is_closed() || state.stopped {
        return;
    }
    let channels: Vec<(ChannelName, Role)> = m.channels().map(|(c, r)| (c.clone(), r)).collect();
    let entry = UserEntry {
        user: m.user().clone(),
        presence: m.presence(),
        away: m.is_away(),
        prepared: m.is_prepared(),
        call: m.call().map(|call| UserCall {
            id: call.id.clone(),
            peer: call.peer.clone(),
            state: call.state as u32,
        }),
        channels,
    };
    state.ctx.directory().set_user(&state.app, entry);
}

async fn handle(msg: UserMsg, state: &mut UserActor) {
    {
        let now = state.ctx.now_ms();
        match msg {
            UserMsg::Attach {
                conn,
                sink,
                token_expires_at,
                reply,
            } => {
                state.remove_sink(conn);
                state.sinks.push((conn, sink));
                match state.machine.handle(
                    UserInput::Login {
                        conn,
                        token_expires_at,
                    },
                    now,
                ) {
                    Ok(fx) => {
                        let m = &state.machine;
                        let ok = LoginOk {
                            resumed: m.resumed(),
                            token_expires_at: m.token_expires_at(),
                            call: m.call().cloned(),
                            channels: m.channels().map(|(c, _)| c.clone()).collect(),
                            grace_ms: state.ctx.user_config().grace_ms,
                        };
                        let _ = reply.send(Ok(ok));
                        if !state.online {
                            // The session's first login: replacing a connection or resuming one in
                            // its grace period is the same session.
                            state.online = true;
                            let user = state.machine.user().clone();
                            state.ctx.emit(&state.app, EventKind::UserOnline { user });
                        }
                        run(state, fx, None).await;
                    }
                    Err(e) => {
                        state.remove_sink(conn);
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            UserMsg::Command {
                conn,
                command,
                reply,
            } => {
                if state.machine.connection() != Some(conn) {
                    let _ = reply.send(Err(CommandError::SessionClosed));
                    return;
                }
                command_input(state, command, reply, now).await;
            }
            UserMsg::ConnectionLost { conn } => {
                if let Ok(fx) = state
                    .machine
                    .handle(UserInput::ConnectionLost { conn }, now)
                {
                    state.remove_sink(conn);
                    run(state, fx, None).await;
                }
            }
            UserMsg::Input(traced) => {
                let span = input_span(state, &traced.payload, &traced.trace);
                feed(state, traced.payload, now).instrument(span).await
            }
            UserMsg::Timer(timer) => {
                let key = ActorKey::User(state.app.clone(), state.machine.user().clone());
                if state.ctx.serves(&key) {
                    feed(state, UserInput::Timer(timer), now).await;
                } else {
                    // Suspended (this node is fenced): the timer waits until it serves again, or until
                    // the actor is evicted because another node took it over.
                    state.arm(timer, now + SUSPENDED_RECHECK_MS);
                }
            }
            UserMsg::Snapshot(reply) => {
                let _ = reply.send(state.standing());
            }
            UserMsg::Evict => state.evict(),
            UserMsg::NodeLost { node, lost } => {
                // The connections whose WebSocket that node held dropped with it: the live one starts
                // the grace period (the peer hears `remoteLeft`), as if its socket had closed.
                let dead: Vec<ConnId> = state
                    .sinks
                    .iter()
                    .filter(|(_, sink)| sink.node().is_some_and(|n| *n == node))
                    .map(|(conn, _)| *conn)
                    .collect();
                for conn in dead {
                    state.remove_sink(conn);
                    if state.machine.connection() == Some(conn) {
                        feed(state, UserInput::ConnectionLost { conn }, now).await;
                    }
                }
                // Its channels' broadcasters are gone with the channels' node: the client is told.
                for channel in state.lost_channels(&lost) {
                    feed(state, UserInput::ChannelLost { channel }, now).await;
                }
                let call = state.machine.call().map(|c| c.id.clone());
                if let Some(call_id) = call
                    && lost(&ActorKey::Call(state.app.clone(), call_id.clone()))
                {
                    // A connected call may be taken over by the call's new owner; the machine decides.
                    let input = UserInput::CallOwnerLost { call_id };
                    feed(state, input, now).await;
                }
            }
        }
    }
}

/// The span a call's input to this user is handled in, under the call's span that sent it; none for
/// inputs that are not part of a call, or not traced.
fn input_span(state: &UserActor, input: &UserInput, sent_under: &TraceContext) -> tracing::Span {
    let Some((name, call_id)) = trace::user_step(input) else {
        return tracing::Span::none();
    };
    if !sent_under.is_set() {
        return tracing::Span::none();
    }
    let span = tracing::debug_span!(
        target: TARGET,
        parent: None,
        "user.step",
        otel.name = name,
        call.id = %call_id,
        user.id = %state.machine.user(),
        app.id = %state.app,
        node.id = %state.ctx.node(),
    );
    sent_under.continue_in(&span);
    span
}

/// Feeds a notification; a refusal is a stale message and is dropped.
async fn feed(state: &mut UserActor, input: UserInput, now: u64) {
    match state.machine.handle(input, now) {
        Ok(fx) => run(state, fx, None).await,
        Err(e) => tracing::debug!(user = %state.machine.user(), error = %e, "user input dropped"),
    }
}

async fn command_input(
    state: &mut UserActor,
    command: UserCommand,
    reply: Responder<CommandOk>,
    now: u64,
) {
    let mut span = tracing::Span::none();
    let input = match command {
        UserCommand::Logout => {
            let conn = state
                .machine
                .connection()
                .expect("checked by the caller: connection is live");
            UserInput::Logout { conn }
        }
        UserCommand::RenewToken { token_expires_at } => UserInput::RenewToken { token_expires_at },
        UserCommand::Prepare(p) => UserInput::Prepare(p),
        UserCommand::Unprepare => UserInput::Unprepare,
        UserCommand::Call {
            callee,
            call_type,
            extension,
            timeout_ms,
            trace,
        } => {
            // The call's trace: the client's request, then this span, then the call actor's.
            span = tracing::debug_span!(
                target: TARGET,
                parent: None,
                "user.call",
                call.id = tracing::field::Empty,
                caller.id = %state.machine.user(),
                callee.id = %callee,
                app.id = %state.app,
                node.id = %state.ctx.node(),
            );
            trace.continue_in(&span);
            UserInput::StartCall {
                callee,
                call_type,
                extension,
                timeout_ms,
                // A call runs where its caller's user actor does: its start crosses no node.
                call_id: showcall_protocol::ids::call_id_where(|id| {
                    state
                        .ctx
                        .serves(&ActorKey::Call(state.app.clone(), id.clone()))
                }),
                channel: showcall_protocol::ids::call_channel(
                    state.ctx.placement().call_channel_tag().as_deref(),
                ),
            }
        }
        UserCommand::CallCommand { call_id, command } => UserInput::Command { call_id, command },
        UserCommand::JoinChannel {
            channel,
            role,
            may_publish,
            offer,
        } => UserInput::JoinChannel {
            channel,
            role,
            may_publish,
            offer,
        },
        UserCommand::LeaveChannel { channel } => UserInput::LeaveChannel { channel },
        UserCommand::AnswerMedia {
            channel,
            sdp_answer,
            revision,
        } => {
            answer_media(state, channel, sdp_answer, revision, reply);
            return;
        }
        UserCommand::RestartIce { channel, sdp_offer } => {
            restart_ice(state, channel, sdp_offer, reply);
            return;
        }
        UserCommand::SetVideoLayer { channel, max_layer } => {
            set_video_layer(state, channel, max_layer, reply);
            return;
        }
    };
    match state.machine.handle(input, now) {
        Ok(fx) => run(state, fx, Some(reply)).instrument(span).await,
        Err(e) => {
            let _ = reply.send(Err(e.into()));
        }
    }
}

/// Hands the member's answer to the channel, which carries it to the router holding its session.
fn answer_media(
    state: &UserActor,
    channel: showcall_machines::ChannelName,
    sdp_answer: String,
    revision: u64,
    reply: Responder<CommandOk>,
) {
    let command = MemberMedia::Answer {
        sdp_answer,
        revision,
    };
    member_media(state, channel, command, reply);
}

/// Hands the member's ICE restart offer (same session, new path) to the channel, as an answer.
fn restart_ice(
    state: &UserActor,
    channel: showcall_machines::ChannelName,
    sdp_offer: String,
    reply: Responder<CommandOk>,
) {
    member_media(state, channel, MemberMedia::RestartIce { sdp_offer }, reply);
}

/// Caps the simulcast layer the member's media session in `channel` receives, through the channel.
fn set_video_layer(
    state: &UserActor,
    channel: showcall_machines::ChannelName,
    max_layer: showcall_protocol::VideoLayer,
    reply: Responder<CommandOk>,
) {
    member_media(
        state,
        channel,
        MemberMedia::SetVideoLayer { max_layer },
        reply,
    );
}

/// A command for the member's own media session: the channel's actor knows which node's router holds
/// it (the room's origin or an edge, `showcall_protocol::media_edge`) and answers `reply`.
fn member_media(
    state: &UserActor,
    channel: showcall_machines::ChannelName,
    command: MemberMedia,
    reply: Responder<CommandOk>,
) {
    if !state.machine.channels().any(|(c, _)| *c == channel) {
        let _ = reply.send(Err(CommandError::NotInChannel));
        return;
    }
    let user = state.machine.user().clone();
    state
        .ctx
        .member_media(&state.app, &channel, user, command, reply);
}

/// Carries out effects in order. `reply` is the pending client command's answer: effects that forward the
/// command take it; otherwise it is answered `Done` at the end.
async fn run(state: &mut UserActor, fx: Vec<UserEffect>, mut reply: Option<Responder<CommandOk>>) {
    // A step's pushes in a row go to the connection together (one envelope when it is on another node).
    let mut pushes = Vec::new();
    for effect in fx {
        if !matches!(effect, UserEffect::Push(_)) {
            push_all(state, &mut pushes);
        }
        match effect {
            UserEffect::Push(pushed) => pushes.push(Outbound::Event(Box::new(pushed))),
            UserEffect::Close { conn, reason } => {
                if let Some(sink) = state.remove_sink(conn) {
                    if reason == CloseReason::Replaced {
                        // The session's numbered stream now goes to the new connection; the replaced one
                        // still hears why it is closed.
                        let _ = sink.send(Outbound::closing_notice(state.ctx.now_ms(), reason));
                    }
                    let _ = sink.send(Outbound::Close(reason));
                }
            }
            UserEffect::SpawnCall(setup) => {
                let created = CommandOk::CallCreated {
                    call_id: setup.id.clone(),
                    channel: setup.channel.clone(),
                };
                let call_id = setup.id.clone();
                // On the `user.call` span when this is the caller's Call command (a no-op otherwise).
                tracing::Span::current().record("call.id", call_id.as_str());
                match state.ctx.spawn_call(state.app.clone(), setup).await {
                    Ok(()) => {
                        if let Some(r) = reply.take() {
                            let _ = r.send(Ok(created));
                        }
                    }
                    Err(e) => {
                        // The call never existed: the machine forgets it, so the user may call again.
                        tracing::warn!(%call_id, error = %e, "call actor failed to start");
                        let now = state.ctx.now_ms();
                        let input = UserInput::CallNotStarted { call_id };
                        if let Err(e) = state.machine.handle(input, now) {
                            tracing::debug!(error = %e, "call not started: nothing to forget");
                        }
                        if let Some(r) = reply.take() {
                            let _ = r.send(Err(e));
                        }
                    }
                }
            }
            UserEffect::ToCall { call_id, input } => {
                state.ctx.send_call(&state.app, &call_id, input);
            }
            UserEffect::CommandCall { call_id, input } => {
                let Some(r) = reply.take() else { continue };
                state.ctx.command_call(&state.app, &call_id, input, r);
            }
            UserEffect::JoinChannel {
                channel,
                role,
                may_publish,
                offer,
            } => {
                // The channel's verdict answers the client's join.
                let Some(r) = reply.take() else { continue };
                let user = state.machine.user().clone();
                state
                    .ctx
                    .join_channel(&state.app, &channel, user, role, may_publish, offer, r)
                    .await;
            }
            UserEffect::LeaveChannel { channel } => {
                let user = state.machine.user().clone();
                state
                    .ctx
                    .send_channel(&state.app, &channel, ChannelInput::Leave { user });
            }
            UserEffect::ToChannel { channel, input } => {
                state.ctx.send_channel(&state.app, &channel, input);
            }
            UserEffect::SetTimer { timer, at } => state.arm(timer, at),
            UserEffect::Stop => {
                if std::mem::take(&mut state.online) {
                    let user = state.machine.user().clone();
                    state.ctx.emit(&state.app, EventKind::UserOffline { user });
                }
                state.stopped = true;
            }
        }
    }
    push_all(state, &mut pushes);
    if let Some(r) = reply {
        let _ = r.send(Ok(CommandOk::Done));
    }
}

/// Hands `pushes` to the session's connection — or, when the session just closed, to the connection
/// being closed, which still hears its last events.
fn push_all(state: &UserActor, pushes: &mut Vec<Outbound>) {
    if pushes.is_empty() {
        return;
    }
    let pushes = std::mem::take(pushes);
    let sink = match state.machine.connection() {
        Some(conn) => state.sink(conn),
        None => None,
    }
    .or_else(|| state.sinks.first().map(|(_, sink)| sink));
    if let Some(sink) = sink {
        let _ = sink.send_all(pushes);
    }
}
