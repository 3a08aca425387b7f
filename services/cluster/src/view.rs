//! [`ClusterView`]: the cluster as this node last saw it in etcd — live nodes and partition owners.
//! Pure: the membership task feeds it etcd's key-value events; routing reads it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use showcall_protocol::NodeId;

use crate::partition::PartitionId;

/// How a channel is named in the pin keys and the view: `<app>/<channel>` (channel names have no `/`).
pub fn channel_id(
    app: &showcall_protocol::AppId,
    channel: &showcall_machines::ChannelName,
) -> String {
    format!("{app}/{channel}")
}

/// What a node publishes about itself (JSON under its node key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Where other nodes reach its gRPC (node link and admin API).
    pub grpc_addr: String,
    /// Its media router's UDP address as clients see it (the ICE host candidate).
    pub media_addr: String,
    /// Where clients connect for signaling (the address it listens on).
    pub signal_url: String,
    /// The URL clients reach its signaling at directly (`signal_public_url` in its configuration), when
    /// set: a login that may follow its session is sent to the node serving the session by this URL.
    /// Absent (not configured, or an older node) = no login is sent there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_public_url: Option<String>,
    /// Its `media_capacity`: how many channels it is meant to carry relative to the others (new
    /// channels go where fewer are open per unit of capacity).
    pub capacity: u32,
    /// Channels open on it now (republished as it changes): the load new channels are placed by.
    #[serde(default)]
    pub load: u32,
    /// The node is leaving (it got SIGTERM): it hands its partitions over and takes nothing new — no
    /// partition targets it, no channel opens on it. Absent (older nodes) = false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
    /// The node's etcd lease: a node handing a partition over writes the partition's key under the
    /// receiver's lease, so ownership moves in one step. 0 = not known (older nodes).
    #[serde(default)]
    pub lease: i64,
    /// The node reads the event log under both [`Layout::events`] and [`Layout::older_events`]. Absent
    /// (a release that keeps its events under `events/` and reads only there) = false: while such a node
    /// is in the view, every node writes its events under `events/` too, so that its readers miss none
    /// (`crate::event_log`, README "Rolling upgrade").
    #[serde(default)]
    pub timeline: bool,
    /// The node wire's minor version the node reads (`showcall_protocol::wire`): others send it only
    /// message kinds of that minor or older. Absent (a release before 1.1) = 0.
    #[serde(default)]
    pub wire_minor: u32,
    /// Its media router as an edge of other nodes' rooms (`showcall_protocol::media_edge`): whether it
    /// relays, its load and its limits. Absent (a release before 1.4) = never an edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaInfo>,
}

/// A node's media router as its node info announces it (republished as its load changes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// It relays rooms between nodes: it may be an edge of another node's room.
    #[serde(default)]
    pub relays: bool,
    /// Media sessions its router holds now (viewers, nearly all of them).
    #[serde(default)]
    pub sessions: u64,
    /// Bits per second its router sends now (over the last second or so).
    #[serde(default)]
    pub egress_bps: u64,
    /// Its `media.max_viewers` (0 = unlimited): at that many sessions it takes no more viewers.
    #[serde(default)]
    pub max_sessions: u64,
    /// Its `media.max_egress_bps` (0 = unlimited).
    #[serde(default)]
    pub max_egress_bps: u64,
}

/// A node's media load now, measured by the node (see [`MediaInfo`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaLoad {
    pub sessions: u64,
    pub egress_bps: u64,
}

impl MediaLoad {
    /// Whether `self` differs enough from `published` to republish: any change of sessions, or of the
    /// bit rate by more than an eighth (a rate moves every second; the choice of edges needs its size,
    /// not its last bit).
    pub fn worth_publishing(&self, published: &MediaLoad) -> bool {
        let (now, then) = (self.egress_bps, published.egress_bps);
        self.sessions != published.sessions || now.abs_diff(then) > then / 8
    }
}

impl NodeInfo {
    /// Whether `other` is this node's info with only its load changed (channels open, media sessions
    /// and bit rate): the node is the same member, with the same addresses, lease and limits.
    pub fn differs_only_in_load(&self, other: &NodeInfo) -> bool {
        let without_load = |info: &NodeInfo| NodeInfo {
            load: 0,
            media: info.media.clone().map(|media| MediaInfo {
                sessions: 0,
                egress_bps: 0,
                ..media
            }),
            ..info.clone()
        };
        without_load(self) == without_load(other)
    }

    /// The node as a candidate for viewers' media sessions.
    pub fn media_node(&self) -> showcall_protocol::media_edge::MediaNode {
        let media = self.media.clone().unwrap_or_default();
        showcall_protocol::media_edge::MediaNode {
            id: self.id.clone(),
            wire_minor: self.wire_minor,
            relays: media.relays,
            leaving: self.leaving,
            viewers: media.sessions,
            egress_bps: media.egress_bps,
            max_viewers: media.max_sessions,
            max_egress_bps: media.max_egress_bps,
        }
    }
}

/// A short, stable tag of a node id, carried in call channel names (`call-<hex>@<tag>`).
pub fn node_tag(id: &NodeId) -> String {
    format!("{:08x}", xxhash_rust::xxh3::xxh3_64(id.0.as_bytes()) as u32)
}

/// The node tag in a call channel's name, if it has one.
pub fn tag_of_call_channel(channel: &showcall_machines::ChannelName) -> Option<&str> {
    if !channel.is_call_channel() {
        return None;
    }
    channel.as_str().split_once('@').map(|(_, tag)| tag)
}

/// Live nodes and partition owners.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub owners: BTreeMap<PartitionId, NodeId>,
    /// Open channels (`<app>/<channel>`) and the media node each is pinned to.
    pub channels: BTreeMap<String, NodeId>,
}

/// Where a key sits in the layout.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyKind {
    Node(NodeId),
    Partition(PartitionId),
    /// A channel pin: `<app>/<channel>`.
    Channel(String),
    Other,
}

/// The etcd key layout under a prefix.
#[derive(Clone, Debug)]
pub struct Layout {
    pub prefix: String,
}

impl Layout {
    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }

    pub fn node(&self, id: &NodeId) -> String {
        format!("{}nodes/{}", self.prefix, id.0)
    }

    pub fn partition(&self, p: PartitionId) -> String {
        format!("{}partitions/{p}", self.prefix)
    }

    pub fn channels(&self) -> String {
        format!("{}channels/", self.prefix)
    }

    /// A channel's pin key; `channel` is `<app>/<channel name>` (see [`channel_id`]).
    pub fn channel(&self, channel: &str) -> String {
        format!("{}channels/{channel}", self.prefix)
    }

    /// Where the business events are kept (`crate::event_log`): `<prefix>timeline/<node>/<n>`. Not
    /// `events/`: that sorts between `channels/` and `nodes/`, inside [`Layout::view_range`].
    pub fn events(&self) -> String {
        format!("{}timeline/", self.prefix)
    }

    /// Where releases before the `timeline/` layout keep (and only read) their events:
    /// `<prefix>events/<node>/<n>`, the same batches. Written while such a node is in the cluster
    /// ([`NodeInfo::timeline`]), read as long as this release is (`crate::event_log`).
    pub fn older_events(&self) -> String {
        format!("{}events/", self.prefix)
    }

    /// The key range `[from, to)` an event watcher follows: from [`Layout::older_events`] to the end of
    /// [`Layout::events`], one watch so that the two logs' batches arrive in etcd's order (their
    /// revisions are the cursors). It also holds the `nodes/` and `partitions/` keys, which change a few
    /// times a second at most; [`Layout::is_event`] tells the batches apart.
    pub fn event_range(&self) -> (String, String) {
        (
            self.older_events(),
            // The first key after every `timeline/…` key ('0' follows '/').
            format!("{}timeline0", self.prefix),
        )
    }

    /// Whether `key` is an event batch (under [`Layout::events`] or [`Layout::older_events`]).
    pub fn is_event(&self, key: &[u8]) -> bool {
        key.starts_with(self.events().as_bytes()) || key.starts_with(self.older_events().as_bytes())
    }

    /// The key range `[from, to)` the view is made of, which the membership reads and watches: every
    /// node, partition and channel pin key — and none of the keys that change with every call or event
    /// (the event log's batches, the ledger's `calls/`, `bans/`, `webhooks/`). Watching the whole prefix
    /// sent each node every event batch any node wrote (BENCHMARKS.md, `cluster` run 8), and the snapshot
    /// read the whole event log: beyond a few MB — seconds of a busy cluster's events — it no longer fit
    /// in one response and a node could not join.
    ///
    /// One range, so that a node's lease expiry (its node key, its partitions, its pins: one revision)
    /// arrives in one watch response. It relies on the order of the names: `channels/` < `nodes/` <
    /// `partitions/`; a new key family the view needs must sort inside it, any other outside it
    /// (`tests::the_view_range_holds_the_view_keys_and_nothing_that_changes_per_call`).
    pub fn view_range(&self) -> (String, String) {
        (
            format!("{}channels/", self.prefix),
            // The first key after every `partitions/…` key ('0' follows '/').
            format!("{}partitions0", self.prefix),
        )
    }

    /// [`Layout::view_range`] without [`Layout::older_events`] (which sorts inside it), as two ranges:
    /// what the snapshot reads. A cluster being upgraded from a release that keeps its event log under
    /// `events/` has up to an hour and a half of batches there, more than one etcd response holds; the
    /// watch still gets them while such nodes write (and the view ignores them).
    pub fn view_ranges_without_older_events(&self) -> [(String, String); 2] {
        let (from, to) = self.view_range();
        [
            (from, self.older_events()),
            // The first key after every `events/…` key.
            (format!("{}events0", self.prefix), to),
        ]
    }

    pub fn kind(&self, key: &str) -> KeyKind {
        let Some(rest) = key.strip_prefix(&self.prefix) else {
            return KeyKind::Other;
        };
        if let Some(id) = rest.strip_prefix("nodes/") {
            KeyKind::Node(NodeId(id.to_owned()))
        } else if let Some(p) = rest.strip_prefix("partitions/") {
            p.parse().map_or(KeyKind::Other, KeyKind::Partition)
        } else if let Some(c) = rest.strip_prefix("channels/") {
            KeyKind::Channel(c.to_owned())
        } else {
            KeyKind::Other
        }
    }
}

impl ClusterView {
    /// The ids of the live nodes that take work: partitions are placed over these (a leaving node is
    /// still live — it serves what it has until it handed it over — but is no one's target).
    pub fn live(&self) -> BTreeSet<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, info)| !info.leaving)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A key was put. Malformed values are ignored (logged): another version's node must not crash us.
    ///
    /// Returns whether the cluster's shape changed: a node came or changed in more than its load, or a
    /// partition's owner was written. A node republishes its load every second while calls come and go
    /// (`membership::publish_load`); that alone re-plans nothing and wakes no one waiting for a change.
    pub fn put(&mut self, layout: &Layout, key: &str, value: &[u8]) -> bool {
        match layout.kind(key) {
            KeyKind::Node(id) => match serde_json::from_slice::<NodeInfo>(value) {
                Ok(info) => self
                    .nodes
                    .insert(id, info.clone())
                    .is_none_or(|was| !was.differs_only_in_load(&info)),
                Err(e) => {
                    tracing::warn!(%key, error = %e, "unreadable node info");
                    false
                }
            },
            KeyKind::Partition(p) => match std::str::from_utf8(value) {
                Ok(owner) => {
                    self.owners.insert(p, NodeId(owner.to_owned()));
                    true
                }
                Err(_) => {
                    tracing::warn!(%key, "unreadable partition owner");
                    false
                }
            },
            KeyKind::Channel(c) => {
                match std::str::from_utf8(value) {
                    Ok(node) => {
                        self.channels.insert(c, NodeId(node.to_owned()));
                    }
                    Err(_) => tracing::warn!(%key, "unreadable channel pin"),
                }
                // Channel pins come and go with every room.
                false
            }
            KeyKind::Other => false,
        }
    }

    /// A key was deleted (or its lease expired). Returns whether the cluster's shape changed, as
    /// [`ClusterView::put`] does: a node or a partition's owner went (a channel pin does not count).
    pub fn delete(&mut self, layout: &Layout, key: &str) -> bool {
        match layout.kind(key) {
            KeyKind::Node(id) => {
                self.nodes.remove(&id);
                true
            }
            KeyKind::Partition(p) => {
                self.owners.remove(&p);
                true
            }
            KeyKind::Channel(c) => {
                self.channels.remove(&c);
                false
            }
            KeyKind::Other => false,
        }
    }

    /// The channels pinned to `node`.
    pub fn channels_on(&self, node: &NodeId) -> BTreeSet<String> {
        self.channels
            .iter()
            .filter(|(_, n)| *n == node)
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// The partitions `node` owns.
    pub fn owned_by(&self, node: &NodeId) -> Vec<PartitionId> {
        self.owners
            .iter()
            .filter(|(_, o)| *o == node)
            .map(|(p, _)| *p)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_range_holds_the_view_keys_and_nothing_that_changes_per_call() {
        let layout = Layout {
            prefix: "/showcall/v1/".into(),
        };
        let (from, to) = layout.view_range();
        let inside = |key: &str| from.as_str() <= key && key < to.as_str();
        let ranges = layout.view_ranges_without_older_events();
        let read = |key: &str| {
            ranges
                .iter()
                .any(|(from, to)| from.as_str() <= key && key < to.as_str())
        };
        for key in [
            layout.node(&NodeId("n1".into())),
            layout.node(&NodeId("~".into())),
            layout.partition(0),
            layout.partition(255),
            layout.channel("demo/room-1"),
            layout.channel("~/~"),
        ] {
            assert!(inside(&key), "{key} is a view key");
            assert_ne!(layout.kind(&key), KeyKind::Other, "{key}");
            assert!(read(&key), "{key} is read by the snapshot");
        }
        let older = format!("{}node-1/00000000000000000001", layout.older_events());
        assert!(
            inside(&older) && !read(&older),
            "{older}: watched, not read"
        );
        for key in [
            format!("{}node-1/00000000000000000001", layout.events()),
            "/showcall/v1/calls/7/call-1".to_owned(),
            "/showcall/v1/bans/demo/room-1/u1".to_owned(),
            "/showcall/v1/webhooks/leader".to_owned(),
            "/showcall/v1/webhooks/checkpoints/demo".to_owned(),
            "/showcall/v2/nodes/n1".to_owned(),
        ] {
            assert!(!inside(&key) && !read(&key), "{key} is outside the view");
        }
    }

    #[test]
    fn the_event_range_holds_both_logs_and_tells_their_batches_from_the_rest() {
        let layout = Layout {
            prefix: "/showcall/v1/".into(),
        };
        let (from, to) = layout.event_range();
        let inside = |key: &str| from.as_str() <= key && key < to.as_str();
        for key in [
            format!("{}n1/00000000000000000001", layout.events()),
            format!("{}~/~", layout.events()),
            format!("{}n1/00000000000000000001", layout.older_events()),
            format!("{}~/~", layout.older_events()),
        ] {
            assert!(inside(&key), "{key} is watched");
            assert!(layout.is_event(key.as_bytes()), "{key} is a batch");
        }
        for key in [
            layout.node(&NodeId("n1".into())),
            layout.partition(7),
            layout.channel("demo/room-1"),
            "/showcall/v1/calls/7/call-1".to_owned(),
            "/showcall/v1/webhooks/checkpoints/demo".to_owned(),
            "/showcall/v2/timeline/n1/1".to_owned(),
            "/showcall/v1/events0".to_owned(),
        ] {
            assert!(!layout.is_event(key.as_bytes()), "{key} is no batch");
        }
    }

    /// A node's info with nothing of note: no load, no lease, no media.
    fn node_n1() -> NodeInfo {
        NodeInfo {
            id: NodeId("n1".into()),
            grpc_addr: "127.0.0.1:1".into(),
            media_addr: "127.0.0.1:2".into(),
            signal_url: "ws://127.0.0.1:3/signal".into(),
            signal_public_url: None,
            capacity: 1000,
            load: 0,
            leaving: false,
            lease: 0,
            timeline: true,
            wire_minor: 0,
            media: None,
        }
    }

    #[test]
    fn keys_put_and_deleted_shape_the_view() {
        let layout = Layout {
            prefix: "/showcall/v1/".into(),
        };
        let mut view = ClusterView::default();
        let info = node_n1();
        view.put(
            &layout,
            "/showcall/v1/nodes/n1",
            &serde_json::to_vec(&info).unwrap(),
        );
        view.put(&layout, "/showcall/v1/partitions/7", b"n1");
        view.put(&layout, "/showcall/v1/partitions/x", b"n1");
        view.put(&layout, "/elsewhere/partitions/8", b"n1");
        view.put(&layout, "/showcall/v1/channels/demo/room-1", b"n1");
        assert_eq!(
            view.channels_on(&NodeId("n1".into())),
            ["demo/room-1".to_owned()].into_iter().collect()
        );
        assert!(!view.delete(&layout, "/showcall/v1/channels/demo/room-1"));
        assert_eq!(view.live(), [NodeId("n1".into())].into_iter().collect());
        assert_eq!(view.owned_by(&NodeId("n1".into())), vec![7]);
        assert!(view.delete(&layout, "/showcall/v1/partitions/7"));
        assert!(view.delete(&layout, "/showcall/v1/nodes/n1"));
        assert_eq!(view, ClusterView::default());
    }

    #[test]
    fn a_node_republishing_only_its_load_does_not_change_the_clusters_shape() {
        let layout = Layout {
            prefix: "/showcall/v1/".into(),
        };
        let key = "/showcall/v1/nodes/n1";
        let info = NodeInfo {
            lease: 5,
            wire_minor: 4,
            media: Some(MediaInfo {
                relays: true,
                sessions: 0,
                egress_bps: 0,
                max_sessions: 50,
                max_egress_bps: 0,
            }),
            ..node_n1()
        };
        let put = |view: &mut ClusterView, info: &NodeInfo| {
            view.put(&layout, key, &serde_json::to_vec(info).unwrap())
        };
        let mut view = ClusterView::default();
        assert!(put(&mut view, &info), "a node arrives");
        let loaded = NodeInfo {
            load: 12,
            media: Some(MediaInfo {
                sessions: 30,
                egress_bps: 9_000_000,
                ..info.media.clone().unwrap()
            }),
            ..info.clone()
        };
        assert!(!put(&mut view, &loaded), "its load changes");
        assert_eq!(view.nodes[&NodeId("n1".into())].load, 12, "and is read");
        let leaving = NodeInfo {
            leaving: true,
            ..loaded.clone()
        };
        assert!(put(&mut view, &leaving), "it leaves");
        let relet = NodeInfo {
            lease: 6,
            ..loaded.clone()
        };
        assert!(put(&mut view, &relet), "it registered again");
        let smaller = NodeInfo {
            media: Some(MediaInfo {
                max_sessions: 10,
                ..loaded.media.clone().unwrap()
            }),
            ..relet
        };
        assert!(put(&mut view, &smaller), "its limits changed");
        assert!(put(&mut view, &info), "and again, its load too");
        assert!(view.put(&layout, "/showcall/v1/partitions/7", b"n1"));
        assert!(!view.put(&layout, "/showcall/v1/channels/demo/room-1", b"n1"));
        assert!(
            !view.put(&layout, key, b"not json"),
            "unreadable: nothing changes"
        );
    }

    #[test]
    fn a_node_announces_itself_as_an_edge_only_with_its_media_info() {
        let older: NodeInfo = serde_json::from_str(
            r#"{"id":"n0","grpc_addr":"","media_addr":"","signal_url":"","capacity":1,"wire_minor":3}"#,
        )
        .expect("a 1.3 node's info reads");
        let node = older.media_node();
        assert!(!node.relays, "a node without media info does not relay");
        assert_eq!(node.wire_minor, 3);

        let info = NodeInfo {
            media: Some(MediaInfo {
                relays: true,
                sessions: 40,
                egress_bps: 8_000_000,
                max_sessions: 50,
                max_egress_bps: 0,
            }),
            ..older
        };
        let read: NodeInfo =
            serde_json::from_slice(&serde_json::to_vec(&info).unwrap()).expect("reads back");
        let node = read.media_node();
        assert!(node.relays && node.has_room());
        assert_eq!((node.viewers, node.max_viewers), (40, 50));
    }

    #[test]
    fn media_load_is_republished_on_a_session_change_or_a_rate_change_of_over_an_eighth() {
        let published = MediaLoad {
            sessions: 10,
            egress_bps: 8_000_000,
        };
        let with = |sessions, egress_bps| MediaLoad {
            sessions,
            egress_bps,
        };
        assert!(!with(10, 8_000_000).worth_publishing(&published));
        assert!(!with(10, 8_900_000).worth_publishing(&published));
        assert!(with(10, 9_100_000).worth_publishing(&published));
        assert!(with(10, 6_900_000).worth_publishing(&published));
        assert!(with(11, 8_000_000).worth_publishing(&published));
        assert!(with(1, 0).worth_publishing(&MediaLoad::default()));
    }
}
