//! The one error type of the SDK.
//!
//! Apps branch on the variant, and for [`SdkError::Refused`] on the server's [`ErrorCode`]; the messages are
//! for logs only (the server's are lowercase and may change).

use showcall_proto::signal::ErrorCode;

/// Why an SDK operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdkError {
    /// The server answered the command with a typed error. The server changed nothing.
    #[error("refused by server: {} ({message})", code.as_str_name())]
    Refused {
        /// The server's reason; apps branch on this.
        code: ErrorCode,
        /// Human-readable detail from the server.
        message: String,
    },
    /// The connection is closed (or closed while the command waited for its answer). Whether a command that
    /// was in flight took effect is unknown; the server's state (login again, read the snapshot) tells.
    #[error("disconnected from the signaling server")]
    Disconnected,
    /// The transport failed (connect, I/O, WebSocket handshake).
    #[error("transport error: {0}")]
    Transport(String),
    /// The server sent something this SDK does not understand (e.g. a success Response without the result
    /// the command must return).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A `CallApi` method was used before `initialize` (or after `deinitialize`).
    #[error("call api is not initialized")]
    NotInitialized,
    /// A call command needed the current call, and there is none (or it is with another user).
    #[error("no call in progress")]
    NoCall,
}

impl SdkError {
    /// The server's error code when the command was refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            SdkError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Builds [`SdkError::Refused`] from the wire error. Unknown codes (a newer server) map to
    /// [`ErrorCode::Unspecified`] so old SDKs still fail cleanly.
    pub(crate) fn refused(err: showcall_proto::signal::Error) -> Self {
        SdkError::Refused {
            code: ErrorCode::try_from(err.code).unwrap_or(ErrorCode::Unspecified),
            message: err.message,
        }
    }
}
