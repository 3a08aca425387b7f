//! One live room across nodes (`showcall_protocol::media_edge`), at the actor layer: two hubs ("a",
//! the room's origin, and "b") whose envelopes travel as wire bytes through an in-memory courier, each
//! with a media router and a relay that record what they are asked. The channel actor on the origin
//! keeps the member list; a viewer whose connection is on b gets its media session on b, whose router
//! subscribes to the origin once and unsubscribes after its last viewer. On tokio's paused clock.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use showcall_machines::user::ClientEvent;
use showcall_machines::{ChannelName, ChannelUpdate, Role, UserConfig, UserId};
use showcall_ports::placement::{PinFuture, PinRefusal, Placement};
use showcall_ports::{
    AnswerApplied, LayerCapped, MediaControl, MediaRefusal, MediaRelay, SessionOpening,
};
use showcall_protocol::envelope::{Body, Courier, Envelope};
use showcall_protocol::media_edge::{EdgeRule, MediaNode, RelayTicket};
use showcall_protocol::messages::LostKeys;
use showcall_protocol::{ActorKey, AppId, CommandOk, NodeId, UserCommand, VideoLayer, wire};
use showcall_runtime::{Hub, HubParts};
use support::{Client, HOUR_MS, STUCK};
use tokio::sync::mpsc;

fn node(name: &str) -> NodeId {
    NodeId(name.into())
}

fn room() -> ChannelName {
    ChannelName("showroom".into())
}

/// What every node sees: users whose id starts with "a" live on a, the others on b; a live room where
/// it was pinned first; each node's announced wire minor and media load.
#[derive(Debug, Default)]
struct Cluster {
    pins: Mutex<HashMap<(AppId, ChannelName), NodeId>>,
    minors: Mutex<HashMap<NodeId, u32>>,
    /// Nodes announcing they are full (`max_viewers` reached).
    full: Mutex<HashSet<NodeId>>,
    /// Nodes with room for one viewer whose announcement lags: it says none yet, whatever they hold.
    room_for_one: Mutex<HashSet<NodeId>>,
    hubs: OnceLock<HashMap<NodeId, Hub>>,
    /// `Body::Media` envelopes sent (origin ↔ edge).
    media_envelopes: AtomicU64,
    /// Media nodes the placement offers (a and b unless a test adds c).
    media: Mutex<Vec<NodeId>>,
    /// Nodes killed: nothing reaches them, nothing they send arrives.
    dead: Mutex<HashSet<NodeId>>,
    /// A dead node's users, and where they live now.
    moved: Mutex<HashMap<NodeId, NodeId>>,
}

impl Cluster {
    fn minor(&self, node: &NodeId) -> u32 {
        self.minors
            .lock()
            .unwrap()
            .get(node)
            .copied()
            .unwrap_or(wire::WIRE_MINOR)
    }
}

#[derive(Debug)]
struct TestPlacement {
    this: NodeId,
    cluster: Arc<Cluster>,
}

impl Placement for TestPlacement {
    fn this_node(&self) -> &NodeId {
        &self.this
    }

    fn owner(&self, key: &ActorKey) -> Option<NodeId> {
        match key {
            ActorKey::User(_, user) if user.as_str().starts_with('a') => {
                let moved = self.cluster.moved.lock().unwrap();
                Some(moved.get(&node("a")).cloned().unwrap_or(node("a")))
            }
            ActorKey::User(..) | ActorKey::Call(..) => Some(node("b")),
            ActorKey::Channel(app, channel) => {
                let pins = self.cluster.pins.lock().unwrap();
                pins.get(&(app.clone(), channel.clone())).cloned()
            }
        }
    }

    fn pin_channel(&self, app: &AppId, channel: &ChannelName) -> PinFuture {
        let mut pins = self.cluster.pins.lock().unwrap();
        let holder = pins
            .entry((app.clone(), channel.clone()))
            .or_insert_with(|| self.this.clone())
            .clone();
        let pinned = if holder == self.this {
            Ok(())
        } else {
            Err(PinRefusal::Elsewhere(holder))
        };
        Box::pin(async move { pinned })
    }

    fn edge_rule(&self) -> EdgeRule {
        EdgeRule::ClientNode
    }

    fn media_nodes(&self) -> Vec<MediaNode> {
        let media = self.cluster.media.lock().unwrap().clone();
        media
            .into_iter()
            .map(|id| {
                let mut n = MediaNode::unlimited(id);
                n.wire_minor = self.cluster.minor(&n.id);
                if self.cluster.full.lock().unwrap().contains(&n.id) {
                    n.max_viewers = 1;
                    n.viewers = 1;
                }
                if self.cluster.room_for_one.lock().unwrap().contains(&n.id) {
                    n.max_viewers = 1;
                }
                n
            })
            .collect()
    }
}

/// Carries envelopes as the node link does: wire bytes, read back by the wire's rule, in order per
/// destination.
#[derive(Debug)]
struct LoopCourier {
    this: NodeId,
    cluster: Arc<Cluster>,
    lanes: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Vec<u8>>>>,
}

impl Courier for LoopCourier {
    fn send(&self, to: &NodeId, envelope: Envelope) -> bool {
        let dead = self.cluster.dead.lock().unwrap();
        if dead.contains(to) || dead.contains(&self.this) {
            return false;
        }
        drop(dead);
        let Some(hub) = self.cluster.hubs.get().and_then(|h| h.get(to)).cloned() else {
            return false;
        };
        if matches!(envelope.body, Body::Media { .. }) {
            self.cluster.media_envelopes.fetch_add(1, Ordering::Relaxed);
        }
        let mut lanes = self.lanes.lock().unwrap();
        let lane = lanes.entry(to.clone()).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
            tokio::spawn(async move {
                while let Some(bytes) = rx.recv().await {
                    let envelope = wire::read(wire::WIRE_MAJOR, &bytes).expect("the wire reads");
                    hub.deliver(envelope).await;
                }
            });
            tx
        });
        lane.send(envelope.encode()).is_ok()
    }

    fn reads_minor(&self, node: &NodeId) -> u32 {
        self.cluster.minor(node)
    }
}

/// What one node's router and relay were asked, in order.
#[derive(Debug, Default)]
struct Log(Mutex<Vec<String>>);

impl Log {
    fn push(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self, what: &str) -> usize {
        self.all().iter().filter(|w| *w == what).count()
    }
}

/// A router that opens every session (answering with its node's name) and records each command.
#[derive(Debug)]
struct RecordingRouter {
    node: NodeId,
    log: Arc<Log>,
}

impl MediaControl for RecordingRouter {
    fn open_session(
        &self,
        _: &AppId,
        channel: &ChannelName,
        user: &UserId,
        may_publish: bool,
        _: String,
    ) -> SessionOpening {
        self.log
            .push(format!("open {channel} {user} publish={may_publish}"));
        let answer = format!("answer from {}", self.node);
        Box::pin(async move { Ok(answer) })
    }

    fn close_session(&self, _: &AppId, channel: &ChannelName, user: &UserId) {
        self.log.push(format!("close {channel} {user}"));
    }

    fn close_channel(&self, _: &AppId, channel: &ChannelName) {
        self.log.push(format!("close room {channel}"));
    }

    fn accept_answer(
        &self,
        _: &AppId,
        channel: &ChannelName,
        user: &UserId,
        revision: u64,
        _: String,
    ) -> AnswerApplied {
        self.log
            .push(format!("answer {channel} {user} revision={revision}"));
        Box::pin(async { Ok(()) })
    }

    fn restart_ice(
        &self,
        _: &AppId,
        channel: &ChannelName,
        user: &UserId,
        _: String,
    ) -> SessionOpening {
        self.log.push(format!("restart ice {channel} {user}"));
        let answer = format!("restarted on {}", self.node);
        Box::pin(async move { Ok(answer) })
    }

    fn set_video_layer(
        &self,
        _: &AppId,
        channel: &ChannelName,
        user: &UserId,
        max_layer: VideoLayer,
    ) -> LayerCapped {
        self.log
            .push(format!("layer {channel} {user} {max_layer:?}"));
        Box::pin(async { Ok(()) })
    }

    fn set_forwarding(&self, _: &AppId, channel: &ChannelName, publisher: &UserId, on: bool) {
        self.log.push(format!("forward {channel} {publisher} {on}"));
    }

    fn request_keyframe(&self, _: &AppId, channel: &ChannelName, publisher: &UserId) {
        self.log.push(format!("keyframe {channel} {publisher}"));
    }
}

/// A relay that records subscriptions; its tickets carry the node's name as the address.
#[derive(Debug)]
struct RecordingRelay {
    node: NodeId,
    log: Arc<Log>,
    keys: AtomicU64,
    /// Refuses to subscribe (its relay socket is gone, say).
    refuses: Arc<std::sync::atomic::AtomicBool>,
}

impl MediaRelay for RecordingRelay {
    fn relays(&self) -> bool {
        true
    }

    fn edge_ticket(&self) -> Result<RelayTicket, MediaRefusal> {
        let key = self.keys.fetch_add(1, Ordering::Relaxed);
        Ok(RelayTicket {
            addr: format!("{}:relay", self.node),
            key: format!("{key:02x}"),
        })
    }

    fn add_edge(
        &self,
        _: &AppId,
        channel: &ChannelName,
        edge_node: &NodeId,
        edge: &RelayTicket,
    ) -> Result<RelayTicket, MediaRefusal> {
        self.log
            .push(format!("add edge {channel} {edge_node} at {}", edge.addr));
        Ok(RelayTicket {
            addr: format!("{}:relay", self.node),
            key: edge.key.clone(),
        })
    }

    fn remove_edge(&self, _: &AppId, channel: &ChannelName, edge_node: &NodeId) {
        self.log.push(format!("remove edge {channel} {edge_node}"));
    }

    fn subscribe_origin(
        &self,
        _: &AppId,
        channel: &ChannelName,
        origin_node: &NodeId,
        origin: &RelayTicket,
    ) -> Result<(), MediaRefusal> {
        if self.refuses.load(Ordering::Relaxed) {
            return Err(MediaRefusal::Unavailable("no relay socket".into()));
        }
        self.log.push(format!(
            "subscribe {channel} {origin_node} at {}",
            origin.addr
        ));
        Ok(())
    }

    fn unsubscribe_origin(&self, _: &AppId, channel: &ChannelName) {
        self.log.push(format!("unsubscribe {channel}"));
    }
}

struct Nodes {
    a: Hub,
    b: Hub,
    /// A third node, a media node only in `three_nodes`.
    c: Hub,
    cluster: Arc<Cluster>,
    /// Each node's router and relay log.
    logs: HashMap<&'static str, Arc<Log>>,
    /// Makes a node's relay refuse subscriptions.
    relay_refuses: HashMap<&'static str, Arc<std::sync::atomic::AtomicBool>>,
}

impl Nodes {
    fn log(&self, name: &str) -> Vec<String> {
        self.logs[name].all()
    }

    /// Node a dies (SIGKILL): its actors stop without a word reaching anyone, its pins go with its
    /// lease, its users' partition moves to `users_to`, and the survivors hear of its death.
    fn kill_a(&self, users_to: &str) {
        self.cluster.dead.lock().unwrap().insert(node("a"));
        self.a.evict_all();
        self.a_lost(users_to);
    }

    /// Node a is frozen (SIGSTOP) past its lease: the cluster counts it dead, as `kill_a`; it still
    /// runs its actors and sends, once it wakes.
    fn freeze_a_past_its_lease(&self, users_to: &str) {
        self.a_lost(users_to);
    }

    /// What the cluster does when a's lease expires.
    fn a_lost(&self, users_to: &str) {
        let a = node("a");
        self.cluster.pins.lock().unwrap().retain(|_, at| *at != a);
        self.cluster
            .moved
            .lock()
            .unwrap()
            .insert(a.clone(), node(users_to));
        let lost: LostKeys = Arc::new(|key| match key {
            ActorKey::User(_, user) => user.as_str().starts_with('a'),
            ActorKey::Channel(..) => true,
            ActorKey::Call(..) => false,
        });
        for survivor in [&self.b, &self.c] {
            survivor.node_lost(&a, lost.clone());
        }
    }
}

fn two_nodes() -> Nodes {
    nodes(&["a", "b"])
}

fn three_nodes() -> Nodes {
    nodes(&["a", "b", "c"])
}

/// Nodes a, b and c, of which `media` are media nodes.
fn nodes(media: &[&str]) -> Nodes {
    let cluster = Arc::new(Cluster {
        media: Mutex::new(media.iter().map(|name| node(name)).collect()),
        ..Cluster::default()
    });
    let mut logs = HashMap::new();
    let mut relay_refuses = HashMap::new();
    let mut hub = |name: &'static str| {
        let log = Arc::new(Log::default());
        logs.insert(name, log.clone());
        let refuses = Arc::new(std::sync::atomic::AtomicBool::new(false));
        relay_refuses.insert(name, refuses.clone());
        let mut parts = HubParts::single_node(node(name), UserConfig::default());
        parts.placement = Arc::new(TestPlacement {
            this: node(name),
            cluster: cluster.clone(),
        });
        parts.courier = Arc::new(LoopCourier {
            this: node(name),
            cluster: cluster.clone(),
            lanes: Mutex::default(),
        });
        parts.media = Arc::new(RecordingRouter {
            node: node(name),
            log: log.clone(),
        });
        parts.relay = Arc::new(RecordingRelay {
            node: node(name),
            log,
            keys: AtomicU64::new(1),
            refuses,
        });
        Hub::new(parts)
    };
    let (a, b, c) = (hub("a"), hub("b"), hub("c"));
    let by_node = [
        (node("a"), a.clone()),
        (node("b"), b.clone()),
        (node("c"), c.clone()),
    ]
    .into();
    cluster.hubs.set(by_node).expect("set once");
    Nodes {
        a,
        b,
        c,
        cluster,
        logs,
        relay_refuses,
    }
}

/// Joins the room with a media offer; the SDP answer.
async fn join(client: &mut Client, role: Role) -> String {
    let joined = client
        .command(UserCommand::JoinChannel {
            channel: room(),
            role,
            may_publish: role == Role::Broadcaster,
            offer: Some("v=0\r\n".into()),
        })
        .await;
    match joined {
        CommandOk::Joined {
            sdp_answer: Some(answer),
            ..
        } => answer,
        other => panic!("joined with media: {other:?}"),
    }
}

/// Waits for the room's update matching `want`.
async fn update(client: &mut Client, want: impl Fn(&ChannelUpdate) -> bool) -> ChannelUpdate {
    loop {
        match client.next().await {
            Some(ClientEvent::Channel { update, .. }) if want(&update) => return update,
            Some(_) => {}
            None => panic!("{}: closed, saw {:?}", client.session.user(), client.seen),
        }
    }
}

/// Lets the nodes and their timers run (on the paused clock) until `holds`; a story that never gets
/// there in an hour of virtual time fails.
async fn eventually(what: &str, holds: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    while !holds() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Lets the nodes run until `holds` (what crosses nodes after a command's answer: closes,
/// unsubscribes); a story that never gets there fails.
async fn until(what: &str, holds: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if holds() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(start_paused = true)]
async fn a_viewer_connected_to_another_node_gets_its_session_there_and_the_edge_subscribes_once() {
    let nodes = two_nodes();
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    assert_eq!(
        join(&mut alice, Role::Broadcaster).await,
        "answer from a",
        "the host publishes on the origin"
    );
    // bob and bea connect to b (their sessions live there too).
    let mut bob = Client::prepared(&nodes.b, "bob").await;
    let mut bea = Client::prepared(&nodes.b, "bea").await;
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from b");
    assert_eq!(join(&mut bea, Role::Audience).await, "answer from b");

    // The origin keeps the one member list: the host hears of both viewers.
    for viewer in ["bob", "bea"] {
        update(
            &mut alice,
            |u| matches!(u, ChannelUpdate::MemberJoined { user, .. } if user.as_str() == viewer),
        )
        .await;
    }
    let a_log = nodes.log("a");
    let b_log = nodes.log("b");
    assert!(
        a_log.contains(&"open showroom alice publish=true".into()),
        "{a_log:?}"
    );
    assert!(
        !a_log.iter().any(|l| l.starts_with("open showroom b")),
        "{a_log:?}"
    );
    assert!(
        b_log.contains(&"open showroom bob publish=false".into()),
        "{b_log:?}"
    );
    assert!(
        b_log.contains(&"open showroom bea publish=false".into()),
        "{b_log:?}"
    );
    assert_eq!(
        nodes.logs["b"].count("subscribe showroom a at a:relay"),
        1,
        "one subscription per room: {b_log:?}"
    );
    assert_eq!(
        nodes.logs["a"].count("add edge showroom b at b:relay"),
        1,
        "{a_log:?}"
    );
    assert_eq!(
        nodes.b.edge_rooms(),
        vec![(support::app(), room(), node("a"))]
    );

    // A viewer's answer, ICE restart and layer cap reach the router holding its session.
    bob.command(UserCommand::AnswerMedia {
        channel: room(),
        sdp_answer: "v=0\r\n".into(),
        revision: 2,
    })
    .await;
    let restarted = bob
        .command(UserCommand::RestartIce {
            channel: room(),
            sdp_offer: "v=0\r\n".into(),
        })
        .await;
    assert_eq!(
        restarted,
        CommandOk::IceRestarted {
            sdp_answer: "restarted on b".into()
        }
    );
    bob.command(UserCommand::SetVideoLayer {
        channel: room(),
        max_layer: VideoLayer::Low,
    })
    .await;
    let b_log = nodes.log("b");
    for line in [
        "answer showroom bob revision=2",
        "restart ice showroom bob",
        "layer showroom bob Low",
    ] {
        assert!(b_log.contains(&line.to_owned()), "{line}: {b_log:?}");
    }

    // The last viewer's leave unsubscribes the edge, and the origin stops relaying to it.
    bob.command(UserCommand::LeaveChannel { channel: room() })
        .await;
    until("bob's session closed on b", || {
        nodes.logs["b"].count("close showroom bob") == 1
    })
    .await;
    assert_eq!(
        nodes.logs["b"].count("unsubscribe showroom"),
        0,
        "bea is still there"
    );
    bea.command(UserCommand::LeaveChannel { channel: room() })
        .await;
    until("the origin stops relaying to b", || {
        nodes.logs["a"].count("remove edge showroom b") == 1
    })
    .await;
    let b_log = nodes.log("b");
    assert!(b_log.contains(&"close showroom bea".into()), "{b_log:?}");
    assert_eq!(
        nodes.logs["b"].count("unsubscribe showroom"),
        1,
        "{b_log:?}"
    );
    until("the edge's room worker ended", || {
        nodes.b.edge_rooms().is_empty()
    })
    .await;
    for viewer in ["bob", "bea"] {
        update(
            &mut alice,
            |u| matches!(u, ChannelUpdate::MemberLeft { user } if user.as_str() == viewer),
        )
        .await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_origin_that_lost_its_lease_closes_its_rooms_sessions_on_the_edges() {
    let nodes = two_nodes();
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    join(&mut alice, Role::Broadcaster).await;
    let mut bob = Client::prepared(&nodes.b, "bob").await;
    join(&mut bob, Role::Audience).await;
    nodes.a.evict_all();
    until("b unsubscribed", || {
        nodes.logs["b"].count("unsubscribe showroom") == 1
    })
    .await;
    let b_log = nodes.log("b");
    assert!(b_log.contains(&"close room showroom".into()), "{b_log:?}");
    until("the edge's room worker ended", || {
        nodes.b.edge_rooms().is_empty()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_viewer_whose_node_reads_an_older_wire_gets_its_session_on_the_origin() {
    let nodes = two_nodes();
    nodes.cluster.minors.lock().unwrap().insert(node("b"), 3);
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    join(&mut alice, Role::Broadcaster).await;
    let mut bob = Client::prepared(&nodes.b, "bob").await;
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from a");
    assert!(nodes.log("b").is_empty(), "{:?}", nodes.log("b"));
    assert_eq!(
        nodes.cluster.media_envelopes.load(Ordering::Relaxed),
        0,
        "no 1.4 kind went to the 1.3 node"
    );
}

#[tokio::test(start_paused = true)]
async fn a_viewer_whose_node_is_full_gets_its_session_on_the_origin() {
    let nodes = two_nodes();
    nodes.cluster.full.lock().unwrap().insert(node("b"));
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    join(&mut alice, Role::Broadcaster).await;
    let mut bob = Client::prepared(&nodes.b, "bob").await;
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from a");
}

#[tokio::test(start_paused = true)]
async fn an_edge_with_room_for_one_viewer_takes_one_though_its_announcement_lags() {
    let nodes = two_nodes();
    nodes.cluster.room_for_one.lock().unwrap().insert(node("b"));
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    join(&mut alice, Role::Broadcaster).await;
    let mut bob = Client::prepared(&nodes.b, "bob").await;
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from b");
    // b still announces no viewer: the origin picks it again; b, full, refuses and the origin opens
    // the session itself.
    let mut ben = Client::prepared(&nodes.b, "ben").await;
    assert_eq!(join(&mut ben, Role::Audience).await, "answer from a");
    assert_eq!(nodes.logs["b"].count("open showroom ben publish=false"), 0);
    // bob's leave makes room on b again.
    bob.command(UserCommand::LeaveChannel { channel: room() })
        .await;
    until("bob's session closed on b", || {
        nodes.logs["b"].count("close showroom bob") == 1
    })
    .await;
    let mut bea = Client::prepared(&nodes.b, "bea").await;
    assert_eq!(join(&mut bea, Role::Audience).await, "answer from b");
}

#[tokio::test(start_paused = true)]
async fn a_viewer_is_refused_when_every_node_is_full() {
    let nodes = two_nodes();
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    join(&mut alice, Role::Broadcaster).await;
    nodes
        .cluster
        .full
        .lock()
        .unwrap()
        .extend([node("a"), node("b")]);
    let bob = Client::prepared(&nodes.b, "bob").await;
    let refused = bob
        .session
        .command(UserCommand::JoinChannel {
            channel: room(),
            role: Role::Audience,
            may_publish: false,
            offer: Some("v=0\r\n".into()),
        })
        .await;
    match refused {
        Err(showcall_protocol::CommandError::Unavailable(why)) => {
            assert!(why.contains("no media node has room"), "{why}")
        }
        other => panic!("refused for want of room: {other:?}"),
    }
    assert!(
        nodes.log("b").is_empty(),
        "nothing opened: {:?}",
        nodes.log("b")
    );
}

#[tokio::test(start_paused = true)]
async fn viewers_whose_edge_node_died_leave_the_room() {
    let nodes = two_nodes();
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    join(&mut alice, Role::Broadcaster).await;
    // ann's session lives on a (her name), her connection on b: her media goes to b.
    let mut ann = Client::login(&nodes.b, "ann", HOUR_MS).await;
    assert_eq!(join(&mut ann, Role::Audience).await, "answer from b");
    update(
        &mut alice,
        |u| matches!(u, ChannelUpdate::MemberJoined { user, .. } if user.as_str() == "ann"),
    )
    .await;

    // b dies: no key of a's was b's, but ann's media was there.
    nodes.a.node_lost(&node("b"), Arc::new(|_| false));
    let left = tokio::time::timeout(
        STUCK,
        update(
            &mut alice,
            |u| matches!(u, ChannelUpdate::MemberLeft { user } if user.as_str() == "ann"),
        ),
    )
    .await;
    assert!(left.is_ok(), "ann left the room");
    assert_eq!(
        nodes.logs["a"].count("remove edge showroom b"),
        1,
        "the origin stops relaying to the dead edge: {:?}",
        nodes.log("a")
    );
}

#[tokio::test(start_paused = true)]
async fn a_viewer_whose_edge_cannot_relay_gets_its_session_on_the_origin() {
    let nodes = two_nodes();
    nodes.relay_refuses["b"].store(true, Ordering::Relaxed);
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    join(&mut alice, Role::Broadcaster).await;
    let mut bob = Client::prepared(&nodes.b, "bob").await;
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from a");
    let a_log = nodes.log("a");
    assert!(
        a_log.contains(&"open showroom bob publish=false".into()),
        "{a_log:?}"
    );
    // The origin had added the edge before the edge's router refused: it stops relaying to it, and
    // the edge holds nothing of the room.
    until("the origin stops relaying to b", || {
        nodes.logs["a"].count("remove edge showroom b") == 1
    })
    .await;
    assert!(
        !nodes.log("b").iter().any(|l| l.starts_with("open")),
        "{:?}",
        nodes.log("b")
    );
    until("the edge's room worker ended", || {
        nodes.b.edge_rooms().is_empty()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_viewer_who_joins_again_where_its_node_is_full_moves_to_the_origin() {
    let nodes = two_nodes();
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    join(&mut alice, Role::Broadcaster).await;
    let mut bob = Client::prepared(&nodes.b, "bob").await;
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from b");
    // b fills up; bob's new offer (a rejoin) gets its session on the origin, and the one on b closes.
    nodes.cluster.full.lock().unwrap().insert(node("b"));
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from a");
    until("b unsubscribed", || {
        nodes.logs["b"].count("unsubscribe showroom") == 1
    })
    .await;
    assert_eq!(nodes.logs["b"].count("close showroom bob"), 1);
    // Its media commands now go to the origin's router.
    bob.command(UserCommand::SetVideoLayer {
        channel: room(),
        max_layer: VideoLayer::Medium,
    })
    .await;
    assert_eq!(nodes.logs["a"].count("layer showroom bob Medium"), 1);
}

#[tokio::test(start_paused = true)]
async fn viewers_keep_their_sessions_on_the_edges_when_the_origin_dies_and_see_the_host_again() {
    let nodes = three_nodes();
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    assert_eq!(join(&mut alice, Role::Broadcaster).await, "answer from a");
    // bob watches through b; cat's session lives on b, her connection (so her media) on c.
    let mut bob = Client::prepared(&nodes.b, "bob").await;
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from b");
    let mut cat = Client::login(&nodes.c, "cat", HOUR_MS).await;
    assert_eq!(join(&mut cat, Role::Audience).await, "answer from c");
    // ann watches through b too, but her session lives on a: it dies with the origin.
    let mut ann = Client::login(&nodes.b, "ann", HOUR_MS).await;
    assert_eq!(join(&mut ann, Role::Audience).await, "answer from b");
    for viewer in ["bob", "cat", "ann"] {
        update(
            &mut alice,
            |u| matches!(u, ChannelUpdate::MemberJoined { user, .. } if user.as_str() == viewer),
        )
        .await;
    }

    // The origin dies with the host's session; the edges keep their viewers (and the dead origin's
    // relay, which stalls).
    drop(alice);
    nodes.kill_a("c");
    until("ann's session, gone with a, closed its media on b", || {
        nodes.logs["b"].count("close showroom ann") == 1
    })
    .await;

    // The host's app logs in again (on c, where its partition went) and goes live: the room reopens
    // there.
    let mut alice = Client::prepared(&nodes.c, "alice").await;
    let joined = alice
        .command(UserCommand::JoinChannel {
            channel: room(),
            role: Role::Broadcaster,
            may_publish: true,
            offer: Some("v=0\r\n".into()),
        })
        .await;
    let CommandOk::Joined {
        view,
        sdp_answer: Some(answer),
        ..
    } = joined
    else {
        panic!("joined with media: {joined:?}")
    };
    assert_eq!(answer, "answer from c");
    // The new origin's room counts both viewers as members: c handed cat to its channel as it
    // opened (she is in the host's first view), b re-subscribed with bob once it saw the new pin.
    assert!(
        view.members.iter().any(|(user, _)| user.as_str() == "cat"),
        "{view:?}"
    );
    assert!(
        !view.members.iter().any(|(user, _)| user.as_str() == "ann"),
        "{view:?}"
    );
    update(
        &mut alice,
        |u| matches!(u, ChannelUpdate::MemberJoined { user, .. } if user.as_str() == "bob"),
    )
    .await;
    // ann was not taken back (b would have named her before bob).
    assert!(
        !alice.seen.iter().any(|e| matches!(
            e,
            ClientEvent::Channel { update: ChannelUpdate::MemberJoined { user, .. }, .. }
                if user.as_str() == "ann"
        )),
        "{:?}",
        alice.seen
    );
    // Both viewers hear the host is back, without asking.
    for viewer in [&mut bob, &mut cat] {
        update(
            viewer,
            |u| matches!(u, ChannelUpdate::MemberJoined { user, .. } if user.as_str() == "alice"),
        )
        .await;
    }
    let b_log = nodes.log("b");
    let c_log = nodes.log("c");
    assert!(
        b_log.contains(&"subscribe showroom c at c:relay".into()),
        "b's relay now comes from c: {b_log:?}"
    );
    assert_eq!(
        nodes.logs["b"].count("unsubscribe showroom"),
        0,
        "b's relay was replaced, not dropped: {b_log:?}"
    );
    let position = |what: &str| c_log.iter().rposition(|l| l == what);
    assert!(
        position("unsubscribe showroom") < position("open showroom alice publish=true"),
        "c dropped the dead relay (and handed cat to its channel) before the host's session          opened, so it receives its host directly: {c_log:?}"
    );
    assert_eq!(nodes.logs["c"].count("unsubscribe showroom"), 1);
    assert!(
        c_log.contains(&"add edge showroom b at b:relay".into()),
        "{c_log:?}"
    );
    // The same sessions: none closed, none opened again.
    assert_eq!(nodes.logs["b"].count("open showroom bob publish=false"), 1);
    assert_eq!(nodes.logs["c"].count("open showroom cat publish=false"), 1);
    assert_eq!(
        b_log
            .iter()
            .filter(|l| l.starts_with("close"))
            .collect::<Vec<_>>(),
        ["close showroom ann"],
        "bob's session stays: {b_log:?}"
    );
    assert!(!c_log.iter().any(|l| l.starts_with("close")), "{c_log:?}");
    assert_eq!(
        nodes.c.edge_rooms(),
        vec![],
        "c is the origin now, not an edge"
    );
    assert_eq!(
        nodes.b.edge_rooms(),
        vec![(support::app(), room(), node("c"))],
        "b is an edge of the new origin"
    );

    // The new channel knows where each viewer's session is: bob's leave closes his on b, and b's
    // last viewer unsubscribes it.
    bob.command(UserCommand::LeaveChannel { channel: room() })
        .await;
    until("bob's session on b closed", || {
        nodes.logs["b"].count("close showroom bob") == 1
            && nodes.logs["b"].count("unsubscribe showroom") == 1
    })
    .await;
    until("c stopped relaying to b", || {
        nodes.logs["c"].count("remove edge showroom b") == 1
    })
    .await;
    cat.command(UserCommand::LeaveChannel { channel: room() })
        .await;
    until("cat's session on c closed", || {
        nodes.logs["c"].count("close showroom cat") == 1
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_edge_whose_room_does_not_reopen_within_the_grace_period_closes_its_viewers_sessions() {
    let nodes = two_nodes();
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    join(&mut alice, Role::Broadcaster).await;
    let mut bob = Client::prepared(&nodes.b, "bob").await;
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from b");
    drop(alice);
    nodes.kill_a("b");
    assert!(
        !nodes
            .log("b")
            .iter()
            .any(|l| l.starts_with("close") || l.starts_with("unsubscribe")),
        "the viewer's session is kept while the host may come back: {:?}",
        nodes.log("b")
    );

    // Nobody reopens the room: past the grace period the edge drops the dead relay and closes its
    // sessions.
    eventually("the edge gave the room up", || {
        nodes.logs["b"].count("close room showroom") == 1 && nodes.b.edge_rooms().is_empty()
    })
    .await;
    assert_eq!(nodes.logs["b"].count("unsubscribe showroom"), 1);

    // bob's session forgot the room: joining it again is a first join (the room opens where he is).
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from b");
    assert_eq!(nodes.logs["b"].count("open showroom bob publish=false"), 2);
}

#[tokio::test(start_paused = true)]
async fn an_origin_that_wakes_after_its_lease_expired_cannot_close_the_sessions_the_edge_kept() {
    let nodes = two_nodes();
    let mut alice = Client::prepared(&nodes.a, "alice").await;
    join(&mut alice, Role::Broadcaster).await;
    let mut bob = Client::prepared(&nodes.b, "bob").await;
    assert_eq!(join(&mut bob, Role::Audience).await, "answer from b");

    // a froze; its lease ran out and the cluster moved on. It wakes, finds its lease gone and drops
    // its actors: its room closes its sessions everywhere, the edge's included.
    nodes.freeze_a_past_its_lease("b");
    nodes.a.evict_all();
    until("a closed its room", || {
        nodes.logs["a"].count("close room showroom") == 1
    })
    .await;

    // The edge carries out no command of its dead origin: bob keeps his session for the room's next
    // origin, which the host's join (on b, where its partition went) reopens.
    drop(alice);
    let mut alice = Client::prepared(&nodes.b, "alice").await;
    assert_eq!(join(&mut alice, Role::Broadcaster).await, "answer from b");
    update(
        &mut bob,
        |u| matches!(u, ChannelUpdate::MemberJoined { user, .. } if user.as_str() == "alice"),
    )
    .await;
    let b_log = nodes.log("b");
    assert!(!b_log.iter().any(|l| l.starts_with("close")), "{b_log:?}");
}
