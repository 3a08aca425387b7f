//! The messages each actor accepts.
//!
//! One enum per actor kind ([`UserMsg`], [`CallMsg`], [`ChannelMsg`]), the same for an actor here and
//! for an envelope to another node: generic over its [`Handles`]. Messages between actors carry machine
//! inputs (`Traced<…>`), plain serde data with the sender's trace context, so they cross nodes
//! unchanged ([`crate::envelope`]). Requests carry a [`Responder`] and logins a [`SessionSink`]: a local
//! port or sink, or a handle on the node holding it; on the wire, only the handle.

use std::sync::Arc;

use ractor::RpcReplyPort;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use showcall_machines::user::UserSnapshot;
use showcall_machines::{
    CallId, CallInput, CallSetup, CallSnapshot, CallTimer, ChannelInput, ChannelKind, ConnId,
    Millis, Role, UserId, UserInput, UserTimer,
};

use crate::commands::{CommandOk, LoginOk, Outbound, UserCommand};
use crate::envelope::{Body, Courier, Envelope};
use crate::error::CommandError;
use crate::handles::{ReplyTo, SinkTo};
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

    /// Hands `outbounds` to the connection, in order: to a connection on another node in one envelope
    /// when that node reads wire 1.1, else one envelope each. `Err` when the local connection is gone.
    pub fn send_all(&self, mut outbounds: Vec<Outbound>) -> Result<(), Gone> {
        match self {
            SessionSink::Remote { to, from, courier }
                if outbounds.len() > 1 && courier.reads_minor(&to.node) >= 1 =>
            {
                courier.send(
                    &to.node,
                    Envelope {
                        from: from.clone(),
                        hops: 0,
                        trace: TraceContext::default(),
                        body: Body::Sinks {
                            id: to.id,
                            outbounds,
                        },
                    },
                );
                Ok(())
            }
            _ if outbounds.len() == 1 => self.send(outbounds.remove(0)),
            _ => outbounds
                .into_iter()
                .try_for_each(|outbound| self.send(outbound)),
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

/// What a message's answers and connection sinks are. Every actor kind has one message enum, generic
/// over its handles: with [`Local`] (the default) an answer goes to a [`Responder`] and a connection's
/// events to a [`SessionSink`] — what actors receive; with [`Wire`] both are handles on the node that
/// holds them ([`ReplyTo`], [`SinkTo`]) — what an [`Envelope`] carries. The router turns one into the
/// other as a message leaves or reaches a node (each enum's `map`, through a [`HandleMap`]).
///
/// Variants marked `#[serde(skip)]` are this node's business (timers, node losses, evictions,
/// handover snapshots): they have no wire form, so a node never sends them and never reads them (a
/// peer naming one is an unknown kind, `crate::wire`). All other variants are the wire format, frozen
/// by the fixtures of `tests/wire/`: a variant is never renamed and a field never removed.
pub trait Handles: Send + 'static {
    /// Where the answer of type `T` goes.
    type Reply<T: Answer>: Send;
    /// Where a connection's events go.
    type Sink: Send;
}

/// What a request may be answered with: plain serde data.
pub trait Answer: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Answer for T {}

/// Handles of this node: actors answer and push through these.
pub enum Local {}

impl Handles for Local {
    type Reply<T: Answer> = Responder<T>;
    type Sink = SessionSink;
}

/// Handles on the node that holds a port or a sink: what crosses nodes.
pub enum Wire {}

impl Handles for Wire {
    type Reply<T: Answer> = ReplyTo;
    type Sink = SinkTo;
}

/// Turns a message's handles of kind `F` into handles of kind `T` (see [`Handles`]).
pub trait HandleMap<F: Handles, T: Handles> {
    fn reply<A: Answer>(&mut self, reply: F::Reply<A>) -> T::Reply<A>;
    fn sink(&mut self, sink: F::Sink) -> T::Sink;
}

/// Binds handles read from another node's envelope to this node: answers and pushes go back to that
/// node through `courier`.
pub struct BindHere {
    pub node: NodeId,
    pub courier: Arc<dyn Courier>,
}

impl HandleMap<Wire, Local> for BindHere {
    fn reply<A: Answer>(&mut self, to: ReplyTo) -> Responder<A> {
        Responder::Remote {
            to,
            from: self.node.clone(),
            courier: self.courier.clone(),
        }
    }

    fn sink(&mut self, to: SinkTo) -> SessionSink {
        SessionSink::Remote {
            to,
            from: self.node.clone(),
            courier: self.courier.clone(),
        }
    }
}

/// Messages to a `UserActor` (delivered by the registry, which runs the actor while it has some).
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "H::Sink: Serialize, H::Reply<LoginOk>: Serialize, H::Reply<CommandOk>: Serialize",
    deserialize = "H::Sink: Deserialize<'de>, H::Reply<LoginOk>: Deserialize<'de>, \
                   H::Reply<CommandOk>: Deserialize<'de>"
))]
pub enum UserMsg<H: Handles = Local> {
    /// A connection logged in (or resumed) with a valid token.
    Attach {
        conn: ConnId,
        sink: H::Sink,
        token_expires_at: Millis,
        reply: H::Reply<LoginOk>,
    },
    /// A client command from connection `conn`.
    Command {
        conn: ConnId,
        command: UserCommand,
        reply: H::Reply<CommandOk>,
    },
    /// The connection dropped without logging out.
    ConnectionLost { conn: ConnId },
    /// From a call or a channel.
    Input(Traced<UserInput>),
    #[serde(skip)]
    Timer(UserTimer),
    /// Node `node` died (or left): a call whose actor it ran is over for this user, and a connection it
    /// held for this session dropped with it.
    #[serde(skip)]
    NodeLost { node: NodeId, lost: LostKeys },
    /// This node lost its lease: another node may run this user now. Close the connections
    /// (`SessionClosed` NODE_LOST, so clients log in again) and stop without telling anyone else.
    #[serde(skip)]
    Evict,
    /// The user's partition is being handed to another node: answer the session's state (the actor
    /// goes on until the hub stops it, silently, once the new owner has it).
    #[serde(skip)]
    Snapshot(RpcReplyPort<UserStanding>),
}

impl<H: Handles> UserMsg<H> {
    /// The same message with its handles mapped; `Err` (the message as it was) for one of this node's
    /// own variants, which have no other form.
    #[allow(clippy::result_large_err)]
    pub fn map<K: Handles>(self, map: &mut impl HandleMap<H, K>) -> Result<UserMsg<K>, Self> {
        Ok(match self {
            UserMsg::Attach {
                conn,
                sink,
                token_expires_at,
                reply,
            } => UserMsg::Attach {
                conn,
                sink: map.sink(sink),
                token_expires_at,
                reply: map.reply(reply),
            },
            UserMsg::Command {
                conn,
                command,
                reply,
            } => UserMsg::Command {
                conn,
                command,
                reply: map.reply(reply),
            },
            UserMsg::ConnectionLost { conn } => UserMsg::ConnectionLost { conn },
            UserMsg::Input(input) => UserMsg::Input(input),
            own => return Err(own),
        })
    }
}

/// Messages to a `CallActor`.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "H::Reply<CommandOk>: Serialize",
    deserialize = "H::Reply<CommandOk>: Deserialize<'de>"
))]
pub enum CallMsg<H: Handles = Local> {
    /// Start the call's actor (it rings the callee itself); answered `Done` once it runs. The registry
    /// carries it out; a running call answers it UNAVAILABLE (already running).
    Spawn {
        setup: CallSetup,
        reply: H::Reply<CommandOk>,
    },
    /// A notification from a user actor or the call channel.
    Input(Traced<CallInput>),
    /// A client command forwarded by the user actor; the machine's verdict is the client's answer.
    Command {
        input: CallInput,
        reply: H::Reply<CommandOk>,
    },
    /// The registry knows the actor now: the call starts (a new call), asks its parties (a restored
    /// one) or goes on (a handed-over one). Sent once, by the registry, so nothing the call sends can
    /// be answered before the answer can find it.
    #[serde(skip)]
    Begin,
    #[serde(skip)]
    Timer(CallTimer),
    /// A node died: a party whose user actor it ran is gone.
    #[serde(skip)]
    OwnersLost(LostKeys),
    /// The call's partition is being handed to another node: answer what it needs to go on there.
    #[serde(skip)]
    Snapshot(RpcReplyPort<CallStanding>),
}

impl<H: Handles> CallMsg<H> {
    /// See [`UserMsg::map`].
    #[allow(clippy::result_large_err)]
    pub fn map<K: Handles>(self, map: &mut impl HandleMap<H, K>) -> Result<CallMsg<K>, Self> {
        Ok(match self {
            CallMsg::Spawn { setup, reply } => CallMsg::Spawn {
                setup,
                reply: map.reply(reply),
            },
            CallMsg::Input(input) => CallMsg::Input(input),
            CallMsg::Command { input, reply } => CallMsg::Command {
                input,
                reply: map.reply(reply),
            },
            own => return Err(own),
        })
    }
}

/// Messages to a `ChannelActor`.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "H::Reply<CommandOk>: Serialize",
    deserialize = "H::Reply<CommandOk>: Deserialize<'de>"
))]
pub enum ChannelMsg<H: Handles = Local> {
    /// Open a call's channel (answered once open, so the parties' joins find it). The registry carries
    /// it out; an open channel answers it `Done`.
    Open {
        kind: ChannelKind,
        reply: H::Reply<CommandOk>,
    },
    /// A user asks to join; answered with the channel view.
    Join {
        user: UserId,
        role: Role,
        may_publish: bool,
        /// SDP offer for a media session in this channel.
        offer: Option<String>,
        reply: H::Reply<CommandOk>,
        /// The node whose gateway holds the joining client's connection: a viewer's media session may
        /// go there (`crate::media_edge`). Wire 1.4; absent (an older sender) = not known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_node: Option<NodeId>,
    },
    Input(Traced<ChannelInput>),
    /// The media router forwarded `from`'s first frame to the rest of the channel.
    MediaFlowing {
        from: UserId,
    },
    /// A call restored on a new node asks whether this is still its channel (answered with
    /// `CallInput::ChannelPresent`).
    Adopt {
        call: CallId,
    },
    /// A member's command for its own media session, carried to the node that holds it (wire 1.4:
    /// sent only to a channel node that reads 1.4; an older one's members' sessions are all on it).
    MemberMedia {
        user: UserId,
        command: crate::media_edge::MemberMedia,
        reply: H::Reply<CommandOk>,
    },
    /// Viewers whose sessions edge `edge` kept when this room's previous origin died (the edge asked
    /// this node's router for the room with them, `MediaOp::AddEdge`): they are members again, their
    /// sessions where they are. `edge` may be this node (the room reopened where they watch).
    #[serde(skip)]
    EdgeViewers {
        edge: NodeId,
        viewers: Vec<UserId>,
    },
    /// A node died: members whose user actor lived there are gone.
    #[serde(skip)]
    OwnersLost(LostKeys),
    /// A node died: members whose media session it held (an edge of this room) are gone.
    #[serde(skip)]
    MediaNodeLost(NodeId),
    /// This node lost its lease: close the media sessions and stop without telling anyone else.
    #[serde(skip)]
    Evict,
}

impl<H: Handles> ChannelMsg<H> {
    /// See [`UserMsg::map`].
    #[allow(clippy::result_large_err)]
    pub fn map<K: Handles>(self, map: &mut impl HandleMap<H, K>) -> Result<ChannelMsg<K>, Self> {
        Ok(match self {
            ChannelMsg::Open { kind, reply } => ChannelMsg::Open {
                kind,
                reply: map.reply(reply),
            },
            ChannelMsg::Join {
                user,
                role,
                may_publish,
                offer,
                reply,
                client_node,
            } => ChannelMsg::Join {
                user,
                role,
                may_publish,
                offer,
                reply: map.reply(reply),
                client_node,
            },
            ChannelMsg::MemberMedia {
                user,
                command,
                reply,
            } => ChannelMsg::MemberMedia {
                user,
                command,
                reply: map.reply(reply),
            },
            ChannelMsg::Input(input) => ChannelMsg::Input(input),
            ChannelMsg::MediaFlowing { from } => ChannelMsg::MediaFlowing { from },
            ChannelMsg::Adopt { call } => ChannelMsg::Adopt { call },
            own => return Err(own),
        })
    }
}

/// A wire message is logged as the JSON it travels as.
macro_rules! debug_as_json {
    ($($kind:ident),*) => {$(
        impl std::fmt::Debug for $kind<Wire> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match serde_json::to_string(self) {
                    Ok(json) => f.write_str(&json),
                    Err(_) => f.write_str(concat!(stringify!($kind), "(unserializable)")),
                }
            }
        }
    )*};
}
debug_as_json!(UserMsg, CallMsg, ChannelMsg);

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
