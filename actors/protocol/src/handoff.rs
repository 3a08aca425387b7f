//! What moves between nodes with a partition (leave, join): each session's and connected call's state.
//! The moving itself is the runtime's (`showcall-runtime`'s `handoff`).

use serde::{Deserialize, Serialize};
use showcall_machines::user::UserSnapshot;
use showcall_machines::{CallSnapshot, ConnId};

use crate::handles::SinkTo;
use crate::keys::AppId;

/// One user session on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserHandoff {
    pub app: AppId,
    pub snapshot: UserSnapshot,
    /// The session's connections, wherever they are held.
    pub sinks: Vec<(ConnId, SinkTo)>,
    pub online: bool,
}

/// One connected call on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallHandoff {
    pub app: AppId,
    pub snapshot: CallSnapshot,
}

/// What a partition's owner hands its next owner.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Handoff {
    pub users: Vec<UserHandoff>,
    pub calls: Vec<CallHandoff>,
}

/// How a handoff went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandoffOutcome {
    /// The target runs them now; the local ones stopped.
    Moved { users: usize, calls: usize },
    /// Not now (a call is still connecting, or an actor did not answer): nothing moved; try again.
    NotNow(String),
    /// The target did not take them: nothing moved.
    Failed(String),
}
