//! `ChannelActor`: runs one channel's [`ChannelMachine`]: admits members (opening their media sessions),
//! tells them of joins, leaves and the broadcaster's pause/resume, tells a call channel's call who joined
//! and when media flows, and drives the media port (forwarding on/off, keyframes, sessions closed).
//!
//! A live room spans nodes (`showcall_protocol::media_edge`): this actor runs on the room's origin and
//! keeps its one member list, while each viewer's media session goes where the node's edge rule puts it
//! — here, or an edge node whose router the actor reaches through [`ActorContext::media_at`]
//! (`crate::context`). Broadcasters always publish here.
//!
//! A call channel's steps (each party's join with its media session, first frames, leaves, the close) are
//! spans of the call's trace; so are a live channel's pause and resume for a call (`showcall_protocol::trace`).

use std::collections::{BTreeMap, BTreeSet};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use showcall_machines::CallId;
use showcall_machines::channel::{
    ChannelEffect, ChannelInput, ChannelReport, ChannelUpdate, Member,
};
use showcall_machines::user::UserInput;
use showcall_machines::{CallInput, ChannelKind, ChannelMachine, ChannelName, Role, UserId};
use showcall_ports::MediaRefusal;
use showcall_protocol::NodeId;
use showcall_protocol::error::CommandError;
use showcall_protocol::media_edge::{MediaSeeker, MemberMedia, choose_media_node};

use crate::context::Context;
use showcall_protocol::commands::CommandOk;
use showcall_protocol::directory::{ChannelEntry, MemberEntry};
use showcall_protocol::events::EventKind;
use showcall_protocol::keys::{ActorKey, AppId};
use showcall_protocol::messages::{ChannelMsg, Responder, TraceContext};
use showcall_protocol::trace::TARGET;
use tracing::Instrument;

/// See the module docs.
pub struct ChannelActor;

pub struct ChannelState {
    ctx: Context,
    app: AppId,
    machine: ChannelMachine,
    /// A call channel's trace context: the call's, from when the call opened it. `None` for live
    /// channels, and when nothing is traced.
    call_trace: Option<TraceContext>,
    /// Members whose media session another node holds (an edge of this room), and that node. A member
    /// not listed has its session (if any) here.
    edges: BTreeMap<UserId, NodeId>,
}

impl ChannelState {
    /// The span of one step of this channel for `call`, under `sent_under` (the sender's span) or, for a
    /// call channel, the call's trace. No span when neither is traced.
    fn step(
        &self,
        name: &'static str,
        call: &CallId,
        user: Option<&UserId>,
        sent_under: &TraceContext,
    ) -> tracing::Span {
        let parent = match &self.call_trace {
            _ if sent_under.is_set() => sent_under,
            Some(call_trace) => call_trace,
            None => return tracing::Span::none(),
        };
        let span = tracing::debug_span!(
            target: TARGET,
            parent: None,
            "channel.step",
            otel.name = name,
            call.id = %call,
            channel = %self.machine.name(),
            user.id = tracing::field::Empty,
            node.id = %self.ctx.node(),
        );
        if let Some(user) = user {
            span.record("user.id", user.as_str());
        }
        parent.continue_in(&span);
        span
    }

    /// A step of a call channel (none for a live channel).
    fn call_step(
        &self,
        name: &'static str,
        user: Option<&UserId>,
        sent_under: &TraceContext,
    ) -> tracing::Span {
        match self.machine.kind() {
            ChannelKind::Call { call, .. } => self.step(name, call, user, sent_under),
            ChannelKind::Live => tracing::Span::none(),
        }
    }

    /// The span `msg` is handled in.
    fn span_of(&self, msg: &ChannelMsg) -> tracing::Span {
        let untraced = TraceContext::default();
        match msg {
            ChannelMsg::Join { user, .. } => self.call_step("channel.join", Some(user), &untraced),
            ChannelMsg::MediaFlowing { from } => {
                self.call_step("channel.media_flowing", Some(from), &untraced)
            }
            ChannelMsg::Input(traced) => match &traced.payload {
                ChannelInput::Leave { user } => {
                    self.call_step("channel.leave", Some(user), &traced.trace)
                }
                ChannelInput::Close => self.call_step("channel.close", None, &traced.trace),
                ChannelInput::Kick { user, .. } => {
                    self.call_step("channel.kick", Some(user), &traced.trace)
                }
                ChannelInput::PauseBroadcaster { host, call } => {
                    self.step("channel.pause_broadcaster", call, Some(host), &traced.trace)
                }
                ChannelInput::ResumeBroadcaster { host, call } => self.step(
                    "channel.resume_broadcaster",
                    call,
                    Some(host),
                    &traced.trace,
                ),
                ChannelInput::Join { .. } => tracing::Span::none(),
            },
            _ => tracing::Span::none(),
        }
    }
}

impl Actor for ChannelActor {
    type Msg = ChannelMsg;
    type State = ChannelState;
    /// The last: the trace context the channel was opened under.
    type Arguments = (Context, AppId, ChannelName, ChannelKind, TraceContext);

    async fn pre_start(
        &self,
        _myself: ActorRef<ChannelMsg>,
        (ctx, app, name, kind, opened_under): (
            Context,
            AppId,
            ChannelName,
            ChannelKind,
            TraceContext,
        ),
    ) -> Result<ChannelState, ActorProcessingErr> {
        let call_trace = (matches!(kind, ChannelKind::Call { .. }) && opened_under.is_set())
            .then_some(opened_under);
        Ok(ChannelState {
            ctx,
            app,
            machine: ChannelMachine::new(name, kind),
            call_trace,
            edges: BTreeMap::new(),
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<ChannelMsg>,
        state: &mut ChannelState,
    ) -> Result<(), ActorProcessingErr> {
        // Listed from the start, members or not: a call channel nobody joined yet is still its call's
        // (a leaving node finds the call channels to move in the directory).
        publish(state);
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ChannelMsg>,
        state: &mut ChannelState,
    ) -> Result<(), ActorProcessingErr> {
        state
            .ctx
            .forget_channel(&state.app, state.machine.name(), myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ChannelMsg>,
        msg: ChannelMsg,
        state: &mut ChannelState,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span_of(&msg);
        handle_msg(myself, msg, state).instrument(span).await;
        Ok(())
    }
}

async fn handle_msg(myself: ActorRef<ChannelMsg>, msg: ChannelMsg, state: &mut ChannelState) {
    {
        match msg {
            // The registry opens channels; an open that reaches an open one finds it open.
            ChannelMsg::Open { reply, .. } => {
                let _ = reply.send(Ok(CommandOk::Done));
            }
            ChannelMsg::Join {
                user,
                role,
                may_publish,
                offer,
                reply,
                client_node,
            } => {
                let joiner = Joiner {
                    user,
                    role,
                    may_publish,
                    client_node,
                };
                Box::pin(join(&myself, state, joiner, offer, reply)).await
            }
            ChannelMsg::Input(traced) => {
                let input = traced.payload;
                let leaving = match &input {
                    ChannelInput::Leave { user } => Some(user.clone()),
                    _ => None,
                };
                match handle(state, input) {
                    Ok(fx) => {
                        if let Some(user) = leaving {
                            close_media(state, &user);
                        }
                        run(&myself, state, fx);
                    }
                    Err(e) => {
                        tracing::debug!(channel = %state.machine.name(), error = %e, "channel input dropped")
                    }
                }
            }
            ChannelMsg::OwnersLost(lost) => {
                // Members whose user actor died with its node have no session any more: they leave,
                // as after a logout. (A call that died there is not this channel's business: the
                // call's new owner takes it over or its parties give up on it, and either closes the
                // call channel and resumes paused broadcasters.)
                let app = state.app.clone();
                let gone: Vec<UserId> = state
                    .machine
                    .member_ids()
                    .filter(|user| lost(&ActorKey::User(app.clone(), (*user).clone())))
                    .cloned()
                    .collect();
                for user in gone {
                    close_media(state, &user);
                    if let Ok(fx) = handle(state, ChannelInput::Leave { user }) {
                        run(&myself, state, fx);
                    }
                }
            }
            ChannelMsg::MediaNodeLost(node) => {
                // Viewers whose media session that node held (an edge of this room) lost their
                // media with it: they leave, as members whose session died do.
                let gone: Vec<UserId> = state
                    .edges
                    .iter()
                    .filter(|(_, at)| **at == node)
                    .map(|(user, _)| user.clone())
                    .collect();
                for user in gone {
                    state.edges.remove(&user);
                    if let Ok(fx) = handle(state, ChannelInput::Leave { user }) {
                        run(&myself, state, fx);
                    }
                }
            }
            ChannelMsg::EdgeViewers { edge, viewers } => {
                adopt_edge_viewers(&myself, state, edge, viewers)
            }
            ChannelMsg::MemberMedia {
                user,
                command,
                reply,
            } => member_media(state, user, command, reply),
            ChannelMsg::Evict => {
                close_all_media(state);
                myself.stop(Some("evicted: this node lost its lease".into()));
            }
            ChannelMsg::Adopt { call } => {
                let present = matches!(state.machine.kind(), ChannelKind::Call { call: own, .. } if *own == call)
                    && !state.machine.is_closed();
                state
                    .ctx
                    .send_call(&state.app, &call, CallInput::ChannelPresent { present });
            }
            ChannelMsg::MediaFlowing { from } => {
                if let ChannelKind::Call { call, .. } = state.machine.kind()
                    && state.machine.member(&from).is_some()
                {
                    state
                        .ctx
                        .send_call(&state.app, call, CallInput::MediaFlowing { from });
                }
            }
        }
    }
}

/// Who asks to join, as [`ChannelMsg::Join`] says.
struct Joiner {
    user: UserId,
    role: Role,
    may_publish: bool,
    /// The node holding the joiner's connection, when the router knows it.
    client_node: Option<NodeId>,
}

/// Admits a member: checks first, then opens its media session (if it offered one) on the node the
/// edge rule picks, then joins — so a refused join or offer leaves nothing behind.
async fn join(
    myself: &ActorRef<ChannelMsg>,
    state: &mut ChannelState,
    joiner: Joiner,
    offer: Option<String>,
    reply: Responder<CommandOk>,
) {
    let Joiner {
        user,
        role,
        may_publish,
        client_node,
    } = joiner;
    let granted = match state.machine.check_join(&user, role, may_publish) {
        Ok(granted) => granted,
        Err(e) => {
            let _ = reply.send(Err(e.into()));
            return;
        }
    };
    let channel = state.machine.name().clone();
    let media = offer.is_some();
    let sdp_answer = match offer {
        Some(offer) => {
            // Only broadcasters (and call participants, who always are) may send media.
            let publishes = granted == Role::Broadcaster;
            let seeker = MediaSeeker {
                audience: !publishes,
                client_node: client_node.as_ref(),
            };
            let here = state.ctx.node().clone();
            let rule = state.ctx.placement().edge_rule();
            let nodes = state.ctx.placement().media_nodes();
            let Ok(mut at) = choose_media_node(rule, &here, seeker, &nodes) else {
                let refused = MediaRefusal::NoRoom.into_command_error("join_channel.sdp_offer");
                let _ = reply.send(Err(refused));
                return;
            };
            let mut opened = state
                .ctx
                .media_at(&at)
                .open_session(&state.app, &channel, &user, publishes, offer.clone())
                .await;
            if at != here
                && let Err(MediaRefusal::Unavailable(why)) = &opened
            {
                // The edge could not take the viewer (it died, its relay refused, it did not
                // answer): the origin can, as before rooms spanned nodes.
                tracing::warn!(%channel, %user, edge = %at, %why, "edge refused a viewer: opened on the origin");
                // An edge that only answered late may still open it: this close follows the open
                // there, in order.
                let edge = std::mem::replace(&mut at, here.clone());
                state
                    .ctx
                    .media_at(&edge)
                    .close_session(&state.app, &channel, &user);
                opened = state
                    .ctx
                    .media()
                    .open_session(&state.app, &channel, &user, publishes, offer)
                    .await;
            }
            match opened {
                Ok(answer) => {
                    // A rejoin whose session lands on another node than its last one closes that
                    // one (on its own node, a new session replaces the old).
                    let before = state.edges.get(&user).unwrap_or(&here).clone();
                    if before != at {
                        close_media(state, &user);
                    }
                    if at != here {
                        tracing::debug!(%channel, %user, edge = %at, "viewer's media on an edge");
                        state.edges.insert(user.clone(), at);
                    }
                    Some(answer)
                }
                Err(refusal) => {
                    let refused = refusal.into_command_error("join_channel.sdp_offer");
                    let _ = reply.send(Err(refused));
                    return;
                }
            }
        }
        None => None,
    };
    let input = ChannelInput::Join {
        user: user.clone(),
        role,
        may_publish,
    };
    let fx = match handle(state, input) {
        Ok(fx) => fx,
        Err(e) => {
            // Cannot happen after `check_join` (this actor is single-threaded); undo the session anyway.
            if media {
                close_media(state, &user);
            }
            let _ = reply.send(Err(e.into()));
            return;
        }
    };
    let member = state
        .machine
        .member(&user)
        .expect("just joined: member exists");
    // The user actor records the membership before any update for the channel reaches it, with who
    // broadcasts (its client is told they left if this node dies).
    let broadcasters = state
        .machine
        .broadcasters()
        .filter(|(other, _)| **other != user)
        .map(|(other, _)| other.clone())
        .collect();
    let joined = UserInput::ChannelJoined {
        channel: channel.clone(),
        role: member.role,
        broadcasters,
    };
    state.ctx.send_user(&state.app, &user, joined);
    let _ = reply.send(Ok(CommandOk::Joined {
        channel,
        role: member.role,
        view: state.machine.view(),
        sdp_answer,
    }));
    for effect in fx {
        match effect {
            ChannelEffect::CallMemberJoined { call, user } => {
                let input = CallInput::ChannelJoined { user, media };
                state.ctx.send_call(&state.app, &call, input);
            }
            other => run(myself, state, vec![other]),
        }
    }
}

/// Viewers who kept their sessions on `edge` through the room's previous origin's death join this
/// room again as audience, their sessions where they are (their user actors still hold the membership).
/// Each is told who broadcasts in the reopened room (`memberJoined`, as a member is told of a host who
/// joins after it): its client learns the host is back without asking. One already a member (it
/// joined again by itself) keeps the session it has; one the room refuses (banned since, say) loses
/// its session on the edge.
fn adopt_edge_viewers(
    myself: &ActorRef<ChannelMsg>,
    state: &mut ChannelState,
    edge: NodeId,
    viewers: Vec<UserId>,
) {
    let channel = state.machine.name().clone();
    let here = state.ctx.node().clone();
    for user in viewers {
        if state.machine.member(&user).is_some() {
            continue;
        }
        let admitted = state
            .machine
            .check_join(&user, Role::Audience, false)
            .and_then(|_| {
                let input = ChannelInput::Join {
                    user: user.clone(),
                    role: Role::Audience,
                    may_publish: false,
                };
                handle(state, input)
            });
        match admitted {
            Ok(fx) => {
                if edge != here {
                    state.edges.insert(user.clone(), edge.clone());
                }
                tracing::info!(%channel, %user, %edge, "viewer kept its session through an origin's death");
                run(myself, state, fx);
                let broadcasters: Vec<(UserId, Member)> = state
                    .machine
                    .broadcasters()
                    .map(|(host, member)| (host.clone(), *member))
                    .collect();
                for (host, member) in broadcasters {
                    let update = ChannelUpdate::MemberJoined { user: host, member };
                    let input = UserInput::ChannelUpdate {
                        channel: channel.clone(),
                        update,
                    };
                    state.ctx.send_user(&state.app, &user, input);
                }
            }
            Err(error) => {
                tracing::info!(%channel, %user, %edge, %error, "viewer kept by an edge refused by the reopened room");
                state
                    .ctx
                    .media_at(&edge)
                    .close_session(&state.app, &channel, &user);
            }
        }
    }
}

/// Feeds the machine one input and writes the channel's entry in the directory.
fn handle(
    state: &mut ChannelState,
    input: ChannelInput,
) -> Result<Vec<ChannelEffect>, showcall_machines::ChannelError> {
    let fx = state.machine.handle(input)?;
    publish(state);
    Ok(fx)
}

/// A channel's report as its business event.
fn report_event(channel: &ChannelName, report: ChannelReport) -> EventKind {
    let channel = channel.clone();
    match report {
        ChannelReport::MemberJoined { user, role } => EventKind::MemberJoined {
            channel,
            user,
            role,
        },
        ChannelReport::MemberLeft { user, role } => EventKind::MemberLeft {
            channel,
            user,
            role,
        },
        ChannelReport::HostPaused { host, call } => EventKind::HostPaused {
            channel,
            host,
            call,
        },
        ChannelReport::HostResumed { host } => EventKind::HostResumed { channel, host },
    }
}

/// Writes the channel's entry in the node's directory (its members and their publishing state).
fn publish(state: &ChannelState) {
    let view = state.machine.view();
    let entry = ChannelEntry {
        channel: state.machine.name().clone(),
        call: match state.machine.kind() {
            ChannelKind::Call { call, .. } => Some(call.clone()),
            ChannelKind::Live => None,
        },
        members: view
            .members
            .into_iter()
            .map(|(user, member)| MemberEntry {
                user,
                role: member.role,
                publish: member.publish,
            })
            .collect(),
        broadcaster_paused: view.broadcaster_paused,
    };
    state.ctx.directory().set_channel(&state.app, entry);
}

/// Closes `user`'s media session, on whichever node holds it.
fn close_media(state: &mut ChannelState, user: &UserId) {
    match state.edges.remove(user) {
        Some(edge) => {
            state
                .ctx
                .media_at(&edge)
                .close_session(&state.app, state.machine.name(), user)
        }
        None => state
            .ctx
            .media()
            .close_session(&state.app, state.machine.name(), user),
    }
}

/// Closes every media session of the room: here, and on each of its edges (which then stop relaying
/// it).
fn close_all_media(state: &mut ChannelState) {
    let channel = state.machine.name().clone();
    state.ctx.media().close_channel(&state.app, &channel);
    let edges: BTreeSet<NodeId> = std::mem::take(&mut state.edges).into_values().collect();
    for edge in edges {
        state
            .ctx
            .media_at(&edge)
            .close_channel(&state.app, &channel);
    }
}

/// Carries a member's command for its own media session to the node holding it; the router's round
/// trip runs off the actor (as the user actor ran it before a room could span nodes).
fn member_media(
    state: &ChannelState,
    user: UserId,
    command: MemberMedia,
    reply: Responder<CommandOk>,
) {
    if state.machine.member(&user).is_none() {
        let _ = reply.send(Err(CommandError::NotInChannel));
        return;
    }
    let media = match state.edges.get(&user) {
        Some(edge) => state.ctx.media_at(edge),
        None => state.ctx.media().clone(),
    };
    let outcome = showcall_ports::media::member_media(
        media.as_ref(),
        &state.app,
        state.machine.name(),
        &user,
        command,
    );
    tokio::spawn(async move {
        let _ = reply.send(outcome.await);
    });
}

fn run(myself: &ActorRef<ChannelMsg>, state: &mut ChannelState, fx: Vec<ChannelEffect>) {
    let channel = state.machine.name().clone();
    if fx.iter().any(|e| matches!(e, ChannelEffect::Stop)) {
        // The channel is ending: its sessions close together, so nobody is renegotiated on the way out.
        close_all_media(state);
    }
    for effect in fx {
        match effect {
            ChannelEffect::Deliver { to, update } => {
                let input = UserInput::ChannelUpdate {
                    channel: channel.clone(),
                    update,
                };
                state.ctx.send_user(&state.app, &to, input);
            }
            ChannelEffect::CallMemberJoined { call, user } => {
                // Joins from `join` carry their media flag; this path is only a rejoin without a session.
                let input = CallInput::ChannelJoined { user, media: false };
                state.ctx.send_call(&state.app, &call, input);
            }
            ChannelEffect::CallMemberLeft { call, user } => {
                let input = CallInput::ChannelLeft { user };
                state.ctx.send_call(&state.app, &call, input);
            }
            ChannelEffect::Removed { user } => {
                close_media(state, &user);
                let input = UserInput::ChannelRemoved {
                    channel: channel.clone(),
                };
                state.ctx.send_user(&state.app, &user, input);
            }
            ChannelEffect::Kicked { user, ban_seconds } => {
                close_media(state, &user);
                let input = UserInput::Kicked {
                    channel: channel.clone(),
                    ban_seconds,
                };
                state.ctx.send_user(&state.app, &user, input);
            }
            ChannelEffect::EndCall { call, reason } => {
                state
                    .ctx
                    .send_call(&state.app, &call, CallInput::Terminate { reason });
            }
            ChannelEffect::Report(report) => {
                let kind = report_event(&channel, report);
                state.ctx.emit(&state.app, kind);
            }
            ChannelEffect::Forward { user, on } => {
                state
                    .ctx
                    .media()
                    .set_forwarding(&state.app, &channel, &user, on);
            }
            ChannelEffect::RequestKeyframe { from } => {
                state
                    .ctx
                    .media()
                    .request_keyframe(&state.app, &channel, &from);
            }
            ChannelEffect::Stop => {
                state
                    .ctx
                    .forget_channel(&state.app, &channel, myself.get_id());
                myself.stop(None);
            }
        }
    }
}
