//! Why the server ends a signaling connection, and the WebSocket close frame that tells the client.
//!
//! | code | reason (text) | when |
//! |---|---|---|
//! | 1000 | the session's close reason (`SESSION_CLOSE_REASON_REPLACED`, ...) | the session ended it: logout, another login, token expiry, node lost (after the `SessionClosed` event) |
//! | 1007 | `text frame is not valid UTF-8` | a text frame's payload is not UTF-8 (RFC 6455 §8.1) |
//! | 1009 | `frame of N bytes exceeds the limit of M bytes` | a frame over the transport limit, 4 × `max_frame_bytes` (frames between the two get MALFORMED_FRAME and the connection goes on) |
//! | 1002 | `protocol error: ...` | any other WebSocket protocol violation (unmasked frame, bad opcode, ...) |
//! | 1012 | `server shutting down; reconnect to resume` | the node is stopping |
//! | 4008 | `slow consumer: outbound backlog over N frames` | the client stopped reading: its outbox ([`showcall_protocol::inbox`]) filled up |
//!
//! After a close frame the server drops the connection without waiting for the client's answering close
//! (it waits at most [`CLOSE_WRITE_TIMEOUT`] for the frame itself to be written). 1007, 1009 and 1002
//! end a stream the server can no longer read; 4008 one it can no longer write to in time. A client
//! that sees 4008 or 1012 logs in again and resumes its session within the grace period.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use showcall_machines::user::CloseReason;

use crate::convert;

/// RFC 6455: a normal close.
pub const NORMAL: u16 = 1000;
/// RFC 6455: the endpoint received a frame it cannot read (a protocol violation).
pub const PROTOCOL_ERROR: u16 = 1002;
/// RFC 6455: a text frame whose payload is not UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// RFC 6455: a frame too big to process.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// IANA registry: the server is restarting; reconnect.
pub const SERVICE_RESTART: u16 = 1012;
/// showcall (4000–4999 is for applications): the client did not read what it was sent fast enough.
pub const SLOW_CONSUMER: u16 = 4008;

/// Longest the server waits for its close frame to be written; a client that does not read gets its
/// TCP connection dropped instead.
pub const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The client closed the connection, or its socket failed: nothing more can be written.
    ClientGone,
    /// The session ended it (logout, replaced, token expiry, node lost); its `SessionClosed` went first.
    SessionClosed(CloseReason),
    /// The node is shutting down.
    Shutdown,
    /// The outbox overflowed.
    SlowConsumer,
    /// A frame the server cannot read.
    Unreadable { code: u16, reason: String },
}

impl End {
    /// The close frame the client is sent, if it can still be sent one; `outbox_frames` is the
    /// connection's outbox capacity (the slow consumer's reason names it).
    pub(crate) fn close_frame(&self, outbox_frames: usize) -> Option<Message> {
        let (code, reason) = match self {
            End::ClientGone => return None,
            End::SessionClosed(reason) => {
                (NORMAL, convert::close_reason(*reason).as_str_name().into())
            }
            End::Shutdown => (
                SERVICE_RESTART,
                "server shutting down; reconnect to resume".to_owned(),
            ),
            End::SlowConsumer => (
                SLOW_CONSUMER,
                format!("slow consumer: outbound backlog over {outbox_frames} frames"),
            ),
            End::Unreadable { code, reason } => (*code, reason.clone()),
        };
        Some(Message::Close(Some(CloseFrame {
            code,
            reason: truncated(reason).into(),
        })))
    }
}

/// A close frame's reason is at most 123 bytes (RFC 6455 §5.5: control frame payload ≤ 125, minus the
/// code); cut at a character boundary.
fn truncated(mut reason: String) -> String {
    const MAX: usize = 123;
    if reason.len() > MAX {
        let mut end = MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_reason_fits_a_control_frame() {
        let long = End::Unreadable {
            code: PROTOCOL_ERROR,
            reason: "é".repeat(200),
        };
        let Some(Message::Close(Some(frame))) = long.close_frame(1) else {
            panic!("a close frame");
        };
        assert!(frame.reason.len() <= 123);
        let Some(Message::Close(Some(frame))) = End::SlowConsumer.close_frame(1024) else {
            panic!("a close frame");
        };
        assert_eq!(frame.code, SLOW_CONSUMER);
        assert_eq!(
            frame.reason.as_str(),
            "slow consumer: outbound backlog over 1024 frames"
        );
        assert!(End::ClientGone.close_frame(1024).is_none());
    }
}
