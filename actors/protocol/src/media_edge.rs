//! One live room across many nodes: where a member's media session goes, and what the room's
//! **origin** (the node its channel is pinned to, where its channel actor and its host's session live)
//! and its **edges** (nodes that hold viewers' sessions and subscribe once to the origin's publishers)
//! tell each other over the node link (wire 1.4).
//!
//! The rule ([`choose_media_node`]) is a pure function of the node's configured [`EdgeRule`], the
//! member, and the [`MediaNode`]s the cluster announces (their wire minor and media load):
//! - Only **audience** members (receive-only, may not publish) go to edges. A broadcaster and a call's
//!   parties stay on the origin: their sessions publish, and publishers are what an edge relays.
//! - `client_node` (the default): the node whose gateway holds the viewer's WebSocket — the client
//!   reached it, so its media probably reaches it too, and its signaling crosses no node.
//!   `origin`: every session on the origin (the behaviour before edges). `least_loaded`: the node with
//!   the most room.
//! - A node at its limit (`max_viewers`, `max_egress_bps`; 0 = unlimited) is never chosen: the viewer
//!   goes to the least loaded node with room (the origin included) or, when none has room, is refused
//!   ([`NoMediaRoom`]). With the `origin` rule only the origin is considered.
//! - A node is an edge only if it reads wire 1.4 (it understands [`MediaOp`]), carries a media relay,
//!   and is not leaving; any other candidate is skipped, so an older node never hears a 1.4 kind and
//!   its viewers fall back to the origin.
//! - When the origin dies, an edge keeps its viewers' sessions; once the room reopens (its new pin),
//!   the edge's [`MediaOp::AddEdge`] to the new origin names them, and the new channel takes them as
//!   members (`showcall_runtime`'s `media_edges` has the story).

use serde::{Deserialize, Serialize};
use showcall_machines::UserId;

use crate::commands::VideoLayer;
use crate::handles::ReplyTo;
use crate::keys::NodeId;

/// The wire minor that added edges: a node is sent [`MediaOp`]s, and [`crate::messages::ChannelMsg`]'s
/// `MemberMedia`, only if it announces this minor or later.
pub const EDGE_WIRE_MINOR: u32 = 4;

/// Where viewers' media sessions go (`[media] edge` in the node's configuration; see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeRule {
    /// The node whose gateway holds the viewer's connection.
    #[default]
    ClientNode,
    /// The room's origin (no edges).
    Origin,
    /// The node with the most room for one more viewer.
    LeastLoaded,
}

/// A node as a candidate for a viewer's media session: what it announces in its node info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaNode {
    pub id: NodeId,
    /// The wire minor it reads: below [`EDGE_WIRE_MINOR`] it cannot be an edge.
    pub wire_minor: u32,
    /// It carries a media router that can relay a room from another node.
    pub relays: bool,
    /// It is leaving the cluster: no new sessions.
    pub leaving: bool,
    /// Viewer sessions (receive-only) its router holds now.
    pub viewers: u64,
    /// Media bit rate its router sends now (bits per second).
    pub egress_bps: u64,
    /// Its `max_viewers` (0 = unlimited).
    pub max_viewers: u64,
    /// Its `max_egress_bps` (0 = unlimited).
    pub max_egress_bps: u64,
}

impl MediaNode {
    /// A node with no limits and nothing on it (a single node; tests).
    pub fn unlimited(id: NodeId) -> Self {
        Self {
            id,
            wire_minor: crate::wire::WIRE_MINOR,
            relays: true,
            leaving: false,
            viewers: 0,
            egress_bps: 0,
            max_viewers: 0,
            max_egress_bps: 0,
        }
    }

    /// Whether one more viewer fits under both limits.
    pub fn has_room(&self) -> bool {
        let viewers_fit = self.max_viewers == 0 || self.viewers < self.max_viewers;
        let egress_fits = self.max_egress_bps == 0 || self.egress_bps < self.max_egress_bps;
        viewers_fit && egress_fits
    }

    /// How full it is, in millionths of its tighter limit (0 for a node without limits): nodes with
    /// different limits compare by how much of their own room is used.
    fn fullness(&self) -> u64 {
        let share = |used: u64, limit: u64| match limit {
            0 => 0,
            limit => (u128::from(used) * 1_000_000 / u128::from(limit)) as u64,
        };
        share(self.viewers, self.max_viewers).max(share(self.egress_bps, self.max_egress_bps))
    }
}

/// No node has room for the viewer's media session.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no media node has room for another viewer (every candidate is at its max_viewers or max_egress_bps)"
)]
pub struct NoMediaRoom;

/// Who asks for a media session, as the rule needs to know it.
#[derive(Clone, Copy, Debug)]
pub struct MediaSeeker<'a> {
    /// Receive-only (an audience member that may not publish): the only members edges take.
    pub audience: bool,
    /// The node whose gateway holds its connection, when known.
    pub client_node: Option<&'a NodeId>,
}

/// The node whose router opens the seeker's session (see the module docs). `origin` is this room's
/// origin; `nodes` the cluster's media nodes as announced (the origin among them or not: when it is
/// absent it counts as a node without limits). Publishers always get the origin, limits or not: the
/// limits are of viewers.
pub fn choose_media_node(
    rule: EdgeRule,
    origin: &NodeId,
    seeker: MediaSeeker<'_>,
    nodes: &[MediaNode],
) -> Result<NodeId, NoMediaRoom> {
    if !seeker.audience {
        return Ok(origin.clone());
    }
    let origin_node = nodes
        .iter()
        .find(|n| n.id == *origin)
        .cloned()
        .unwrap_or_else(|| MediaNode::unlimited(origin.clone()));
    let edge_capable = |n: &&MediaNode| {
        n.id != *origin && n.wire_minor >= EDGE_WIRE_MINOR && n.relays && !n.leaving
    };
    // Every node that may take the viewer now: the origin, and edges that qualify, with room.
    let mut candidates: Vec<&MediaNode> = std::iter::once(&origin_node)
        .chain(nodes.iter().filter(edge_capable))
        .filter(|n| n.has_room())
        .collect();
    if rule == EdgeRule::Origin {
        candidates.retain(|n| n.id == *origin);
    }
    if rule == EdgeRule::ClientNode
        && let Some(client) = seeker.client_node
        && let Some(node) = candidates.iter().find(|n| n.id == *client)
    {
        return Ok(node.id.clone());
    }
    // The least full; among equals the fewest viewers, then the origin (no relay), then by name so
    // every origin decides alike.
    candidates
        .into_iter()
        .min_by_key(|n| (n.fullness(), n.viewers, n.id != *origin, n.id.clone()))
        .map(|n| n.id.clone())
        .ok_or(NoMediaRoom)
}

/// Where an edge reaches this node's relay and the key that authenticates it, for one room: the edge
/// draws a fresh key per room subscription and sends it with its relay address to the origin, whose
/// router adds the edge under that key and answers its own relay address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayTicket {
    /// `ip:port` of the sender's media relay.
    pub addr: String,
    /// The relay key, hex (the media router's `RelayKey` bytes).
    pub key: String,
}

/// What one node asks of another's media router for a room (wire 1.4, `Body::Media`). From the origin
/// to an edge: the viewers' sessions. From an edge to the origin: the relay subscription. Requests
/// carry the handle their answer goes to: a serialized `Result<Result<T, refusal>, CommandError>`, the
/// outer error being the link's (the node did not answer, or does not know the kind).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum MediaOp {
    /// Origin → edge: open `user`'s receive-only session from its offer (answered with the SDP answer).
    /// The edge subscribes to the origin first if it does not yet relay the room.
    Open {
        user: UserId,
        offer: String,
        reply: ReplyTo,
    },
    /// Origin → edge: close `user`'s session (left, kicked, banned). The edge unsubscribes from the
    /// origin when it was the room's last session there.
    Close { user: UserId },
    /// Origin → edge: the room closed: close every session of it there, and unsubscribe.
    CloseRoom,
    /// Origin → edge: apply `user`'s answer to the edge router's renegotiation offer `revision`.
    Answer {
        user: UserId,
        revision: u64,
        sdp_answer: String,
        reply: ReplyTo,
    },
    /// Origin → edge: restart ICE on `user`'s session (answered with the SDP answer).
    RestartIce {
        user: UserId,
        sdp_offer: String,
        reply: ReplyTo,
    },
    /// Origin → edge: cap the simulcast layer `user`'s session receives.
    SetVideoLayer {
        user: UserId,
        max_layer: VideoLayer,
        reply: ReplyTo,
    },
    /// Edge → origin: relay the room to the sender at `edge` (answered with the origin's ticket: its
    /// relay address, the same key).
    AddEdge {
        edge: RelayTicket,
        reply: ReplyTo,
        /// Viewers whose sessions the edge kept when the room's previous origin died: the room's new
        /// channel actor takes them as members (their sessions stay where they are). Empty on a first
        /// subscription. Absent on the wire when empty, so a 1.4 node reads it as before and one that
        /// does not know the field ignores it (its channel then lacks those members until they join).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        viewers: Vec<UserId>,
    },
    /// Edge → origin: the sender no longer relays the room.
    RemoveEdge,
}

/// A member's command for its own media session, which the channel actor carries to the node holding
/// it (wire 1.4, `ChannelMsg::MemberMedia`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberMedia {
    /// An answer to the router's renegotiation offer `revision`.
    Answer { sdp_answer: String, revision: u64 },
    /// An ICE restart from a new offer.
    RestartIce { sdp_offer: String },
    /// A cap on the simulcast layer received.
    SetVideoLayer { max_layer: VideoLayer },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> NodeId {
        NodeId(name.into())
    }

    fn node(name: &str) -> MediaNode {
        MediaNode::unlimited(id(name))
    }

    struct Case {
        name: &'static str,
        rule: EdgeRule,
        audience: bool,
        client: &'static str,
        nodes: Vec<MediaNode>,
        expect: Result<&'static str, NoMediaRoom>,
    }

    fn full(mut n: MediaNode) -> MediaNode {
        n.max_viewers = 10;
        n.viewers = 10;
        n
    }

    fn with(mut n: MediaNode, f: impl FnOnce(&mut MediaNode)) -> MediaNode {
        f(&mut n);
        n
    }

    #[test]
    fn the_rule_table() {
        use EdgeRule::*;
        let cases = vec![
            Case {
                name: "a viewer goes to its client's node",
                rule: ClientNode,
                audience: true,
                client: "b",
                nodes: vec![node("a"), node("b"), node("c")],
                expect: Ok("b"),
            },
            Case {
                name: "a viewer connected to the origin stays there",
                rule: ClientNode,
                audience: true,
                client: "a",
                nodes: vec![node("a"), node("b")],
                expect: Ok("a"),
            },
            Case {
                name: "a publisher stays on the origin, whatever its client's node",
                rule: ClientNode,
                audience: false,
                client: "b",
                nodes: vec![node("a"), node("b")],
                expect: Ok("a"),
            },
            Case {
                name: "a publisher stays on a full origin: limits are of viewers",
                rule: LeastLoaded,
                audience: false,
                client: "b",
                nodes: vec![full(node("a")), node("b")],
                expect: Ok("a"),
            },
            Case {
                name: "the origin rule keeps viewers on the origin",
                rule: Origin,
                audience: true,
                client: "b",
                nodes: vec![node("a"), node("b")],
                expect: Ok("a"),
            },
            Case {
                name: "the origin rule refuses a viewer when the origin is full",
                rule: Origin,
                audience: true,
                client: "b",
                nodes: vec![full(node("a")), node("b")],
                expect: Err(NoMediaRoom),
            },
            Case {
                name: "a 1.3 client node is not an edge: the viewer falls back to the origin",
                rule: ClientNode,
                audience: true,
                client: "b",
                nodes: vec![node("a"), with(node("b"), |n| n.wire_minor = 3)],
                expect: Ok("a"),
            },
            Case {
                name: "a client node without a relay is not an edge",
                rule: ClientNode,
                audience: true,
                client: "b",
                nodes: vec![node("a"), with(node("b"), |n| n.relays = false)],
                expect: Ok("a"),
            },
            Case {
                name: "a leaving client node is not an edge",
                rule: ClientNode,
                audience: true,
                client: "b",
                nodes: vec![node("a"), with(node("b"), |n| n.leaving = true)],
                expect: Ok("a"),
            },
            Case {
                name: "an unknown client node (gone from the view) falls back to the least loaded",
                rule: ClientNode,
                audience: true,
                client: "z",
                nodes: vec![
                    with(node("a"), |n| n.viewers = 5),
                    with(node("b"), |n| n.viewers = 1),
                ],
                expect: Ok("b"),
            },
            Case {
                name: "a full client node sends the viewer to the least loaded node with room",
                rule: ClientNode,
                audience: true,
                client: "b",
                nodes: vec![
                    with(node("a"), |n| {
                        n.max_viewers = 100;
                        n.viewers = 80
                    }),
                    full(node("b")),
                    with(node("c"), |n| {
                        n.max_viewers = 100;
                        n.viewers = 20
                    }),
                ],
                expect: Ok("c"),
            },
            Case {
                name: "egress at its limit is full too",
                rule: ClientNode,
                audience: true,
                client: "b",
                nodes: vec![
                    node("a"),
                    with(node("b"), |n| {
                        n.max_egress_bps = 1_000_000;
                        n.egress_bps = 1_000_000
                    }),
                ],
                expect: Ok("a"),
            },
            Case {
                name: "every node full: refused",
                rule: ClientNode,
                audience: true,
                client: "b",
                nodes: vec![full(node("a")), full(node("b"))],
                expect: Err(NoMediaRoom),
            },
            Case {
                name: "least loaded compares the share of each node's own limit",
                rule: LeastLoaded,
                audience: true,
                client: "a",
                nodes: vec![
                    with(node("a"), |n| {
                        n.max_viewers = 10;
                        n.viewers = 5
                    }),
                    with(node("b"), |n| {
                        n.max_viewers = 1000;
                        n.viewers = 100
                    }),
                ],
                expect: Ok("b"),
            },
            Case {
                name: "least loaded among equals prefers the origin (no relay needed)",
                rule: LeastLoaded,
                audience: true,
                client: "b",
                nodes: vec![node("a"), node("b")],
                expect: Ok("a"),
            },
            Case {
                name: "an origin missing from the view counts as a node without limits",
                rule: LeastLoaded,
                audience: true,
                client: "b",
                nodes: vec![with(node("b"), |n| n.viewers = 3)],
                expect: Ok("a"),
            },
        ];
        for case in cases {
            let client = id(case.client);
            let seeker = MediaSeeker {
                audience: case.audience,
                client_node: Some(&client),
            };
            let chosen = choose_media_node(case.rule, &id("a"), seeker, &case.nodes);
            assert_eq!(
                chosen,
                case.expect.map(id),
                "{}: chose {chosen:?}",
                case.name
            );
        }
    }

    #[test]
    fn a_viewer_with_no_known_client_node_goes_where_there_is_most_room() {
        let seeker = MediaSeeker {
            audience: true,
            client_node: None,
        };
        let nodes = [with(node("a"), |n| n.viewers = 2), node("b")];
        let chosen = choose_media_node(EdgeRule::ClientNode, &id("a"), seeker, &nodes);
        assert_eq!(chosen, Ok(id("b")));
    }

    #[test]
    fn the_rule_reads_from_configuration_names() {
        for (text, rule) in [
            ("\"client_node\"", EdgeRule::ClientNode),
            ("\"origin\"", EdgeRule::Origin),
            ("\"least_loaded\"", EdgeRule::LeastLoaded),
        ] {
            assert_eq!(serde_json::from_str::<EdgeRule>(text).unwrap(), rule);
        }
        assert!(serde_json::from_str::<EdgeRule>("\"nearest\"").is_err());
        assert_eq!(EdgeRule::default(), EdgeRule::ClientNode);
    }
}
