//! One live room across many nodes: the node-to-node relay. The room's **origin** node holds its
//! publishers' sessions; **edge** nodes hold viewers' sessions, subscribe to the origin once per room
//! and fan out locally; the origin sends one copy of each packet per edge, however many viewers.
//!
//! **Behind the relay seam.** Each node's router has one more member in its worker mesh
//! ([`crate::relay`]): this relay, with its own UDP socket ([`crate::MediaConfig::relay`]; port 0 =
//! any; [`crate::MediaRouter::relay_addr`]). On the origin it is one more worker a relayed room is on:
//! the publisher's worker hands it each packet once and tells it who publishes, as it would another
//! worker, and the relay sends each packet on to every edge of the room. On an edge it is where the
//! origin's publishers live: it mints a session id of its own for each (so the edge's workers send
//! their keyframe requests here) and hands the edge's workers the packets and publisher changes as
//! another worker would ([`crate::relay::RemotePublisher`] on their side). Everything the workers do
//! for publishers on another worker — receivers' lines and renegotiation, the keyframe cache for new
//! viewers, simulcast layer choice, bandwidth allocation, each receiver's continuous numbering —
//! works for the origin's publishers unchanged. A relay carries one direction: a member publishing
//! on an edge (not a live room's shape: its host publishes on the origin) reaches that edge's viewers
//! only.
//!
//! **What crosses** ([`crate::relay_wire`] has the layout): origin → edge, each publisher packet with a
//! per-relay sequence number, and the room's publisher set (who publishes which kinds, who is paused)
//! as **idempotent state**, sent on every change and every [`STATE_EVERY`] (so no reliable channel is
//! needed: a lost state datagram is replaced by the next). The state also says the relay sequence
//! number the next packet will carry, so an edge finds a loss at the tail of a burst too. Edge → origin: NACKs by relay sequence,
//! keyframe requests (publisher + layers), and a keepalive every [`STATE_EVERY`] — the first one as
//! soon as the edge subscribes, which the origin answers with the room's state at once (the control
//! plane adds an edge at its origin before the edge subscribes, so what the origin sent before that
//! was refused at the edge).
//!
//! **Loss repair, hop by hop.** The origin keeps each edge's last [`crate::relay_history::HISTORY`]
//! packets and resends those an edge NACKs ([`crate::relay_gaps`] says what the edge NACKs and when it
//! gives up); a packet already overwritten is not resent. The edge hands packets to its workers in
//! the origin's order, holding those behind a gap until it is repaired or for at most
//! [`crate::relay_reorder::HOLD_MAX`] ([`crate::relay_reorder`] says why). Viewers' own NACKs are
//! answered by their edge from their lines' history, as on one node.
//!
//! **Keyframes.** A viewer's request reaches the relay as its workers' request for a publisher on
//! another worker; the edge passes one per publisher layer per window on, and the origin passes one
//! per publisher layer per window to the publisher's worker however many edges ask
//! ([`crate::relay_keyframes`]); that worker repeats it until a keyframe arrives.
//!
//! **Pause.** A paused publisher's worker hands the relay nothing, so edges get nothing; the state
//! says it is paused, and the edge's workers hold its lines as the origin's do. The relay is told of a
//! pause before the workers, so it drops what a worker handed over before it learnt of it: no packet
//! of a paused publisher follows the pause's state. On resume the origin asks the publisher for a
//! keyframe, which reaches every edge; the edge learns of the resume from the state, or from the first
//! packet sent after the pause's state (by relay sequence number: one overtaken on the way by that
//! state lifts nothing), whichever comes first, and its lines start again at the kept keyframe or the
//! next one, numbered on without a gap.
//!
//! **Stalls.** An edge that hears nothing (no packet, no state) from its origin for [`STALL_AFTER`]
//! reports [`crate::MediaEvent::RelayStalled`], and [`crate::MediaEvent::RelayResumed`] when the origin
//! is heard again. The edge keeps the room's publishers meanwhile: moving the room to another origin
//! (or ending it) is the control plane's decision.
//!
//! **Trust.** Relay datagrams are sealed with AES-128-GCM under a key per relay (one room between one
//! origin and one edge), which the control plane exchanges over the nodes' authenticated node link
//! and hands to both routers ([`RelayPeer`]); it never crosses the relay, and a router refuses a key
//! it has used before (`KeyLedger`: the same nonce twice under a key would expose it). A datagram is accepted only
//! if it authenticates under the key of the relay its header names, comes from that relay's peer
//! address, and carries a counter not seen before ([`crate::relay_crypto::ReplayWindow`]). Anything
//! else — too short, another version, forged, corrupted, replayed, of an unknown relay — is dropped
//! and counted (`RouterStats::relay_datagrams_rejected`). Confidentiality and integrity hold on an
//! untrusted network; availability does not (whoever can drop datagrams can stall a relay, as they
//! can any UDP media). The relay port must be reachable between nodes only; clients never use it.
//!
//! **Bounded queues.** Packets from the workers wait in the relay's mesh inbox
//! ([`crate::relay::PACKET_QUEUE`]; full: the worker drops the packet, counted in `relay_dropped`, and
//! the edges see a gap they NACK). Packets to the edge's workers go to their bounded inboxes (full:
//! dropped, counted in `relay_packets_dropped`; the viewers' next keyframe repairs them). Datagrams go
//! to the socket without waiting (a full send buffer drops the datagram, counted in
//! `relay_packets_dropped`; NACKs repair it). An edge holds at most
//! [`crate::relay_reorder::MAX_HELD`] packets behind a gap (more: the gap is passed at once) and
//! tracks at most [`crate::relay_gaps::MAX_MISSING`] missing ones (more: the oldest are given up); an
//! origin keeps [`crate::relay_history::HISTORY`] packets per edge (a ring: the oldest is
//! overwritten). Commands (from the control plane) and control messages (joins, leaves, keyframe
//! requests) queue unbounded: they come per member or per request, never per packet, as the workers'
//! own control queue does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::frame_gate::FrameGate;
use crate::peer::PeerId;
use crate::protocol::{Kind, MediaEvent, PeerKey, RouterStats};
use crate::relay::{Control, Forwarded, Mesh, first_session_id, worker_of};
use crate::relay_crypto::{Cipher, Direction, RelayKey, ReplayWindow};
use crate::relay_gaps::{Arrival, GapTracker};
use crate::relay_history::RetransmitBuffer;
use crate::relay_keyframes::KeyframeAggregator;
use crate::relay_reorder::ReorderBuffer;
use crate::relay_wire::{self, Message, PublisherState, RelayPacket, WireError};
use crate::rewrite::Source;

/// How often the origin repeats a room's publisher set to its edges, and an edge sends its keepalive.
pub const STATE_EVERY: Duration = Duration::from_secs(1);
/// Silence from an origin after which its edge reports the relay stalled.
pub const STALL_AFTER: Duration = Duration::from_secs(3);
/// How often the relay looks at its timers (NACKs, held packets, state, keepalives, stalls).
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// The other end of a relay, as the control plane hands it over: which node, its relay address
/// ([`crate::MediaRouter::relay_addr`] there), and the key both ends seal the room's datagrams with.
#[derive(Clone, Debug)]
pub struct RelayPeer {
    /// The other node's id (named in [`crate::MediaEvent::RelayStalled`]; an origin's edges are told
    /// apart by it).
    pub node: String,
    /// Its relay socket: where this node sends, and the only address it accepts the relay's
    /// datagrams from.
    pub addr: SocketAddr,
    /// The relay's key, the same at both ends, for this relay only.
    pub key: RelayKey,
}

type RoomKey = (String, String);

/// What the router's handle tells its relay.
pub(crate) enum RelayCommand {
    /// Origin: send the room to this edge too (replaces an edge of the same node).
    AddEdge {
        room: RoomKey,
        edge: RelayPeer,
        /// The room's publishers held back now.
        paused: Vec<String>,
    },
    RemoveEdge {
        room: RoomKey,
        node: String,
    },
    /// Edge: receive the room from this origin (replaces a previous origin).
    Subscribe {
        room: RoomKey,
        origin: RelayPeer,
        /// The edge's workers the room is on.
        workers: Vec<usize>,
    },
    Unsubscribe {
        room: RoomKey,
    },
    /// Edge: the room is now on these of the edge's workers.
    RoomWorkers {
        room: RoomKey,
        workers: Vec<usize>,
    },
    /// Origin: the room closed on this node: its publishers are gone (its workers closed them
    /// without a word to anyone).
    RoomClosed {
        room: RoomKey,
    },
    /// Origin: a publisher of the room is held back (or forwarded again).
    Paused {
        room: RoomKey,
        publisher: String,
        paused: bool,
    },
    Stats {
        reply: oneshot::Sender<RouterStats>,
    },
    Stop,
}

/// One edge of a room, at the origin.
struct EdgeLink {
    node: String,
    addr: SocketAddr,
    /// Kept to tell a new key from the same one handed over again.
    key: RelayKey,
    cipher: Cipher,
    /// The next datagram counter (the nonce).
    counter: u64,
    /// The next relay sequence number.
    next_seq: u64,
    history: RetransmitBuffer,
    /// Counters of the edge's datagrams seen.
    replay: ReplayWindow,
    /// Whether the edge has been heard from. The control plane may add an edge before the edge's router
    /// subscribed, and what the edge is sent until then is refused there: its first datagram (the
    /// keepalive it sends on subscribing) is answered with the room's state at once, so its viewers'
    /// publishers are known without waiting for the periodic state.
    heard: bool,
}

impl EdgeLink {
    fn seal(&mut self, relay: u64, message: &Message) -> Vec<u8> {
        let counter = self.counter;
        self.counter += 1;
        relay_wire::seal(message, relay, counter, &self.cipher)
    }
}

/// A relayed room at its origin.
struct OriginRoom {
    relay: u64,
    /// The room's publishers (their worker sessions here): user and kinds.
    publishers: BTreeMap<PeerId, (String, Vec<Kind>)>,
    paused: HashSet<String>,
    /// Each publisher's video frames under way: a pause holds it back between frames.
    frames: HashMap<PeerId, FrameGate>,
    edges: Vec<EdgeLink>,
    keyframes: KeyframeAggregator,
}

impl OriginRoom {
    fn publisher_set(&self) -> Vec<PublisherState> {
        self.publishers
            .iter()
            .map(|(id, (user, kinds))| PublisherState {
                publisher: *id,
                user: user.clone(),
                kinds: kinds.clone(),
                paused: self.paused.contains(user),
            })
            .collect()
    }
}

/// One of the origin's publishers, at an edge.
struct EdgePublisher {
    /// The session id minted for it here (the edge's workers know it by this).
    session: PeerId,
    user: String,
    kinds: Vec<Kind>,
    paused: bool,
    /// Its video frames under way: the tail of one begun before the pause is not a resume.
    frames: FrameGate,
    /// The relay sequence number of the first packet the origin could send after the pause (the next
    /// one of the state that told it): one before it was sent before the pause, and lifts nothing.
    paused_from: u64,
}

/// A room an edge receives from its origin.
struct EdgeRoom {
    relay: u64,
    origin_node: String,
    origin_addr: SocketAddr,
    /// Kept to tell a new key from the same one handed over again.
    key: RelayKey,
    cipher: Cipher,
    counter: u64,
    replay: ReplayWindow,
    /// The counter of the state last applied (an older one arriving late is ignored).
    state_counter: Option<u64>,
    /// The edge's workers the room is on.
    workers: Vec<usize>,
    /// By the publisher's session on the origin.
    publishers: HashMap<u64, EdgePublisher>,
    gaps: GapTracker,
    /// Packets after a gap, waiting for its repair (the workers get them in the origin's order).
    reorder: ReorderBuffer<RelayPacket>,
    last_heard: Instant,
    stalled: bool,
    keyframes: KeyframeAggregator,
}

impl EdgeRoom {
    fn seal(&mut self, message: &Message) -> Vec<u8> {
        let counter = self.counter;
        self.counter += 1;
        relay_wire::seal(message, self.relay, counter, &self.cipher)
    }
}

/// The relay's state, sans IO: inputs with their time in, datagrams out ([`RelayNode::take_transmits`]);
/// what it hands the workers goes on their inboxes, events to the node. Its loop is
/// [`crate::relay_loop`].
pub(crate) struct RelayNode {
    /// Its place in the mesh (one past the workers).
    index: usize,
    mesh: Mesh,
    events: mpsc::UnboundedSender<MediaEvent>,
    origin: HashMap<RoomKey, OriginRoom>,
    edge: HashMap<RoomKey, EdgeRoom>,
    /// Every relayed room by its relay id.
    by_relay: HashMap<u64, RoomKey>,
    /// Origin: each publisher session's room.
    publisher_rooms: HashMap<PeerId, RoomKey>,
    /// Edge: each minted session's room and origin publisher.
    edge_sessions: HashMap<PeerId, (RoomKey, u64)>,
    next_session: PeerId,
    transmits: Vec<(SocketAddr, Vec<u8>)>,
    stats: RouterStats,
    last_periodic: Instant,
}

fn member(room: &RoomKey, user: &str) -> PeerKey {
    PeerKey {
        app: room.0.clone(),
        channel: room.1.clone(),
        user: user.to_owned(),
    }
}

impl RelayNode {
    pub(crate) fn new(
        index: usize,
        mesh: Mesh,
        events: mpsc::UnboundedSender<MediaEvent>,
        now: Instant,
    ) -> Self {
        Self {
            index,
            mesh,
            events,
            origin: HashMap::new(),
            edge: HashMap::new(),
            by_relay: HashMap::new(),
            publisher_rooms: HashMap::new(),
            edge_sessions: HashMap::new(),
            next_session: first_session_id(index),
            transmits: Vec::new(),
            stats: RouterStats::default(),
            last_periodic: now,
        }
    }

    pub(crate) fn take_transmits(&mut self) -> std::vec::Drain<'_, (SocketAddr, Vec<u8>)> {
        self.transmits.drain(..)
    }

    /// Counts datagrams the socket did not take.
    pub(crate) fn count_unsent(&mut self, n: u64) {
        self.stats.relay_packets_dropped += n;
    }

    /// Carries out a command; false when the relay is to stop.
    pub(crate) fn command(&mut self, command: RelayCommand, now: Instant) -> bool {
        match command {
            RelayCommand::AddEdge { room, edge, paused } => self.add_edge(room, edge, paused),
            RelayCommand::RemoveEdge { room, node } => {
                if let Some(r) = self.origin.get_mut(&room) {
                    r.edges.retain(|e| e.node != node);
                    if r.edges.is_empty() {
                        self.drop_origin_room(&room);
                    }
                }
            }
            RelayCommand::Subscribe {
                room,
                origin,
                workers,
            } => self.subscribe(room, origin, workers, now),
            RelayCommand::Unsubscribe { room } => {
                if let Some(r) = self.edge.remove(&room) {
                    self.by_relay.remove(&r.relay);
                    for p in r.publishers.values() {
                        self.edge_sessions.remove(&p.session);
                        announce(
                            &self.mesh,
                            &r.workers,
                            p.session,
                            &room,
                            &p.user,
                            Vec::new(),
                        );
                    }
                }
            }
            RelayCommand::RoomWorkers { room, workers } => {
                if let Some(r) = self.edge.get_mut(&room) {
                    // Workers new to the room learn its publishers (as a worker announces its own).
                    for w in workers.iter().filter(|w| !r.workers.contains(w)) {
                        for p in r.publishers.values() {
                            announce_to(&self.mesh, *w, p, &room);
                        }
                    }
                    r.workers = workers;
                }
            }
            RelayCommand::RoomClosed { room } => {
                if let Some(r) = self.origin.get_mut(&room) {
                    r.frames.clear();
                    for id in std::mem::take(&mut r.publishers).into_keys() {
                        r.keyframes.forget(id);
                        self.publisher_rooms.remove(&id);
                    }
                    r.paused.clear();
                    self.send_state(&room);
                }
            }
            RelayCommand::Paused {
                room,
                publisher,
                paused,
            } => {
                if let Some(r) = self.origin.get_mut(&room) {
                    let changed = if paused {
                        r.paused.insert(publisher)
                    } else {
                        // Edges' requests after the resume reach the publisher at once: the keyframe
                        // answering one from before the pause was not relayed.
                        for (session, (user, _)) in &r.publishers {
                            if *user == publisher {
                                r.keyframes.forget(*session);
                            }
                        }
                        r.paused.remove(&publisher)
                    };
                    if changed {
                        self.send_state(&room);
                    }
                }
            }
            RelayCommand::Stats { reply } => {
                let mut stats = self.stats;
                stats.relay_publishers = self.edge.values().map(|r| r.publishers.len()).sum();
                stats.relay_edges = self.origin.values().map(|r| r.edges.len()).sum();
                let _ = reply.send(stats);
            }
            RelayCommand::Stop => return false,
        }
        true
    }

    fn add_edge(&mut self, room: RoomKey, edge: RelayPeer, paused: Vec<String>) {
        let relay = relay_wire::relay_id(&room.0, &room.1);
        self.by_relay.insert(relay, room.clone());
        let r = self
            .origin
            .entry(room.clone())
            .or_insert_with(|| OriginRoom {
                relay,
                publishers: BTreeMap::new(),
                paused: HashSet::new(),
                frames: HashMap::new(),
                edges: Vec::new(),
                keyframes: KeyframeAggregator::default(),
            });
        r.paused.extend(paused);
        match r.edges.iter_mut().find(|e| e.node == edge.node) {
            // The same key again (the control plane repeating itself, or the edge's new address): the
            // link carries on, its counters with it, so no nonce is ever used twice under the key.
            Some(link) if link.key == edge.key => link.addr = edge.addr,
            _ => {
                r.edges.retain(|e| e.node != edge.node);
                r.edges.push(EdgeLink {
                    node: edge.node,
                    addr: edge.addr,
                    cipher: Cipher::new(&edge.key),
                    key: edge.key,
                    counter: 0,
                    next_seq: 0,
                    history: RetransmitBuffer::default(),
                    replay: ReplayWindow::default(),
                    heard: false,
                });
            }
        }
        // The new edge learns the room at once (the others hear it again, harmlessly).
        self.send_state(&room);
    }

    fn drop_origin_room(&mut self, room: &RoomKey) {
        if let Some(r) = self.origin.remove(room) {
            self.by_relay.remove(&r.relay);
            for id in r.publishers.keys() {
                self.publisher_rooms.remove(id);
            }
        }
    }

    fn subscribe(&mut self, room: RoomKey, origin: RelayPeer, workers: Vec<usize>, now: Instant) {
        let relay = relay_wire::relay_id(&room.0, &room.1);
        self.by_relay.insert(relay, room.clone());
        if let Some(r) = self.edge.get_mut(&room)
            && r.key == origin.key
        {
            // The same key again: the link carries on, its counters with it, so no nonce is ever used
            // twice under the key.
            r.origin_node = origin.node;
            r.origin_addr = origin.addr;
            r.workers = workers;
            return;
        }
        let publishers = match self.edge.remove(&room) {
            // Another origin (or key): its publishers are known again from its first state.
            Some(previous) => previous.publishers,
            None => HashMap::new(),
        };
        let origin_addr = origin.addr;
        self.edge.insert(
            room.clone(),
            EdgeRoom {
                relay,
                origin_node: origin.node,
                origin_addr: origin.addr,
                cipher: Cipher::new(&origin.key),
                key: origin.key,
                counter: 0,
                replay: ReplayWindow::default(),
                state_counter: None,
                workers,
                publishers,
                gaps: GapTracker::default(),
                reorder: ReorderBuffer::default(),
                last_heard: now,
                stalled: false,
                keyframes: KeyframeAggregator::default(),
            },
        );
        // Heard at once: the origin answers an edge's first datagram with the room's state.
        if let Some(r) = self.edge.get_mut(&room) {
            let datagram = r.seal(&Message::Keepalive);
            self.transmits.push((origin_addr, datagram));
        }
    }

    /// Sends a room's publisher set to each of its edges.
    fn send_state(&mut self, room: &RoomKey) {
        let Some(r) = self.origin.get_mut(room) else {
            return;
        };
        let publishers = r.publisher_set();
        let relay = r.relay;
        for edge in &mut r.edges {
            let state = Message::State {
                next_seq: edge.next_seq,
                publishers: publishers.clone(),
            };
            let datagram = edge.seal(relay, &state);
            self.transmits.push((edge.addr, datagram));
        }
    }

    /// What a worker says: on the origin, who publishes; on an edge, a viewer's keyframe request.
    pub(crate) fn control(&mut self, control: Control, now: Instant) {
        match control {
            Control::Publisher {
                session,
                key,
                kinds,
            } => {
                let room = (key.app, key.channel);
                let Some(r) = self.origin.get_mut(&room) else {
                    return;
                };
                if kinds.is_empty() {
                    r.publishers.remove(&session);
                    r.frames.remove(&session);
                    r.keyframes.forget(session);
                    self.publisher_rooms.remove(&session);
                } else {
                    r.publishers.insert(session, (key.user, kinds));
                    self.publisher_rooms.insert(session, room.clone());
                }
                self.send_state(&room);
            }
            Control::WantKeyframe { session, layers } => {
                let Some((room, publisher)) = self.edge_sessions.get(&session).cloned() else {
                    return;
                };
                let Some(r) = self.edge.get_mut(&room) else {
                    return;
                };
                let layers = r.keyframes.ask(publisher, layers, now);
                if !layers.is_empty() {
                    let datagram = r.seal(&Message::WantKeyframe { publisher, layers });
                    self.transmits.push((r.origin_addr, datagram));
                    self.stats.relay_keyframe_requests += 1;
                }
            }
            // Only the origin's relay is told of pauses, by its handle.
            Control::Paused { .. } => {}
        }
    }

    /// A packet of one of the origin's publishers: once to each edge of its room.
    pub(crate) fn forwarded(&mut self, out: Forwarded) {
        let Some(room) = self.publisher_rooms.get(&out.source.session) else {
            return;
        };
        let Some(r) = self.origin.get_mut(room) else {
            return;
        };
        let paused = r
            .publishers
            .get(&out.source.session)
            .is_some_and(|(user, _)| r.paused.contains(user));
        let frames = r.frames.entry(out.source.session).or_default();
        if !frames.pass(paused, out.kind, out.source.ssrc, out.time, out.marker) {
            // Handed over before the worker learnt of the pause (the relay is told first), and not
            // the tail of a frame begun before it: sent after the pause's state, an edge would take it
            // for the resume.
            return;
        }
        for edge in &mut r.edges {
            let packet = RelayPacket {
                relay_seq: edge.next_seq,
                publisher: out.source.session,
                ssrc: out.source.ssrc,
                kind: out.kind,
                params: out.params,
                seq: out.seq,
                time: out.time,
                marker: out.marker,
                starts: out.starts,
                retransmission: false,
                layer: out.layer,
                payload: out.payload.clone(),
                ext: out.ext.clone(),
            };
            edge.next_seq += 1;
            let message = Message::Packet(packet);
            let datagram = edge.seal(r.relay, &message);
            let Message::Packet(packet) = message else {
                unreachable!("built as a packet above");
            };
            edge.history.keep(packet);
            self.transmits.push((edge.addr, datagram));
            self.stats.relay_packets_sent += 1;
        }
    }

    /// A datagram on the relay socket.
    pub(crate) fn datagram(&mut self, source: SocketAddr, data: &mut [u8], now: Instant) {
        if let Err(why) = self.receive(source, data, now) {
            tracing::debug!(%source, ?why, "relay datagram dropped");
            self.stats.relay_datagrams_rejected += 1;
        }
    }

    fn receive(
        &mut self,
        source: SocketAddr,
        data: &mut [u8],
        now: Instant,
    ) -> Result<(), WireError> {
        let header = relay_wire::header(data)?;
        let room = self
            .by_relay
            .get(&header.relay)
            .cloned()
            .ok_or(WireError::Forged)?;
        match header.direction() {
            Direction::EdgeToOrigin => {
                let r = self.origin.get_mut(&room).ok_or(WireError::Forged)?;
                let edge = r
                    .edges
                    .iter_mut()
                    .position(|e| e.addr == source)
                    .ok_or(WireError::Forged)?;
                let message = relay_wire::open(data, &header, &r.edges[edge].cipher)?;
                if !r.edges[edge].replay.accept(header.counter) {
                    return Err(WireError::Replayed);
                }
                self.edge_said(&room, edge, message, now);
            }
            Direction::OriginToEdge => {
                let r = self.edge.get_mut(&room).ok_or(WireError::Forged)?;
                if r.origin_addr != source {
                    return Err(WireError::Forged);
                }
                let message = relay_wire::open(data, &header, &r.cipher)?;
                if !r.replay.accept(header.counter) {
                    return Err(WireError::Replayed);
                }
                r.last_heard = now;
                if std::mem::take(&mut r.stalled) {
                    tracing::info!(app = %room.0, channel = %room.1, origin = %r.origin_node, "relay resumed");
                    let _ = self.events.send(MediaEvent::RelayResumed {
                        app: room.0.clone(),
                        channel: room.1.clone(),
                        origin_node: r.origin_node.clone(),
                    });
                }
                self.origin_said(&room, header.counter, message, now);
            }
        }
        Ok(())
    }

    fn edge_said(&mut self, room: &RoomKey, edge: usize, message: Message, now: Instant) {
        let Some(r) = self.origin.get_mut(room) else {
            return;
        };
        if !std::mem::replace(&mut r.edges[edge].heard, true) {
            let state = Message::State {
                next_seq: r.edges[edge].next_seq,
                publishers: r.publisher_set(),
            };
            let relay = r.relay;
            let link = &mut r.edges[edge];
            let datagram = link.seal(relay, &state);
            self.transmits.push((link.addr, datagram));
        }
        match message {
            Message::Nack(seqs) => {
                let relay = r.relay;
                let link = &mut r.edges[edge];
                for seq in seqs {
                    let Some(packet) = link.history.get(seq) else {
                        self.stats.relay_nacks_unanswered += 1;
                        continue;
                    };
                    let mut packet = packet.clone();
                    packet.retransmission = true;
                    let datagram = link.seal(relay, &Message::Packet(packet));
                    self.transmits.push((link.addr, datagram));
                    self.stats.relay_packets_retransmitted += 1;
                }
            }
            Message::WantKeyframe { publisher, layers } => {
                if !r.publishers.contains_key(&publisher) {
                    return;
                }
                let layers = r.keyframes.ask(publisher, layers, now);
                let worker = worker_of(publisher);
                if !layers.is_empty() && worker < self.index {
                    let _ = self.mesh[worker].control.send(Control::WantKeyframe {
                        session: publisher,
                        layers,
                    });
                    self.stats.relay_keyframe_requests += 1;
                }
            }
            // The edge is there; nothing to do (the control plane removes edges).
            Message::Keepalive => {}
            // The origin's messages, sealed by the edge's key: not something an edge sends.
            Message::Packet(_) | Message::State { .. } => {}
        }
    }

    fn origin_said(&mut self, room: &RoomKey, counter: u64, message: Message, now: Instant) {
        match message {
            Message::Packet(packet) => self.origin_packet(room, packet, now),
            Message::State {
                next_seq,
                publishers,
            } => {
                let Some(r) = self.edge.get_mut(room) else {
                    return;
                };
                // Packets sent before this state and not seen are missing, even at a burst's tail.
                if let Some(last) = next_seq.checked_sub(1) {
                    r.gaps.sent_up_to(last, now);
                }
                if r.state_counter.is_some_and(|c| c > counter) {
                    // A late copy of an older state.
                    return;
                }
                r.state_counter = Some(counter);
                self.apply_state(room, publishers, next_seq);
            }
            // The edge's messages: not something an origin sends.
            Message::Nack(_) | Message::WantKeyframe { .. } | Message::Keepalive => {}
        }
    }

    /// The origin's publisher set: the edge's workers learn who came, changed, paused or left.
    fn apply_state(&mut self, room: &RoomKey, publishers: Vec<PublisherState>, next_seq: u64) {
        let Some(r) = self.edge.get_mut(room) else {
            return;
        };
        let present: HashSet<u64> = publishers.iter().map(|p| p.publisher).collect();
        let gone: Vec<u64> = r
            .publishers
            .keys()
            .filter(|id| !present.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(p) = r.publishers.remove(&id) {
                r.keyframes.forget(id);
                self.edge_sessions.remove(&p.session);
                announce(&self.mesh, &r.workers, p.session, room, &p.user, Vec::new());
            }
        }
        for state in publishers {
            match r.publishers.get_mut(&state.publisher) {
                Some(known) => {
                    if known.kinds != state.kinds {
                        known.kinds = state.kinds;
                        announce(
                            &self.mesh,
                            &r.workers,
                            known.session,
                            room,
                            &known.user,
                            known.kinds.clone(),
                        );
                    }
                    if known.paused != state.paused {
                        known.paused = state.paused;
                        known.paused_from = next_seq;
                        pause(&self.mesh, &r.workers, room, &known.user, known.paused);
                        if !known.paused {
                            // A keyframe asked for just before the pause came while nothing was relayed:
                            // the first request after the resume goes to the origin at once.
                            r.keyframes.forget(state.publisher);
                        }
                    }
                }
                None => {
                    let session = self.next_session;
                    self.next_session += 1;
                    let publisher = EdgePublisher {
                        session,
                        user: state.user,
                        kinds: state.kinds,
                        paused: state.paused,
                        frames: FrameGate::default(),
                        paused_from: next_seq,
                    };
                    for w in &r.workers {
                        announce_to(&self.mesh, *w, &publisher, room);
                    }
                    self.edge_sessions
                        .insert(session, (room.clone(), state.publisher));
                    r.publishers.insert(state.publisher, publisher);
                }
            }
        }
    }

    /// A packet from the origin: new ones go to the edge's workers the room is on, in the origin's
    /// order ([`crate::relay_reorder`]).
    fn origin_packet(&mut self, room: &RoomKey, packet: RelayPacket, now: Instant) {
        let Some(r) = self.edge.get_mut(room) else {
            return;
        };
        if r.gaps.observe(packet.relay_seq, now) == Arrival::Duplicate {
            return;
        }
        self.stats.relay_packets_received += 1;
        for packet in r.reorder.push(packet.relay_seq, packet, now) {
            deliver(&self.mesh, r, &mut self.stats, room, packet, now);
        }
    }

    /// Timers: edges NACK their gaps and watch for stalls; state and keepalives every [`STATE_EVERY`].
    pub(crate) fn tick(&mut self, now: Instant) {
        let periodic = now.saturating_duration_since(self.last_periodic) >= STATE_EVERY;
        if periodic {
            self.last_periodic = now;
            let rooms: Vec<RoomKey> = self.origin.keys().cloned().collect();
            for room in rooms {
                self.send_state(&room);
            }
        }
        for (room, r) in &mut self.edge {
            for packet in r.reorder.poll(now) {
                deliver(&self.mesh, r, &mut self.stats, room, packet, now);
            }
            loop {
                let due = r.gaps.due(now, relay_wire::MAX_NACKS);
                if due.is_empty() {
                    break;
                }
                self.stats.relay_nacks_sent += due.len() as u64;
                let datagram = r.seal(&Message::Nack(due));
                self.transmits.push((r.origin_addr, datagram));
            }
            self.stats.relay_packets_lost += r.gaps.take_given_up();
            if periodic {
                let datagram = r.seal(&Message::Keepalive);
                self.transmits.push((r.origin_addr, datagram));
            }
            if !r.stalled && now.saturating_duration_since(r.last_heard) >= STALL_AFTER {
                r.stalled = true;
                tracing::warn!(app = %room.0, channel = %room.1, origin = %r.origin_node, "relay stalled");
                let _ = self.events.send(MediaEvent::RelayStalled {
                    app: room.0.clone(),
                    channel: room.1.clone(),
                    origin_node: r.origin_node.clone(),
                });
            }
        }
    }
}

/// Hands a packet from the origin to the edge's workers the room is on.
fn deliver(
    mesh: &Mesh,
    r: &mut EdgeRoom,
    stats: &mut RouterStats,
    room: &RoomKey,
    packet: RelayPacket,
    now: Instant,
) {
    let Some(publisher) = r.publishers.get_mut(&packet.publisher) else {
        // Before the state that names its publisher: nobody here can place it yet.
        stats.relay_packets_dropped += 1;
        return;
    };
    if !packet.retransmission {
        let (kind, ssrc, time, marker) = (packet.kind, packet.ssrc, packet.time, packet.marker);
        let goes_on = publisher
            .frames
            .pass(publisher.paused, kind, ssrc, time, marker);
        if publisher.paused && !goes_on && packet.relay_seq >= publisher.paused_from {
            // Sent after a resume whose state has not arrived (or was lost): the origin relays no
            // packet of a paused publisher but a frame's tail, so it is forwarded here too. Told
            // before the packet, so the lines start over at it. One sent before the pause (overtaken
            // by the pause's state on the way) or a frame's tail lifts nothing: the workers hold it
            // back, or let the tail through, as the pause says.
            publisher.paused = false;
            pause(mesh, &r.workers, room, &publisher.user, false);
            r.keyframes.forget(packet.publisher);
            publisher.frames.pass(false, kind, ssrc, time, marker);
        }
    }
    let out = Forwarded {
        source: Source {
            session: publisher.session,
            ssrc: packet.ssrc,
        },
        kind: packet.kind,
        params: packet.params,
        seq: packet.seq,
        time: packet.time,
        marker: packet.marker,
        starts: packet.starts,
        layer: packet.layer,
        payload: packet.payload,
        ext: packet.ext,
        at: now,
    };
    for w in &r.workers {
        if mesh[*w].packets.try_send(out.clone()).is_err() {
            stats.relay_packets_dropped += 1;
        }
    }
}

/// Tells the edge's `workers` what an origin publisher publishes (nothing: it left).
fn announce(
    mesh: &Mesh,
    workers: &[usize],
    session: PeerId,
    room: &RoomKey,
    user: &str,
    kinds: Vec<Kind>,
) {
    for w in workers {
        let _ = mesh[*w].control.send(Control::Publisher {
            session,
            key: member(room, user),
            kinds: kinds.clone(),
        });
    }
}

/// Tells one worker about a publisher: what it publishes, and that it is paused if it is.
fn announce_to(mesh: &Mesh, worker: usize, publisher: &EdgePublisher, room: &RoomKey) {
    announce(
        mesh,
        &[worker],
        publisher.session,
        room,
        &publisher.user,
        publisher.kinds.clone(),
    );
    if publisher.paused {
        pause(mesh, &[worker], room, &publisher.user, true);
    }
}

/// Tells the edge's `workers` that an origin publisher is held back (or forwarded again).
fn pause(mesh: &Mesh, workers: &[usize], room: &RoomKey, user: &str, paused: bool) {
    for w in workers {
        let _ = mesh[*w].control.send(Control::Paused {
            key: member(room, user),
            paused,
        });
    }
}

#[cfg(test)]
#[path = "relay_node_tests.rs"]
mod tests;
