//! `CallActor`: runs one call's [`CallMachine`] and carries out its effects: notifies the parties' user
//! actors, opens and closes the call channel, pauses and resumes live channels, arms the calling timer,
//! keeps the connected call in the ledger (for a takeover if this node dies), and hands the call record
//! to the record sink before stopping. A call restored from the ledger on a new node starts here too
//! ([`CallStart::Restored`]).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use showcall_machines::call::{SessionEnd, Undeliverable};
use showcall_machines::channel::ChannelInput;
use showcall_machines::user::UserInput;
use showcall_machines::{
    CallEffect, CallInput, CallMachine, CallSetup, CallSnapshot, CallTimer, ChannelKind,
};
use tokio::task::JoinHandle;

use crate::hub::Hub;
use crate::keys::{ActorKey, AppId};
use crate::messages::CallMsg;
use crate::session::CommandOk;

/// See the module docs.
pub struct CallActor;

/// How a call actor begins.
pub enum CallStart {
    /// A call just placed.
    New(CallSetup),
    /// A connected call taken over from its ledger snapshot.
    Restored(CallSnapshot),
}

pub struct CallState {
    hub: Hub,
    app: AppId,
    machine: CallMachine,
    /// Armed timers, aborted when the machine cancels them.
    timers: HashMap<CallTimer, JoinHandle<Result<(), ractor::MessagingErr<CallMsg>>>>,
}

impl Actor for CallActor {
    type Msg = CallMsg;
    type State = CallState;
    type Arguments = (Hub, AppId, CallStart);

    async fn pre_start(
        &self,
        _myself: ActorRef<CallMsg>,
        (hub, app, start): (Hub, AppId, CallStart),
    ) -> Result<CallState, ActorProcessingErr> {
        let machine = match start {
            CallStart::New(setup) => CallMachine::new(setup, hub.now_ms()),
            CallStart::Restored(snapshot) => CallMachine::restore(snapshot),
        };
        Ok(CallState {
            hub,
            app,
            machine,
            timers: HashMap::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<CallMsg>,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        let first = if state.machine.is_adopting() {
            CallInput::Adopt
        } else {
            CallInput::Start
        };
        feed(&myself, state, first).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CallMsg>,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        state.hub.forget_call(state.machine.id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CallMsg>,
        msg: CallMsg,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CallMsg::Input(traced) => feed(&myself, state, traced.payload).await,
            CallMsg::Command { input, reply } => {
                let now = state.hub.now_ms();
                match state.machine.handle(input, now) {
                    Ok(fx) => {
                        let _ = reply.send(Ok(CommandOk::Done));
                        run(&myself, state, fx).await;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            CallMsg::Timer(timer) => {
                let key = ActorKey::Call(state.app.clone(), state.machine.id().clone());
                if !state.hub.serves(&key) {
                    // Suspended (this node is fenced): try again later (see the user actor).
                    let again = myself
                        .send_after(crate::user_actor::SUSPENDED_RECHECK, move || {
                            CallMsg::Timer(timer)
                        });
                    state.timers.insert(timer, again);
                    return Ok(());
                }
                state.timers.remove(&timer);
                let input = match timer {
                    CallTimer::Calling => CallInput::CallingTimeout,
                    CallTimer::Adoption => CallInput::AdoptionTimeout,
                };
                feed(&myself, state, input).await;
            }
            CallMsg::OwnersLost(lost) => {
                // A party whose user actor died with its node is gone, as after its grace period.
                let setup = state.machine.setup();
                let parties = [setup.caller.clone(), setup.callee.clone()];
                for user in parties {
                    if lost(&ActorKey::User(state.app.clone(), user.clone())) {
                        let input = CallInput::SessionEnded {
                            user,
                            how: SessionEnd::Gone,
                        };
                        feed(&myself, state, input).await;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Feeds a notification; a refusal means it arrived after the fact (e.g. a ring answer after the call
/// ended) and is dropped.
async fn feed(myself: &ActorRef<CallMsg>, state: &mut CallState, input: CallInput) {
    let now = state.hub.now_ms();
    match state.machine.handle(input, now) {
        Ok(fx) => run(myself, state, fx).await,
        Err(e) => tracing::debug!(call_id = %state.machine.id(), error = %e, "call input dropped"),
    }
}

async fn run(myself: &ActorRef<CallMsg>, state: &mut CallState, fx: Vec<CallEffect>) {
    let mut queue = VecDeque::from(fx);
    while let Some(effect) = queue.pop_front() {
        match effect {
            CallEffect::OpenChannel { channel, members } => {
                let kind = ChannelKind::Call {
                    call: state.machine.id().clone(),
                    participants: members,
                };
                if let Err(e) = state
                    .hub
                    .open_call_channel(&state.app, &channel, kind)
                    .await
                {
                    tracing::error!(call_id = %state.machine.id(), error = %e, "call channel failed to open");
                }
            }
            CallEffect::Ring { callee, info } => {
                let delivered = state
                    .hub
                    .send_user(&state.app, &callee, UserInput::Ring { info });
                if !delivered {
                    // Nobody to ring: the caller hears so at once, not after the timeout.
                    let now = state.hub.now_ms();
                    if let Ok(more) = state
                        .machine
                        .handle(CallInput::Undeliverable(Undeliverable::Offline), now)
                    {
                        queue.extend(more);
                    }
                }
            }
            CallEffect::Notify { to, update } => {
                let call_id = state.machine.id().clone();
                state
                    .hub
                    .send_user(&state.app, &to, UserInput::CallUpdate { call_id, update });
            }
            CallEffect::SetTimer { timer, after_ms } => {
                let handle = myself.send_after(Duration::from_millis(after_ms), move || {
                    CallMsg::Timer(timer)
                });
                if let Some(old) = state.timers.insert(timer, handle) {
                    old.abort();
                }
            }
            CallEffect::CancelTimer { timer } => {
                if let Some(t) = state.timers.remove(&timer) {
                    t.abort();
                }
            }
            CallEffect::Persist(snapshot) => state.hub.ledger().connected(&state.app, &snapshot),
            CallEffect::AskParty { user } => {
                let call_id = state.machine.id().clone();
                let asked = UserInput::CallAdopted { call_id };
                if !state.hub.send_user(&state.app, &user, asked) {
                    // No user actor to ask: this party is gone.
                    let now = state.hub.now_ms();
                    let absent = CallInput::PartyPresent {
                        user,
                        present: false,
                    };
                    if let Ok(more) = state.machine.handle(absent, now) {
                        queue.extend(more);
                    }
                }
            }
            CallEffect::AskChannel { channel } => {
                let call = state.machine.id().clone();
                state.hub.ask_channel(&state.app, &channel, call);
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
                send_channel(state, &channel, ChannelInput::Close)
            }
            CallEffect::Ended(record) => {
                if record.connected_at.is_some() {
                    state.hub.ledger().ended(&state.app, &record.id);
                }
                state.hub.records().record(&state.app, &record);
                state.hub.forget_call(&record.id);
                myself.stop(None);
            }
        }
    }
}

fn send_channel(state: &CallState, channel: &showcall_machines::ChannelName, input: ChannelInput) {
    state.hub.send_channel(&state.app, channel, input);
}
