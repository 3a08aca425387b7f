//! The node wire's compatibility rule (`showcall_protocol::wire`), checked against the frozen fixtures
//! of wire 1.0 (`tests/wire/v1.0/`): this release reads every message kind a 1.0 node writes, also with
//! the fields a later minor release may add; an unknown message kind is refused with its reply handle
//! (so the sender can be answered at once), and another major is refused outright.

use std::path::PathBuf;

use serde_json::{Value, json};
use showcall_machines::CallInput;
use showcall_protocol::NodeId;
use showcall_protocol::envelope::{Body, Envelope};
use showcall_protocol::handles::ReplyTo;
use showcall_protocol::messages::CallMsg;
use showcall_protocol::wire::{self, Unreadable, WIRE_MAJOR};

fn fixtures() -> Vec<(String, Vec<u8>)> {
    fixtures_of("v1.0")
}

/// The fixtures of the kinds a minor release added (`v1.1`, …).
fn fixtures_of(version: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/wire")
        .join(version);
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("the 1.0 fixtures")
        .map(|entry| {
            let path = entry.expect("a fixture").path();
            let name = path
                .file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("readable"))
        })
        .collect();
    all.sort();
    all
}

/// The fixture `name` of `version`.
fn fixture(version: &str, name: &str) -> Vec<u8> {
    fixtures_of(version)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, bytes)| bytes)
        .unwrap_or_else(|| panic!("the {version} fixture {name}"))
}

/// The envelope as JSON, for comparing what two reads understood.
fn understood(envelope: &Envelope) -> Value {
    serde_json::from_slice(&envelope.encode()).expect("an envelope encodes as JSON")
}

/// Adds a field unknown to 1.0 to every struct of `value`, as a later minor release might. Not to an
/// enum's tag object (`{"Accept": {…}}`: one key, a variant name) nor to maps whose keys are data
/// (the extensions, `timing`, a session's `channels`) or to an answer's free-form `result`: a release
/// adds fields to structs.
fn with_later_fields(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            let enum_tag = fields.len() == 1
                && fields
                    .keys()
                    .all(|k| k.starts_with(|c: char| c.is_ascii_uppercase()));
            for (key, nested) in fields.iter_mut() {
                let data_map = key.ends_with("extension")
                    || matches!(key.as_str(), "timing" | "channels" | "result");
                if !data_map {
                    with_later_fields(nested);
                }
            }
            if !enum_tag {
                fields.insert(
                    "added_in_1_1".into(),
                    json!({ "priority": 3, "tags": ["a"] }),
                );
            }
        }
        Value::Array(items) => items.iter_mut().for_each(with_later_fields),
        _ => {}
    }
}

/// Reads a fixture and checks that the envelope writes back as the same JSON (no field lost or changed);
/// that JSON.
fn read_back_as_written(name: &str, bytes: &[u8]) -> Value {
    let envelope = wire::read(1, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let as_written: Value = serde_json::from_slice(bytes).expect("fixtures are JSON");
    assert_eq!(
        understood(&envelope),
        as_written,
        "{name}: read back as written (no field lost or changed)"
    );
    as_written
}

#[test]
fn every_message_kind_of_wire_1_0_is_read() {
    let fixtures = fixtures();
    assert_eq!(fixtures.len(), 18, "one fixture per 1.0 message kind");
    for (name, bytes) in fixtures {
        read_back_as_written(&name, &bytes);
    }
}

#[test]
fn every_message_kind_of_wire_1_1_is_read_also_with_later_fields() {
    every_kind_of_a_minor_is_read_also_with_later_fields("v1.1", 2);
}

#[test]
fn every_message_kind_of_wire_1_2_is_read_also_with_later_fields() {
    every_kind_of_a_minor_is_read_also_with_later_fields("v1.2", 3);
}

#[test]
fn every_message_kind_of_wire_1_3_is_read_also_with_later_fields() {
    every_kind_of_a_minor_is_read_also_with_later_fields("v1.3", 1);
}

#[test]
fn every_message_kind_of_wire_1_4_is_read_also_with_later_fields() {
    // Each `MediaOp`, a member's media command through its channel, and a join naming its client's
    // node.
    every_kind_of_a_minor_is_read_also_with_later_fields("v1.4", 10);
}

#[test]
fn every_message_kind_of_wire_1_5_is_read_also_with_later_fields() {
    // A channel's confirmation of a join naming who broadcasts in it.
    every_kind_of_a_minor_is_read_also_with_later_fields("v1.5", 1);
}

#[test]
fn every_message_kind_of_wire_1_6_is_read_also_with_later_fields() {
    // A callee's user actor answering a ring it told its client of itself.
    every_kind_of_a_minor_is_read_also_with_later_fields("v1.6", 1);
}

#[test]
fn a_delivery_from_a_node_before_1_6_is_not_announced_and_is_written_back_as_it_came() {
    let bytes = fixture("v1.0", "call-input-delivered");
    let envelope = wire::read(1, &bytes).expect("a 1.0 delivery reads");
    let Body::Call { msg, .. } = &envelope.body else {
        panic!("a call's envelope: {envelope:?}");
    };
    let CallMsg::Input(input) = msg else {
        panic!("a call's input: {msg:?}");
    };
    assert!(
        matches!(
            input.payload,
            CallInput::Delivered {
                announced: false,
                ..
            }
        ),
        "the call tells the callee itself: {input:?}"
    );
    // Nothing is added to what a 1.5 node reads.
    read_back_as_written("call-input-delivered", &bytes);
}

#[test]
fn a_join_confirmed_by_a_node_before_1_5_names_no_broadcasters_and_still_reads() {
    let bytes = fixture("v1.5", "user-input-channel-joined-broadcasters");
    let mut before = read_back_as_written("user-input-channel-joined-broadcasters", &bytes);
    let joined = "/body/User/msg/Input/payload/ChannelJoined";
    before
        .pointer_mut(joined)
        .and_then(|v| v.as_object_mut())
        .expect("a ChannelJoined")
        .remove("broadcasters");
    let envelope = wire::read(1, &serde_json::to_vec(&before).expect("JSON")).expect("it reads");
    // Read without broadcasters, it is written back without them: exactly what a 1.4 node wrote.
    assert_eq!(understood(&envelope), before);
}

#[test]
fn a_join_from_a_node_before_1_4_has_no_client_node_and_still_reads() {
    let bytes = fixture("v1.0", "channel-join");
    let envelope = wire::read(1, &bytes).expect("a 1.0 join reads");
    let as_written = serde_json::to_value(&envelope).expect("JSON");
    assert!(
        as_written
            .pointer("/body/Channel/msg/Join/client_node")
            .is_none(),
        "no client node is written when none is known: {as_written}"
    );
}

#[test]
fn an_add_edge_names_the_viewers_an_edge_kept_and_a_first_one_writes_none() {
    let bytes = fixture("v1.4", "media-add-edge");
    // A first subscription (the fixture) writes no `viewers`, so a node of 1.4 before the field
    // reads exactly what it wrote.
    let as_written = read_back_as_written("media-add-edge", &bytes);
    assert!(
        as_written
            .pointer("/body/Media/op/AddEdge/viewers")
            .is_none()
    );
    // One after the room's origin died names the viewers the edge kept; it reads back with them.
    let mut kept = as_written.clone();
    kept["body"]["Media"]["op"]["AddEdge"]["viewers"] = json!(["fan-1", "fan-2"]);
    let envelope = wire::read(1, &serde_json::to_vec(&kept).expect("JSON")).expect("it reads");
    assert_eq!(understood(&envelope), kept);
}

/// The fixtures of the minor in `dir` (one per kind it added, `kinds` of them) read back as written, and
/// also with fields of a later minor added.
fn every_kind_of_a_minor_is_read_also_with_later_fields(dir: &str, kinds: usize) {
    let fixtures = fixtures_of(dir);
    assert_eq!(fixtures.len(), kinds, "one fixture per kind {dir} added");
    for (name, bytes) in fixtures {
        let as_written = read_back_as_written(&name, &bytes);
        let mut later = as_written.clone();
        with_later_fields(&mut later);
        let read = wire::read(1, &serde_json::to_vec(&later).expect("JSON"));
        assert!(
            read.is_ok(),
            "{name} with fields of a later minor: {read:?}"
        );
    }
}

#[test]
fn frames_from_before_versions_were_written_are_1_0() {
    for (name, bytes) in fixtures() {
        assert!(wire::read(0, &bytes).is_ok(), "{name}");
    }
}

#[test]
fn fields_a_later_minor_adds_are_ignored_everywhere() {
    for (name, bytes) in fixtures() {
        let plain = wire::read(1, &bytes).expect("reads");
        let mut later: Value = serde_json::from_slice(&bytes).expect("JSON");
        with_later_fields(&mut later);
        let later = serde_json::to_vec(&later).expect("JSON");
        let read = wire::read(1, &later).unwrap_or_else(|e| panic!("{name} with 1.1 fields: {e}"));
        assert_eq!(understood(&read), understood(&plain), "{name}");
    }
}

#[test]
fn an_unknown_request_kind_is_refused_with_the_handle_its_sender_waits_on() {
    let from_1_1 = json!({
        "from": "node-c",
        "body": { "User": { "app": "demo", "user": "host", "msg": {
            "Mute": { "seconds": 30, "reply": { "node": "node-c", "id": 77 } }
        } } }
    });
    let refused = wire::read(1, &serde_json::to_vec(&from_1_1).expect("JSON"));
    let Err(Unreadable::UnknownKind { detail, reply }) = refused else {
        panic!("an unknown kind is refused as such: {refused:?}");
    };
    assert!(detail.contains("Mute"), "{detail}");
    assert_eq!(
        reply,
        Some(ReplyTo {
            node: NodeId("node-c".into()),
            id: 77
        })
    );
}

#[test]
fn an_unknown_input_kind_deep_in_a_notification_is_refused_without_a_handle() {
    let bytes = fixture("v1.0", "user-input-ring");
    let mut later: Value = serde_json::from_slice(&bytes).expect("JSON");
    let input = &mut later["body"]["User"]["msg"]["Input"]["payload"];
    *input = json!({ "Nudge": { "from": "viewer" } });
    let refused = wire::read(1, &serde_json::to_vec(&later).expect("JSON"));
    assert!(
        matches!(refused, Err(Unreadable::UnknownKind { reply: None, .. })),
        "{refused:?}"
    );
}

#[test]
fn another_major_is_refused_and_garbage_is_malformed() {
    let (_, bytes) = fixtures().remove(0);
    assert_eq!(
        wire::read(WIRE_MAJOR + 1, &bytes).map(|_| ()),
        Err(Unreadable::OtherMajor {
            major: WIRE_MAJOR + 1
        })
    );
    let garbage = wire::read(1, b"{\"from\": 3}");
    assert!(
        matches!(garbage, Err(Unreadable::Malformed(_))),
        "{garbage:?}"
    );
}

#[test]
fn a_reply_fixture_still_answers_a_request_of_this_release() {
    let bytes = fixture("v1.0", "reply");
    let Body::Reply { id, result } = wire::read(1, &bytes).expect("reads").body else {
        panic!("a reply");
    };
    assert_eq!(id, 42);
    let answer: Result<showcall_protocol::CommandOk, showcall_protocol::CommandError> =
        serde_json::from_value(result).expect("a 1.0 answer reads as this release's answer");
    assert!(matches!(
        answer,
        Ok(showcall_protocol::CommandOk::CallCreated { .. })
    ));
}

#[test]
fn a_message_only_a_node_sends_its_own_actors_is_not_read_from_another_node() {
    // Timers, node losses, evictions and handover snapshots share each actor's message enum but have no
    // wire form: a peer naming one is refused as a kind this node does not read.
    for (kind, msg) in [
        ("User", json!({ "Evict": null })),
        ("User", json!({ "Timer": "Grace" })),
        ("Call", json!("Begin")),
        ("Channel", json!("Evict")),
    ] {
        let target = match kind {
            "User" => json!({ "app": "demo", "user": "host", "msg": msg }),
            "Call" => json!({ "app": "demo", "id": "c1", "msg": msg }),
            _ => json!({ "app": "demo", "channel": "room", "msg": msg }),
        };
        let envelope = json!({ "from": "node-c", "body": { kind: target } });
        let refused = wire::read(1, &serde_json::to_vec(&envelope).expect("JSON"));
        assert!(
            matches!(refused, Err(Unreadable::UnknownKind { .. })),
            "{kind} {msg}: {refused:?}"
        );
    }
}
