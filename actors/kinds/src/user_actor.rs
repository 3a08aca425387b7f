//! `UserActor`: runs one user's [`UserMachine`] and carries out its effects: pushes events to the
//! connection, starts calls, forwards commands to calls and channels, arms timers.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use showcall_machines::channel::ChannelInput;
use showcall_machines::user::{CloseReason, UserEffect, UserInput};
use showcall_machines::{ChannelName, ConnId, Role, UserId, UserMachine};

use crate::context::Context;
use showcall_protocol::commands::{CommandOk, LoginOk, Outbound, UserCommand};
use showcall_protocol::directory::{UserCall, UserEntry};
use showcall_protocol::error::CommandError;
use showcall_protocol::events::EventKind;
use showcall_protocol::keys::{ActorKey, AppId};
use showcall_protocol::messages::{Responder, UserMsg};
use showcall_protocol::messages::{SessionSink, TraceContext};
use showcall_protocol::trace::{self, TARGET};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// How soon a timer that fired while this node was fenced is tried again.
pub(crate) const SUSPENDED_RECHECK: Duration = Duration::from_millis(250);

/// See the module docs.
pub struct UserActor;

/// A session handed over by another node (`showcall-runtime`'s `handoff`): the actor starts from it instead of anew.
pub struct RestoredUser {
    pub snapshot: showcall_machines::user::UserSnapshot,
    pub sinks: Vec<(ConnId, SessionSink)>,
    pub online: bool,
}

pub struct UserState {
    ctx: Context,
    app: AppId,
    machine: UserMachine,
    /// Sinks of the connections this session knows: the live one, and briefly the one being replaced.
    sinks: HashMap<ConnId, SessionSink>,
    /// Whether `UserOnline` was reported for this session (and `UserOffline` is due at its end).
    online: bool,
    /// Armed timers, aborted when the actor stops: a pending timer's task holds the actor's cell and
    /// mailboxes, and a token's expiry is up to a week away, so without this every ended session was
    /// kept in memory until its token would have expired (found by `showcall-bench soak`).
    timers: Vec<JoinHandle<Result<(), ractor::MessagingErr<UserMsg>>>>,
}

impl UserState {
    /// Keeps a newly armed timer, forgetting those that already fired.
    fn arm(&mut self, timer: JoinHandle<Result<(), ractor::MessagingErr<UserMsg>>>) {
        self.timers.retain(|t| !t.is_finished());
        self.timers.push(timer);
    }
}

impl Actor for UserActor {
    type Msg = UserMsg;
    type State = UserState;
    type Arguments = (Context, AppId, UserId, Option<RestoredUser>);

    async fn pre_start(
        &self,
        _myself: ActorRef<UserMsg>,
        (ctx, app, user, restored): (Context, AppId, UserId, Option<RestoredUser>),
    ) -> Result<UserState, ActorProcessingErr> {
        let config = ctx.user_config().clone();
        let Some(restored) = restored else {
            return Ok(UserState {
                ctx,
                app,
                machine: UserMachine::new(user, config),
                sinks: HashMap::new(),
                online: false,
                timers: Vec::new(),
            });
        };
        Ok(UserState {
            machine: UserMachine::restore(restored.snapshot, config)?,
            ctx,
            app,
            sinks: restored.sinks.into_iter().collect(),
            online: restored.online,
            timers: Vec::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<UserMsg>,
        state: &mut UserState,
    ) -> Result<(), ActorProcessingErr> {
        if state.machine.connection().is_some() || state.machine.is_away() {
            // A handed-over session: its timers go on here (a new session arms them at login).
            let timers = state.machine.restored_timers(state.ctx.now_ms());
            run(&myself, state, timers, None).await;
            publish(state);
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<UserMsg>,
        state: &mut UserState,
    ) -> Result<(), ActorProcessingErr> {
        state
            .ctx
            .forget_user(&state.app, state.machine.user(), myself.get_id());
        for timer in state.timers.drain(..) {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<UserMsg>,
        msg: UserMsg,
        state: &mut UserState,
    ) -> Result<(), ActorProcessingErr> {
        // The actor's task is sized for the largest state of this future and lives as long as the session;
        // boxing the work keeps an idle session small.
        Box::pin(handle(myself, msg, state)).await;
        publish(state);
        Ok(())
    }
}

/// Writes the user's entry in the node's directory (removed when the actor stops).
fn publish(state: &UserState) {
    let m = &state.machine;
    if m.is_closed() {
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

async fn handle(myself: ActorRef<UserMsg>, msg: UserMsg, state: &mut UserState) {
    {
        let now = state.ctx.now_ms();
        match msg {
            UserMsg::Attach {
                conn,
                sink,
                token_expires_at,
                reply,
            } => {
                state.sinks.insert(conn, sink);
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
                        run(&myself, state, fx, None).await;
                    }
                    Err(e) => {
                        state.sinks.remove(&conn);
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
                command_input(&myself, state, command, reply, now).await;
            }
            UserMsg::ConnectionLost { conn } => {
                if let Ok(fx) = state
                    .machine
                    .handle(UserInput::ConnectionLost { conn }, now)
                {
                    state.sinks.remove(&conn);
                    run(&myself, state, fx, None).await;
                }
            }
            UserMsg::Input(traced) => {
                let span = input_span(state, &traced.payload, &traced.trace);
                feed(&myself, state, traced.payload, now)
                    .instrument(span)
                    .await
            }
            UserMsg::Timer(timer) => {
                let key = ActorKey::User(state.app.clone(), state.machine.user().clone());
                if state.ctx.serves(&key) {
                    feed(&myself, state, UserInput::Timer(timer), now).await;
                } else {
                    // Suspended (this node is fenced): the timer waits until it serves again, or until
                    // the actor is evicted because another node took it over.
                    let again = myself.send_after(SUSPENDED_RECHECK, move || UserMsg::Timer(timer));
                    state.arm(again);
                }
            }
            UserMsg::Snapshot(reply) => {
                let _ = reply.send(showcall_protocol::messages::UserStanding {
                    snapshot: state.machine.snapshot(),
                    sinks: state.sinks.iter().map(|(c, s)| (*c, s.clone())).collect(),
                    online: state.online,
                });
            }
            UserMsg::Evict => {
                let reason = CloseReason::NodeLost;
                for sink in state.sinks.values() {
                    let _ = sink.send(Outbound::closing_notice(state.ctx.now_ms(), reason));
                    let _ = sink.send(Outbound::Close(reason));
                }
                myself.stop(Some("evicted: this node lost its lease".into()));
            }
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
                    state.sinks.remove(&conn);
                    if state.machine.connection() == Some(conn) {
                        feed(&myself, state, UserInput::ConnectionLost { conn }, now).await;
                    }
                }
                let call = state.machine.call().map(|c| c.id.clone());
                if let Some(call_id) = call
                    && lost(&ActorKey::Call(state.app.clone(), call_id.clone()))
                {
                    // A connected call may be taken over by the call's new owner; the machine decides.
                    let input = UserInput::CallOwnerLost { call_id };
                    feed(&myself, state, input, now).await;
                }
            }
        }
    }
}

/// The span a call's input to this user is handled in, under the call's span that sent it; none for
/// inputs that are not part of a call, or not traced.
fn input_span(state: &UserState, input: &UserInput, sent_under: &TraceContext) -> tracing::Span {
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
async fn feed(myself: &ActorRef<UserMsg>, state: &mut UserState, input: UserInput, now: u64) {
    match state.machine.handle(input, now) {
        Ok(fx) => run(myself, state, fx, None).await,
        Err(e) => tracing::debug!(user = %state.machine.user(), error = %e, "user input dropped"),
    }
}

async fn command_input(
    myself: &ActorRef<UserMsg>,
    state: &mut UserState,
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
                call_id: showcall_protocol::ids::call_id(),
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
    };
    match state.machine.handle(input, now) {
        Ok(fx) => run(myself, state, fx, Some(reply)).instrument(span).await,
        Err(e) => {
            let _ = reply.send(Err(e.into()));
        }
    }
}

/// Hands the member's answer to the media router; the router's round trip runs off the actor.
fn answer_media(
    state: &UserState,
    channel: showcall_machines::ChannelName,
    sdp_answer: String,
    revision: u64,
    reply: Responder<CommandOk>,
) {
    if !state.machine.channels().any(|(c, _)| *c == channel) {
        let _ = reply.send(Err(CommandError::NotInChannel));
        return;
    }
    let applied = state.ctx.media().accept_answer(
        &state.app,
        &channel,
        state.machine.user(),
        revision,
        sdp_answer,
    );
    tokio::spawn(async move {
        let answer = applied
            .await
            .map(|()| CommandOk::Done)
            .map_err(|refusal| refusal.into_command_error("answer_media.sdp_answer"));
        let _ = reply.send(answer);
    });
}

/// Carries out effects in order. `reply` is the pending client command's answer: effects that forward the
/// command take it; otherwise it is answered `Done` at the end.
async fn run(
    myself: &ActorRef<UserMsg>,
    state: &mut UserState,
    fx: Vec<UserEffect>,
    mut reply: Option<Responder<CommandOk>>,
) {
    for effect in fx {
        match effect {
            UserEffect::Push(pushed) => {
                if let Some(conn) = state.machine.connection()
                    && let Some(sink) = state.sinks.get(&conn)
                {
                    let _ = sink.send(Outbound::Event(Box::new(pushed)));
                } else if let Some(sink) = state.sinks.values().next() {
                    // The session just closed: its last event goes to the connection being closed.
                    let _ = sink.send(Outbound::Event(Box::new(pushed)));
                }
            }
            UserEffect::Close { conn, reason } => {
                if let Some(sink) = state.sinks.remove(&conn) {
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
            UserEffect::SetTimer { timer, after_ms } => {
                let armed = myself.send_after(Duration::from_millis(after_ms), move || {
                    UserMsg::Timer(timer)
                });
                state.arm(armed);
            }
            UserEffect::Stop => {
                if std::mem::take(&mut state.online) {
                    let user = state.machine.user().clone();
                    state.ctx.emit(&state.app, EventKind::UserOffline { user });
                }
                state
                    .ctx
                    .forget_user(&state.app, state.machine.user(), myself.get_id());
                myself.stop(None);
            }
        }
    }
    if let Some(r) = reply {
        let _ = r.send(Ok(CommandOk::Done));
    }
}
