//! The node wire's version and its compatibility rule: what a node of one release may send a node of
//! another during a rolling upgrade.
//!
//! An envelope travels as JSON (the serde form of [`Envelope`]) inside the node link's protobuf frame,
//! which carries the wire version ([`WIRE_MAJOR`].[`WIRE_MINOR`]) it was written with. The rule:
//!
//! - **Minor versions are compatible both ways.** A minor release may add *fields* — each optional,
//!   defaulted when absent (`#[serde(default)]`) — and *message kinds* (a new body, actor message or
//!   machine input). A receiver ignores fields it does not know (serde's default; no type on the wire
//!   denies unknown fields). A message kind it does not know is dropped, counted
//!   (`showcall_node_link_dropped_total{reason="unknown_kind"}`) and logged; when it is a request (it
//!   carries a reply handle), the sender is answered UNAVAILABLE at once instead of waiting for its
//!   timeout, so a new feature used during the upgrade fails fast and the caller may retry. A minor
//!   release never removes or renames a field or kind, nor changes a field's meaning.
//! - **A major version changes that**, and nodes of two majors do not talk: the receiver drops their
//!   envelopes (`reason="other_major"`). Upgrading across a major takes a full-cluster restart (or two
//!   clusters). Frames from before the version was written (no version) are 1.0.
//! - **A sender uses a kind of minor `m` only with a peer that reads it.** Every node announces the minor
//!   it reads in its node info (`wire_minor`; absent = 0); a kind added in minor `m` is sent only to a
//!   peer announcing `m` or more, and an older peer is sent what it reads (so a rolling upgrade loses
//!   nothing: the "unknown kind" path is for peers that were not asked first).
//! - Snapshots handed over between nodes (a leaving node's sessions and calls) are envelopes too, under
//!   the same rule.
//!
//! Every message kind is kept as a fixture under the minor that added it
//! (`actors/protocol/tests/wire/v1.0/` … `v1.6/`); the compatibility tests read each one, with fields
//! of a later minor added, and unknown kinds.

use serde_json::Value;

use crate::envelope::Envelope;
use crate::handles::ReplyTo;

/// Changes only with an incompatible wire (see the module docs).
pub const WIRE_MAJOR: u32 = 1;
/// Grows with each release that adds fields or message kinds.
///
/// - 1.1: `Body::Sinks`, several pushes to one connection in one envelope (a user actor's step).
/// - 1.2: `UserCommand::RestartIce` (a client's ICE restart, its network changed) and its answer
///   `CommandOk::IceRestarted`; `UserCommand::SetVideoLayer`, a client's cap on the simulcast layer it receives. A client
///   command goes where its user lives whatever that node reads: a 1.1 node answers it UNAVAILABLE at
///   once (the unknown-kind path), which during a rolling upgrade is "try again".
/// - 1.3: `ChannelUpdate::VideoPausedForBandwidth`, the media router telling a member its video stopped
///   (or started again) for its bandwidth. Not sent to a 1.2 node (the member is not told; its video
///   pauses and resumes all the same).
/// - 1.4: one live room across nodes (`crate::media_edge`): `Body::Media` (an origin opens and closes
///   viewers' sessions on an edge; an edge subscribes to the origin's relay) and
///   `ChannelMsg::MemberMedia` (a member's answer, ICE restart or layer cap, carried by the channel
///   actor to the node holding its session); the field `ChannelMsg::Join::client_node`. A node that
///   announces 1.3 or less is never an edge (its viewers' sessions stay on the origin) and is not sent
///   `MemberMedia` (its members' commands go to the router of the node they reach, as before).
/// - 1.5: `UserInput::ChannelJoined::broadcasters`, who broadcasts in a channel a user joined (its
///   client is told they left when the channel's node dies, `UserInput::ChannelLost`, which a node feeds
///   its own sessions and never sends), and the same in a user's handed-over snapshot
///   (`UserSnapshot::broadcasters`, written only when there are some). From a 1.4 node both are absent:
///   the session knows no broadcasters, and its client is not told they left.
/// - 1.6: `CallInput::Delivered::announced`: the callee's user actor told its client `calling` (and
///   `remoteVideoCall`/`remoteAudioCall`) itself when the ring reached it, so the call does not tell it
///   again — on a cluster the callee's `calling` no longer waits for a round trip to the call's node.
///   Written only when true. From a 1.5 user it is absent and the call tells the callee as before; a
///   1.6 user rung by a 1.5 call drops the call's repeat of what its ring already showed.
pub const WIRE_MINOR: u32 = 6;

/// Why a frame's envelope is not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("written with wire {major}.x; this node reads {WIRE_MAJOR}.x")]
    OtherMajor { major: u32 },
    /// A message kind of a later minor version (or a typo'd one): `reply` is where its sender waits.
    #[error("unknown message kind: {detail}")]
    UnknownKind {
        detail: String,
        reply: Option<ReplyTo>,
    },
    #[error("malformed envelope: {0}")]
    Malformed(String),
}

impl Unreadable {
    /// The `reason` label this refusal is counted under.
    pub fn reason(&self) -> &'static str {
        match self {
            Unreadable::OtherMajor { .. } => "other_major",
            Unreadable::UnknownKind { .. } => "unknown_kind",
            Unreadable::Malformed(_) => "malformed",
        }
    }
}

/// Reads the envelope a frame of wire `major` carries (0: a frame from before versions were written).
pub fn read(major: u32, payload: &[u8]) -> Result<Envelope, Unreadable> {
    let major = major.max(1);
    if major != WIRE_MAJOR {
        return Err(Unreadable::OtherMajor { major });
    }
    let error = match serde_json::from_slice::<Envelope>(payload) {
        Ok(envelope) => return Ok(envelope),
        Err(e) => e,
    };
    let detail = error.to_string();
    // serde names a kind it does not know "unknown variant"; anything else is a broken envelope.
    if !detail.starts_with("unknown variant") {
        return Err(Unreadable::Malformed(detail));
    }
    let reply = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|value| reply_handle(&value));
    Err(Unreadable::UnknownKind { detail, reply })
}

/// The first reply handle (`"reply": {"node": …, "id": …}`) in a message, depth first.
fn reply_handle(value: &Value) -> Option<ReplyTo> {
    match value {
        Value::Object(fields) => {
            if let Some(handle) = fields.get("reply")
                && let Ok(reply) = serde_json::from_value::<ReplyTo>(handle.clone())
            {
                return Some(reply);
            }
            fields.values().find_map(reply_handle)
        }
        Value::Array(items) => items.iter().find_map(reply_handle),
        _ => None,
    }
}
