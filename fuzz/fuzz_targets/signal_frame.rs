//! A client's signaling frame, as the gateway's connection loop handles it: decoded (binary protobuf, and
//! JSON when the bytes are UTF-8, as a WebSocket text frame would carry them), validated into a domain
//! request, and answered — a refusal mapped to its wire error and encoded in the frame's encoding.
//!
//! Beyond "no panic": a frame that decodes survives a re-encode unchanged, so what the server read is
//! what the client meant in either encoding. (A JSON frame may carry an enum number the schema does not
//! know, which pbjson then refuses to write back; the server never echoes a client's frame, so that one
//! is only skipped.)
#![no_main]

use axum::extract::ws::Message;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use showcall_gateway::codec::{self, Encoding};
use showcall_gateway::{convert, validate};
use showcall_proto::signal::ClientFrame;

/// The node's default `max_frame_bytes`.
const FRAME_LIMIT: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    handle(Message::Binary(data.to_vec().into()));
    if let Ok(text) = std::str::from_utf8(data) {
        handle(Message::Text(text.into()));
    }
});

fn handle(message: Message) {
    let (frame, encoding) = match codec::decode(&message, FRAME_LIMIT) {
        Ok(Some(decoded)) => decoded,
        Ok(None) => return,
        Err((error, encoding)) => {
            let refusal = convert::error(
                showcall_proto::signal::ErrorCode::MalformedFrame,
                error.to_string(),
            );
            codec::encode(&convert::response(0, Err(refusal)), encoding);
            return;
        }
    };
    assert_round_trips(&frame, encoding);
    let request_id = frame.request_id;
    let outcome = match validate::validate(frame) {
        Ok(_request) => Ok(None),
        Err(invalid) => Err(convert::invalid(&invalid)),
    };
    codec::encode(&convert::response(request_id, outcome), encoding);
}

fn assert_round_trips(frame: &ClientFrame, encoding: Encoding) {
    let again = match encoding {
        Encoding::Binary => ClientFrame::decode(frame.encode_to_vec().as_slice())
            .expect("a decoded binary frame re-encodes to one that decodes"),
        Encoding::Json => {
            let Ok(text) = serde_json::to_string(frame) else {
                return;
            };
            serde_json::from_str(&text)
                .expect("a decoded json frame re-encodes to one that decodes")
        }
    };
    assert_eq!(&again, frame, "the frame changed in a round trip");
}
