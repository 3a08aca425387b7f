//! Actor addresses: which app, which kind, which id. Placement hashes these.

use std::fmt;

use serde::{Deserialize, Serialize};
use showcall_machines::{CallId, ChannelName, UserId};

/// An app (tenant). Users and channels are scoped to their app; call ids are globally unique.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppId(pub String);

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The address of one actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActorKey {
    User(AppId, UserId),
    Call(AppId, CallId),
    Channel(AppId, ChannelName),
}

impl fmt::Display for ActorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorKey::User(a, u) => write!(f, "user/{a}/{u}"),
            ActorKey::Call(a, c) => write!(f, "call/{a}/{c}"),
            ActorKey::Channel(a, c) => write!(f, "channel/{a}/{c}"),
        }
    }
}
