//! The messages each actor accepts.
//!
//! Messages between actors carry machine inputs (`Traced<…>`), which are plain serde data with the
//! sender's trace context, so the cluster issue can put them in node-to-node envelopes unchanged. Requests
//! from a client carry a reply port; the cluster issue adds a remote responder beside it.

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};
use showcall_machines::{
    CallInput, CallTimer, ChannelInput, ConnId, Millis, Role, UserId, UserInput, UserTimer,
};

use crate::error::CommandError;
use crate::session::{CommandOk, LoginOk, SessionSink, UserCommand};

/// Where a client command's answer goes.
pub type Responder<T> = RpcReplyPort<Result<T, CommandError>>;

/// W3C trace context of the span that sent a message, so one call is one trace across actors and nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    pub traceparent: Option<String>,
}

/// A machine input with the trace context it was sent under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traced<T> {
    pub payload: T,
    pub trace: TraceContext,
}

impl<T> Traced<T> {
    pub fn new(payload: T) -> Self {
        Self {
            payload,
            trace: TraceContext::default(),
        }
    }
}

/// Messages to a `UserActor`.
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
}

/// Messages to a `CallActor`.
pub enum CallMsg {
    /// A notification from a user actor or the call channel.
    Input(Traced<CallInput>),
    /// A client command forwarded by the user actor; the machine's verdict is the client's answer.
    Command {
        input: CallInput,
        reply: Responder<CommandOk>,
    },
    Timer(CallTimer),
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
}
