//! What the router needs to know of each actor kind's messages ([`Routed`]), and what becomes of a
//! message it routes ([`Delivery`]). `crate::routing` has the one route function over these; this file
//! has what differs per kind: the key a message goes to, how it is delivered here, whether it may wait
//! for its key's owner, and how it is refused.
//!
//! The rules, for every kind alike:
//! - A message to a key whose partition has no owner right now waits for one when it is a notification
//!   or a call's command ([`Routed::waits_for_owner`], `crate::flux`); a request that starts an actor
//!   (login, a call's spawn, a channel's open or join) and a user's command are refused UNAVAILABLE at
//!   once ("try again": the client retries; they must not wait for a partition that may be this node's
//!   own fenced one).
//! - A message with no actor here to take it is [`Delivery::Absent`]: the sender may hear that itself
//!   (a call ringing a user with no session) or let the router refuse it ([`Routed::refuse`]): a
//!   request is answered with why, a ring or a takeover question with its "nobody there" answer.

use std::future::Future;
use std::pin::Pin;

use ractor::MessagingErr;
use showcall_machines::channel::ChannelUpdate;
use showcall_machines::{CallId, CallInput, ChannelName, UserId, UserInput};
use showcall_protocol::commands::{CommandOk, UserCommand};
use showcall_protocol::envelope::Body;
use showcall_protocol::error::CommandError;
use showcall_protocol::keys::{ActorKey, AppId};
use showcall_protocol::media_edge::EDGE_WIRE_MINOR;
use showcall_protocol::messages::{BindHere, CallMsg, ChannelMsg, Local, Traced, UserMsg, Wire};

use crate::calls::NotTold;
use crate::hub::Hub;
use crate::routing::{Detach, Route};
use crate::users::MAX_QUEUED_PER_USER;

/// An actor kind's messages as the router carries them.
pub(crate) trait Routed: Sized + Send + 'static {
    /// The actor's name in its app: a user id, a call id, a channel name.
    type Name: Clone + Send + Sync + std::fmt::Display + 'static;
    /// The message as it travels to another node.
    type Wire: Send + 'static;

    /// Whether an envelope for this kind is carried out by the node it reaches, without asking the
    /// placement again: a channel lives where it was opened (its pin), which is where its senders sent.
    const PINNED: bool = false;

    fn key(app: &AppId, name: &Self::Name) -> ActorKey;
    fn body(app: AppId, name: Self::Name, wire: Self::Wire) -> Body;
    /// The wire form; `Err` (the message as it was) for a message of this node's own.
    fn detach(self, handles: &mut Detach<'_>) -> Result<Self::Wire, Self>;
    /// The message read from another node's envelope, answering and pushing back to that node.
    fn bind(wire: Self::Wire, handles: &mut BindHere) -> Result<Self, Self::Wire>;

    /// The message as a node that reads wire minor `minor` reads it (`showcall_protocol::wire`): itself,
    /// or what it stands for in kinds of that minor.
    fn readable_by(self, minor: u32) -> Vec<Self> {
        let _ = minor;
        vec![self]
    }
    /// Where this message goes (channels that a message may open go where the placement picks).
    fn route(&self, hub: &Hub, app: &AppId, name: &Self::Name) -> Route {
        hub.route(&Self::key(app, name))
    }
    /// See the module docs.
    fn waits_for_owner(&self) -> bool;
    /// Hands the message to the actor here.
    fn deliver_here(self, hub: &Hub, app: AppId, name: Self::Name) -> Delivery<Self>;
    /// Nobody will carry the message out: a request is answered `error`, a question whose asker waits
    /// for "nobody there" gets that answer, a notification is dropped.
    fn refuse(self, hub: &Hub, app: &AppId, name: &Self::Name, error: CommandError);
    /// Why a message found no actor here (the answer of a request that did).
    fn absent() -> CommandError;
    /// What a request learns when its question was dropped unanswered (its actor stopped).
    fn unanswered() -> CommandError {
        CommandError::Unavailable("the actor stopped before answering; try again".into())
    }
}

/// A delivery that goes on after the route function returns (an actor starting, a channel opening).
pub(crate) type Pending = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What became of a routed message.
pub(crate) enum Delivery<M> {
    /// Delivered here, sent to its key's owner, parked until the key has one, or refused.
    Done,
    /// Delivered once this finishes: a sender that must keep its messages in order awaits it.
    Pending(Pending),
    /// No actor here to take it.
    Absent(M),
}

impl<M: Routed> Delivery<M> {
    /// For a sender that does not wait: a pending delivery goes on by itself, an absent one is refused.
    pub(crate) fn settle(self, hub: &Hub, app: &AppId, name: &M::Name) {
        match self {
            Delivery::Done => {}
            Delivery::Pending(pending) => {
                tokio::spawn(pending);
            }
            Delivery::Absent(msg) => msg.refuse(hub, app, name, M::absent()),
        }
    }

    /// For a sender whose next messages must come after this one: waits for a pending delivery.
    pub(crate) async fn finish(self, hub: &Hub, app: &AppId, name: &M::Name) {
        match self {
            Delivery::Pending(pending) => pending.await,
            other => other.settle(hub, app, name),
        }
    }
}

/// The refusal of a message whose key has no owner (see the module docs).
pub(crate) fn no_owner(key: &ActorKey) -> CommandError {
    CommandError::Unavailable(format!("{key} is moving between nodes; try again"))
}

// -------------------------------------------------------------------------------------------------
// Users
// -------------------------------------------------------------------------------------------------

impl Routed for UserMsg<Local> {
    type Name = UserId;
    type Wire = UserMsg<Wire>;

    fn key(app: &AppId, user: &UserId) -> ActorKey {
        ActorKey::User(app.clone(), user.clone())
    }

    fn body(app: AppId, user: UserId, msg: UserMsg<Wire>) -> Body {
        Body::User { app, user, msg }
    }

    fn detach(self, handles: &mut Detach<'_>) -> Result<UserMsg<Wire>, Self> {
        self.map(handles)
    }

    fn bind(wire: UserMsg<Wire>, handles: &mut BindHere) -> Result<Self, UserMsg<Wire>> {
        wire.map(handles)
    }

    fn readable_by(self, minor: u32) -> Vec<Self> {
        match self {
            // 1.1: a call's updates together; 1.0 reads them one at a time.
            UserMsg::Input(traced) if minor < 1 => match traced.payload {
                UserInput::CallUpdates { call_id, updates } => updates
                    .into_iter()
                    .map(|update| {
                        let call_id = call_id.clone();
                        let input = UserInput::CallUpdate { call_id, update };
                        UserMsg::Input(Traced {
                            trace: traced.trace.clone(),
                            payload: input,
                        })
                    })
                    .collect(),
                payload => vec![UserMsg::Input(Traced {
                    trace: traced.trace,
                    payload,
                })],
            },
            // 1.2: ICE restarts. A node of an older minor has no such command: the client hears at once
            // that it may try again (the upgrade ends soon), rather than after the peer's refusal.
            UserMsg::Command {
                command: UserCommand::RestartIce { .. },
                reply,
                ..
            } if minor < 2 => {
                let _ = reply.send(Err(CommandError::Unavailable(
                    "the node serving this session cannot restart ICE yet (a rolling upgrade); try again"
                        .into(),
                )));
                Vec::new()
            }
            // 1.3: a member told its video paused for bandwidth. An older node's user could not read
            // it; the member's video pauses and resumes all the same, untold.
            UserMsg::Input(Traced {
                payload:
                    UserInput::ChannelUpdate {
                        update: ChannelUpdate::VideoPausedForBandwidth { .. },
                        ..
                    },
                ..
            }) if minor < 3 => Vec::new(),
            msg => vec![msg],
        }
    }

    fn waits_for_owner(&self) -> bool {
        // A restarted node claiming its share, or a dead node's partition not yet re-owned: the user's
        // actor is about to have an owner again. Waiting keeps a ring from reading as "offline" for a
        // user that is logged in.
        matches!(self, UserMsg::ConnectionLost { .. } | UserMsg::Input(_))
    }

    fn deliver_here(self, hub: &Hub, app: AppId, user: UserId) -> Delivery<Self> {
        if let UserMsg::Attach { .. } = self {
            // A login starts a session when the user has none here.
            if let Err((msg, refusal)) = hub.tell_or_start_user(&app, &user, self) {
                msg.refuse(hub, &app, &user, refusal);
            }
            return Delivery::Done;
        }
        match hub.tell_user_within(&app, &user, self, MAX_QUEUED_PER_USER) {
            Ok(()) => Delivery::Done,
            Err((msg, false)) => Delivery::Absent(msg),
            Err((msg, true)) => {
                tracing::warn!(%user, "too many messages wait for the user: refused");
                let busy = format!("{MAX_QUEUED_PER_USER} messages wait for {user}; try again");
                msg.refuse(hub, &app, &user, CommandError::Unavailable(busy));
                Delivery::Done
            }
        }
    }

    fn refuse(self, hub: &Hub, app: &AppId, user: &UserId, error: CommandError) {
        match self {
            UserMsg::Attach { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            UserMsg::Command { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            UserMsg::Input(traced) => {
                if let Some((call, answer)) = traced.payload.unreachable_answer(user) {
                    hub.send_call(app, &call, answer);
                }
            }
            _ => {}
        }
    }

    fn absent() -> CommandError {
        CommandError::SessionClosed
    }

    fn unanswered() -> CommandError {
        // The question was dropped unanswered: its session ended.
        CommandError::SessionClosed
    }
}

// -------------------------------------------------------------------------------------------------
// Calls
// -------------------------------------------------------------------------------------------------

impl Routed for CallMsg<Local> {
    type Name = CallId;
    type Wire = CallMsg<Wire>;

    fn key(app: &AppId, call: &CallId) -> ActorKey {
        ActorKey::Call(app.clone(), call.clone())
    }

    fn body(app: AppId, id: CallId, msg: CallMsg<Wire>) -> Body {
        Body::Call { app, id, msg }
    }

    fn detach(self, handles: &mut Detach<'_>) -> Result<CallMsg<Wire>, Self> {
        self.map(handles)
    }

    fn bind(wire: CallMsg<Wire>, handles: &mut BindHere) -> Result<Self, CallMsg<Wire>> {
        wire.map(handles)
    }

    fn waits_for_owner(&self) -> bool {
        // A call's commands too: the client awaits them anyway.
        matches!(self, CallMsg::Input(_) | CallMsg::Command { .. })
    }

    fn deliver_here(self, hub: &Hub, app: AppId, call: CallId) -> Delivery<Self> {
        if let CallMsg::Spawn { setup, reply } = self {
            let hub = hub.clone();
            return Delivery::Pending(Box::pin(async move {
                let answer = hub.spawn_call_here(app, setup).await;
                let _ = reply.send(answer.map(|()| CommandOk::Done));
            }));
        }
        match hub.tell_call(&call, self) {
            Ok(()) => Delivery::Done,
            Err(NotTold::Absent(msg)) => Delivery::Absent(msg),
            Err(NotTold::Full(msg)) => {
                tracing::warn!(%call, "too many messages wait for the call: refused");
                let full = CommandError::Unavailable(format!("call {call} is flooded; try again"));
                msg.refuse(hub, &app, &call, full);
                Delivery::Done
            }
        }
    }

    fn refuse(self, _: &Hub, _: &AppId, call: &CallId, error: CommandError) {
        match self {
            CallMsg::Spawn { reply, .. } | CallMsg::Command { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            _ => tracing::debug!(%call, %error, "message for a call dropped"),
        }
    }

    fn absent() -> CommandError {
        CommandError::NoSuchCall
    }
}

// -------------------------------------------------------------------------------------------------
// Channels
// -------------------------------------------------------------------------------------------------

impl Routed for ChannelMsg<Local> {
    type Name = ChannelName;
    type Wire = ChannelMsg<Wire>;
    const PINNED: bool = true;

    fn key(app: &AppId, channel: &ChannelName) -> ActorKey {
        ActorKey::Channel(app.clone(), channel.clone())
    }

    fn body(app: AppId, channel: ChannelName, msg: ChannelMsg<Wire>) -> Body {
        Body::Channel { app, channel, msg }
    }

    fn detach(self, handles: &mut Detach<'_>) -> Result<ChannelMsg<Wire>, Self> {
        self.map(handles)
    }

    fn bind(wire: ChannelMsg<Wire>, handles: &mut BindHere) -> Result<Self, ChannelMsg<Wire>> {
        wire.map(handles)
    }

    fn readable_by(self, minor: u32) -> Vec<Self> {
        match self {
            // 1.4: a member's media command through its channel. `Hub::member_media` keeps it from
            // older channel nodes; one that changed owner since is told to try again.
            ChannelMsg::MemberMedia { reply, .. } if minor < EDGE_WIRE_MINOR => {
                let _ = reply.send(Err(CommandError::Unavailable(
                    "the node running this channel cannot take media commands yet (a rolling upgrade); try again"
                        .into(),
                )));
                vec![]
            }
            msg => vec![msg],
        }
    }

    fn route(&self, hub: &Hub, app: &AppId, channel: &ChannelName) -> Route {
        match self {
            ChannelMsg::Open { .. } | ChannelMsg::Join { .. } => hub.route_opening(app, channel),
            _ => hub.route(&Self::key(app, channel)),
        }
    }

    fn waits_for_owner(&self) -> bool {
        matches!(
            self,
            ChannelMsg::Input(_)
                | ChannelMsg::MediaFlowing { .. }
                | ChannelMsg::Adopt { .. }
                | ChannelMsg::MemberMedia { .. }
        )
    }

    fn deliver_here(self, hub: &Hub, app: AppId, channel: ChannelName) -> Delivery<Self> {
        match self {
            ChannelMsg::Open { kind, reply } => {
                let hub = hub.clone();
                Delivery::Pending(Box::pin(async move {
                    let answer = hub.channel_or_open(&app, &channel, Some(kind)).await;
                    let _ = reply.send(answer.map(|_| CommandOk::Done));
                }))
            }
            join @ ChannelMsg::Join { .. } => match hub.channel(&app, &channel) {
                Some(actor) => {
                    cast_join(actor, join);
                    Delivery::Done
                }
                // Opening a live room takes its pin first (an etcd round trip in a cluster): the
                // joiner waits for it, so its next messages to the channel come after its join.
                None => {
                    let hub = hub.clone();
                    Delivery::Pending(Box::pin(async move {
                        match hub.channel_or_open(&app, &channel, None).await {
                            Ok(actor) => cast_join(actor, join),
                            Err(e) => join.refuse(&hub, &app, &channel, e),
                        }
                    }))
                }
            },
            msg => {
                let Some(actor) = hub.channel(&app, &channel) else {
                    return Delivery::Absent(msg);
                };
                match actor.cast(msg) {
                    Ok(()) => Delivery::Done,
                    Err(MessagingErr::SendErr(msg)) => Delivery::Absent(msg),
                    Err(_) => Delivery::Done,
                }
            }
        }
    }

    fn refuse(self, hub: &Hub, app: &AppId, channel: &ChannelName, error: CommandError) {
        match self {
            ChannelMsg::Open { reply, .. }
            | ChannelMsg::Join { reply, .. }
            | ChannelMsg::MemberMedia { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            // A restored call asking for its channel hears it is gone.
            ChannelMsg::Adopt { call } => {
                hub.send_call(app, &call, CallInput::ChannelPresent { present: false });
            }
            _ => tracing::debug!(%channel, %error, "message for a channel dropped"),
        }
    }

    fn absent() -> CommandError {
        CommandError::Unavailable("the channel is not open".into())
    }
}

/// A join for an open channel; one that stops between lookup and send (its last member left) answers
/// as busy.
fn cast_join(actor: ractor::ActorRef<ChannelMsg>, join: ChannelMsg) {
    if let Err(MessagingErr::SendErr(ChannelMsg::Join { reply, .. })) = actor.cast(join) {
        let _ = reply.send(Err(CommandError::Unavailable(
            "channel is closing, try again".into(),
        )));
    }
}

#[cfg(test)]
mod tests {
    use showcall_machines::ConnId;
    use showcall_protocol::messages::Responder;

    use super::*;

    fn restart_ice() -> (
        UserMsg<Local>,
        ractor::concurrency::OneshotReceiver<Result<CommandOk, CommandError>>,
    ) {
        let (port, answer) = ractor::concurrency::oneshot();
        let msg = UserMsg::Command {
            conn: ConnId(1),
            command: UserCommand::RestartIce {
                channel: ChannelName("host_live".into()),
                sdp_offer: "v=0\r\n".into(),
            },
            reply: Responder::Local(port.into()),
        };
        (msg, answer)
    }

    #[tokio::test]
    async fn an_ice_restart_is_not_sent_to_a_node_that_cannot_read_it() {
        let (msg, answer) = restart_ice();
        assert!(msg.readable_by(1).is_empty(), "nothing goes to a 1.1 node");
        assert!(matches!(
            answer.await,
            Ok(Err(CommandError::Unavailable(_)))
        ));

        let (msg, _answer) = restart_ice();
        assert_eq!(msg.readable_by(2).len(), 1, "a 1.2 node reads it");
    }

    #[tokio::test]
    async fn a_member_media_command_is_not_sent_to_a_channel_node_before_1_4() {
        let member_media = || {
            let (port, answer) = ractor::concurrency::oneshot();
            let msg = ChannelMsg::MemberMedia {
                user: "fan".into(),
                command: showcall_protocol::media_edge::MemberMedia::RestartIce {
                    sdp_offer: "v=0\r\n".into(),
                },
                reply: Responder::Local(port.into()),
            };
            (msg, answer)
        };
        let (msg, answer) = member_media();
        assert!(msg.readable_by(3).is_empty(), "nothing goes to a 1.3 node");
        assert!(matches!(
            answer.await,
            Ok(Err(CommandError::Unavailable(_)))
        ));
        let (msg, _answer) = member_media();
        assert_eq!(msg.readable_by(4).len(), 1, "a 1.4 node reads it");
    }
}
