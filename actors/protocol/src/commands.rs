//! What a client asks its user actor ([`UserCommand`]) and is answered ([`CommandOk`], [`LoginOk`]),
//! and what its connection receives ([`Outbound`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use showcall_machines::channel::ChannelView;
use showcall_machines::user::{ActiveCall, CallCommand, CloseReason, Prepared, Pushed};
use showcall_machines::{CallId, CallType, ChannelName, Millis, Role, UserId};

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
        trace: crate::trace::TraceContext,
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
    /// An offer restarting ICE on this user's media session in `channel` (its network changed); answered
    /// with [`CommandOk::IceRestarted`].
    RestartIce {
        channel: ChannelName,
        sdp_offer: String,
    },
    /// The best simulcast layer this user's session in `channel` receives (wire 1.2).
    SetVideoLayer {
        channel: ChannelName,
        max_layer: VideoLayer,
    },
}

/// A simulcast layer, best first: what a receiver may cap its video at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VideoLayer {
    High,
    Medium,
    Low,
}

impl VideoLayer {
    /// Its rank among a publisher's layers (0: the best), as the media router counts them.
    pub fn rank(self) -> u8 {
        match self {
            VideoLayer::High => 0,
            VideoLayer::Medium => 1,
            VideoLayer::Low => 2,
        }
    }
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
    /// The router's answer to an ICE restart offer.
    IceRestarted {
        sdp_answer: String,
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
