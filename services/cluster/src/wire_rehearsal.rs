//! Rehearsing a rolling upgrade: a node that writes its link frames as a node of the **next minor**
//! wire version would (config `rehearse_next_wire_minor`; for upgrade tests, never in production).
//!
//! The next minor does not exist yet, but what it may send is fixed by the compatibility rule
//! (`showcall_protocol::wire`): a higher minor in the frame, fields this release does not know, and
//! message kinds it does not know. A rehearsing node sends all three — every frame stamped minor + 1
//! with a field added to the envelope, to its body and to the message inside, and once per link stream a
//! frame of an unknown kind — so a cluster of it and nodes of this release shows whether the rule holds
//! where it matters: the call flow across nodes goes on, and the unknown kind is dropped and counted
//! (`showcall_node_link_dropped_total{reason="unknown_kind"}`).

use serde_json::Value;
use showcall_proto::node as pb;
use showcall_protocol::wire::WIRE_MINOR;

/// The field a rehearsing node adds at each level (a struct's field name, never a map's key: added to
/// a map such as a call's extension it would be data, not an unknown field).
const ADDED_FIELD: &str = "added_in_next_minor";

/// `frame` as the next minor would write it: minor + 1, and an unknown field in the envelope, its body
/// and the message in the body.
pub fn as_next_minor(mut frame: pb::Envelope) -> pb::Envelope {
    frame.wire_minor = WIRE_MINOR + 1;
    let Ok(mut envelope) = serde_json::from_slice::<Value>(&frame.payload) else {
        return frame;
    };
    add_field(&mut envelope);
    // `{"body": {"User": {"app", "user", "msg": {"Command": {...}}}}}`: the body's variant is a
    // struct, and so is the message variant when it has named fields.
    if let Some(body) = envelope.get_mut("body").and_then(only_variant) {
        add_field(body);
        if let Some(msg) = body.get_mut("msg").and_then(only_variant) {
            add_field(msg);
        }
    }
    frame.payload = serde_json::to_vec(&envelope).expect("JSON values serialize");
    frame
}

/// A frame of a message kind this release does not know, from `from` (sent once per link stream).
pub fn unknown_kind(from: &str) -> pb::Envelope {
    let payload = serde_json::json!({
        "from": from,
        "body": { "Rehearsal": { "note": "a message kind added in the next minor" } },
    });
    pb::Envelope {
        from_node: from.to_owned(),
        actor_key: "rehearsal".into(),
        payload: serde_json::to_vec(&payload).expect("JSON values serialize"),
        wire_major: showcall_protocol::wire::WIRE_MAJOR,
        wire_minor: WIRE_MINOR + 1,
        trace_context: Default::default(),
    }
}

/// The value of an externally tagged enum's variant with fields (`{"Variant": {...}}`).
fn only_variant(value: &mut Value) -> Option<&mut Value> {
    let object = value.as_object_mut()?;
    if object.len() != 1 {
        return None;
    }
    object.values_mut().next().filter(|v| v.is_object())
}

fn add_field(value: &mut Value) {
    if let Some(object) = value.as_object_mut() {
        object.insert(ADDED_FIELD.into(), Value::Bool(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use showcall_protocol::wire::{self, Unreadable};

    fn frame(payload: Value) -> pb::Envelope {
        pb::Envelope {
            from_node: "n2".into(),
            actor_key: "user/demo/bob".into(),
            payload: serde_json::to_vec(&payload).unwrap(),
            wire_major: showcall_protocol::wire::WIRE_MAJOR,
            wire_minor: WIRE_MINOR,
            trace_context: Default::default(),
        }
    }

    #[test]
    fn a_rehearsed_frame_has_the_next_minor_and_unknown_fields_at_each_level_and_is_still_read() {
        let sent = frame(serde_json::json!({
            "from": "n2",
            "body": { "User": { "app": "demo", "user": "bob", "msg": {
                "ConnectionLost": { "conn": 7 }
            } } }
        }));
        let rehearsed = as_next_minor(sent.clone());
        assert_eq!(rehearsed.wire_minor, WIRE_MINOR + 1);
        let value: Value = serde_json::from_slice(&rehearsed.payload).unwrap();
        assert_eq!(value[ADDED_FIELD], true);
        assert_eq!(value["body"]["User"][ADDED_FIELD], true);
        assert_eq!(
            value["body"]["User"]["msg"]["ConnectionLost"][ADDED_FIELD],
            true
        );
        assert_eq!(value["body"]["User"]["msg"]["ConnectionLost"]["conn"], 7);
        // This release reads it as it reads the frame of its own minor.
        let read = wire::read(rehearsed.wire_major, &rehearsed.payload).expect("readable");
        let plain = wire::read(sent.wire_major, &sent.payload).expect("readable");
        assert_eq!(format!("{read:?}"), format!("{plain:?}"));
    }

    #[test]
    fn the_unknown_kind_is_refused_as_unknown_not_as_garbage() {
        let frame = unknown_kind("n2");
        assert!(matches!(
            wire::read(frame.wire_major, &frame.payload),
            Err(Unreadable::UnknownKind { reply: None, .. })
        ));
    }
}
