//! Frame encoding: one protobuf schema, two encodings. Browsers send WebSocket text frames with the
//! proto3 JSON mapping (generated serde impls, unknown fields refused); the Rust SDK sends binary frames
//! with the protobuf encoding. Answers go back in the encoding of the frame they answer.

use axum::extract::ws::Message;
use prost::Message as _;
use showcall_proto::signal::{ClientFrame, ServerFrame};

/// How a frame was (or is to be) encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Binary,
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("invalid json frame: {0}")]
    Json(String),
    #[error("invalid protobuf frame: {0}")]
    Protobuf(String),
}

/// Decodes a data frame. `Ok(None)` for control frames (ping/pong/close), which carry no command.
pub fn decode(
    msg: &Message,
    limit: usize,
) -> Result<Option<(ClientFrame, Encoding)>, (DecodeError, Encoding)> {
    match msg {
        Message::Text(text) => {
            let text = text.as_str();
            if text.len() > limit {
                return Err((
                    DecodeError::TooLarge {
                        size: text.len(),
                        limit,
                    },
                    Encoding::Json,
                ));
            }
            serde_json::from_str::<ClientFrame>(text)
                .map(|f| Some((f, Encoding::Json)))
                .map_err(|e| (DecodeError::Json(e.to_string()), Encoding::Json))
        }
        Message::Binary(bytes) => {
            if bytes.len() > limit {
                return Err((
                    DecodeError::TooLarge {
                        size: bytes.len(),
                        limit,
                    },
                    Encoding::Binary,
                ));
            }
            ClientFrame::decode(bytes.as_ref())
                .map(|f| Some((f, Encoding::Binary)))
                .map_err(|e| (DecodeError::Protobuf(e.to_string()), Encoding::Binary))
        }
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => Ok(None),
    }
}

/// Encodes a server frame.
pub fn encode(frame: &ServerFrame, encoding: Encoding) -> Message {
    match encoding {
        Encoding::Json => {
            // The generated serde impls cannot fail on well-formed messages; an empty object is the
            // safe fallback if they ever did.
            let text = serde_json::to_string(frame).unwrap_or_else(|_| "{}".to_owned());
            Message::Text(text.into())
        }
        Encoding::Binary => Message::Binary(frame.encode_to_vec().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use showcall_proto::signal::{Login, client_frame::Command};

    #[test]
    fn json_frame_round_trips_with_camel_case_fields() {
        let msg = Message::Text(r#"{"requestId":"7","login":{"token":"t"}}"#.into());
        let (frame, enc) = decode(&msg, 1024).unwrap().unwrap();
        assert_eq!(enc, Encoding::Json);
        assert_eq!(frame.request_id, 7);
        assert_eq!(
            frame.command,
            Some(Command::Login(Login { token: "t".into() }))
        );
    }

    #[test]
    fn json_unknown_fields_are_refused() {
        let msg = Message::Text(r#"{"requestId":"7","login":{"token":"t","admin":true}}"#.into());
        assert!(matches!(
            decode(&msg, 1024),
            Err((DecodeError::Json(_), Encoding::Json))
        ));
    }

    #[test]
    fn oversized_frames_are_refused_before_parsing() {
        let msg = Message::Binary(vec![0u8; 2048].into());
        assert!(matches!(
            decode(&msg, 1024),
            Err((DecodeError::TooLarge { .. }, Encoding::Binary))
        ));
    }

    #[test]
    fn garbage_binary_is_a_decode_error() {
        let msg = Message::Binary(vec![0xff, 0xff, 0xff].into());
        assert!(matches!(
            decode(&msg, 1024),
            Err((DecodeError::Protobuf(_), _))
        ));
    }
}
