//! One live room across two nodes (issue 15): the host publishes on the room's origin router, viewers
//! watch on an edge router that subscribes to the origin once and fans out locally. Two real routers
//! in one process, real UDP relay sockets on 127.0.0.1, real str0m clients.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{Clients, contiguous, join, until, until_async};
use showcall_media::{MediaError, MediaEvent, MediaRouter, RelayKey, RelayPeer, RouterStats};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const CHANNEL: &str = "live";

/// A router and what its clients and events are.
struct Node {
    name: String,
    router: MediaRouter,
    clients: Clients,
    events: Arc<Mutex<Vec<MediaEvent>>>,
}

impl Node {
    /// A node whose router has one worker.
    fn start(name: &str) -> Node {
        Node::with_workers(name, 1, 0)
    }

    fn with_workers(name: &str, workers: usize, room_capacity: usize) -> Node {
        let (tx, rx) = mpsc::unbounded_channel();
        let router = common::router(tx, workers, room_capacity);
        let clients = Clients::default();
        let events = Arc::new(Mutex::new(Vec::new()));
        common::pump_events(router.clone(), rx, clients.clone(), events.clone());
        Node {
            name: name.to_owned(),
            router,
            clients,
            events,
        }
    }

    fn relay_addr(&self) -> SocketAddr {
        self.router.relay_addr().expect("a relay socket")
    }

    async fn stats(&self) -> RouterStats {
        self.router.stats().await.expect("running")
    }

    fn saw(&self, check: impl Fn(&MediaEvent) -> bool) -> bool {
        self.events.lock().expect("not poisoned").iter().any(check)
    }
}

/// Relays the channel from `origin` to `edge`, their datagrams going to each other's relay address or
/// through `path` (origin side, edge side) when given.
fn link(origin: &Node, edge: &Node, path: Option<(SocketAddr, SocketAddr)>) {
    let key = RelayKey::random();
    let (edge_addr, origin_addr) = path.unwrap_or((edge.relay_addr(), origin.relay_addr()));
    // The edge first: its relay then knows the channel before the origin's first datagram arrives
    // (the other order works too, its first datagrams refused until the edge subscribes).
    edge.router
        .subscribe_origin(
            "app",
            CHANNEL,
            RelayPeer {
                node: origin.name.clone(),
                addr: origin_addr,
                key: key.clone(),
            },
        )
        .expect("edge subscribes");
    origin
        .router
        .add_edge(
            "app",
            CHANNEL,
            RelayPeer {
                node: edge.name.clone(),
                addr: edge_addr,
                key,
            },
        )
        .expect("origin relays");
}

/// A host publishing on `origin`, relayed to `edge`, whose relay knows the host.
async fn live_room(
    origin: &Node,
    edge: &Node,
    path: Option<(SocketAddr, SocketAddr)>,
) -> common::Client {
    let host = join(&origin.router, &origin.clients, CHANNEL, "host", true).await;
    until("the host to publish", || host.frames_written() > 10).await;
    link(origin, edge, path);
    until_async("the edge to know the host", || async {
        edge.stats().await.relay_publishers == 1
    })
    .await;
    host
}

async fn watching(edge: &Node, user: &str) -> common::Client {
    let viewer = join(&edge.router, &edge.clients, CHANNEL, user, false).await;
    until(&format!("{user} to get audio and video"), || {
        let seen = viewer.seen();
        seen.audio.len() >= 10 && seen.video.len() >= 20
    })
    .await;
    viewer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_viewers_watch_the_origin_host_sent_once_per_edge() {
    // The edge's viewers spread over two workers (two a worker).
    let (origin, edge) = (Node::start("origin"), Node::with_workers("edge", 2, 2));
    let host = live_room(&origin, &edge, None).await;
    let viewers = [
        watching(&edge, "v1").await,
        watching(&edge, "v2").await,
        watching(&edge, "v3").await,
    ];
    for viewer in &viewers {
        let seen = viewer.seen();
        assert!(
            seen.video[0].2,
            "{}'s video starts at a keyframe",
            viewer.key.user
        );
        contiguous(&seen.video).unwrap_or_else(|e| panic!("{}: {e}", viewer.key.user));
    }

    let mut per_worker: Vec<usize> = edge
        .router
        .worker_stats()
        .await
        .expect("running")
        .iter()
        .map(|w| w.sessions)
        .collect();
    per_worker.sort_unstable();
    assert_eq!(
        per_worker,
        [1, 2],
        "the channel spread over the edge's workers"
    );

    // A viewer joining later starts at the edge's kept keyframe.
    let cached = edge.stats().await.keyframes_from_cache;
    let late = watching(&edge, "late").await;
    assert!(
        late.seen().video[0].2,
        "the late viewer starts at a keyframe"
    );
    assert!(
        edge.stats().await.keyframes_from_cache > cached,
        "served from the edge's cache"
    );

    // A second edge, with one viewer.
    let edge2 = Node::start("edge2");
    link(&origin, &edge2, None);
    let _far = watching(&edge2, "far").await;

    // However many viewers, the origin sends each packet once to each edge.
    let (o0, e0, f0) = (
        origin.stats().await,
        edge.stats().await,
        edge2.stats().await,
    );
    let frames = host.frames_written();
    until("more frames", || host.frames_written() > frames + 50).await;
    host.set_writing(false);
    until_async("the edges to have every packet sent", || async {
        origin.stats().await.relay_packets_sent
            == edge.stats().await.relay_packets_received
                + edge2.stats().await.relay_packets_received
    })
    .await;
    let (o1, e1, f1) = (
        origin.stats().await,
        edge.stats().await,
        edge2.stats().await,
    );
    let sent = o1.relay_packets_sent - o0.relay_packets_sent;
    let received = e1.relay_packets_received - e0.relay_packets_received;
    let received2 = f1.relay_packets_received - f0.relay_packets_received;
    let forwarded = e1.packets_forwarded - e0.packets_forwarded;
    assert!(sent >= 100, "the origin relayed the frames ({sent})");
    assert_eq!(received, received2, "both edges got every packet");
    assert_eq!(sent, 2 * received, "one copy per packet to each edge");
    assert!(
        forwarded >= 3 * received,
        "the edge fanned out to its four viewers: {forwarded} packets written for {received} received"
    );
    assert_eq!(o1.relay_edges, 2);
    assert_eq!(o1.packets_forwarded, 0, "no viewer on the origin");
    let rejected =
        |a: &RouterStats, b: &RouterStats| b.relay_datagrams_rejected - a.relay_datagrams_rejected;
    assert_eq!(
        rejected(&o0, &o1) + rejected(&e0, &e1) + rejected(&f0, &f1),
        0,
        "nothing refused on a clean path"
    );
    for node in [&origin, &edge, &edge2] {
        node.router.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_on_the_origin_holds_edge_video_and_resume_starts_it_at_a_keyframe() {
    let (origin, edge) = (Node::start("origin"), Node::start("edge"));
    let host = live_room(&origin, &edge, None).await;
    let viewer = watching(&edge, "viewer").await;

    origin.router.set_forwarding("app", CHANNEL, "host", false);
    // The worker has paused the host once it answers (commands are taken in order).
    origin.stats().await;
    let frames = host.frames_written();
    let before = viewer.seen().video.len();
    until("the host to write through the pause", || {
        host.frames_written() >= frames + 30
    })
    .await;
    let during = viewer.seen().video.len();
    // At most what was already on its way when the pause took (a frame or two).
    assert!(
        during - before <= 6,
        "video held during the pause: {} packets arrived for 15 frames",
        during - before
    );

    origin.router.set_forwarding("app", CHANNEL, "host", true);
    until("video after the resume", || {
        viewer.seen().video.len() > during + 10
    })
    .await;
    {
        let seen = viewer.seen();
        assert!(
            seen.video[during].2,
            "the first packet after the resume starts a keyframe"
        );
        contiguous(&seen.video).expect("numbered on across the pause");
    }
    for node in [&origin, &edge] {
        node.router.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_leaving_the_origin_turns_edge_viewers_lines_inactive() {
    let (origin, edge) = (Node::start("origin"), Node::start("edge"));
    let host = live_room(&origin, &edge, None).await;
    let _viewer = watching(&edge, "viewer").await;

    origin.router.close(host.key.clone());
    until_async("the edge to see the host leave", || async {
        edge.stats().await.relay_publishers == 0
    })
    .await;
    until("the viewer's renegotiation", || {
        edge.saw(|e| {
            matches!(e, MediaEvent::Offer { key, sdp_offer, .. }
                if key.user == "viewer" && sdp_offer.matches("a=inactive").count() == 2)
        })
    })
    .await;
    for node in [&origin, &edge] {
        node.router.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_shuts_down_stalls_its_edges() {
    let (origin, edge) = (Node::start("origin"), Node::start("edge"));
    let _host = live_room(&origin, &edge, None).await;
    let _viewer = watching(&edge, "viewer").await;
    assert!(!edge.saw(|e| matches!(e, MediaEvent::RelayStalled { .. })));

    origin.router.shutdown().await;
    until("the edge to report the stall", || {
        edge.saw(|e| {
            matches!(e, MediaEvent::RelayStalled { app, channel, origin_node }
                if app == "app" && channel == CHANNEL && origin_node == "origin")
        })
    })
    .await;
    edge.router.shutdown().await;
}

/// A user-space UDP path between the two relays: it drops every `drop_every`-th datagram from the
/// origin, sends a copy with a flipped byte ahead of every `forge_every`-th, and drops everything
/// while blocked.
struct LossyPath {
    /// Where the origin sends to (its edge's address) and the edge sends to (its origin's address).
    origin_side: SocketAddr,
    edge_side: SocketAddr,
    dropped: Arc<AtomicU64>,
    forged: Arc<AtomicU64>,
    blocked: Arc<AtomicBool>,
}

async fn lossy_path(
    origin: SocketAddr,
    edge: SocketAddr,
    drop_every: u64,
    forge_every: u64,
) -> LossyPath {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let toward_origin = UdpSocket::bind(any).await.expect("bound");
    let toward_edge = UdpSocket::bind(any).await.expect("bound");
    let path = LossyPath {
        origin_side: toward_origin.local_addr().expect("bound"),
        edge_side: toward_edge.local_addr().expect("bound"),
        dropped: Arc::default(),
        forged: Arc::default(),
        blocked: Arc::default(),
    };
    let (dropped, forged, blocked) = (
        path.dropped.clone(),
        path.forged.clone(),
        path.blocked.clone(),
    );
    tokio::spawn(async move {
        let (mut from_origin, mut from_edge) = (vec![0u8; 2048], vec![0u8; 2048]);
        let mut n = 0u64;
        loop {
            tokio::select! {
                Ok((len, _)) = toward_origin.recv_from(&mut from_origin) => {
                    n += 1;
                    if blocked.load(Ordering::Relaxed) {
                        continue;
                    }
                    if n.is_multiple_of(drop_every) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let datagram = &from_origin[..len];
                    if n.is_multiple_of(forge_every) {
                        let mut forgery = datagram.to_vec();
                        let at = forgery.len() / 2;
                        forgery[at] ^= 0x20;
                        forged.fetch_add(1, Ordering::Relaxed);
                        let _ = toward_edge.send_to(&forgery, edge).await;
                    }
                    let _ = toward_edge.send_to(datagram, edge).await;
                }
                Ok((len, _)) = toward_edge.recv_from(&mut from_edge) => {
                    if !blocked.load(Ordering::Relaxed) {
                        let _ = toward_origin.send_to(&from_edge[..len], origin).await;
                    }
                }
            }
        }
    });
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_forging_path_between_nodes_is_repaired_and_stalls_then_resumes() {
    let (origin, edge) = (Node::start("origin"), Node::start("edge"));
    let path = lossy_path(origin.relay_addr(), edge.relay_addr(), 7, 11).await;
    let host = live_room(&origin, &edge, Some((path.origin_side, path.edge_side))).await;
    let viewer = watching(&edge, "viewer").await;

    let frames = host.frames_written();
    until("more frames", || host.frames_written() > frames + 50).await;
    host.set_writing(false);
    until_async("every packet to reach the edge, lost or not", || async {
        origin.stats().await.relay_packets_sent == edge.stats().await.relay_packets_received
    })
    .await;
    let (o, e) = (origin.stats().await, edge.stats().await);
    assert!(path.dropped.load(Ordering::Relaxed) > 0);
    assert!(
        e.relay_nacks_sent > 0 && o.relay_packets_retransmitted > 0,
        "repaired by NACK: {e:?} {o:?}"
    );
    assert_eq!(e.relay_packets_lost, 0, "every gap repaired");
    assert_eq!(
        e.relay_datagrams_rejected,
        path.forged.load(Ordering::Relaxed),
        "each forgery refused, nothing else"
    );
    assert!(e.relay_datagrams_rejected > 0);
    // The viewer's video has every number from its first to its last (some arrived late, repaired).
    let mut numbers: Vec<u16> = viewer.seen().video.iter().map(|p| p.1).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let holes = numbers.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert_eq!(holes, 0, "no hole in the viewer's video");

    // Nothing gets through: the edge says the relay stalled, then that it resumed.
    path.blocked.store(true, Ordering::Relaxed);
    until("the stall", || {
        edge.saw(|e| matches!(e, MediaEvent::RelayStalled { .. }))
    })
    .await;
    assert!(!edge.saw(|e| matches!(e, MediaEvent::RelayResumed { .. })));
    path.blocked.store(false, Ordering::Relaxed);
    until("the resume", || {
        edge.saw(|e| matches!(e, MediaEvent::RelayResumed { .. }))
    })
    .await;
    for node in [&origin, &edge] {
        node.router.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_closed_and_opened_again_on_the_edge_still_shows_the_origin_host() {
    let (origin, edge) = (Node::start("origin"), Node::start("edge"));
    let _host = live_room(&origin, &edge, None).await;
    let _first = watching(&edge, "first").await;
    edge.router.close_room("app", CHANNEL);
    let _second = watching(&edge, "second").await;
    for node in [&origin, &edge] {
        node.router.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_keys_serve_one_relay_and_a_channel_relays_one_way() {
    let (origin, edge) = (Node::start("origin"), Node::start("edge"));
    let key = RelayKey::random();
    let to_edge = |key: &RelayKey| RelayPeer {
        node: "edge".into(),
        addr: edge.relay_addr(),
        key: key.clone(),
    };
    let to_origin = |key: &RelayKey| RelayPeer {
        node: "origin".into(),
        addr: origin.relay_addr(),
        key: key.clone(),
    };
    origin
        .router
        .add_edge("app", CHANNEL, to_edge(&key))
        .expect("added");
    // Handed again: the relay carries on.
    origin
        .router
        .add_edge("app", CHANNEL, to_edge(&key))
        .expect("carries on");
    // The same key for another relay: refused.
    assert_eq!(
        origin.router.add_edge("app", "other", to_edge(&key)),
        Err(MediaError::RelayKeyReused)
    );
    // A channel with edges here is not received from an origin here.
    assert!(matches!(
        origin
            .router
            .subscribe_origin("app", CHANNEL, to_origin(&RelayKey::random())),
        Err(MediaError::RelayConflict(_))
    ));
    edge.router
        .subscribe_origin("app", CHANNEL, to_origin(&key))
        .expect("subscribed");
    edge.router.unsubscribe_origin("app", CHANNEL);
    // Subscribing again starts the relay over: with a new key only.
    assert_eq!(
        edge.router
            .subscribe_origin("app", CHANNEL, to_origin(&key)),
        Err(MediaError::RelayKeyReused)
    );

    // A router without a relay socket refuses both roles.
    let (tx, _rx) = mpsc::unbounded_channel();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let plain = MediaRouter::start(
        showcall_media::MediaConfig {
            bind: loopback,
            workers: 1,
            room_capacity: 0,
            advertise_ip: None,
            tcp: None,
            relay: None,
        },
        tx,
    )
    .expect("starts");
    assert_eq!(plain.relay_addr(), None);
    assert_eq!(
        plain.add_edge("app", CHANNEL, to_edge(&RelayKey::random())),
        Err(MediaError::NoRelay)
    );
    assert_eq!(
        plain.subscribe_origin("app", CHANNEL, to_origin(&RelayKey::random())),
        Err(MediaError::NoRelay)
    );
    for router in [&origin.router, &edge.router, &plain] {
        router.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_viewer_is_switched_between_the_origin_hosts_simulcast_layers() {
    let (origin, edge) = (Node::start("origin"), Node::start("edge"));
    let host = common::join_simulcast(&origin.router, &origin.clients, CHANNEL, "host").await;
    until("the host to publish", || host.frames_written() > 30).await;
    link(&origin, &edge, None);
    until_async("the edge to know the host", || async {
        edge.stats().await.relay_publishers == 1
    })
    .await;
    let viewer = watching(&edge, "viewer").await;
    until_async("the viewer on the top layer", || async {
        edge.stats().await.layer_receivers == [1, 0, 0]
    })
    .await;

    // A small window: the edge switches the viewer to the low layer at its next keyframe.
    edge.router
        .set_max_layer(viewer.key.clone(), 2)
        .await
        .expect("a layer");
    until_async("the viewer on the low layer", || async {
        edge.stats().await.layer_receivers == [0, 0, 1]
    })
    .await;
    let received = viewer.seen().video.len();
    until("video on the low layer", || {
        viewer.seen().video.len() > received + 10
    })
    .await;
    assert!(edge.stats().await.layer_switches >= 1);
    contiguous(&viewer.seen().video).expect("numbered on across the switch");
    assert_eq!(origin.stats().await.packets_forwarded, 0);
    for node in [&origin, &edge] {
        node.router.shutdown().await;
    }
}
