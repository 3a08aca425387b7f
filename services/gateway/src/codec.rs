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

/// The request id of a frame that is not decoded (a rate-limited one), read in constant time: found
/// only when it is the frame's first field, as both SDKs send it — protobuf field 1 first (prost
/// encodes fields in order), or a JSON object starting with `"requestId"` (or `"request_id"`). 0 when
/// it is not there.
pub fn peek_request_id(msg: &Message) -> u64 {
    match msg {
        Message::Text(text) => peek_json(text.as_bytes()).unwrap_or(0),
        Message::Binary(bytes) => peek_protobuf(bytes).unwrap_or(0),
        Message::Ping(_) | Message::Pong(_) | Message::Close(_) => 0,
    }
}

/// Longest id prefix looked at: `{ "request_id" : "18446744073709551615"` with some spaces.
const PEEK_BYTES: usize = 64;

fn peek_protobuf(bytes: &[u8]) -> Option<u64> {
    // Tag of field 1 with the varint wire type.
    let (&tag, mut rest) = bytes.split_first()?;
    if tag != 0x08 {
        return None;
    }
    prost::encoding::decode_varint(&mut rest).ok()
}

fn peek_json(text: &[u8]) -> Option<u64> {
    let text = &text[..text.len().min(PEEK_BYTES)];
    let skip_space =
        |s: &[u8]| -> usize { s.iter().take_while(|b| b.is_ascii_whitespace()).count() };
    let mut at = skip_space(text);
    at += usize::from(*text.get(at)? == b'{');
    at += skip_space(&text[at..]);
    let key = [&br#""requestId""#[..], &br#""request_id""#[..]]
        .into_iter()
        .find(|k| text[at..].starts_with(k))?;
    at += key.len();
    at += skip_space(&text[at..]);
    if text.get(at) != Some(&b':') {
        return None;
    }
    at += 1;
    at += skip_space(&text[at..]);
    // proto3 JSON writes a uint64 as a string; a number is accepted too.
    let quoted = text.get(at) == Some(&b'"');
    at += usize::from(quoted);
    let digits = text[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let end = text.get(at + digits).copied();
    let closed = if quoted {
        end == Some(b'"')
    } else {
        matches!(end, Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
    };
    if digits == 0 || !closed {
        return None;
    }
    std::str::from_utf8(&text[at..at + digits])
        .ok()?
        .parse()
        .ok()
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
        let msg =
            Message::Text(r#"{"requestId":"7","login":{"token":"t","followHome":true}}"#.into());
        let (frame, enc) = decode(&msg, 1024).unwrap().unwrap();
        assert_eq!(enc, Encoding::Json);
        assert_eq!(frame.request_id, 7);
        assert_eq!(
            frame.command,
            Some(Command::Login(Login {
                token: "t".into(),
                follow_home: true,
            }))
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
    fn the_request_id_of_an_undecoded_frame_is_read_when_it_comes_first() {
        use showcall_proto::signal::Ping;
        let frame = ClientFrame {
            request_id: 300,
            command: Some(Command::Ping(Ping {})),
        };
        let binary = Message::Binary(frame.encode_to_vec().into());
        assert_eq!(peek_request_id(&binary), 300);
        for (json, id) in [
            (r#"{"requestId":"7","ping":{}}"#, 7),
            (
                r#" { "request_id" : 18446744073709551615 , "ping":{}}"#,
                u64::MAX,
            ),
            (r#"{"ping":{},"requestId":"7"}"#, 0),
            (r#"{"requestId":"7x"}"#, 0),
            (r#"{"requestId":"18446744073709551616"}"#, 0),
            ("not json", 0),
            ("", 0),
        ] {
            assert_eq!(peek_request_id(&Message::Text(json.into())), id, "{json}");
        }
        assert_eq!(peek_request_id(&Message::Binary(vec![0xff, 1].into())), 0);
        assert_eq!(peek_request_id(&Message::Binary(Vec::new().into())), 0);
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
