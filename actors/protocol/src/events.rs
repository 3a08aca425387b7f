//! Business events: what an app's business server hears about its users, channels and calls (the admin
//! API's `WatchEvents` stream). Where they are kept is `showcall-ports`' `event_log`.

use serde::{Deserialize, Serialize};
use showcall_machines::{CallId, CallRecord, CallType, ChannelName, Millis, Role, UserId};

use crate::keys::AppId;

/// One thing that happened, for one app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessEvent {
    pub app: AppId,
    /// Unix milliseconds.
    pub at: Millis,
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A session started (a login that did not resume one in its grace period).
    UserOnline {
        user: UserId,
    },
    /// A session ended (logout, expiry, or the grace period passed).
    UserOffline {
        user: UserId,
    },
    /// A member joined a channel (the seed's 103 broadcaster / 105 audience).
    MemberJoined {
        channel: ChannelName,
        user: UserId,
        role: Role,
    },
    /// A member left a channel (the seed's 104 broadcaster / 106 audience).
    MemberLeft {
        channel: ChannelName,
        user: UserId,
        role: Role,
    },
    /// The business server removed a member (and maybe banned it). The member's `MemberLeft` follows
    /// when it was in the channel.
    MemberKicked {
        channel: ChannelName,
        user: UserId,
        ban: Option<crate::bans::Ban>,
    },
    /// A call paused the live room's broadcaster.
    HostPaused {
        channel: ChannelName,
        host: UserId,
        call: CallId,
    },
    /// The broadcaster is live again.
    HostResumed {
        channel: ChannelName,
        host: UserId,
    },
    CallCreated {
        call: CallId,
        caller: UserId,
        callee: UserId,
        call_type: CallType,
        channel: ChannelName,
    },
    /// The callee's client is ringing.
    CallRinging {
        call: CallId,
    },
    CallAccepted {
        call: CallId,
    },
    CallConnected {
        call: CallId,
    },
    /// The billing record: exactly one per call.
    CallEnded {
        record: CallRecord,
    },
    /// A connected call's billing tick (`showcall_machines::call::billing`); none follows `CallEnded`.
    CallBillingTick {
        call: CallId,
        caller: UserId,
        callee: UserId,
        /// 1, 2, 3, … since the connect.
        tick: u64,
        connected_ms: u64,
    },
}

/// An event with its place in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// Increases along the log; resume after it.
    pub cursor: u64,
    pub event: BusinessEvent,
}

/// Why a watch cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// The events after this cursor are no longer kept: some were missed.
    #[error("events after cursor {after} are no longer kept (oldest kept: {oldest})")]
    Expired { after: u64, oldest: u64 },
    /// The watcher fell too far behind the live stream; resume from the cursor it last handled.
    #[error("the watcher fell behind; resume from the last cursor handled")]
    Lagged,
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
}
