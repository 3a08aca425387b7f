//! What a node's actors are doing now, as the business-server API asks it: the entries each actor
//! publishes and the questions nodes ask each other's directories (`showcall-ports`' `directory` keeps
//! them).

use serde::{Deserialize, Serialize};
use showcall_machines::call::CallStatus;
use showcall_machines::{CallId, CallType, ChannelName, PublishState, Role, UserId};

use crate::keys::{ActorKey, AppId};

/// Most entries one page may hold.
pub const MAX_PAGE: usize = 1000;

pub use showcall_machines::user::Presence;

/// One user with a session on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    pub user: UserId,
    pub presence: Presence,
    /// The connection dropped and the grace period runs.
    pub away: bool,
    /// Takes calls (prepared).
    pub prepared: bool,
    pub call: Option<UserCall>,
    pub channels: Vec<(ChannelName, Role)>,
}

impl UserEntry {
    /// A host a viewer can call right now: live, taking calls, connected, not in a call.
    pub fn is_available_host(&self) -> bool {
        self.presence == Presence::Live && self.prepared && !self.away && self.call.is_none()
    }
}

/// The user's side of its current call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCall {
    pub id: CallId,
    pub peer: UserId,
    /// The CallAPI state number the user's client shows (calling 2, connecting 3, connected 4).
    pub state: u32,
}

/// One channel open on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEntry {
    pub channel: ChannelName,
    /// The call whose private channel this is; `None` for a live room.
    pub call: Option<CallId>,
    pub members: Vec<MemberEntry>,
    pub broadcaster_paused: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEntry {
    pub user: UserId,
    pub role: Role,
    pub publish: PublishState,
}

/// One call whose actor runs on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEntry {
    pub app: AppId,
    pub id: CallId,
    pub caller: UserId,
    pub callee: UserId,
    pub channel: ChannelName,
    pub call_type: CallType,
    pub status: CallStatus,
}

/// A question one node answers from its directory (it crosses nodes: serde data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryQuery {
    User {
        app: AppId,
        user: UserId,
    },
    /// Users after `after` in id order, at most `limit`; only available hosts when `hosts_only`.
    Users {
        app: AppId,
        after: Option<UserId>,
        limit: usize,
        hosts_only: bool,
    },
    Channel {
        app: AppId,
        channel: ChannelName,
    },
    /// Live rooms after `after` in name order, at most `limit`.
    LiveChannels {
        app: AppId,
        after: Option<ChannelName>,
        limit: usize,
    },
    Call {
        app: AppId,
        id: CallId,
    },
}

impl DirectoryQuery {
    /// The one actor the question is about, when it is about one (its owner answers it).
    pub fn key(&self) -> Option<ActorKey> {
        match self {
            DirectoryQuery::User { app, user } => Some(ActorKey::User(app.clone(), user.clone())),
            DirectoryQuery::Call { app, id } => Some(ActorKey::Call(app.clone(), id.clone())),
            _ => None,
        }
    }
}

/// The answer to a [`DirectoryQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryAnswer {
    User(Option<UserEntry>),
    Users(Vec<UserEntry>),
    Channel(Option<ChannelEntry>),
    Channels(Vec<ChannelEntry>),
    Call(Option<CallEntry>),
}
