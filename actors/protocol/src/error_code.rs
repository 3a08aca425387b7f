//! One code per way a command can fail, and its one mapping to each wire: the signaling protocol's
//! `ErrorCode` (clients) and the gRPC status code (the business API). A refusal type says which code it
//! is ([`CommandError::code`](crate::CommandError::code)); nothing else maps refusals to a wire.
//!
//! The two wires answer different callers, so a code may read differently on each: a closed session is
//! `UNAUTHENTICATED` to the client whose session it was (log in again), and `NOT_FOUND` to a business
//! server that asked about that user (there is no such session any more; asking again will not help).

use showcall_proto::signal::ErrorCode as SignalCode;
use tonic::Code as GrpcCode;

/// See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    NotPrepared,
    AlreadyInCall,
    CallToSelf,
    NoSuchCall,
    /// Not allowed in the call's current state or for this party's role in it.
    NotAllowed,
    NotAParticipant,
    NotInChannel,
    ChannelHasBroadcaster,
    PermissionDenied,
    InvalidArgument,
    Banned,
    /// The session the command was for has ended.
    SessionClosed,
    /// Nothing changed; the same command may succeed later (an actor moving between nodes, a node that
    /// did not answer in time, no media router).
    Unavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::NotPrepared,
        ErrorCode::AlreadyInCall,
        ErrorCode::CallToSelf,
        ErrorCode::NoSuchCall,
        ErrorCode::NotAllowed,
        ErrorCode::NotAParticipant,
        ErrorCode::NotInChannel,
        ErrorCode::ChannelHasBroadcaster,
        ErrorCode::PermissionDenied,
        ErrorCode::InvalidArgument,
        ErrorCode::Banned,
        ErrorCode::SessionClosed,
        ErrorCode::Unavailable,
    ];

    /// The code a signaling client is answered with.
    pub fn signal(self) -> SignalCode {
        match self {
            ErrorCode::NotPrepared => SignalCode::NotPrepared,
            ErrorCode::AlreadyInCall => SignalCode::AlreadyInCall,
            ErrorCode::CallToSelf => SignalCode::CallToSelf,
            ErrorCode::NoSuchCall => SignalCode::NoSuchCall,
            ErrorCode::NotAllowed => SignalCode::NotAllowed,
            ErrorCode::NotAParticipant => SignalCode::NotAParticipant,
            ErrorCode::NotInChannel => SignalCode::NotInChannel,
            ErrorCode::ChannelHasBroadcaster => SignalCode::ChannelHasBroadcaster,
            ErrorCode::PermissionDenied => SignalCode::PermissionDenied,
            ErrorCode::InvalidArgument => SignalCode::InvalidArgument,
            ErrorCode::Banned => SignalCode::Banned,
            ErrorCode::SessionClosed => SignalCode::Unauthenticated,
            ErrorCode::Unavailable => SignalCode::Unavailable,
        }
    }

    /// The status code a business server is answered with.
    pub fn grpc(self) -> GrpcCode {
        match self {
            ErrorCode::NotPrepared
            | ErrorCode::AlreadyInCall
            | ErrorCode::NotAllowed
            | ErrorCode::NotInChannel
            | ErrorCode::ChannelHasBroadcaster => GrpcCode::FailedPrecondition,
            ErrorCode::CallToSelf | ErrorCode::InvalidArgument => GrpcCode::InvalidArgument,
            ErrorCode::NoSuchCall | ErrorCode::SessionClosed => GrpcCode::NotFound,
            ErrorCode::NotAParticipant | ErrorCode::PermissionDenied | ErrorCode::Banned => {
                GrpcCode::PermissionDenied
            }
            ErrorCode::Unavailable => GrpcCode::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_is_its_own_signaling_code() {
        let distinct: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.signal()).collect();
        assert_eq!(distinct.len(), ErrorCode::ALL.len());
        assert!(!distinct.contains(&SignalCode::Unspecified));
    }

    #[test]
    fn only_unavailable_invites_a_retry_on_grpc() {
        for code in ErrorCode::ALL {
            let retry = matches!(code.grpc(), GrpcCode::Unavailable | GrpcCode::Aborted);
            assert_eq!(retry, code == ErrorCode::Unavailable, "{code:?}");
        }
    }
}
