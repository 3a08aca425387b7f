//! `CallActor`: runs one call's [`CallMachine`] and carries out its effects: notifies the parties' user
//! actors, opens and closes the call channel, pauses and resumes live channels, arms the calling timer,
//! keeps the connected call in the ledger (for a takeover if this node dies), and hands the call record
//! to the record sink before stopping. A call restored from the ledger on a new node starts here too
//! ([`CallStart::Restored`]).
//!
//! Like a user's, a call's actor is not a task of its own: it rests in its registry slot
//! (`showcall-runtime`'s `calls`) between messages, and a run hands it its messages one at a time. Its
//! timers are entries of the node's timer wheel, delivered as [`CallMsg::Timer`]. Starting a call is
//! thus an insert and a run — on the caller's task when the caller's step starts it
//! ([`crate::inline_runs`]), so a ring goes from the caller's frame to the callee's outbox on one task.
//!
//! A new call of an app that requires admission gets its admission deadline here (the app is known here,
//! not in the caller's user machine); the business server is asked on a task of its own and its verdict
//! comes back as an input (`showcall_ports::admission`). The machine's milestones ([`CallProgress`]), billing
//! ticks and record become business events.
//! The actor holds the call's trace (`showcall_protocol::trace`): a `call` span for the call's whole life, and a
//! `call.<input>` child span for every input it handles, so every step of the call is in one tree.

use std::collections::{HashMap, VecDeque};

use showcall_machines::call::SessionEnd;
use showcall_machines::channel::ChannelInput;
use showcall_machines::user::UserInput;
use showcall_machines::{
    CallEffect, CallId, CallInput, CallMachine, CallProgress, CallSetup, CallSnapshot, CallTimer,
    ChannelKind, Millis, UserId,
};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::context::{Context, TimerKey};
use showcall_ports::admission::Verdict;
use showcall_protocol::commands::CommandOk;
use showcall_protocol::error::CommandError;
use showcall_protocol::events::EventKind;
use showcall_protocol::keys::{ActorKey, AppId};
use showcall_protocol::messages::{CallMsg, TraceContext};
use showcall_protocol::trace::{self, TARGET};

/// How a call actor begins.
pub enum CallStart {
    /// A call just placed, under the span that placed it (the caller's `call` request).
    New(CallSetup, TraceContext),
    /// A connected call taken over from its ledger snapshot.
    Restored(CallSnapshot),
    /// A connected call handed over by its node while it runs (`showcall-runtime`'s `handoff`): it goes on as is.
    HandedOver(CallSnapshot),
}

/// See the module docs.
pub struct CallActor {
    ctx: Context,
    app: AppId,
    machine: CallMachine,
    /// Armed timers (entries of the node's timer wheel), disarmed when the machine cancels them.
    timers: HashMap<CallTimer, TimerKey>,
    /// The call's span, open as long as the actor runs: the parent of each step's span.
    span: tracing::Span,
    /// Started from a handoff: it neither starts nor adopts, it goes on.
    handed_over: bool,
    /// The call channel's open while it goes on beside the ring ([`channel_opened`]).
    opening: Option<JoinHandle<()>>,
    /// The call ended (or was handed over): its registry drops it.
    stopped: bool,
}

impl CallActor {
    pub fn new(ctx: Context, app: AppId, start: CallStart) -> CallActor {
        let handed_over = matches!(start, CallStart::HandedOver(_));
        let (machine, placed_under) = match start {
            CallStart::New(mut setup, trace) => {
                setup.admission_timeout_ms = ctx
                    .admission()
                    .timeout(&app)
                    .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
                (CallMachine::new(setup, ctx.now_ms()), Some(trace))
            }
            CallStart::Restored(snapshot) => (CallMachine::restore(snapshot), None),
            CallStart::HandedOver(snapshot) => (CallMachine::resume(snapshot), None),
        };
        let setup = machine.setup();
        let span = tracing::debug_span!(
            target: TARGET,
            parent: None,
            "call",
            call.id = %setup.id,
            caller.id = %setup.caller,
            callee.id = %setup.callee,
            app.id = %app,
            node.id = %ctx.node(),
            call.type = ?setup.call_type,
            call.restored = placed_under.is_none(),
            call.end_reason = tracing::field::Empty,
        );
        if let Some(trace) = placed_under {
            trace.continue_in(&span);
        }
        CallActor {
            ctx,
            app,
            machine,
            timers: HashMap::new(),
            span,
            handed_over,
            opening: None,
            stopped: false,
        }
    }

    pub fn id(&self) -> &CallId {
        self.machine.id()
    }

    pub fn app(&self) -> &AppId {
        &self.app
    }

    /// Whether the call is over here (it ended): its registry drops it.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Its armed timers, for the registry to disarm when it drops the actor.
    pub fn timers(&self) -> impl Iterator<Item = &TimerKey> {
        self.timers.values()
    }

    /// The span of one step of the call: handling `name`'s input and carrying out its effects.
    fn step(&self, name: &'static str) -> tracing::Span {
        tracing::debug_span!(
            target: TARGET,
            parent: &self.span,
            "call.step",
            otel.name = name,
            call.id = %self.machine.id(),
            node.id = %self.ctx.node(),
        )
    }

    /// Handles one message (its registry hands them over one at a time, in order).
    pub async fn handle(&mut self, msg: CallMsg) {
        let step = match &msg {
            CallMsg::Input(traced) => self.step(trace::call_step(&traced.payload)),
            CallMsg::Command { input, .. } => self.step(trace::call_step(input)),
            CallMsg::Timer(CallTimer::Calling) => self.step("call.timeout"),
            CallMsg::Timer(CallTimer::Adoption) => self.step("call.adoption_timeout"),
            CallMsg::Timer(CallTimer::Admission) => self.step("call.admission_timeout"),
            CallMsg::Timer(CallTimer::BillingTick) => self.step("call.billing_tick"),
            // Sent to every call when any node dies: a span only where a party was lost (`call.ended`).
            // `Begin` opens the first step's span itself.
            CallMsg::OwnersLost(_)
            | CallMsg::Snapshot(_)
            | CallMsg::Begin
            | CallMsg::Spawn { .. } => tracing::Span::none(),
        };
        handle_msg(msg, self).instrument(step).await;
    }

    /// Arms `timer` at `at`, replacing an armed one.
    fn arm(&mut self, timer: CallTimer, at: Millis) {
        let key = self
            .ctx
            .arm_call_timer(&self.app, self.machine.id(), timer, at);
        if let Some(old) = self.timers.insert(timer, key) {
            self.ctx.cancel_timer(old);
        }
    }
}

async fn handle_msg(msg: CallMsg, state: &mut CallActor) {
    {
        match msg {
            CallMsg::Begin => begin(state).await,
            // The registry starts calls; a start that reaches a running one is answered as the
            // registry would answer it.
            CallMsg::Spawn { reply, .. } => {
                let id = state.machine.id();
                let running = CommandError::Unavailable(format!("call {id} is already running"));
                let _ = reply.send(Err(running));
            }
            CallMsg::Input(traced) => feed(state, traced.payload).await,
            CallMsg::Command { input, reply } => {
                // A party joins the call channel only after an answer of the call's (its accept,
                // or the `connecting` an accept brings): the channel is open before it is answered.
                channel_opened(state).await;
                let now = state.ctx.now_ms();
                // A leaving node waits for a moved channel to be open and the parties told before it
                // closes their sockets: answered after the effects.
                let answer_after = matches!(input, CallInput::MoveChannel { .. });
                match handle(state, input, now) {
                    Ok(fx) if answer_after => {
                        run(state, fx).await;
                        channel_opened(state).await;
                        let _ = reply.send(Ok(CommandOk::Done));
                    }
                    Ok(fx) => {
                        let _ = reply.send(Ok(CommandOk::Done));
                        run(state, fx).await;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            CallMsg::Timer(timer) => {
                let key = ActorKey::Call(state.app.clone(), state.machine.id().clone());
                if !state.ctx.serves(&key) {
                    // Suspended (this node is fenced): try again later (see the user actor).
                    let again = state.ctx.now_ms() + crate::user_actor::SUSPENDED_RECHECK_MS;
                    state.arm(timer, again);
                    return;
                }
                state.timers.remove(&timer);
                let input = match timer {
                    CallTimer::Calling => CallInput::CallingTimeout,
                    CallTimer::Adoption => CallInput::AdoptionTimeout,
                    CallTimer::Admission => CallInput::AdmissionTimeout,
                    CallTimer::BillingTick => CallInput::BillingTick,
                };
                feed(state, input).await;
            }
            CallMsg::Snapshot(reply) => {
                use showcall_protocol::messages::CallStanding as Standing;
                let standing = if state.machine.is_ended() {
                    Standing::Ended
                } else {
                    match state.machine.snapshot() {
                        Some(_) => match state.machine.handoff_snapshot() {
                            Some(snapshot) => Standing::Connected(Box::new(snapshot)),
                            None => Standing::Unsettled,
                        },
                        None => Standing::Unsettled,
                    }
                };
                let _ = reply.send(standing);
            }
            CallMsg::OwnersLost(lost) => {
                // The call's channel died with its node: its media is gone, the call cannot go on.
                let channel =
                    ActorKey::Channel(state.app.clone(), state.machine.setup().channel.clone());
                if !state.machine.is_ended() && lost(&channel) {
                    feed(state, CallInput::ChannelLost).await;
                    return;
                }
                // A party whose user actor died with its node is gone, as after its grace period.
                let setup = state.machine.setup();
                let parties = [setup.caller.clone(), setup.callee.clone()];
                for user in parties {
                    if lost(&ActorKey::User(state.app.clone(), user.clone())) {
                        let input = CallInput::SessionEnded {
                            user,
                            how: SessionEnd::Gone,
                        };
                        feed(state, input).await;
                    }
                }
            }
        }
    }
}

/// Feeds the machine one input and writes the call's entry in the directory.
fn handle(
    state: &mut CallActor,
    input: CallInput,
    now: showcall_machines::Millis,
) -> Result<Vec<CallEffect>, showcall_machines::CallError> {
    let fx = state.machine.handle(input, now)?;
    publish(state);
    Ok(fx)
}

/// A milestone of the call as its business event (the end is reported with its record).
fn progress_event(state: &CallActor, progress: CallProgress) -> EventKind {
    let setup = state.machine.setup();
    let call = setup.id.clone();
    match progress {
        CallProgress::Created => EventKind::CallCreated {
            call,
            caller: setup.caller.clone(),
            callee: setup.callee.clone(),
            call_type: setup.call_type,
            channel: setup.channel.clone(),
        },
        CallProgress::Ringing => EventKind::CallRinging { call },
        CallProgress::Accepted => EventKind::CallAccepted { call },
        CallProgress::Connected => EventKind::CallConnected { call },
    }
}

/// Writes the call's entry in the node's directory (removed when the actor stops).
fn publish(state: &CallActor) {
    let setup = state.machine.setup();
    if state.machine.is_ended() {
        // Gone from the directory before its parties hear of the end, so a business server told by
        // them finds it over (the actor stops a moment later).
        state.ctx.directory().remove_call(&setup.id);
        return;
    }
    let entry = showcall_protocol::directory::CallEntry {
        app: state.app.clone(),
        id: setup.id.clone(),
        caller: setup.caller.clone(),
        callee: setup.callee.clone(),
        channel: setup.channel.clone(),
        call_type: setup.call_type,
        status: state.machine.status(),
    };
    state.ctx.directory().set_call(entry);
}

/// The call's first step, once its registry knows it (`CallMsg::Begin`).
async fn begin(state: &mut CallActor) {
    if state.handed_over {
        let timers = state.machine.resumed_timers();
        run(state, timers).await;
        publish(state);
        return;
    }
    let first = if state.machine.is_adopting() {
        CallInput::Adopt
    } else {
        CallInput::Start
    };
    let step = state.step(trace::call_step(&first));
    feed(state, first).instrument(step).await;
}

/// Feeds a notification; a refusal means it arrived after the fact (e.g. a ring answer after the call
/// ended) and is dropped.
async fn feed(state: &mut CallActor, input: CallInput) {
    let now = state.ctx.now_ms();
    tracing::debug!(call_id = %state.machine.id(), ?input, "call input");
    match handle(state, input, now) {
        Ok(fx) => run(state, fx).await,
        Err(e) => tracing::debug!(call_id = %state.machine.id(), error = %e, "call input dropped"),
    }
}

async fn run(state: &mut CallActor, fx: Vec<CallEffect>) {
    let mut queue = VecDeque::from(fx);
    while let Some(effect) = queue.pop_front() {
        match effect {
            CallEffect::OpenChannel { channel, members } => {
                let kind = ChannelKind::Call {
                    call: state.machine.id().clone(),
                    participants: members,
                };
                // Opened beside the ring rather than before it (a channel actor's start here, a
                // node-link round trip in a cluster): `channel_opened` keeps it ahead of anything
                // the channel is told and of any party's join.
                channel_opened(state).await;
                let (ctx, app) = (state.ctx.clone(), state.app.clone());
                let call = state.machine.id().clone();
                let open = async move {
                    if let Err(e) = ctx.open_call_channel(&app, &channel, kind).await {
                        tracing::error!(call_id = %call, error = %e, "call channel failed to open");
                    }
                };
                state.opening = Some(tokio::spawn(open.in_current_span()));
            }
            CallEffect::Ring { callee, info } => {
                let ring = UserInput::Ring { info };
                if let Some(answer) = send_user_or_hear_unreachable(state, &callee, ring) {
                    queue.extend(answer);
                }
            }
            CallEffect::Notify { to, update } => {
                // The step's updates for one user in a row go together (one message, one push).
                let mut updates = vec![update];
                while let Some(CallEffect::Notify { to: next, .. }) = queue.front()
                    && *next == to
                {
                    if let Some(CallEffect::Notify { update, .. }) = queue.pop_front() {
                        updates.push(update);
                    }
                }
                let call_id = state.machine.id().clone();
                let input = if updates.len() == 1 {
                    let update = updates.remove(0);
                    UserInput::CallUpdate { call_id, update }
                } else {
                    UserInput::CallUpdates { call_id, updates }
                };
                state.ctx.send_user(&state.app, &to, input);
            }
            CallEffect::SetTimer { timer, at } => {
                state.arm(timer, at);
            }
            CallEffect::CancelTimer { timer } => {
                if let Some(key) = state.timers.remove(&timer) {
                    state.ctx.cancel_timer(key);
                }
            }
            CallEffect::Persist(snapshot) => state.ctx.ledger().connected(&state.app, &snapshot),
            CallEffect::AskParty { user } => {
                let call_id = state.machine.id().clone();
                let asked = UserInput::CallAdopted { call_id };
                if let Some(answer) = send_user_or_hear_unreachable(state, &user, asked) {
                    queue.extend(answer);
                }
            }
            CallEffect::AskChannel { channel } => {
                let call = state.machine.id().clone();
                state.ctx.ask_channel(&state.app, &channel, call);
            }
            CallEffect::PauseLive { channel, host } => {
                let call = state.machine.id().clone();
                send_channel(
                    state,
                    &channel,
                    ChannelInput::PauseBroadcaster { host, call },
                );
            }
            CallEffect::ResumeLive { channel, host } => {
                let call = state.machine.id().clone();
                send_channel(
                    state,
                    &channel,
                    ChannelInput::ResumeBroadcaster { host, call },
                );
            }
            CallEffect::CloseChannel { channel } => {
                channel_opened(state).await;
                send_channel(state, &channel, ChannelInput::Close)
            }
            CallEffect::Authorize(request) => {
                // Off the actor's task: the actor goes on (a cancel, a terminate) while the business
                // server thinks; the machine's admission timer bounds the wait.
                let verdict = state.ctx.admission().authorize(&state.app, request);
                let (ctx, app) = (state.ctx.clone(), state.app.clone());
                let call = state.machine.id().clone();
                tokio::spawn(async move {
                    let (allowed, reason) = match verdict.await {
                        Verdict::Allowed => (true, String::new()),
                        Verdict::Refused(reason) => (false, reason),
                    };
                    // The call may be gone (cancelled, ended): then nobody needs the verdict.
                    ctx.send_call(&app, &call, CallInput::Authorized { allowed, reason });
                });
            }
            CallEffect::BillingTick { tick, connected_ms } => {
                let setup = state.machine.setup();
                let kind = EventKind::CallBillingTick {
                    call: setup.id.clone(),
                    caller: setup.caller.clone(),
                    callee: setup.callee.clone(),
                    tick,
                    connected_ms,
                };
                state.ctx.emit(&state.app, kind);
            }
            CallEffect::Progress(progress) => {
                if progress == CallProgress::Connected {
                    // A moment in the call's trace (under the step that connected it).
                    let call = state.machine.id();
                    let _connected =
                        tracing::debug_span!(target: TARGET, "call.connected", call.id = %call)
                            .entered();
                }
                let kind = progress_event(state, progress);
                state.ctx.emit(&state.app, kind);
            }
            CallEffect::Ended(record) => {
                let reason = trace::end_reason(&record.cause);
                state.span.record("call.end_reason", reason);
                let _ended = tracing::debug_span!(
                    target: TARGET,
                    parent: &state.span,
                    "call.ended",
                    call.id = %record.id,
                    call.end_reason = reason,
                    call.connected_ms = record.connected_ms,
                    node.id = %state.ctx.node(),
                )
                .entered();
                state.ctx.emit(
                    &state.app,
                    EventKind::CallEnded {
                        record: record.clone(),
                    },
                );
                if record.connected_at.is_some() {
                    state.ctx.ledger().ended(&state.app, &record.id);
                }
                state.ctx.records().record(&state.app, &record);
                state.ctx.forget_call(&record.id);
                state.stopped = true;
            }
        }
    }
}

/// Sends `input` to `user`; when the outbox finds no session to take it, the machine hears what that
/// means for this call (`UserInput::unreachable_answer`) and the effects of that come back.
fn send_user_or_hear_unreachable(
    state: &mut CallActor,
    user: &UserId,
    input: UserInput,
) -> Option<Vec<CallEffect>> {
    let answer = input.unreachable_answer(user);
    if state.ctx.send_user(&state.app, user, input) {
        return None;
    }
    let (_, answer) = answer?;
    let now = state.ctx.now_ms();
    handle(state, answer, now).ok()
}

/// Waits for the call channel's open started by `CallEffect::OpenChannel`, if it still goes on.
async fn channel_opened(state: &mut CallActor) {
    if let Some(open) = state.opening.take()
        && let Err(e) = open.await
    {
        tracing::error!(call_id = %state.machine.id(), error = %e, "call channel's open panicked");
    }
}

fn send_channel(state: &CallActor, channel: &showcall_machines::ChannelName, input: ChannelInput) {
    state.ctx.send_channel(&state.app, channel, input);
}
