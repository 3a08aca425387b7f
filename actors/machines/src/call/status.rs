//! What an operator or business server is shown of a running call (the admin API's `GetCall`).

use serde::{Deserialize, Serialize};

use super::{CallMachine, EndCause, Phase};
use crate::types::Millis;

/// Where a call stands, by the server's authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallPhase {
    /// Created; the business server is asked whether the caller may call (the callee is not rung yet).
    Authorizing,
    /// The callee is being rung.
    Ringing,
    /// Accepted; waiting for both parties' media.
    Connecting,
    Connected,
    Ended,
}

/// A running call's state and times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStatus {
    pub phase: CallPhase,
    pub created_at: Millis,
    pub accepted_at: Option<Millis>,
    pub connected_at: Option<Millis>,
}

impl CallMachine {
    pub fn status(&self) -> CallStatus {
        let (phase, connected_at) = match self.phase {
            Phase::Authorizing { .. } => (CallPhase::Authorizing, None),
            Phase::Ringing { .. } => (CallPhase::Ringing, None),
            Phase::Connecting => (CallPhase::Connecting, None),
            Phase::Connected { since } => (CallPhase::Connected, Some(since)),
            Phase::Ended => (CallPhase::Ended, None),
        };
        CallStatus {
            phase,
            created_at: self.created_at,
            accepted_at: self.accepted_at,
            connected_at,
        }
    }
}

impl EndCause {
    /// The end reason's one word, the same in the billing record (`call_ended.end_reason`), the
    /// `showcall_calls_ended_total{reason}` metric and the call's trace.
    pub fn name(&self) -> &'static str {
        match self {
            EndCause::Cancelled => "cancelled",
            EndCause::Rejected { .. } => "rejected",
            EndCause::Busy => "busy",
            EndCause::Offline => "offline",
            EndCause::Glare => "glare",
            EndCause::Hangup { .. } => "hangup",
            EndCause::Timeout => "timeout",
            EndCause::SessionEnded { .. } => "session_ended",
            EndCause::Terminated { .. } => "terminated",
            EndCause::NodeLost => "node_lost",
            EndCause::Refused { .. } => "refused",
        }
    }
}
