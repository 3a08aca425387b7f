//! [`MediaRouter`]: the handle the node holds, and the commands it sends to the router's workers.
//!
//! The router is N **workers** (default: one per core), each an `crate::engine` loop alone on a thread
//! of its own with its own UDP socket: str0m is sans-IO, so one loop feeds every session of the worker
//! its datagrams and timeouts and carries their output. The handle talks to the workers over channels;
//! nothing else touches a session.
//!
//! **A channel lives on one worker**, chosen by hashing its (app, channel): its sessions forward to each
//! other within one loop, with no hand-off between threads. **Each worker has a port of its own**
//! (`media_addr`'s port + the worker's index), and the SDP answer's host candidate names the worker's
//! address, so a client's packets reach the worker that owns its session directly. The alternative, one
//! port shared with `SO_REUSEPORT`, lets the kernel pick the socket by the client's address, not by its
//! channel: most packets would land on the wrong worker and need a second hop between threads (and STUN
//! from a new address would have to be steered by ufrag across workers). The cost of a port per worker
//! is a port range to open instead of one port (deploy/README lists them).
//!
//! **ICE-TCP** (`crate::tcp`): with [`MediaConfig::tcp`] set, each worker also listens on TCP (by
//! default the same port numbers as UDP: `tcp`'s port + the worker's index) and its sessions' answers
//! carry that address as a passive TCP host candidate, so a client whose UDP is blocked still connects.
//!
//! **ICE restart** ([`MediaRouter::restart_ice`]): a member whose network changed offers new ICE
//! credentials for its session; the worker that has it answers, and the session stays where it is (same
//! worker, same streams) under its new ufrag.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::engine::Engine;
use crate::error::MediaError;
use crate::placement::Placement;
use crate::protocol::Command;
pub use crate::protocol::{Kind, MediaEvent, PeerKey, RouterStats};
use crate::relay::{self, Mesh, RelayInbox};
use crate::relay_crypto::{KeyLedger, RelayKey};
use crate::relay_loop;
use crate::relay_node::{RelayCommand, RelayNode, RelayPeer};
use crate::tcp::{self, TcpLinks};
use crate::worker;

/// Sessions of one channel a worker takes before the channel spreads to another
/// ([`MediaConfig::room_capacity`] 0).
pub const DEFAULT_ROOM_CAPACITY: usize = 500;

/// Where the router listens and what it tells peers.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// UDP address to bind: worker `i` binds its port + `i` (port 0 = any, for every worker).
    pub bind: SocketAddr,
    /// Worker threads (0 = one per core the process may use).
    pub workers: usize,
    /// Sessions of one channel a worker takes before the channel spreads over another worker too
    /// (0 = [`DEFAULT_ROOM_CAPACITY`]).
    pub room_capacity: usize,
    /// Address put in host candidates, when it differs from the bound one (e.g. a public IP in front of
    /// a container, or a concrete IP when binding 0.0.0.0).
    pub advertise_ip: Option<IpAddr>,
    /// TCP address to listen on for ICE-TCP: worker `i` binds its port + `i` (port 0 = any, for every
    /// worker); its host candidate uses `advertise_ip` too. `None`: UDP only.
    pub tcp: Option<SocketAddr>,
    /// UDP address of the node-to-node relay (`relay_node`: one live room across nodes), one
    /// port whatever the workers (port 0 = any; [`MediaRouter::relay_addr`] says which). Only other
    /// nodes send to it; clients never do: open it between nodes only. Its datagrams are sealed with
    /// AES-128-GCM under a key per relay ([`crate::RelayKey`], exchanged by the control plane over the
    /// authenticated node link); anything else that arrives is dropped and counted
    /// ([`RouterStats::relay_datagrams_rejected`]). `None`: this node neither serves edges nor
    /// subscribes.
    pub relay: Option<SocketAddr>,
}

/// Worker `index`'s port: `base` + `index` (0 stays 0: any port).
fn worker_port(base: u16, index: usize, what: &str) -> std::io::Result<u16> {
    match base {
        0 => Ok(0),
        base => u16::try_from(usize::from(base) + index).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{what} port {base} + {index} workers is past 65535"),
            )
        }),
    }
}

/// One worker: its command channel, the addresses its sessions' peers send to, and its thread.
#[derive(Debug)]
struct Worker {
    tx: mpsc::UnboundedSender<Command>,
    candidate: SocketAddr,
    tcp_candidate: Option<SocketAddr>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The node's relay: its command channel, its address, its place in the mesh, and its thread.
#[derive(Debug)]
struct Relay {
    tx: mpsc::UnboundedSender<RelayCommand>,
    addr: SocketAddr,
    /// Its index in the mesh (one past the workers).
    index: usize,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Which channels the node relays, as the handle keeps them (to tell workers and the relay where a
/// channel is).
#[derive(Debug, Default)]
struct RelayRooms {
    /// Origin: each relayed channel's edges, by node, with their keys.
    edges: HashMap<(String, String), HashMap<String, RelayKey>>,
    /// Edge: the channels received from an origin, with their keys.
    subscribed: HashMap<(String, String), RelayKey>,
    /// Every key handed to a relay here (none may serve two).
    keys: KeyLedger,
    /// Publishers held back now, per channel (an edge added later learns them).
    paused: HashMap<(String, String), HashSet<String>>,
}

/// The node's media router. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MediaRouter {
    workers: Arc<[Worker]>,
    relay: Option<Arc<Relay>>,
    relay_rooms: Arc<Mutex<RelayRooms>>,
    /// The workers' thread ids (Linux; empty elsewhere).
    tids: Arc<[u32]>,
    placement: Arc<Mutex<Placement>>,
}

impl MediaRouter {
    /// Binds every worker's UDP socket and starts the workers, each on a thread of its own. Events go
    /// to `events`.
    pub fn start(
        config: MediaConfig,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> std::io::Result<MediaRouter> {
        // str0m needs a process-wide crypto provider; installing it twice is harmless.
        str0m::crypto::from_feature_flags().install_process_default();
        let count = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (inboxes, queues): (Vec<_>, Vec<_>) = (0..count)
            .map(|_| {
                let (packets, packets_rx) = mpsc::channel(relay::PACKET_QUEUE);
                let (control, control_rx) = mpsc::unbounded_channel();
                (RelayInbox { packets, control }, (packets_rx, control_rx))
            })
            .unzip();
        let mut inboxes = inboxes;
        let relay_queues = config.relay.map(|_| {
            let (packets, packets_rx) = mpsc::channel(relay::PACKET_QUEUE);
            let (control, control_rx) = mpsc::unbounded_channel();
            inboxes.push(RelayInbox { packets, control });
            (packets_rx, control_rx)
        });
        let mesh: Mesh = inboxes.into();
        let mut workers = Vec::with_capacity(count);
        // Each worker says its thread id once running (for the benchmarks' CPU accounting).
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        for (index, (packets, control)) in queues.into_iter().enumerate() {
            let port = worker_port(config.bind.port(), index, "media")?;
            let bound = std::net::UdpSocket::bind(SocketAddr::new(config.bind.ip(), port))?;
            bound.set_nonblocking(true)?;
            enlarge_buffers(&bound);
            let local = bound.local_addr()?;
            let candidate =
                SocketAddr::new(config.advertise_ip.unwrap_or(local.ip()), local.port());
            let tcp_listener = match config.tcp {
                Some(tcp) => {
                    let port = worker_port(tcp.port(), index, "media tcp")?;
                    let listener = std::net::TcpListener::bind(SocketAddr::new(tcp.ip(), port))?;
                    listener.set_nonblocking(true)?;
                    Some(listener)
                }
                None => None,
            };
            let tcp_candidate = match &tcp_listener {
                Some(listener) => {
                    let local = listener.local_addr()?;
                    Some(SocketAddr::new(
                        config.advertise_ip.unwrap_or(local.ip()),
                        local.port(),
                    ))
                }
                None => None,
            };
            let (tx, rx) = mpsc::unbounded_channel();
            let events = events.clone();
            let mesh = mesh.clone();
            let tid_tx = tid_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("media-worker-{index}"))
                .spawn(move || {
                    let _ = tid_tx.send((index, crate::cpu::current_thread_id()));
                    let engine = move |socket, sender| {
                        let now = Instant::now();
                        let engine =
                            Engine::new(now, candidate, tcp_candidate, events, index, mesh);
                        let refused = Arc::new(AtomicU64::new(0));
                        let (tcp_tx, tcp_events) = mpsc::channel(tcp::INBOUND_QUEUE);
                        if let Some(listener) = tcp_listener {
                            match TcpListener::from_std(listener) {
                                Ok(listener) => {
                                    tokio::spawn(tcp::listen(listener, tcp_tx, refused.clone()));
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "media tcp listener failed");
                                }
                            }
                        }
                        let inputs = worker::Inputs {
                            commands: rx,
                            relay_packets: packets,
                            relay_control: control,
                            tcp_events,
                            tcp_links: TcpLinks::new(now, refused),
                        };
                        worker::run(engine, socket, sender, inputs)
                    };
                    run_worker(bound, engine)
                })?;
            workers.push(Worker {
                tx,
                candidate,
                tcp_candidate,
                thread: Mutex::new(Some(thread)),
            });
        }
        let mut tids = vec![None; count];
        for _ in 0..count {
            let (index, tid) = tid_rx
                .recv()
                .map_err(|_| std::io::Error::other("a media worker thread died at start"))?;
            tids[index] = tid;
        }
        let relay = match (config.relay, relay_queues) {
            (Some(bind), Some((packets, control))) => Some(Arc::new(start_relay(
                bind,
                count,
                mesh.clone(),
                events.clone(),
                packets,
                control,
            )?)),
            _ => None,
        };
        let capacity = match config.room_capacity {
            0 => DEFAULT_ROOM_CAPACITY,
            n => n,
        };
        Ok(MediaRouter {
            tids: tids.into_iter().flatten().collect::<Vec<_>>().into(),
            workers: workers.into(),
            relay,
            relay_rooms: Arc::default(),
            placement: Arc::new(Mutex::new(Placement::new(count, capacity))),
        })
    }

    /// The address peers of the first worker send media to (every worker's: [`Self::candidate_addrs`]).
    pub fn candidate_addr(&self) -> SocketAddr {
        self.workers[0].candidate
    }

    /// The workers' thread ids, for reading their CPU time from `/proc` (Linux; empty elsewhere).
    pub fn worker_thread_ids(&self) -> &[u32] {
        &self.tids
    }

    /// The address of each worker, in order.
    pub fn candidate_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(|w| w.candidate).collect()
    }

    /// The ICE-TCP address of each worker, in order (empty without [`MediaConfig::tcp`]).
    pub fn tcp_candidate_addrs(&self) -> Vec<SocketAddr> {
        self.workers
            .iter()
            .filter_map(|w| w.tcp_candidate)
            .collect()
    }

    fn placement(&self) -> std::sync::MutexGuard<'_, Placement> {
        // Placement is plain bookkeeping: a panic while it was held leaves it usable.
        self.placement.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `command` to every worker a channel is on.
    fn send_room(&self, app: &str, channel: &str, command: impl Fn() -> Command) {
        for w in self.placement().room_workers(app, channel) {
            let _ = self.workers[w].tx.send(command());
        }
    }

    /// Tells the workers a channel was and is on which workers it is on now.
    /// On an origin, a relayed channel is on the relay too (the mesh's member past the workers): its
    /// publishers' workers hand it their packets. On an edge, the relay learns which workers to hand
    /// the origin's packets to.
    fn announce_room_workers(&self, app: &str, channel: &str, before: &[usize], now: &[usize]) {
        let mut told: Vec<usize> = before.iter().chain(now).copied().collect();
        told.sort_unstable();
        told.dedup();
        let room = (app.to_owned(), channel.to_owned());
        let (relayed, subscribed) = {
            let rooms = self.relay_rooms();
            (
                rooms.edges.contains_key(&room),
                rooms.subscribed.contains_key(&room),
            )
        };
        let mut workers = now.to_vec();
        if relayed && let Some(relay) = &self.relay {
            workers.push(relay.index);
        }
        for w in told {
            let _ = self.workers[w].tx.send(Command::RoomWorkers {
                app: app.to_owned(),
                channel: channel.to_owned(),
                workers: workers.clone(),
            });
        }
        if subscribed && let Some(relay) = &self.relay {
            let _ = relay.tx.send(RelayCommand::RoomWorkers {
                room,
                workers: now.to_vec(),
            });
        }
    }

    fn relay_rooms(&self) -> std::sync::MutexGuard<'_, RelayRooms> {
        // Plain bookkeeping, as the placement.
        self.relay_rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn relay(&self) -> Result<&Relay, MediaError> {
        self.relay.as_deref().ok_or(MediaError::NoRelay)
    }

    /// The relay's UDP address (other nodes' edges and origins send here), when it has one
    /// ([`MediaConfig::relay`]).
    pub fn relay_addr(&self) -> Option<SocketAddr> {
        self.relay.as_ref().map(|r| r.addr)
    }

    /// Origin: sends the channel's publishers to `edge` too, once per packet whatever its viewers
    /// (`relay_node`). Adding an edge node again with a new key starts its relay over; with the same
    /// key (a repeat, or a new address) the relay carries on. A key serves one relay only
    /// ([`crate::RelayKey::random`]): one used before here is refused
    /// ([`MediaError::RelayKeyReused`]). Refused too without a relay socket
    /// ([`MediaError::NoRelay`]), or when this node is itself an edge of the channel. Subscribe the
    /// edge first ([`MediaRouter::subscribe_origin`] there): what reaches an edge before it subscribes
    /// is refused (counted in `relay_datagrams_rejected`; the state repeats, and the first packets
    /// are missed).
    pub fn add_edge(&self, app: &str, channel: &str, edge: RelayPeer) -> Result<(), MediaError> {
        let relay = self.relay()?;
        let room = (app.to_owned(), channel.to_owned());
        let (first, paused) = {
            let mut rooms = self.relay_rooms();
            if rooms.subscribed.contains_key(&room) {
                return Err(MediaError::RelayConflict(format!(
                    "{app}/{channel} is received from an origin here"
                )));
            }
            let paused = rooms
                .paused
                .get(&room)
                .map(|p| p.iter().cloned().collect())
                .unwrap_or_default();
            // The guard's fields, borrowed apart.
            let rooms = &mut *rooms;
            let current = rooms.edges.get(&room).and_then(|e| e.get(&edge.node));
            if !rooms.keys.admit(&edge.key, current) {
                return Err(MediaError::RelayKeyReused);
            }
            let edges = rooms.edges.entry(room.clone()).or_default();
            let first = edges.is_empty();
            edges.insert(edge.node.clone(), edge.key.clone());
            (first, paused)
        };
        // The relay knows the edge before the workers announce the channel's publishers to it.
        relay
            .tx
            .send(RelayCommand::AddEdge { room, edge, paused })
            .map_err(|_| MediaError::Stopped)?;
        if first {
            let workers = self.placement().room_workers(app, channel);
            self.announce_room_workers(app, channel, &workers, &workers);
        }
        Ok(())
    }

    /// Origin: stops sending the channel to `edge_node` (its viewers there see the publishers leave
    /// only when that node unsubscribes). Unknown edges are ignored.
    pub fn remove_edge(&self, app: &str, channel: &str, edge_node: &str) {
        let Some(relay) = &self.relay else {
            return;
        };
        let room = (app.to_owned(), channel.to_owned());
        let last = {
            let mut rooms = self.relay_rooms();
            let Some(edges) = rooms.edges.get_mut(&room) else {
                return;
            };
            edges.remove(edge_node);
            let last = edges.is_empty();
            if last {
                rooms.edges.remove(&room);
            }
            last
        };
        let _ = relay.tx.send(RelayCommand::RemoveEdge {
            room,
            node: edge_node.to_owned(),
        });
        if last {
            let workers = self.placement().room_workers(app, channel);
            self.announce_room_workers(app, channel, &workers, &workers);
        }
    }

    /// Edge: receives the channel's publishers from `origin` and fans them out to the viewers here,
    /// as if they published on another worker of this node. Subscribing again with a new key (another
    /// origin, or the same one re-keyed) replaces the relay, the origin's publishers known again from
    /// its first state; with the same key the relay carries on. A key used before here for another
    /// relay (or for this one before it was unsubscribed) is refused ([`MediaError::RelayKeyReused`]);
    /// so is a router without a relay socket, or one that is itself the channel's origin for some edge.
    pub fn subscribe_origin(
        &self,
        app: &str,
        channel: &str,
        origin: RelayPeer,
    ) -> Result<(), MediaError> {
        let relay = self.relay()?;
        let room = (app.to_owned(), channel.to_owned());
        {
            let mut rooms = self.relay_rooms();
            if rooms.edges.contains_key(&room) {
                return Err(MediaError::RelayConflict(format!(
                    "{app}/{channel} has edges of this node"
                )));
            }
            let rooms = &mut *rooms;
            if !rooms.keys.admit(&origin.key, rooms.subscribed.get(&room)) {
                return Err(MediaError::RelayKeyReused);
            }
            rooms.subscribed.insert(room.clone(), origin.key.clone());
        }
        let workers = self.placement().room_workers(app, channel);
        relay
            .tx
            .send(RelayCommand::Subscribe {
                room,
                origin,
                workers,
            })
            .map_err(|_| MediaError::Stopped)
    }

    /// Edge: stops receiving the channel; its origin publishers leave the viewers here (their lines
    /// are renegotiated as for any publisher leaving).
    pub fn unsubscribe_origin(&self, app: &str, channel: &str) {
        let Some(relay) = &self.relay else {
            return;
        };
        let room = (app.to_owned(), channel.to_owned());
        if self.relay_rooms().subscribed.remove(&room).is_some() {
            let _ = relay.tx.send(RelayCommand::Unsubscribe { room });
        }
    }

    /// Removes a session from the placement and tells the workers if the channel left one.
    fn unplace(&self, key: &PeerKey) -> Option<usize> {
        let (placed, before) = {
            let mut placement = self.placement();
            let before = placement.room_workers(&key.app, &key.channel);
            (placement.remove(key)?, before)
        };
        if let Some(now) = &placed.room_workers {
            self.announce_room_workers(&key.app, &key.channel, &before, now);
        }
        Some(placed.worker)
    }

    /// Stops every worker and waits for their threads (their sessions end without a word: the node is
    /// going away).
    pub async fn shutdown(&self) {
        for worker in self.workers.iter() {
            let _ = worker.tx.send(Command::Stop);
        }
        if let Some(relay) = &self.relay {
            let _ = relay.tx.send(RelayCommand::Stop);
        }
        let threads: Vec<_> = self
            .workers
            .iter()
            .map(|w| &w.thread)
            .chain(self.relay.as_ref().map(|r| &r.thread))
            .filter_map(|t| t.lock().ok().and_then(|mut t| t.take()))
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }

    /// Opens a session for a channel member from its SDP offer; returns the SDP answer. A member that may
    /// not publish must offer receive-only.
    pub async fn open(
        &self,
        key: PeerKey,
        may_publish: bool,
        offer: String,
    ) -> Result<String, MediaError> {
        let (placed, before, rejoin) = {
            let mut placement = self.placement();
            let before = placement.room_workers(&key.app, &key.channel);
            let rejoin = placement.worker_of(&key).is_some();
            (placement.place(&key), before, rejoin)
        };
        if let Some(now) = &placed.room_workers {
            // Before the session exists, so the channel's publishers reach it from its first packet.
            self.announce_room_workers(&key.app, &key.channel, &before, now);
        } else if let Some(relay) = &self.relay {
            // A channel this node receives from an origin: its first session (or one after the channel
            // was closed here) must find the origin's publishers on its worker too.
            let room = (key.app.clone(), key.channel.clone());
            if self.relay_rooms().subscribed.contains_key(&room) {
                let workers = self.placement().room_workers(&key.app, &key.channel);
                let _ = relay.tx.send(RelayCommand::RoomWorkers { room, workers });
            }
        }
        let (reply, rx) = oneshot::channel();
        let sent = self.workers[placed.worker].tx.send(Command::Open {
            key: key.clone(),
            may_publish,
            offer,
            reply,
        });
        let answer = match sent {
            Ok(()) => rx.await.unwrap_or(Err(MediaError::Stopped)),
            Err(_) => Err(MediaError::Stopped),
        };
        if answer.is_err() && !rejoin {
            // Refused: no session was made. (A member joining again keeps its place: its previous
            // session is still there, or its member leaving closes the place.)
            self.unplace(&key);
        }
        answer
    }

    /// Closes a member's session (left the channel, or the channel closed).
    pub fn close(&self, key: PeerKey) {
        if let Some(worker) = self.unplace(&key) {
            let _ = self.workers[worker].tx.send(Command::Close { key });
        }
    }

    /// Closes every session of a channel at once (the channel ended): unlike closing them one by one,
    /// the members left for a moment are not renegotiated.
    pub fn close_room(&self, app: &str, channel: &str) {
        let room = (app.to_owned(), channel.to_owned());
        let (relayed, subscribed) = {
            let mut rooms = self.relay_rooms();
            rooms.paused.remove(&room);
            (
                rooms.edges.contains_key(&room),
                rooms.subscribed.contains_key(&room),
            )
        };
        if subscribed && let Some(relay) = &self.relay {
            // The workers forget the origin's publishers with the room: the relay announces them again
            // to the workers of the channel's next sessions.
            let _ = relay.tx.send(RelayCommand::RoomWorkers {
                room: room.clone(),
                workers: Vec::new(),
            });
        }
        if relayed && let Some(relay) = &self.relay {
            // The workers drop the room without announcing its publishers' leaving: the edges are told
            // here (their viewers' lines turn inactive; the edges stay until removed).
            let _ = relay.tx.send(RelayCommand::RoomClosed { room });
        }
        let workers = self.placement().remove_room(app, channel);
        for w in workers {
            let _ = self.workers[w].tx.send(Command::CloseRoom {
                app: app.to_owned(),
                channel: channel.to_owned(),
            });
        }
    }

    /// Applies a member's answer to the router's pending offer ([`MediaEvent::Offer`]). A malformed
    /// answer, a stale revision, or no pending offer is refused and changes nothing.
    pub async fn accept_answer(
        &self,
        key: PeerKey,
        revision: u64,
        answer: String,
    ) -> Result<(), MediaError> {
        let (reply, rx) = oneshot::channel();
        let worker = self
            .placement()
            .worker_of(&key)
            .ok_or(MediaError::NoSession)?;
        self.workers[worker]
            .tx
            .send(Command::AcceptAnswer {
                key,
                revision,
                answer,
                reply,
            })
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)?
    }

    /// Restarts ICE on a member's session from its offer (new ICE credentials, the same media lines: a
    /// client whose network changed); returns the SDP answer. The session keeps its streams, so what it
    /// sends and receives continues where it stopped once its checks reach the router on the new path.
    /// An offer that is malformed or restarts nothing is refused and changes nothing.
    pub async fn restart_ice(&self, key: PeerKey, offer: String) -> Result<String, MediaError> {
        let (reply, rx) = oneshot::channel();
        let worker = self
            .placement()
            .worker_of(&key)
            .ok_or(MediaError::NoSession)?;
        self.workers[worker]
            .tx
            .send(Command::RestartIce { key, offer, reply })
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)?
    }

    /// Starts or stops forwarding a publisher's media to the rest of its channel. Resuming also asks the
    /// publisher for a keyframe, repeatedly until one arrives.
    pub fn set_forwarding(&self, app: &str, channel: &str, publisher: &str, forward: bool) {
        if let Some(relay) = &self.relay {
            // Edges are told (and edges added later learn it) before the workers forward again, so
            // the state saying so goes out ahead of the packets after a resume.
            let room = (app.to_owned(), channel.to_owned());
            {
                let mut rooms = self.relay_rooms();
                let paused = rooms.paused.entry(room.clone()).or_default();
                if forward {
                    paused.remove(publisher);
                } else {
                    paused.insert(publisher.to_owned());
                }
                if paused.is_empty() {
                    rooms.paused.remove(&room);
                }
            }
            let _ = relay.tx.send(RelayCommand::Paused {
                room,
                publisher: publisher.to_owned(),
                paused: !forward,
            });
        }
        self.send_room(app, channel, || Command::Forward {
            app: app.to_owned(),
            channel: channel.to_owned(),
            publisher: publisher.to_owned(),
            forward,
        });
    }

    /// Asks a publisher for a keyframe (PLI), repeated until one arrives.
    pub fn request_keyframe(&self, app: &str, channel: &str, publisher: &str) {
        self.send_room(app, channel, || Command::RequestKeyframe {
            app: app.to_owned(),
            channel: channel.to_owned(),
            publisher: publisher.to_owned(),
        });
    }

    /// Sets the best simulcast layer a member receives of each publisher's video (0: the top, the
    /// default; 1 and 2: the medium and low ones, as a small window needs). Its lines switch at the
    /// chosen layer's next keyframe, which is asked for at once. A layer past the last one or a member
    /// without a session is refused and changes nothing.
    pub async fn set_max_layer(&self, key: PeerKey, layer: u8) -> Result<(), MediaError> {
        if usize::from(layer) >= crate::simulcast::MAX_LAYERS {
            return Err(MediaError::UnknownLayer(layer));
        }
        let worker = self
            .placement()
            .worker_of(&key)
            .ok_or(MediaError::NoSession)?;
        let (reply, rx) = oneshot::channel();
        self.workers[worker]
            .tx
            .send(Command::SetMaxLayer { key, layer, reply })
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)?
    }

    /// Current counters, summed over the workers and the relay.
    pub async fn stats(&self) -> Result<RouterStats, MediaError> {
        let mut total = RouterStats::default();
        for worker in self.worker_stats().await? {
            total += worker;
        }
        total += self.relay_stats().await?;
        Ok(total)
    }

    /// The node-to-node relay's counters (its `relay_*` fields; all zero without a relay socket).
    pub async fn relay_stats(&self) -> Result<RouterStats, MediaError> {
        let Some(relay) = &self.relay else {
            return Ok(RouterStats::default());
        };
        let (reply, rx) = oneshot::channel();
        relay
            .tx
            .send(RelayCommand::Stats { reply })
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)
    }

    /// Current counters of each worker, in order.
    pub async fn worker_stats(&self) -> Result<Vec<RouterStats>, MediaError> {
        let mut all = Vec::with_capacity(self.workers.len());
        for worker in self.workers.iter() {
            let (reply, rx) = oneshot::channel();
            worker
                .tx
                .send(Command::Stats { reply })
                .map_err(|_| MediaError::Stopped)?;
            all.push(rx.await.map_err(|_| MediaError::Stopped)?);
        }
        Ok(all)
    }
}

/// Binds the relay's socket and starts it on a thread of its own (its place in the mesh: `index`).
fn start_relay(
    bind: SocketAddr,
    index: usize,
    mesh: Mesh,
    events: mpsc::UnboundedSender<MediaEvent>,
    packets: mpsc::Receiver<relay::Forwarded>,
    control: mpsc::UnboundedReceiver<relay::Control>,
) -> std::io::Result<Relay> {
    let bound = std::net::UdpSocket::bind(bind)?;
    bound.set_nonblocking(true)?;
    enlarge_buffers(&bound);
    let addr = bound.local_addr()?;
    let (tx, commands) = mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("media-relay".to_owned())
        .spawn(move || {
            run_worker(bound, move |socket, _sender| {
                let node = RelayNode::new(index, mesh, events, Instant::now());
                let inputs = relay_loop::RelayInputs {
                    commands,
                    packets,
                    control,
                };
                relay_loop::run(node, socket, inputs)
            })
        })?;
    Ok(Relay {
        tx,
        addr,
        index,
        thread: Mutex::new(Some(thread)),
    })
}

/// Kernel socket buffers asked for each worker's socket. A worker reads one datagram per turn and a
/// turn that fans a packet out to hundreds of receivers takes a millisecond or more, so what arrives
/// meanwhile (their RTCP, STUN, the publisher's next packets) waits in the receive buffer; Linux's
/// default (≈ 200 KB) overflows at a few hundred receivers. The kernel caps the size at
/// `net.core.rmem_max` / `wmem_max` (deploy/README says to raise them).
const SOCKET_BUFFER: usize = 4 << 20;

/// Asks for [`SOCKET_BUFFER`] both ways; a refusal leaves the default (and is logged).
fn enlarge_buffers(socket: &std::net::UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    if let Err(e) = setsockopt(socket, sockopt::RcvBuf, &SOCKET_BUFFER)
        .and_then(|()| setsockopt(socket, sockopt::SndBuf, &SOCKET_BUFFER))
    {
        tracing::warn!(error = %e, "media socket buffers not enlarged");
    }
}

/// One worker's thread: a current-thread runtime driving its engine (made by `engine` from the socket
/// and its sending clone) until told to stop.
fn run_worker<F: Future<Output = ()>>(
    socket: std::net::UdpSocket,
    engine: impl FnOnce(UdpSocket, std::net::UdpSocket) -> F,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "media worker runtime failed to start");
            return;
        }
    };
    runtime.block_on(async move {
        // Sends go straight to the kernel through a clone (`crate::egress`); tokio's socket reads.
        let sender = match socket.try_clone() {
            Ok(sender) => sender,
            Err(e) => {
                tracing::error!(error = %e, "media worker socket failed");
                return;
            }
        };
        let socket = match UdpSocket::from_std(socket) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::error!(error = %e, "media worker socket failed");
                return;
            }
        };
        engine(socket, sender).await;
    });
}
