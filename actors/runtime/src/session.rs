//! What the gateway sees of the actors: log in, send commands, report a lost connection, and receive
//! numbered events through a [`SessionSink`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use showcall_machines::channel::ChannelView;
use showcall_machines::user::{ActiveCall, CallCommand, CloseReason, Prepared, Pushed};
use showcall_machines::{CallId, CallType, ChannelName, ConnId, Millis, Role, UserId};

use crate::error::CommandError;
use crate::hub::Hub;
use crate::keys::AppId;

/// How long a command may wait for its actors before the client is told UNAVAILABLE.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// What a session's connection receives from its user actor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Outbound {
    /// Boxed so an idle session's channel stays small.
    Event(Box<Pushed>),
    /// Close the connection (its SessionClosed event was sent just before).
    Close(CloseReason),
}

impl Outbound {
    /// A connection's last word before the server closes it: an unnumbered (seq 0) `SessionClosed`
    /// saying why — it is not part of the session's numbered stream (which may go on elsewhere).
    pub fn closing_notice(at: showcall_machines::Millis, reason: CloseReason) -> Outbound {
        Outbound::Event(Box::new(Pushed {
            seq: 0,
            at,
            event: showcall_machines::user::ClientEvent::SessionClosed { reason },
        }))
    }
}

/// A client command, validated at the edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserCommand {
    Logout,
    RenewToken {
        token_expires_at: Millis,
    },
    Prepare(Prepared),
    /// Stop taking calls (CallAPI deinitialize).
    Unprepare,
    Call {
        callee: UserId,
        call_type: CallType,
        extension: BTreeMap<String, String>,
        timeout_ms: Option<u64>,
        /// The span of the client's request (the gateway's `signal.call`): the call's trace continues it.
        #[serde(default)]
        trace: crate::messages::TraceContext,
    },
    CallCommand {
        call_id: CallId,
        command: CallCommand,
    },
    JoinChannel {
        channel: ChannelName,
        role: Role,
        /// The token's publish grant.
        may_publish: bool,
        /// SDP offer for a media session.
        offer: Option<String>,
    },
    LeaveChannel {
        channel: ChannelName,
    },
    /// The answer to the router's renegotiation offer for this user's session in `channel`.
    AnswerMedia {
        channel: ChannelName,
        sdp_answer: String,
        revision: u64,
    },
}

/// A command's successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOk {
    Done,
    CallCreated {
        call_id: CallId,
        channel: ChannelName,
    },
    Joined {
        channel: ChannelName,
        role: Role,
        view: ChannelView,
        /// The media session's SDP answer, when the join carried an offer.
        sdp_answer: Option<String>,
    },
}

/// A successful login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginOk {
    pub resumed: bool,
    pub token_expires_at: Millis,
    pub call: Option<ActiveCall>,
    pub channels: Vec<ChannelName>,
    pub grace_ms: u64,
}

/// One logged-in connection's handle on its user actor.
#[derive(Clone, Debug)]
pub struct Session {
    pub(crate) hub: Hub,
    pub(crate) app: AppId,
    pub(crate) user: UserId,
    pub(crate) conn: ConnId,
}

impl Session {
    pub fn app(&self) -> &AppId {
        &self.app
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Sends a command to the user's actor (on whichever node owns it) and waits for its answer.
    pub async fn command(&self, command: UserCommand) -> Result<CommandOk, CommandError> {
        self.hub
            .user_command(&self.app, &self.user, self.conn, command)
            .await
    }

    /// The connection dropped: the session enters its grace period.
    pub fn connection_lost(&self) {
        // A stopped actor means the session already ended; nothing to tell.
        self.hub.connection_lost(&self.app, &self.user, self.conn);
    }
}

/// Turns a ractor call's layers of failure into one answer.
pub(crate) fn flatten<T, E>(
    result: Result<ractor::rpc::CallResult<Result<T, CommandError>>, ractor::MessagingErr<E>>,
) -> Result<T, CommandError> {
    match result {
        Ok(ractor::rpc::CallResult::Success(answer)) => answer,
        Ok(ractor::rpc::CallResult::Timeout) => Err(CommandError::Unavailable(
            "the server did not answer in time".into(),
        )),
        Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(CommandError::SessionClosed),
    }
}
