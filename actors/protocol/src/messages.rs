//! The messages each actor accepts.
//!
//! Messages between actors carry machine inputs (`Traced<…>`), which are plain serde data with the
//! sender's trace context, so they cross nodes in envelopes unchanged ([`crate::envelope`]). Requests carry
//! a [`Responder`] and logins a [`SessionSink`]: a local port or sink, or a handle on the node holding it.

use std::sync::Arc;

use ractor::RpcReplyPort;
use serde::Serialize;
use showcall_machines::user::UserSnapshot;
use showcall_machines::{
    CallId, CallInput, CallSnapshot, CallTimer, ChannelInput, ConnId, Millis, Role, UserId,
    UserInput, UserTimer,
};

use crate::commands::{CommandOk, LoginOk, Outbound, UserCommand};
use crate::envelope::{Body, Courier, Envelope, ReplyTo, SinkTo};
use crate::error::CommandError;
use crate::inbox::Gone;
use crate::keys::NodeId;
pub use crate::trace::{TraceContext, Traced};

/// Where a client command's answer goes: a local reply port, or a request of another node.
pub enum Responder<T> {
    Local(RpcReplyPort<Result<T, CommandError>>),
    Remote {
        to: ReplyTo,
        from: NodeId,
        courier: Arc<dyn Courier>,
    },
}

impl<T> From<RpcReplyPort<Result<T, CommandError>>> for Responder<T> {
    fn from(port: RpcReplyPort<Result<T, CommandError>>) -> Self {
        Responder::Local(port)
    }
}

impl<T: Serialize> Responder<T> {
    /// Answers; `Err` when nobody waits any more (the requester gave up or is gone).
    pub fn send(self, answer: Result<T, CommandError>) -> Result<(), Gone> {
        match self {
            Responder::Local(port) => port.send(answer).map_err(|_| Gone),
            Responder::Remote { to, from, courier } => {
                let result = serde_json::to_value(&answer).expect("answers are plain serde data");
                courier.send(
                    &to.node,
                    Envelope {
                        from,
                        hops: 0,
                        trace: TraceContext::default(),
                        body: Body::Reply { id: to.id, result },
                    },
                );
                Ok(())
            }
        }
    }
}

/// Where a connection's events go: the local WebSocket task, or the gateway node holding it.
#[derive(Clone, Debug)]
pub enum SessionSink {
    Local(crate::inbox::ConnectionInbox),
    Remote {
        to: SinkTo,
        from: NodeId,
        courier: Arc<dyn Courier>,
    },
}

impl SessionSink {
    /// The node holding the connection, when it is another node (`None` for a connection of this node).
    pub fn node(&self) -> Option<&NodeId> {
        match self {
            SessionSink::Local(_) => None,
            SessionSink::Remote { to, .. } => Some(&to.node),
        }
    }

    /// Hands `outbound` to the connection; `Err` when the local connection is gone.
    pub fn send(&self, outbound: Outbound) -> Result<(), Gone> {
        match self {
            SessionSink::Local(inbox) => inbox.push(outbound),
            SessionSink::Remote { to, from, courier } => {
                courier.send(
                    &to.node,
                    Envelope {
                        from: from.clone(),
                        hops: 0,
                        trace: TraceContext::default(),
                        body: Body::Sink {
                            id: to.id,
                            outbound,
                        },
                    },
                );
                Ok(())
            }
        }
    }
}

/// Which actor keys a dead node owned (answers for its partitions). Local only: never crosses nodes.
pub type LostKeys = Arc<dyn Fn(&crate::keys::ActorKey) -> bool + Send + Sync>;

/// Messages to a `UserActor` (delivered by the registry, which runs the actor while it has some).
pub enum UserMsg {
    /// A connection logged in (or resumed) with a valid token.
    Attach {
        conn: ConnId,
        sink: SessionSink,
        token_expires_at: Millis,
        reply: Responder<LoginOk>,
    },
    /// A client command from connection `conn`.
    Command {
        conn: ConnId,
        command: UserCommand,
        reply: Responder<CommandOk>,
    },
    /// The connection dropped without logging out.
    ConnectionLost {
        conn: ConnId,
    },
    /// From a call or a channel.
    Input(Traced<UserInput>),
    Timer(UserTimer),
    /// Node `node` died (or left): a call whose actor it ran is over for this user, and a connection it
    /// held for this session dropped with it.
    NodeLost {
        node: NodeId,
        lost: LostKeys,
    },
    /// This node lost its lease: another node may run this user now. Close the connections
    /// (`SessionClosed` NODE_LOST, so clients log in again) and stop without telling anyone else.
    Evict,
    /// The user's partition is being handed to another node: answer the session's state (the actor
    /// goes on until the hub stops it, silently, once the new owner has it).
    Snapshot(RpcReplyPort<UserStanding>),
}

/// Messages to a `CallActor`.
pub enum CallMsg {
    /// The registry knows the actor now: the call starts (a new call), asks its parties (a restored
    /// one) or goes on (a handed-over one). Sent once, by the registry, so nothing the call sends can
    /// be answered before the answer can find it.
    Begin,
    /// A notification from a user actor or the call channel.
    Input(Traced<CallInput>),
    /// A client command forwarded by the user actor; the machine's verdict is the client's answer.
    Command {
        input: CallInput,
        reply: Responder<CommandOk>,
    },
    Timer(CallTimer),
    /// A node died: a party whose user actor it ran is gone.
    OwnersLost(LostKeys),
    /// The call's partition is being handed to another node: answer what it needs to go on there.
    Snapshot(RpcReplyPort<CallStanding>),
}

/// Messages to a `ChannelActor`.
pub enum ChannelMsg {
    /// A user asks to join; answered with the channel view.
    Join {
        user: UserId,
        role: Role,
        may_publish: bool,
        /// SDP offer for a media session in this channel.
        offer: Option<String>,
        reply: Responder<CommandOk>,
    },
    Input(Traced<ChannelInput>),
    /// The media router forwarded `from`'s first frame to the rest of the channel.
    MediaFlowing {
        from: UserId,
    },
    /// A node died: members whose user actor lived there are gone.
    OwnersLost(LostKeys),
    /// A call restored on a new node asks whether this is still its channel (answered with
    /// `CallInput::ChannelPresent`).
    Adopt {
        call: CallId,
    },
    /// This node lost its lease: close the media sessions and stop without telling anyone else.
    Evict,
}

/// A user actor's state, as it answers [`UserMsg::Snapshot`] (local: its sinks are this node's).
pub struct UserStanding {
    pub snapshot: UserSnapshot,
    pub sinks: Vec<(ConnId, SessionSink)>,
    /// Whether `user_online` was reported for this session (so `user_offline` is due at its end).
    pub online: bool,
}

/// Where a call stands, as it answers [`CallMsg::Snapshot`].
pub enum CallStanding {
    /// Connected: its snapshot goes on elsewhere.
    Connected(Box<CallSnapshot>),
    /// Ended: it stops by itself.
    Ended,
    /// Still calling or connecting: no snapshot.
    Unsettled,
}
