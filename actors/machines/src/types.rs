//! Domain vocabulary shared by the machines: ids, call states, reasons and events.
//!
//! The numbers of [`CallState`], [`StateReason`] and [`CallEvent`] are the CallAPI values apps know
//! (see CALLAPI.md); showcall's additions are >= 100. The gateway maps them one to one onto the proto
//! enums, so they are kept in the same order and with the same names.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Unix time in milliseconds. Machines never read a clock: every input comes with `now`.
pub type Millis = u64;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

id_type!(
    /// A user of one app (the token's `sub`). Unique within its app.
    UserId
);
id_type!(
    /// A call, minted by the server: unguessable and never reused.
    CallId
);
id_type!(
    /// A channel: a live room named by the app, or a private call channel minted by the server.
    ChannelName
);

/// Prefix reserved for channels the server mints for calls; apps cannot open live rooms with it, so a
/// join for such a name reaches either the call's own channel or nothing.
pub const CALL_CHANNEL_PREFIX: &str = "call-";

impl ChannelName {
    /// True when this is a server-minted private call channel.
    pub fn is_call_channel(&self) -> bool {
        self.0.starts_with(CALL_CHANNEL_PREFIX)
    }
}

/// One live client connection of a user (a WebSocket), numbered by the node that accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u64);

/// Video or audio call (CallAPI CallType).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallType {
    Video,
    Audio,
}

impl CallType {
    /// The reason of the callee's `calling` state and the event beside it: `remoteVideoCall` or
    /// `remoteAudioCall`.
    pub fn ringing_callee(self) -> (StateReason, CallEvent) {
        match self {
            CallType::Video => (StateReason::RemoteVideoCall, CallEvent::RemoteVideoCall),
            CallType::Audio => (StateReason::RemoteAudioCall, CallEvent::RemoteAudioCall),
        }
    }
}

/// A participant's role in a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    Caller,
    Callee,
}

impl Side {
    /// The other participant.
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }

    /// Index into per-side arrays.
    pub fn index(self) -> usize {
        match self {
            Side::Caller => 0,
            Side::Callee => 1,
        }
    }
}

/// CallAPI CallStateType.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallState {
    Idle = 0,
    Prepared = 1,
    Calling = 2,
    Connecting = 3,
    Connected = 4,
    Failed = 10,
}

/// CallAPI CallStateReason, plus showcall's reasons (>= 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateReason {
    None = 0,
    JoinRtcFailed = 1,
    MessageFailed = 4,
    LocalRejected = 5,
    RemoteRejected = 6,
    RemoteAccepted = 7,
    LocalAccepted = 8,
    LocalHangup = 9,
    RemoteHangup = 10,
    LocalCancelled = 11,
    RemoteCancelled = 12,
    RecvRemoteFirstFrame = 13,
    CallingTimeout = 14,
    CancelByCallerRecall = 15,
    RemoteCallBusy = 17,
    RemoteCallingTimeout = 18,
    LocalVideoCall = 30,
    LocalAudioCall = 31,
    RemoteVideoCall = 32,
    RemoteAudioCall = 33,
    /// The callee is not logged in or has not prepared for calls.
    RemoteOffline = 100,
    /// The peer's connection dropped and it did not come back within the grace period.
    RemoteLeft = 101,
    /// This user's own session was gone past the grace period.
    LocalLeft = 102,
    /// Both users called each other at once; this user's outgoing call gave way.
    GlareResolved = 103,
    /// Connected because both parties joined the call channel.
    BothJoined = 104,
    /// This user's token expired during the call.
    TokenExpired = 105,
    /// The peer logged out during the call.
    RemoteLoggedOut = 106,
    /// The business server or an operator ended the call.
    EndedByServer = 107,
    /// The app's business server refused the call before it rang, or did not answer in time (the event
    /// reason carries its reason, or "admission timed out").
    RefusedByPolicy = 108,
    /// The call goes on, its private channel moved to another node: join it again (`info.from_room`).
    MediaMoved = 109,
}

/// CallAPI CallEvent, plus showcall's events (>= 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallEvent {
    None = 0,
    Deinitialize = 1,
    CallingTimeout = 3,
    RemoteCallingTimeout = 4,
    JoinRtcSuccessed = 5,
    StateMismatch = 9,
    JoinRtcStart = 10,
    RemoteUserRecvCall = 99,
    LocalRejected = 100,
    RemoteRejected = 101,
    RemoteAccepted = 103,
    LocalAccepted = 104,
    LocalHangup = 105,
    RemoteHangup = 106,
    RemoteJoined = 107,
    RemoteLeft = 108,
    LocalCancelled = 109,
    RemoteCancelled = 110,
    LocalJoined = 111,
    LocalLeft = 112,
    RecvRemoteFirstFrame = 113,
    RemoteCallBusy = 117,
    CaptureFirstLocalVideoFrame = 119,
    PublishFirstLocalVideoFrame = 120,
    PublishFirstLocalAudioFrame = 130,
    LocalVideoCall = 140,
    LocalAudioCall = 141,
    RemoteVideoCall = 142,
    RemoteAudioCall = 143,
    /// The peer reconnected within the grace period.
    RemoteReconnected = 200,
    /// The callee is offline or not prepared.
    RemoteOffline = 201,
}

/// What both parties see of a call (CallAPI eventInfo).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    pub call_id: CallId,
    /// The caller.
    pub from_user: UserId,
    /// The call's private channel (CallAPI fromRoomId).
    pub from_room: ChannelName,
    /// The callee (CallAPI remoteUserId).
    pub remote_user: UserId,
    pub call_type: CallType,
    /// The peer's user extension merged with the call extension.
    pub extension: BTreeMap<String, String>,
    /// Milestones (Unix ms) by name: call, ringing, accept, caller_joined, callee_joined, connected, end.
    pub timing: BTreeMap<String, Millis>,
}

/// A member's role in a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Audience,
    Broadcaster,
}

/// Whether a member's media is forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublishState {
    /// Not a publisher (audience).
    None,
    Publishing,
    /// A broadcaster in a private call: its live media is held back; the channel stays open.
    Paused,
}

/// When a host's live publication is paused for a 1v1 call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PauseAt {
    /// When the host accepts (default): a rejected or missed call never interrupts the live room.
    #[default]
    Accept,
    /// As soon as the call rings (the seed demo's behaviour).
    Ringing,
}
