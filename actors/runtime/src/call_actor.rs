//! `CallActor`: runs one call's [`CallMachine`] and carries out its effects: notifies the parties' user
//! actors, opens and closes the call channel, pauses and resumes live channels, arms the calling timer,
//! and hands the call record to the record sink before stopping.

use std::collections::VecDeque;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use showcall_machines::call::{SessionEnd, Undeliverable};
use showcall_machines::channel::ChannelInput;
use showcall_machines::user::UserInput;
use showcall_machines::{CallEffect, CallInput, CallMachine, CallSetup, ChannelKind};
use tokio::task::JoinHandle;

use crate::hub::Hub;
use crate::keys::{ActorKey, AppId};
use crate::messages::CallMsg;
use crate::session::CommandOk;

/// See the module docs.
pub struct CallActor;

pub struct CallState {
    hub: Hub,
    app: AppId,
    machine: CallMachine,
    /// The armed calling timer, aborted when the call connects or ends.
    calling_timer: Option<JoinHandle<Result<(), ractor::MessagingErr<CallMsg>>>>,
}

impl Actor for CallActor {
    type Msg = CallMsg;
    type State = CallState;
    type Arguments = (Hub, AppId, CallSetup);

    async fn pre_start(
        &self,
        _myself: ActorRef<CallMsg>,
        (hub, app, setup): (Hub, AppId, CallSetup),
    ) -> Result<CallState, ActorProcessingErr> {
        let machine = CallMachine::new(setup, hub.now_ms());
        Ok(CallState {
            hub,
            app,
            machine,
            calling_timer: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<CallMsg>,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        feed(&myself, state, CallInput::Start).await;
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
            CallMsg::Timer(_) => {
                state.calling_timer = None;
                feed(&myself, state, CallInput::CallingTimeout).await;
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
            CallEffect::SetTimer { after_ms, .. } => {
                let handle = myself.send_after(Duration::from_millis(after_ms), || {
                    CallMsg::Timer(showcall_machines::CallTimer::Calling)
                });
                if let Some(old) = state.calling_timer.replace(handle) {
                    old.abort();
                }
            }
            CallEffect::CancelTimer { .. } => {
                if let Some(t) = state.calling_timer.take() {
                    t.abort();
                }
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
