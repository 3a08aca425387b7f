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
//! - **When the origin dies** the edge keeps the room for its next origin: `orphaned_edge_rooms`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use showcall_machines::{ChannelName, UserId};
use showcall_ports::{AnswerApplied, LayerCapped, MediaControl, MediaRefusal, SessionOpening};
use showcall_protocol::envelope::{Body, ReplyTo};
use showcall_protocol::media_edge::{MediaOp, RelayTicket};
use showcall_protocol::messages::{Answer, ChannelMsg, LostKeys};
use showcall_protocol::metrics;
use showcall_protocol::sync::lock;
use showcall_protocol::{AppId, NodeId, VideoLayer};
use tokio::sync::mpsc;

use crate::hub::Hub;

/// Commands of one room's origin that may wait on an edge: past this the origin's further requests
/// are refused UNAVAILABLE ("try again") and its closes dropped (logged), so a stuck router cannot grow
/// the queue without bound.
pub const EDGE_ROOM_QUEUE: usize = 1024;

pub(crate) type RoomKey = (AppId, ChannelName);

/// This node's share of rooms across nodes: the rooms it is an edge of, and those it relays to edges.
#[derive(Default)]
pub(crate) struct MediaEdges {
    /// Rooms this node is an edge of: their origin and their worker's queue.
    pub(crate) rooms: Mutex<HashMap<RoomKey, EdgeRoomQueue>>,
    /// Rooms this node is the origin of, with the edges its router relays each to.
    relayed_to: Mutex<HashMap<RoomKey, BTreeSet<NodeId>>>,
}

pub(crate) struct EdgeRoomQueue {
    /// The node whose commands the room takes: its origin, or the one it had until it died.
    pub(crate) origin: NodeId,
    /// The origin died: the next node to send the room a command (or to hold its pin) is its origin.
    pub(crate) orphaned: bool,
    /// Tells one worker from the next one of the same room (a worker removes only its own entry).
    pub(crate) generation: u64,
    pub(crate) queue: mpsc::Sender<EdgeRoomInput>,
    /// Its viewers, as its worker last counted them (after each input): what the edge admits
    /// viewers by, with its other rooms' (see the module docs). Gone with the entry.
    viewers: Arc<AtomicU64>,
}

/// What an edge room's worker is handed, in order.
pub(crate) enum EdgeRoomInput {
    /// A command of the room's origin, `from`.
    Op { from: NodeId, op: MediaOp },
    /// The origin died (its lease expired); `lost` says which keys it owned (viewers whose session
    /// died with it are gone too).
    OriginLost { lost: LostKeys },
    /// The room reopened on this node (`channel` is its new channel actor): the viewers go to it
    /// before its first member's session opens, then `done`.
    ReopenedHere {
        channel: ractor::ActorRef<ChannelMsg>,
        done: tokio::sync::oneshot::Sender<()>,
    },
}

/// An edge's viewers of one room, whether its router receives the room, and from whom.
#[derive(Debug)]
pub(crate) struct EdgeRoom {
    pub(crate) origin: NodeId,
    /// The router receives the room from `origin`.
    pub(crate) subscribed: bool,
    /// The router still holds the relay from the origin that died: its publishers stay on the
    /// viewers' lines (their video stops; nothing is renegotiated) until a new origin's relay replaces
    /// them, or the room is given up.
    pub(crate) holds_dead_relay: bool,
    pub(crate) viewers: BTreeSet<UserId>,
    /// Since when the room has had no origin, on the tokio clock, and the origin that died (this
    /// node's view of the pins may still name it for a moment).
    pub(crate) orphaned: Option<(tokio::time::Instant, NodeId)>,
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
            MediaOp::AddEdge {
                edge,
                reply,
                viewers,
            } => {
                let answer = self.add_edge(&from, &app, &channel, &edge);
                if answer.is_ok()
                    && !viewers.is_empty()
                    && let Some(actor) = self.channel(&app, &channel)
                {
                    // An edge that kept its viewers through the previous origin's death.
                    let _ = actor.cast(ChannelMsg::EdgeViewers {
                        edge: from,
                        viewers,
                    });
                }
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
        if self.channel(&app, &channel).is_some() {
            // This node runs the room itself: it is the room's origin, and no other node commands its
            // sessions. (The room reopened here after its origin froze past its lease; the frozen
            // node woke and closes what it had, naming viewers whose sessions this node holds now.)
            let why = format!("node {} runs {channel} itself", self.node());
            self.refuse_media_op(op, why);
            return;
        }
        let key = (app.clone(), channel.clone());
        let mut rooms = lock(&self.inner.edges.rooms);
        if let Some(room) = rooms.get(&key)
            && room.orphaned
            && room.origin == origin
        {
            // The dead origin woke (frozen past its lease) and, finding its lease gone, closes its
            // rooms: the cluster moved on, and the viewers kept here wait for the room's new origin.
            let why = format!("node {origin} is no longer {channel}'s origin");
            drop(rooms);
            self.refuse_media_op(op, why);
            return;
        }
        if let Some(room) = rooms.get_mut(&key)
            && room.origin != origin
        {
            if room.orphaned {
                // The room reopened on `origin`: the worker re-attaches there on this command.
                room.origin = origin.clone();
                room.orphaned = false;
            } else {
                // The room re-opened on another origin before this node heard the old one died.
                let why = format!(
                    "this node still relays {channel} from node {}; try again",
                    room.origin
                );
                drop(rooms);
                self.refuse_media_op(op, why);
                return;
            }
        }
        let room = rooms.entry(key).or_insert_with(|| {
            let (queue, inputs) = mpsc::channel(EDGE_ROOM_QUEUE);
            let generation = self.next_id();
            let viewers = Arc::new(AtomicU64::new(0));
            let worker = self.clone();
            let (from, app, channel) = (origin.clone(), app.clone(), channel.clone());
            let counted = viewers.clone();
            tokio::spawn(async move {
                worker
                    .run_edge_room(from, app, channel, generation, inputs, counted)
                    .await;
            });
            EdgeRoomQueue {
                origin: origin.clone(),
                orphaned: false,
                generation,
                queue,
                viewers,
            }
        });
        if let Err(e) = room.queue.try_send(EdgeRoomInput::Op { from: origin, op }) {
            drop(rooms);
            let input = match e {
                mpsc::error::TrySendError::Full(input)
                | mpsc::error::TrySendError::Closed(input) => input,
            };
            if let EdgeRoomInput::Op { op, .. } = input {
                self.refuse_media_op(op, "this edge is busy with the room; try again".into());
            }
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
    /// waits; while orphaned, also the search for the room's new origin (see the module docs).
    async fn run_edge_room(
        self,
        origin: NodeId,
        app: AppId,
        channel: ChannelName,
        generation: u64,
        mut inputs: mpsc::Receiver<EdgeRoomInput>,
        viewers: Arc<AtomicU64>,
    ) {
        let mut room = EdgeRoom {
            origin,
            subscribed: false,
            holds_dead_relay: false,
            viewers: BTreeSet::new(),
            orphaned: None,
        };
        let grace = Duration::from_millis(self.user_config().grace_ms);
        // Ticks only matter while orphaned; an interval (not a sleep per turn) so a stream of commands
        // cannot hold the check off.
        let mut check = tokio::time::interval(crate::orphaned_edge_rooms::ORIGIN_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let input = match &room.orphaned {
                None => inputs.recv().await,
                Some((since, _)) => {
                    let since = *since;
                    tokio::select! {
                        input = inputs.recv() => input,
                        _ = check.tick() => {
                            if room.subscribed {
                                // A new origin's command re-attached the room already.
                                room.orphaned = None;
                                metrics::edge_origin("found");
                            } else if since.elapsed() >= grace {
                                self.give_up_orphaned_room(&app, &channel, &mut room);
                            } else {
                                self.find_new_origin(&app, &channel, generation, &mut room).await;
                            }
                            viewers.store(room.viewers.len() as u64, Ordering::Relaxed);
                            // Given up, or handed to this node's channel actor: nothing left here.
                            if room.viewers.is_empty()
                                && self.end_edge_room(&app, &channel, generation, &inputs)
                            {
                                return;
                            }
                            continue;
                        }
                    }
                }
            };
            let Some(input) = input else { return };
            match input {
                EdgeRoomInput::OriginLost { lost } => self.orphan(&app, &channel, &mut room, &lost),
                EdgeRoomInput::ReopenedHere {
                    channel: actor,
                    done,
                } => {
                    if room.orphaned.is_some() {
                        self.hand_over_here(&app, &channel, &mut room, &actor);
                    }
                    let _ = done.send(());
                }
                EdgeRoomInput::Op { from, op } => {
                    if from != room.origin {
                        // A new origin's first command: the room is its now (`queue_edge_op`
                        // let it in only because the room was orphaned).
                        self.adopt_origin(&app, &channel, &mut room, from);
                    }
                    self.edge_step(&app, &channel, &mut room, op).await;
                }
            }
            viewers.store(room.viewers.len() as u64, Ordering::Relaxed);
            if !room.viewers.is_empty() {
                continue;
            }
            if room.subscribed || room.holds_dead_relay {
                self.unsubscribe(&app, &channel, &mut room);
                tracing::info!(%app, %channel, origin = %room.origin, "last viewer left: edge unsubscribed");
            }
            if self.end_edge_room(&app, &channel, generation, &inputs) {
                return;
            }
        }
    }

    /// Removes the room's entry if nothing waits in its queue (and the entry is this worker's); false
    /// when something does, and the worker goes on.
    fn end_edge_room(
        &self,
        app: &AppId,
        channel: &ChannelName,
        generation: u64,
        inputs: &mpsc::Receiver<EdgeRoomInput>,
    ) -> bool {
        // Senders queue under this lock: with it held and nothing queued, nothing can arrive.
        let mut rooms = lock(&self.inner.edges.rooms);
        if !inputs.is_empty() {
            return false;
        }
        let key = (app.clone(), channel.clone());
        if rooms.get(&key).is_some_and(|r| r.generation == generation) {
            rooms.remove(&key);
        }
        true
    }

    /// Stops receiving the room from its origin, and tells the origin (unless it died).
    pub(crate) fn unsubscribe(&self, app: &AppId, channel: &ChannelName, room: &mut EdgeRoom) {
        self.inner.parts.relay.unsubscribe_origin(app, channel);
        room.holds_dead_relay = false;
        if !std::mem::take(&mut room.subscribed) {
            return;
        }
        let _ = self.ship(
            &room.origin,
            Body::Media {
                app: app.clone(),
                channel: channel.clone(),
                op: MediaOp::RemoveEdge,
            },
        );
    }

    /// Carries out one of the origin's commands on this edge's router.
    async fn edge_step(
        &self,
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
                    Ok(()) => match self.subscribe(app, channel, room).await {
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
    /// whose router adds this edge and answers its own. The viewers already here (kept through a
    /// previous origin's death) go with the request: the origin's channel takes them as members.
    pub(crate) async fn subscribe(
        &self,
        app: &AppId,
        channel: &ChannelName,
        room: &mut EdgeRoom,
    ) -> Result<(), MediaRefusal> {
        if room.subscribed {
            return Ok(());
        }
        let origin = room.origin.clone();
        let relay = self.inner.parts.relay.clone();
        let edge = relay.edge_ticket()?;
        let viewers: Vec<UserId> = room.viewers.iter().cloned().collect();
        let body = |reply| Body::Media {
            app: app.clone(),
            channel: channel.clone(),
            op: MediaOp::AddEdge {
                edge,
                reply,
                viewers,
            },
        };
        let ticket = self
            .request::<Result<RelayTicket, MediaRefusal>>(&origin, body)
            .await
            .map_err(|e| MediaRefusal::Unavailable(e.to_string()))??;
        if let Err(refusal) = relay.subscribe_origin(app, channel, &origin, &ticket) {
            // The origin relays to this edge already: it stops, as after a last viewer's leave.
            let _ = self.ship(
                &origin,
                Body::Media {
                    app: app.clone(),
                    channel: channel.clone(),
                    op: MediaOp::RemoveEdge,
                },
            );
            return Err(refusal);
        }
        room.subscribed = true;
        room.holds_dead_relay = false;
        tracing::info!(%app, %channel, %origin, viewers = room.viewers.len(), "edge subscribed to the room's origin");
        Ok(())
    }

    /// Node `node` died (`lost`: the keys it owned): rooms it relayed from this node lose that edge,
    /// and rooms it was the origin of are orphaned here: their viewers keep their sessions until the
    /// room reopens (module docs).
    pub(crate) fn media_node_lost(&self, node: &NodeId, lost: &LostKeys) {
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
        let orphaned: Vec<mpsc::Sender<EdgeRoomInput>> = lock(&self.inner.edges.rooms)
            .values_mut()
            .filter(|room| room.origin == *node && !room.orphaned)
            .map(|room| {
                room.orphaned = true;
                room.queue.clone()
            })
            .collect();
        for queue in orphaned {
            let lost = lost.clone();
            if queue.try_send(EdgeRoomInput::OriginLost { lost }).is_err() {
                // Its worker is busy with a thousand commands of the dead origin, which fail; the
                // room's sessions stay until their viewers leave or join elsewhere.
                tracing::warn!(origin = %node, "edge room of a dead origin not told: its queue is full");
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
