//! An origin's and an edge's relays without sockets, on a virtual clock: datagrams are carried (or
//! lost, replayed, forged) by the test, the workers' inboxes are read directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::{Codec, CodecSpec, FormatParams, PayloadParams};
use str0m::media::{Frequency, Pt};
use str0m::rtp::ExtensionValues;
use tokio::sync::mpsc;

use super::*;
use crate::relay::RelayInbox;
use crate::simulcast::LayerSet;

const ROOM: (&str, &str) = ("app", "live");

fn room() -> RoomKey {
    (ROOM.0.to_owned(), ROOM.1.to_owned())
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// One worker (index 0) and its relay (index 1), with the worker's inbox and the node's events.
struct Side {
    relay: RelayNode,
    packets: mpsc::Receiver<Forwarded>,
    control: mpsc::UnboundedReceiver<Control>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
}

fn side(now: Instant) -> Side {
    let (packets_tx, packets) = mpsc::channel(64);
    let (control_tx, control) = mpsc::unbounded_channel();
    let (relay_packets, _) = mpsc::channel(1);
    let (relay_control, _) = mpsc::unbounded_channel();
    let mesh: Mesh = vec![
        RelayInbox {
            packets: packets_tx,
            control: control_tx,
        },
        RelayInbox {
            packets: relay_packets,
            control: relay_control,
        },
    ]
    .into();
    let (events_tx, events) = mpsc::unbounded_channel();
    Side {
        relay: RelayNode::new(1, mesh, events_tx, now),
        packets,
        control,
        events,
    }
}

const ORIGIN: u16 = 7000;
const EDGE: u16 = 7001;
/// The host's session on the origin's worker 0.
const HOST: PeerId = 1;

fn peer(node: &str, port: u16, key: &RelayKey) -> RelayPeer {
    RelayPeer {
        node: node.to_owned(),
        addr: addr(port),
        key: key.clone(),
    }
}

/// The origin relays the room to the edge `node` at `port`, under `key`.
fn add_edge(origin: &mut Side, node: &str, port: u16, key: &RelayKey, now: Instant) {
    origin.relay.command(
        RelayCommand::AddEdge {
            room: room(),
            edge: peer(node, port, key),
            paused: Vec::new(),
        },
        now,
    );
}

/// The edge (one worker) receives the room from the origin, under `key`.
fn subscribe(edge: &mut Side, key: &RelayKey, now: Instant) {
    edge.relay.command(
        RelayCommand::Subscribe {
            room: room(),
            origin: peer("origin", ORIGIN, key),
            workers: vec![0],
        },
        now,
    );
}

/// An origin relaying the room to an edge (one worker each), the host announced and known at the
/// edge. Returns them and the session the edge minted for the host.
fn linked(now: Instant) -> (Side, Side, PeerId) {
    let key = RelayKey::random();
    let mut origin = side(now);
    let mut edge = side(now);
    add_edge(&mut origin, "edge", EDGE, &key, now);
    subscribe(&mut edge, &key, now);
    assert_eq!(
        carry(&mut edge, &mut origin, EDGE, now),
        1,
        "the edge's first keepalive"
    );
    origin.relay.control(
        Control::Publisher {
            session: HOST,
            key: member(&room(), "host"),
            kinds: vec![Kind::Audio, Kind::Video],
        },
        now,
    );
    carry(&mut origin, &mut edge, ORIGIN, now);
    let Ok(Control::Publisher {
        session,
        key,
        kinds,
    }) = edge.control.try_recv()
    else {
        panic!("the edge's worker learns the host");
    };
    assert_eq!(key.user, "host");
    assert_eq!(kinds, vec![Kind::Audio, Kind::Video]);
    assert_eq!(
        worker_of(session),
        1,
        "the edge's relay is where the host lives"
    );
    (origin, edge, session)
}

/// Hands every datagram `from` produced to `to`, as sent from `from_port`.
fn carry(from: &mut Side, to: &mut Side, from_port: u16, now: Instant) -> usize {
    let datagrams: Vec<_> = from.relay.take_transmits().collect();
    let n = datagrams.len();
    for (_, mut datagram) in datagrams {
        to.relay.datagram(addr(from_port), &mut datagram, now);
    }
    n
}

fn vp8() -> PayloadParams {
    let spec = CodecSpec {
        codec: Codec::Vp8,
        clock_rate: Frequency::NINETY_KHZ,
        channels: None,
        format: FormatParams::default(),
    };
    PayloadParams::new(Pt::from(96), None, spec)
}

fn video(seq: u64, now: Instant) -> Forwarded {
    Forwarded {
        source: Source {
            session: HOST,
            ssrc: 5,
        },
        kind: Kind::Video,
        params: vp8(),
        seq,
        time: seq as u32 * 3000,
        marker: true,
        starts: false,
        layer: 0,
        payload: Arc::from(vec![seq as u8; 100]),
        ext: ExtensionValues::default(),
        at: now,
    }
}

fn received(side: &mut Side) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Ok(out) = side.packets.try_recv() {
        seqs.push(out.seq);
    }
    seqs
}

#[test]
fn a_lost_packet_is_nacked_resent_and_handed_over_in_order() {
    let t0 = Instant::now();
    let (mut origin, mut edge, session) = linked(t0);
    for seq in 100..104 {
        origin.relay.forwarded(video(seq, t0));
    }
    let mut datagrams: Vec<_> = origin.relay.take_transmits().collect();
    assert_eq!(datagrams.len(), 4, "one per packet for the one edge");
    datagrams.remove(1);
    for (_, mut datagram) in datagrams {
        edge.relay.datagram(addr(ORIGIN), &mut datagram, t0);
    }
    // 102 and 103 wait behind the gap.
    assert_eq!(received(&mut edge), vec![100]);

    let t1 = t0 + TICK;
    edge.relay.tick(t1);
    assert_eq!(carry(&mut edge, &mut origin, EDGE, t1), 1, "one NACK");
    assert_eq!(carry(&mut origin, &mut edge, ORIGIN, t1), 1, "one resend");
    assert_eq!(received(&mut edge), vec![101, 102, 103]);

    let mut stats = RouterStats::default();
    for side in [&mut origin, &mut edge] {
        let (reply, rx) = tokio::sync::oneshot::channel();
        side.relay.command(RelayCommand::Stats { reply }, t1);
        stats += rx.blocking_recv().expect("replied");
    }
    assert_eq!(stats.relay_packets_sent, 4);
    assert_eq!(stats.relay_packets_received, 4);
    assert_eq!(stats.relay_packets_retransmitted, 1);
    assert_eq!(stats.relay_nacks_sent, 1);
    assert_eq!(stats.relay_publishers, 1);
    assert_eq!(stats.relay_edges, 1);
    assert_eq!(stats.relay_datagrams_rejected, 0);
    // What reached the worker is the host's, under the edge's session for it.
    origin.relay.forwarded(video(104, t1));
    carry(&mut origin, &mut edge, ORIGIN, t1);
    let out = edge.packets.try_recv().expect("handed over");
    assert_eq!(out.source.session, session);
    assert_eq!((out.seq, out.source.ssrc, out.kind), (104, 5, Kind::Video));
}

#[test]
fn a_gap_not_repaired_in_time_is_passed() {
    let t0 = Instant::now();
    let (mut origin, mut edge, _) = linked(t0);
    for seq in 0..3 {
        origin.relay.forwarded(video(seq, t0));
    }
    let mut datagrams: Vec<_> = origin.relay.take_transmits().collect();
    datagrams.remove(1);
    for (_, mut datagram) in datagrams {
        edge.relay.datagram(addr(ORIGIN), &mut datagram, t0);
    }
    assert_eq!(received(&mut edge), vec![0]);
    // The origin never answers: after the hold, what waited goes on.
    edge.relay.tick(t0 + crate::relay_reorder::HOLD_MAX);
    assert_eq!(received(&mut edge), vec![2]);
}

#[test]
fn silence_from_the_origin_stalls_the_edge_until_it_is_heard_again() {
    let t0 = Instant::now();
    let (mut origin, mut edge, _) = linked(t0);
    edge.relay.tick(t0 + STALL_AFTER - Duration::from_millis(1));
    assert!(edge.events.try_recv().is_err());
    let stalled_at = t0 + STALL_AFTER;
    edge.relay.tick(stalled_at);
    assert_eq!(
        edge.events.try_recv().ok(),
        Some(MediaEvent::RelayStalled {
            app: ROOM.0.into(),
            channel: ROOM.1.into(),
            origin_node: "origin".into(),
        })
    );
    // Said once.
    edge.relay.tick(stalled_at + STALL_AFTER);
    assert!(edge.events.try_recv().is_err());
    // The origin's periodic state is heard.
    let later = stalled_at + STALL_AFTER;
    origin.relay.tick(later);
    carry(&mut origin, &mut edge, ORIGIN, later);
    assert_eq!(
        edge.events.try_recv().ok(),
        Some(MediaEvent::RelayResumed {
            app: ROOM.0.into(),
            channel: ROOM.1.into(),
            origin_node: "origin".into(),
        })
    );
}

#[test]
fn keyframe_requests_of_many_edges_reach_the_publisher_once_a_window() {
    let t0 = Instant::now();
    let (mut origin, mut edge, session) = linked(t0);
    // A second edge on another port.
    let key = RelayKey::random();
    let mut edge2 = side(t0);
    const EDGE2: u16 = 7002;
    add_edge(&mut origin, "edge2", EDGE2, &key, t0);
    subscribe(&mut edge2, &key, t0);
    for (_, mut datagram) in origin.relay.take_transmits().collect::<Vec<_>>() {
        edge2.relay.datagram(addr(ORIGIN), &mut datagram, t0);
    }
    let Ok(Control::Publisher {
        session: session2, ..
    }) = edge2.control.try_recv()
    else {
        panic!("the second edge learns the host");
    };

    // Viewers on both edges ask, many times.
    for _ in 0..5 {
        edge.relay.control(
            Control::WantKeyframe {
                session,
                layers: LayerSet::first(1),
            },
            t0,
        );
        edge2.relay.control(
            Control::WantKeyframe {
                session: session2,
                layers: LayerSet::first(1),
            },
            t0,
        );
    }
    assert_eq!(
        carry(&mut edge, &mut origin, EDGE, t0),
        1,
        "one request per edge"
    );
    for (_, mut datagram) in edge2.relay.take_transmits().collect::<Vec<_>>() {
        origin.relay.datagram(addr(EDGE2), &mut datagram, t0);
    }
    let mut asked = Vec::new();
    while let Ok(control) = origin.control.try_recv() {
        asked.push(control);
    }
    assert!(
        matches!(asked.as_slice(), [Control::WantKeyframe { session: HOST, layers }] if *layers == LayerSet::first(1)),
        "one request to the host's worker: {asked:?}"
    );
    // After the window, again.
    let later = t0 + crate::relay_keyframes::WINDOW;
    edge.relay.control(
        Control::WantKeyframe {
            session,
            layers: LayerSet::first(1),
        },
        later,
    );
    carry(&mut edge, &mut origin, EDGE, later);
    assert!(matches!(
        origin.control.try_recv(),
        Ok(Control::WantKeyframe { session: HOST, .. })
    ));
}

#[test]
fn forged_replayed_misaddressed_and_unknown_datagrams_are_counted_and_ignored() {
    let t0 = Instant::now();
    let (mut origin, mut edge, _) = linked(t0);
    origin.relay.forwarded(video(1, t0));
    let (_, datagram) = origin.relay.take_transmits().next().expect("a packet");

    let mut forged = datagram.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let mut unknown_version = datagram.clone();
    unknown_version[0] = 9;
    let mut other_relay = datagram.clone();
    other_relay[10] ^= 1;
    let mut short = datagram[..10].to_vec();
    for mut bad in [forged, unknown_version, other_relay] {
        edge.relay.datagram(addr(ORIGIN), &mut bad, t0);
    }
    edge.relay.datagram(addr(ORIGIN), &mut short, t0);
    // From another address.
    edge.relay.datagram(addr(9999), &mut datagram.clone(), t0);
    assert!(edge.packets.try_recv().is_err(), "none of them handed over");
    // The real one, then a replay of it.
    edge.relay.datagram(addr(ORIGIN), &mut datagram.clone(), t0);
    edge.relay.datagram(addr(ORIGIN), &mut datagram.clone(), t0);
    assert_eq!(received(&mut edge), vec![1]);

    let (reply, rx) = tokio::sync::oneshot::channel();
    edge.relay.command(RelayCommand::Stats { reply }, t0);
    let stats = rx.blocking_recv().expect("replied");
    assert_eq!(stats.relay_datagrams_rejected, 6);
    assert_eq!(stats.relay_packets_received, 1);
}

#[test]
fn a_pause_reaches_the_edge_and_a_packet_after_the_resume_lifts_it_first() {
    let t0 = Instant::now();
    let (mut origin, mut edge, _) = linked(t0);
    origin.relay.command(
        RelayCommand::Paused {
            room: room(),
            publisher: "host".into(),
            paused: true,
        },
        t0,
    );
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert!(matches!(
        edge.control.try_recv(),
        Ok(Control::Paused { paused: true, .. })
    ));
    // The resume's state is lost; the first packet after it says as much.
    origin.relay.command(
        RelayCommand::Paused {
            room: room(),
            publisher: "host".into(),
            paused: false,
        },
        t0,
    );
    drop(origin.relay.take_transmits());
    origin.relay.forwarded(video(7, t0));
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert!(matches!(
        edge.control.try_recv(),
        Ok(Control::Paused { paused: false, .. })
    ));
    assert_eq!(received(&mut edge), vec![7]);
}

fn pause_host(origin: &mut Side, paused: bool, now: Instant) {
    origin.relay.command(
        RelayCommand::Paused {
            room: room(),
            publisher: "host".into(),
            paused,
        },
        now,
    );
}

/// The pauses the edge told its worker, in order.
fn pauses_told(edge: &mut Side) -> Vec<bool> {
    let mut told = Vec::new();
    while let Ok(control) = edge.control.try_recv() {
        if let Control::Paused { paused, .. } = control {
            told.push(paused);
        }
    }
    told
}

#[test]
fn a_packet_the_worker_handed_over_before_it_learnt_of_the_pause_is_not_relayed() {
    let t0 = Instant::now();
    let (mut origin, mut edge, _) = linked(t0);
    // The relay is told first; the worker's packet of the moment before reaches it after.
    pause_host(&mut origin, true, t0);
    origin.relay.forwarded(video(7, t0));
    assert_eq!(
        carry(&mut origin, &mut edge, ORIGIN, t0),
        1,
        "the pause's state alone"
    );
    assert_eq!(pauses_told(&mut edge), vec![true], "the edge stays paused");
    assert!(received(&mut edge).is_empty());

    pause_host(&mut origin, false, t0);
    origin.relay.forwarded(video(8, t0));
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert_eq!(pauses_told(&mut edge), vec![false]);
    assert_eq!(received(&mut edge), vec![8]);
}

#[test]
fn the_tail_of_a_frame_begun_before_the_pause_is_relayed_and_lifts_nothing() {
    let t0 = Instant::now();
    let (mut origin, mut edge, _) = linked(t0);
    let part = |seq: u64, time: u32, marker: bool| Forwarded {
        time,
        marker,
        ..video(seq, t0)
    };
    origin.relay.forwarded(part(1, 900, false));
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert_eq!(received(&mut edge), vec![1]);
    pause_host(&mut origin, true, t0);
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert_eq!(pauses_told(&mut edge), vec![true]);

    // The frame's last packet follows the pause's state; the next frame is held at the origin.
    origin.relay.forwarded(part(2, 900, true));
    origin.relay.forwarded(part(3, 1800, false));
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert_eq!(received(&mut edge), vec![2], "the frame's tail alone");
    assert!(pauses_told(&mut edge).is_empty(), "still paused");
}

#[test]
fn a_packet_sent_before_the_pause_and_overtaken_by_its_state_lifts_nothing() {
    let t0 = Instant::now();
    let (mut origin, mut edge, _) = linked(t0);
    origin.relay.forwarded(video(1, t0));
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert_eq!(received(&mut edge), vec![1]);
    origin.relay.forwarded(video(2, t0));
    let late: Vec<_> = origin.relay.take_transmits().collect();
    pause_host(&mut origin, true, t0);
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert_eq!(pauses_told(&mut edge), vec![true]);
    // The packet arrives after the pause's state: handed on (the workers hold it back), the pause kept.
    for (_, mut datagram) in late {
        edge.relay.datagram(addr(ORIGIN), &mut datagram, t0);
    }
    assert_eq!(received(&mut edge), vec![2]);
    assert!(pauses_told(&mut edge).is_empty(), "still paused");
    // The resume's state is lost; the first packet after it lifts the pause.
    pause_host(&mut origin, false, t0);
    drop(origin.relay.take_transmits());
    origin.relay.forwarded(video(3, t0));
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert_eq!(pauses_told(&mut edge), vec![false]);
    assert_eq!(received(&mut edge), vec![3]);
}

#[test]
fn a_publisher_leaving_the_origin_leaves_the_edge_and_unsubscribing_removes_the_rest() {
    let t0 = Instant::now();
    let (mut origin, mut edge, session) = linked(t0);
    origin.relay.control(
        Control::Publisher {
            session: HOST,
            key: member(&room(), "host"),
            kinds: Vec::new(),
        },
        t0,
    );
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert!(matches!(
        edge.control.try_recv(),
        Ok(Control::Publisher { session: s, kinds, .. }) if s == session && kinds.is_empty()
    ));

    // Another publisher; then the edge unsubscribes: it leaves the edge's workers too.
    origin.relay.control(
        Control::Publisher {
            session: HOST + 1,
            key: member(&room(), "guest"),
            kinds: vec![Kind::Audio],
        },
        t0,
    );
    carry(&mut origin, &mut edge, ORIGIN, t0);
    let Ok(Control::Publisher { session: guest, .. }) = edge.control.try_recv() else {
        panic!("the guest is announced");
    };
    edge.relay
        .command(RelayCommand::Unsubscribe { room: room() }, t0);
    assert!(matches!(
        edge.control.try_recv(),
        Ok(Control::Publisher { session: s, kinds, .. }) if s == guest && kinds.is_empty()
    ));
    // Its datagrams are of no known relay now.
    origin.relay.forwarded(video(1, t0));
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert!(edge.packets.try_recv().is_err());
}

#[test]
fn a_room_closed_on_the_origin_empties_it_at_the_edge() {
    let t0 = Instant::now();
    let (mut origin, mut edge, session) = linked(t0);
    origin
        .relay
        .command(RelayCommand::RoomClosed { room: room() }, t0);
    carry(&mut origin, &mut edge, ORIGIN, t0);
    assert!(matches!(
        edge.control.try_recv(),
        Ok(Control::Publisher { session: s, kinds, .. }) if s == session && kinds.is_empty()
    ));
}

#[test]
fn the_same_key_handed_over_again_carries_the_link_on() {
    let t0 = Instant::now();
    let key = RelayKey::random();
    let mut origin = side(t0);
    for _ in 0..2 {
        add_edge(&mut origin, "edge", EDGE, &key, t0);
    }
    let counters: Vec<u64> = origin
        .relay
        .take_transmits()
        .map(|(_, d)| relay_wire::header(&d).expect("parses").counter)
        .collect();
    assert_eq!(counters, vec![0, 1], "no counter used twice under the key");
    // A new key starts the link over.
    add_edge(&mut origin, "edge", EDGE, &RelayKey::random(), t0);
    let (_, datagram) = origin.relay.take_transmits().next().expect("state");
    assert_eq!(relay_wire::header(&datagram).expect("parses").counter, 0);
}

#[test]
fn a_loss_at_the_tail_of_a_burst_is_found_from_the_next_state() {
    let t0 = Instant::now();
    let (mut origin, mut edge, _) = linked(t0);
    for seq in 0..3 {
        origin.relay.forwarded(video(seq, t0));
    }
    let mut datagrams: Vec<_> = origin.relay.take_transmits().collect();
    datagrams.pop();
    for (_, mut datagram) in datagrams {
        edge.relay.datagram(addr(ORIGIN), &mut datagram, t0);
    }
    assert_eq!(received(&mut edge), vec![0, 1]);
    edge.relay.tick(t0 + TICK);
    assert_eq!(
        carry(&mut edge, &mut origin, EDGE, t0),
        0,
        "no later packet: no NACK yet"
    );
    // The periodic state says what was sent.
    let later = t0 + STATE_EVERY;
    origin.relay.tick(later);
    carry(&mut origin, &mut edge, ORIGIN, later);
    edge.relay.tick(later);
    // The NACK, and the edge's keepalive (a second has passed).
    assert_eq!(carry(&mut edge, &mut origin, EDGE, later), 2);
    carry(&mut origin, &mut edge, ORIGIN, later);
    assert_eq!(received(&mut edge), vec![2]);
}

#[test]
fn an_edge_that_subscribes_after_the_origin_added_it_learns_the_publishers_at_once() {
    let t0 = Instant::now();
    let key = RelayKey::random();
    let (mut origin, mut edge) = (side(t0), side(t0));
    add_edge(&mut origin, "edge", EDGE, &key, t0);
    origin.relay.control(
        Control::Publisher {
            session: HOST,
            key: member(&room(), "host"),
            kinds: vec![Kind::Video],
        },
        t0,
    );
    // The edge has not subscribed yet: what the origin sent now is refused there.
    assert!(carry(&mut origin, &mut edge, ORIGIN, t0) > 0);
    assert!(
        edge.control.try_recv().is_err(),
        "nothing learnt before subscribing"
    );

    subscribe(&mut edge, &key, t0);
    assert_eq!(
        carry(&mut edge, &mut origin, EDGE, t0),
        1,
        "the edge says it is there"
    );
    assert_eq!(
        carry(&mut origin, &mut edge, ORIGIN, t0),
        1,
        "answered with the state"
    );
    let Ok(Control::Publisher { key, .. }) = edge.control.try_recv() else {
        panic!("the edge's worker learns the host before any periodic state");
    };
    assert_eq!(key.user, "host");
}

/// Counts the keyframe requests the origin passed to its publisher's worker.
fn keyframe_requests_passed(origin: &mut Side) -> usize {
    let mut n = 0;
    while let Ok(control) = origin.control.try_recv() {
        n += usize::from(matches!(control, Control::WantKeyframe { .. }));
    }
    n
}

#[test]
fn a_keyframe_request_right_after_a_resume_is_not_held_back_by_one_from_before_the_pause() {
    let t0 = Instant::now();
    let (mut origin, mut edge, session) = linked(t0);
    let want = || Control::WantKeyframe {
        session,
        layers: LayerSet::first(1),
    };
    edge.relay.control(want(), t0);
    carry(&mut edge, &mut origin, EDGE, t0);
    assert_eq!(keyframe_requests_passed(&mut origin), 1);

    // The host pauses (its keyframe answering that request is not relayed) and resumes at once.
    for paused in [true, false] {
        origin.relay.command(
            RelayCommand::Paused {
                room: room(),
                publisher: "host".into(),
                paused,
            },
            t0,
        );
        carry(&mut origin, &mut edge, ORIGIN, t0);
    }
    let t1 = t0 + Duration::from_millis(20);
    edge.relay.control(want(), t1);
    assert_eq!(
        carry(&mut edge, &mut origin, EDGE, t1),
        1,
        "the edge asks again within the window"
    );
    assert_eq!(
        keyframe_requests_passed(&mut origin),
        1,
        "and the origin passes it on"
    );
}
