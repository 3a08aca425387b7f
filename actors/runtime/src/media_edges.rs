//! One live room across nodes, the runtime's part (`showcall_protocol::media_edge`).
//!
//! - **On the origin**, a channel actor reaches an edge's router through [`RemoteMedia`] (the
//!   `MediaControl` of another node): each command is a `Body::Media` envelope, requests wait for the
//!   edge's answer like any request to another node (bounded by the command timeout, failed at once
//!   when the node dies). An edge's `AddEdge` makes the origin's router relay the room to it
//!   ([`Hub::media_op`]); the origin remembers which edges relay which room, so an edge that dies is
//!   removed from its router.
//! - **On an edge**, each room has one worker task with a bounded queue ([`EDGE_ROOM_QUEUE`]): the
//!   origin's commands for the room run in the order sent, off the node link's task (a subscription
//!   waits for the origin's answer, which arrives on that same link). Its first viewer subscribes the
//!   router to the origin (a fresh key per subscription), its last viewer's leave unsubscribes it and
//!   tells the origin, and the worker ends.
//! - **An edge at its `max_viewers`** refuses one more viewer (UNAVAILABLE: the origin opens it on
//!   itself instead). Origins choose edges by the load each publishes, which lags (a sample a second,
//!   then etcd): a crowd arriving at once would all be sent to an edge that announced room for one. The
//!   edge admits by the viewers its rooms' workers hold now (or its published load, when higher:
//!   sessions it holds as an origin).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use showcall_machines::{ChannelName, UserId};
use showcall_ports::{AnswerApplied, LayerCapped, MediaControl, MediaRefusal, SessionOpening};
use showcall_protocol::envelope::{Body, ReplyTo};
use showcall_protocol::media_edge::{MediaOp, RelayTicket};
use showcall_protocol::messages::Answer;
use showcall_protocol::sync::lock;
use showcall_protocol::{AppId, NodeId, VideoLayer};
use tokio::sync::mpsc;

use crate::hub::Hub;

/// Commands of one room's origin that may wait on an edge: past this the origin's further requests
/// are refused UNAVAILABLE ("try again") and its closes dropped (logged), so a stuck router cannot grow
/// the queue without bound.
pub const EDGE_ROOM_QUEUE: usize = 1024;

type RoomKey = (AppId, ChannelName);

/// This node's share of rooms across nodes: the rooms it is an edge of, and those it relays to edges.
#[derive(Default)]
pub(crate) struct MediaEdges {
    /// Rooms this node is an edge of: their origin and their worker's queue.
    rooms: Mutex<HashMap<RoomKey, EdgeRoomQueue>>,
    /// Rooms this node is the origin of, with the edges its router relays each to.
    relayed_to: Mutex<HashMap<RoomKey, BTreeSet<NodeId>>>,
}

struct EdgeRoomQueue {
    origin: NodeId,
    /// Tells one worker from the next one of the same room (a worker removes only its own entry).
    generation: u64,
    queue: mpsc::Sender<MediaOp>,
    /// Its viewers, as its worker last counted them (after each command): what the edge admits
    /// viewers by, with its other rooms' (see the module docs). Gone with the entry.
    viewers: Arc<AtomicU64>,
}

/// An edge's viewers of one room, and whether its router receives the room from the origin.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct EdgeRoom {
    pub(crate) subscribed: bool,
    pub(crate) viewers: BTreeSet<UserId>,
}

/// Another node's media router, reached over the node link (see the module docs).
#[derive(Debug)]
pub(crate) struct RemoteMedia {
    pub(crate) hub: Hub,
    pub(crate) node: NodeId,
}

impl RemoteMedia {
    /// Asks the node's router; a node that does not answer (or is gone) is a refusal: UNAVAILABLE.
    fn ask<T: Answer>(
        &self,
        app: &AppId,
        channel: &ChannelName,
        op: impl FnOnce(ReplyTo) -> MediaOp + Send + 'static,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<T, MediaRefusal>> + Send>> {
        let (hub, node) = (self.hub.clone(), self.node.clone());
        let (app, channel) = (app.clone(), channel.clone());
        Box::pin(async move {
            let body = |reply| Body::Media {
                app,
                channel,
                op: op(reply),
            };
            match hub.request::<Result<T, MediaRefusal>>(&node, body).await {
                Ok(answer) => answer,
                Err(e) => Err(MediaRefusal::Unavailable(e.to_string())),
            }
        })
    }

    fn tell(&self, app: &AppId, channel: &ChannelName, op: MediaOp) {
        let body = Body::Media {
            app: app.clone(),
            channel: channel.clone(),
            op,
        };
        if !self.hub.ship(&self.node, body) {
            // Gone from the cluster: its sessions went with it.
            tracing::debug!(node = %self.node, %app, %channel, "media command for a node that left");
        }
    }
}

impl MediaControl for RemoteMedia {
    fn open_session(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        _may_publish: bool,
        offer: String,
    ) -> SessionOpening {
        // An edge opens receive-only sessions whatever it is asked: publishers stay on the origin.
        let user = user.clone();
        self.ask(app, channel, move |reply| MediaOp::Open {
            user,
            offer,
            reply,
        })
    }

    fn close_session(&self, app: &AppId, channel: &ChannelName, user: &UserId) {
        let user = user.clone();
        self.tell(app, channel, MediaOp::Close { user });
    }

    fn close_channel(&self, app: &AppId, channel: &ChannelName) {
        self.tell(app, channel, MediaOp::CloseRoom);
    }

    fn accept_answer(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        revision: u64,
        sdp_answer: String,
    ) -> AnswerApplied {
        let user = user.clone();
        self.ask(app, channel, move |reply| MediaOp::Answer {
            user,
            revision,
            sdp_answer,
            reply,
        })
    }

    fn restart_ice(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        sdp_offer: String,
    ) -> SessionOpening {
        let user = user.clone();
        self.ask(app, channel, move |reply| MediaOp::RestartIce {
            user,
            sdp_offer,
            reply,
        })
    }

    fn set_video_layer(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        max_layer: VideoLayer,
    ) -> LayerCapped {
        let user = user.clone();
        self.ask(app, channel, move |reply| MediaOp::SetVideoLayer {
            user,
            max_layer,
            reply,
        })
    }

    /// Publishers are on the origin, never on an edge: a channel actor forwards and asks keyframes of
    /// its own router, and the edge's relay follows the origin. A call here is a bug, logged.
    fn set_forwarding(&self, app: &AppId, channel: &ChannelName, publisher: &UserId, _: bool) {
        tracing::error!(node = %self.node, %app, %channel, %publisher, "forwarding asked of an edge: publishers are on the origin");
    }

    fn request_keyframe(&self, app: &AppId, channel: &ChannelName, publisher: &UserId) {
        tracing::error!(node = %self.node, %app, %channel, %publisher, "keyframe asked of an edge: publishers are on the origin");
    }
}

impl Hub {
    /// Another node's media command for room `channel` of `app` (`Body::Media`, from `from`).
    pub(crate) fn media_op(&self, from: NodeId, app: AppId, channel: ChannelName, op: MediaOp) {
        match op {
            MediaOp::AddEdge { edge, reply } => {
                let answer = self.add_edge(&from, &app, &channel, &edge);
                let _ = self
                    .responder::<Result<RelayTicket, MediaRefusal>>(reply)
                    .send(Ok(answer));
            }
            MediaOp::RemoveEdge => {
                let key = (app, channel);
                let relayed = {
                    let mut relayed_to = lock(&self.inner.edges.relayed_to);
                    let removed = relayed_to.get_mut(&key).is_some_and(|e| e.remove(&from));
                    if relayed_to.get(&key).is_some_and(BTreeSet::is_empty) {
                        relayed_to.remove(&key);
                    }
                    removed
                };
                if relayed {
                    self.inner.parts.relay.remove_edge(&key.0, &key.1, &from);
                }
            }
            op => self.queue_edge_op(from, app, channel, op),
        }
    }

    /// On the origin: relay the room to edge `from`, if the room is open here.
    fn add_edge(
        &self,
        from: &NodeId,
        app: &AppId,
        channel: &ChannelName,
        edge: &RelayTicket,
    ) -> Result<RelayTicket, MediaRefusal> {
        if self.channel(app, channel).is_none() {
            return Err(MediaRefusal::Unavailable(format!(
                "room {channel} is not open on node {}",
                self.node()
            )));
        }
        let ticket = self.inner.parts.relay.add_edge(app, channel, from, edge)?;
        lock(&self.inner.edges.relayed_to)
            .entry((app.clone(), channel.clone()))
            .or_default()
            .insert(from.clone());
        tracing::info!(%app, %channel, edge = %from, "room relayed to an edge");
        Ok(ticket)
    }

    /// On an edge: hands an origin's command to its room's worker (started for the first one).
    fn queue_edge_op(&self, origin: NodeId, app: AppId, channel: ChannelName, op: MediaOp) {
        let key = (app.clone(), channel.clone());
        let mut rooms = lock(&self.inner.edges.rooms);
        if let Some(room) = rooms.get(&key)
            && room.origin != origin
        {
            // The room re-opened on another origin before this node heard the old one died.
            let why = format!(
                "this node still relays {channel} from node {}; try again",
                room.origin
            );
            drop(rooms);
            self.refuse_media_op(op, why);
            return;
        }
        let room = rooms.entry(key).or_insert_with(|| {
            let (queue, ops) = mpsc::channel(EDGE_ROOM_QUEUE);
            let generation = self.next_id();
            let viewers = Arc::new(AtomicU64::new(0));
            let worker = self.clone();
            let (from, app, channel) = (origin.clone(), app.clone(), channel.clone());
            let counted = viewers.clone();
            tokio::spawn(async move {
                worker
                    .run_edge_room(from, app, channel, generation, ops, counted)
                    .await;
            });
            EdgeRoomQueue {
                origin,
                generation,
                queue,
                viewers,
            }
        });
        if let Err(e) = room.queue.try_send(op) {
            drop(rooms);
            let op = match e {
                mpsc::error::TrySendError::Full(op) | mpsc::error::TrySendError::Closed(op) => op,
            };
            self.refuse_media_op(op, "this edge is busy with the room; try again".into());
        }
    }

    /// An origin's command this edge will not carry out: a request is answered UNAVAILABLE.
    fn refuse_media_op(&self, op: MediaOp, why: String) {
        let reply = match op {
            MediaOp::Open { reply, .. }
            | MediaOp::Answer { reply, .. }
            | MediaOp::RestartIce { reply, .. }
            | MediaOp::SetVideoLayer { reply, .. }
            | MediaOp::AddEdge { reply, .. } => reply,
            MediaOp::Close { user } => {
                tracing::warn!(%user, %why, "edge media session not closed");
                return;
            }
            MediaOp::CloseRoom | MediaOp::RemoveEdge => {
                tracing::warn!(%why, "edge room command dropped");
                return;
            }
        };
        let _ = self
            .responder::<Result<(), MediaRefusal>>(reply)
            .send(Ok(Err(MediaRefusal::Unavailable(why))));
    }

    /// One edge room's worker: its origin's commands in order, until its last viewer left and nothing
    /// waits.
    async fn run_edge_room(
        self,
        origin: NodeId,
        app: AppId,
        channel: ChannelName,
        generation: u64,
        mut ops: mpsc::Receiver<MediaOp>,
        viewers: Arc<AtomicU64>,
    ) {
        let mut room = EdgeRoom::default();
        while let Some(op) = ops.recv().await {
            self.edge_step(&origin, &app, &channel, &mut room, op).await;
            viewers.store(room.viewers.len() as u64, Ordering::Relaxed);
            if !room.viewers.is_empty() {
                continue;
            }
            if room.subscribed {
                self.inner.parts.relay.unsubscribe_origin(&app, &channel);
                let _ = self.ship(
                    &origin,
                    Body::Media {
                        app: app.clone(),
                        channel: channel.clone(),
                        op: MediaOp::RemoveEdge,
                    },
                );
                room.subscribed = false;
                tracing::info!(%app, %channel, %origin, "last viewer left: edge unsubscribed");
            }
            // Senders queue under this lock: with it held and nothing queued, nothing can arrive.
            let mut rooms = lock(&self.inner.edges.rooms);
            if ops.is_empty() {
                let key = (app.clone(), channel.clone());
                if rooms.get(&key).is_some_and(|r| r.generation == generation) {
                    rooms.remove(&key);
                }
                return;
            }
        }
    }

    /// Carries out one of the origin's commands on this edge's router.
    async fn edge_step(
        &self,
        origin: &NodeId,
        app: &AppId,
        channel: &ChannelName,
        room: &mut EdgeRoom,
        op: MediaOp,
    ) {
        let media = self.inner.parts.media.clone();
        match op {
            MediaOp::Open { user, offer, reply } => {
                // A viewer already here replaces its session: it takes no more room.
                let admitted = match room.viewers.contains(&user) {
                    true => Ok(()),
                    false => self.edge_has_room(),
                };
                let opened = match admitted {
                    Ok(()) => match self.subscribe(origin, app, channel, room).await {
                        Ok(()) => media.open_session(app, channel, &user, false, offer).await,
                        Err(refusal) => Err(refusal),
                    },
                    Err(refusal) => Err(refusal),
                };
                if opened.is_ok() {
                    room.viewers.insert(user);
                }
                let _ = self
                    .responder::<Result<String, MediaRefusal>>(reply)
                    .send(Ok(opened));
            }
            MediaOp::Close { user } => {
                media.close_session(app, channel, &user);
                room.viewers.remove(&user);
            }
            MediaOp::CloseRoom => {
                media.close_channel(app, channel);
                room.viewers.clear();
            }
            MediaOp::Answer {
                user,
                revision,
                sdp_answer,
                reply,
            } => {
                let applied = media
                    .accept_answer(app, channel, &user, revision, sdp_answer)
                    .await;
                let _ = self
                    .responder::<Result<(), MediaRefusal>>(reply)
                    .send(Ok(applied));
            }
            MediaOp::RestartIce {
                user,
                sdp_offer,
                reply,
            } => {
                let restarted = media.restart_ice(app, channel, &user, sdp_offer).await;
                let _ = self
                    .responder::<Result<String, MediaRefusal>>(reply)
                    .send(Ok(restarted));
            }
            MediaOp::SetVideoLayer {
                user,
                max_layer,
                reply,
            } => {
                let capped = media.set_video_layer(app, channel, &user, max_layer).await;
                let _ = self
                    .responder::<Result<(), MediaRefusal>>(reply)
                    .send(Ok(capped));
            }
            // The origin's side: `media_op` carries these out on the link's task, never queues them.
            op @ (MediaOp::AddEdge { .. } | MediaOp::RemoveEdge) => {
                self.refuse_media_op(op, "not a command for an edge".into())
            }
        }
    }

    /// Whether this edge may take one more viewer: below its `max_viewers` (as it announces it) by the
    /// viewers it holds now, or by its published sessions when those are more. Concurrent opens of
    /// different rooms may pass together; one room's opens run one after the other.
    fn edge_has_room(&self) -> Result<(), MediaRefusal> {
        let Some(me) = self
            .placement()
            .media_nodes()
            .into_iter()
            .find(|n| n.id == *self.node())
        else {
            return Ok(());
        };
        let held: u64 = lock(&self.inner.edges.rooms)
            .values()
            .map(|room| room.viewers.load(Ordering::Relaxed))
            .sum();
        let held = held.max(me.viewers);
        if me.max_viewers > 0 && held >= me.max_viewers {
            return Err(MediaRefusal::Unavailable(format!(
                "node {} is at its max_viewers ({held} of {})",
                me.id, me.max_viewers
            )));
        }
        Ok(())
    }

    /// Makes this edge's router receive the room from its origin, once: a fresh ticket to the origin,
    /// whose router adds this edge and answers its own.
    async fn subscribe(
        &self,
        origin: &NodeId,
        app: &AppId,
        channel: &ChannelName,
        room: &mut EdgeRoom,
    ) -> Result<(), MediaRefusal> {
        if room.subscribed {
            return Ok(());
        }
        let relay = self.inner.parts.relay.clone();
        let edge = relay.edge_ticket()?;
        let body = |reply| Body::Media {
            app: app.clone(),
            channel: channel.clone(),
            op: MediaOp::AddEdge { edge, reply },
        };
        let ticket = self
            .request::<Result<RelayTicket, MediaRefusal>>(origin, body)
            .await
            .map_err(|e| MediaRefusal::Unavailable(e.to_string()))??;
        if let Err(refusal) = relay.subscribe_origin(app, channel, origin, &ticket) {
            // The origin relays to this edge already: it stops, as after a last viewer's leave.
            let _ = self.ship(
                origin,
                Body::Media {
                    app: app.clone(),
                    channel: channel.clone(),
                    op: MediaOp::RemoveEdge,
                },
            );
            return Err(refusal);
        }
        room.subscribed = true;
        tracing::info!(%app, %channel, %origin, "edge subscribed to the room's origin");
        Ok(())
    }

    /// Node `node` died: rooms it relayed from this node lose that edge, and rooms it was the origin of
    /// close here (no channel actor is left to close their sessions; their viewers join again).
    pub(crate) fn media_node_lost(&self, node: &NodeId) {
        let lost_edges: Vec<RoomKey> = {
            let mut relayed_to = lock(&self.inner.edges.relayed_to);
            let rooms: Vec<RoomKey> = relayed_to
                .iter_mut()
                .filter_map(|(room, edges)| edges.remove(node).then(|| room.clone()))
                .collect();
            relayed_to.retain(|_, edges| !edges.is_empty());
            rooms
        };
        for (app, channel) in lost_edges {
            self.inner.parts.relay.remove_edge(&app, &channel, node);
        }
        let orphaned: Vec<mpsc::Sender<MediaOp>> = lock(&self.inner.edges.rooms)
            .values()
            .filter(|room| room.origin == *node)
            .map(|room| room.queue.clone())
            .collect();
        for queue in orphaned {
            if queue.try_send(MediaOp::CloseRoom).is_err() {
                tracing::warn!(origin = %node, "edge room of a dead origin not closed: its queue is full");
            }
        }
    }

    /// Rooms this node is an edge of now (for tests and the admin API).
    pub fn edge_rooms(&self) -> Vec<(AppId, ChannelName, NodeId)> {
        lock(&self.inner.edges.rooms)
            .iter()
            .map(|((app, channel), room)| (app.clone(), channel.clone(), room.origin.clone()))
            .collect()
    }
}
