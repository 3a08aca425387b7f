//! `ChannelActor`: runs one channel's [`ChannelMachine`]: admits members, tells them of joins, leaves and
//! the broadcaster's pause/resume, tells a call channel's call who joined, and drives the media port.

use ractor::{Actor, ActorProcessingErr, ActorRef};
use showcall_machines::channel::{ChannelEffect, ChannelInput};
use showcall_machines::user::UserInput;
use showcall_machines::{CallInput, ChannelKind, ChannelMachine, ChannelName, ChannelUpdate, Role};

use crate::hub::Hub;
use crate::keys::AppId;
use crate::messages::{CallMsg, ChannelMsg, Traced, UserMsg};
use crate::session::CommandOk;

/// See the module docs.
pub struct ChannelActor;

pub struct ChannelState {
    hub: Hub,
    app: AppId,
    machine: ChannelMachine,
}

impl Actor for ChannelActor {
    type Msg = ChannelMsg;
    type State = ChannelState;
    type Arguments = (Hub, AppId, ChannelName, ChannelKind);

    async fn pre_start(
        &self,
        _myself: ActorRef<ChannelMsg>,
        (hub, app, name, kind): (Hub, AppId, ChannelName, ChannelKind),
    ) -> Result<ChannelState, ActorProcessingErr> {
        Ok(ChannelState {
            hub,
            app,
            machine: ChannelMachine::new(name, kind),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ChannelMsg>,
        state: &mut ChannelState,
    ) -> Result<(), ActorProcessingErr> {
        state
            .hub
            .forget_channel(&state.app, state.machine.name(), myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ChannelMsg>,
        msg: ChannelMsg,
        state: &mut ChannelState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ChannelMsg::Join {
                user,
                role,
                may_publish,
                reply,
            } => {
                let input = ChannelInput::Join {
                    user: user.clone(),
                    role,
                    may_publish,
                };
                match state.machine.handle(input) {
                    Ok(fx) => {
                        let member = state
                            .machine
                            .member(&user)
                            .expect("just joined: member exists");
                        let channel = state.machine.name().clone();
                        // The user actor records the membership before any update for the channel reaches it.
                        if let Some(actor) = state.hub.user(&state.app, &user) {
                            let joined = UserInput::ChannelJoined {
                                channel: channel.clone(),
                                role: member.role,
                            };
                            let _ = actor.cast(UserMsg::Input(Traced::new(joined)));
                        }
                        let _ = reply.send(Ok(CommandOk::Joined {
                            channel,
                            role: member.role,
                            view: state.machine.view(),
                        }));
                        run(&myself, state, fx);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            ChannelMsg::Input(traced) => match state.machine.handle(traced.payload) {
                Ok(fx) => run(&myself, state, fx),
                Err(e) => {
                    tracing::debug!(channel = %state.machine.name(), error = %e, "channel input dropped")
                }
            },
        }
        Ok(())
    }
}

fn run(myself: &ActorRef<ChannelMsg>, state: &mut ChannelState, fx: Vec<ChannelEffect>) {
    let channel = state.machine.name().clone();
    for effect in fx {
        match effect {
            ChannelEffect::Deliver { to, update } => {
                if let ChannelUpdate::BroadcasterPaused { user }
                | ChannelUpdate::BroadcasterResumed { user } = &update
                    && state
                        .machine
                        .member(user)
                        .is_some_and(|m| m.role == Role::Broadcaster)
                    && *user == to
                {
                    let forward = matches!(update, ChannelUpdate::BroadcasterResumed { .. });
                    state
                        .hub
                        .media()
                        .set_forwarding(&state.app, &channel, user, forward);
                }
                if let Some(actor) = state.hub.user(&state.app, &to) {
                    let input = UserInput::ChannelUpdate {
                        channel: channel.clone(),
                        update,
                    };
                    let _ = actor.cast(UserMsg::Input(Traced::new(input)));
                }
            }
            ChannelEffect::CallMemberJoined { call, user } => {
                if let Some(actor) = state.hub.call(&call) {
                    let _ = actor.cast(CallMsg::Input(Traced::new(CallInput::ChannelJoined {
                        user,
                    })));
                }
            }
            ChannelEffect::CallMemberLeft { call, user } => {
                if let Some(actor) = state.hub.call(&call) {
                    let _ =
                        actor.cast(CallMsg::Input(Traced::new(CallInput::ChannelLeft { user })));
                }
            }
            ChannelEffect::Removed { user } => {
                if let Some(actor) = state.hub.user(&state.app, &user) {
                    let input = UserInput::ChannelRemoved {
                        channel: channel.clone(),
                    };
                    let _ = actor.cast(UserMsg::Input(Traced::new(input)));
                }
            }
            ChannelEffect::RequestKeyframe { from } => {
                state
                    .hub
                    .media()
                    .request_keyframe(&state.app, &channel, &from);
            }
            ChannelEffect::Stop => {
                state
                    .hub
                    .forget_channel(&state.app, &channel, myself.get_id());
                myself.stop(None);
            }
        }
    }
}
