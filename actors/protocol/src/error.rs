//! The one error type client commands (and the business API's orders) fail with. Each refusal is one
//! [`ErrorCode`], which maps it to either wire (`crate::error_code`); here it only says what went wrong.

use showcall_machines::{CallError, ChannelError, UserError};
use thiserror::Error;

use crate::error_code::ErrorCode;

/// A refused client command. Nothing changed on the server.
#[derive(Clone, Debug, PartialEq, Eq, Error, serde::Serialize, serde::Deserialize)]
pub enum CommandError {
    #[error("prepare for calls first")]
    NotPrepared,
    #[error("already in a call")]
    AlreadyInCall,
    #[error("cannot call yourself")]
    CallToSelf,
    #[error("no such call for this user")]
    NoSuchCall,
    #[error("{0}")]
    NotAllowed(String),
    #[error("only the two participants of the call may join its channel")]
    NotAParticipant,
    #[error("not in channel")]
    NotInChannel,
    #[error("the channel already has a broadcaster")]
    HasBroadcaster,
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// The business server banned this user from the channel (or from publishing in it).
    #[error("{0}")]
    Banned(String),
    #[error("session is closed")]
    SessionClosed,
    #[error("{0}")]
    Unavailable(String),
}

impl CommandError {
    /// The code this refusal is on either wire.
    pub fn code(&self) -> ErrorCode {
        match self {
            CommandError::NotPrepared => ErrorCode::NotPrepared,
            CommandError::AlreadyInCall => ErrorCode::AlreadyInCall,
            CommandError::CallToSelf => ErrorCode::CallToSelf,
            CommandError::NoSuchCall => ErrorCode::NoSuchCall,
            CommandError::NotAllowed(_) => ErrorCode::NotAllowed,
            CommandError::NotAParticipant => ErrorCode::NotAParticipant,
            CommandError::NotInChannel => ErrorCode::NotInChannel,
            CommandError::HasBroadcaster => ErrorCode::ChannelHasBroadcaster,
            CommandError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            CommandError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            CommandError::Banned(_) => ErrorCode::Banned,
            CommandError::SessionClosed => ErrorCode::SessionClosed,
            CommandError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

impl From<UserError> for CommandError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::NotPrepared => CommandError::NotPrepared,
            UserError::AlreadyInCall => CommandError::AlreadyInCall,
            UserError::CallToSelf => CommandError::CallToSelf,
            UserError::NoSuchCall => CommandError::NoSuchCall,
            UserError::NotInChannel => CommandError::NotInChannel,
            UserError::NotThisConnection | UserError::Closed => CommandError::SessionClosed,
        }
    }
}

impl From<CallError> for CommandError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotParticipant | CallError::Ended => CommandError::NoSuchCall,
            other @ (CallError::NotAllowed { .. } | CallError::Unexpected { .. }) => {
                CommandError::NotAllowed(other.to_string())
            }
        }
    }
}

impl From<ChannelError> for CommandError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::NotAParticipant | ChannelError::Closed => CommandError::NotAParticipant,
            ChannelError::HasBroadcaster => CommandError::HasBroadcaster,
            ChannelError::PublishNotGranted => CommandError::PermissionDenied(e.to_string()),
            ChannelError::NotInChannel => CommandError::NotInChannel,
        }
    }
}
