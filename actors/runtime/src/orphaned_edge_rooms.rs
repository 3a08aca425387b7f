//! An edge room whose origin died (`media_edges` has the edge's ordinary life).
//!
//! **When a room's origin dies** an edge of it keeps its viewers' sessions (no ICE or DTLS redone:
//! their video stops, as when the host pauses) and the room is **orphaned**. The router keeps the dead origin's
//! relay (reported stalled): dropping it would take the host off the viewers' lines, a renegotiation
//! with no channel actor to carry it. Viewers whose user session died with the origin lose their
//! media session too (their clients log in again and join afresh). The worker looks for the room's
//! new pin every [`ORIGIN_CHECK`] (each node follows the pins; the room reopens when its host — or
//! any member — joins again, on the node the placement picks). Pinned elsewhere, the worker
//! subscribes there with a fresh key, which replaces the dead relay; its `AddEdge` carries the
//! viewers, whom the new channel actor takes as members (`ChannelMsg::EdgeViewers`) and tells who
//! broadcasts. Reopened on this node, the room takes them before its first join
//! ([`Hub::reopened_here`]): their sessions are in this router's room already, the dead relay goes,
//! and the host's tracks reach them by renegotiation through the channel. A new origin's command
//! for the room re-attaches the worker at once; the dead origin's (a frozen node waking after its
//! lease expired) are refused. A room still orphaned after the grace period (`UserConfig::grace_ms`,
//! the time a host has to come back) closes here: its sessions close and each viewer's session
//! forgets the room, so its next join is a fresh one. Each step is counted
//! (`showcall_media_edge_origin_total`).

use std::time::Duration;

use showcall_machines::{ChannelName, UserId, UserInput};
use showcall_protocol::messages::{ChannelMsg, LostKeys};
use showcall_protocol::metrics;
use showcall_protocol::sync::lock;
use showcall_protocol::{ActorKey, AppId, NodeId};

use crate::hub::Hub;
use crate::media_edges::{EdgeRoom, EdgeRoomInput};

/// How long a room reopening on this node waits for its orphaned edge room here to hand its viewers
/// over (the worker may be finishing a command); past it the room opens anyway and the worker hands
/// them over at its next check.
pub const HANDOVER_WAIT: Duration = Duration::from_secs(2);

/// How often an orphaned edge room (its origin died) looks for the room's new pin in this node's view
/// of the cluster: a local read, no etcd request.
pub const ORIGIN_CHECK: Duration = Duration::from_millis(500);

impl Hub {
    /// The room's origin died: its viewers keep their sessions and wait for the room's next origin.
    /// The router keeps the dead origin's relay (it reports it stalled): unsubscribing would take the
    /// host off the viewers' lines, a renegotiation no channel actor is there to carry.
    pub(crate) fn orphan(
        &self,
        app: &AppId,
        channel: &ChannelName,
        room: &mut EdgeRoom,
        lost: &LostKeys,
    ) {
        room.holds_dead_relay |= std::mem::take(&mut room.subscribed);
        // A viewer whose user session lived on the dead node has no session to return to: its client
        // logs in again and joins afresh (a room's members whose sessions died leave it).
        let gone: Vec<UserId> = room
            .viewers
            .iter()
            .filter(|user| lost(&ActorKey::User(app.clone(), (*user).clone())))
            .cloned()
            .collect();
        for user in gone {
            self.inner.parts.media.close_session(app, channel, &user);
            room.viewers.remove(&user);
        }
        room.orphaned = Some((tokio::time::Instant::now(), room.origin.clone()));
        metrics::edge_origin("lost");
        tracing::warn!(%app, %channel, origin = %room.origin, viewers = room.viewers.len(), "edge room's origin died: viewers kept, waiting for the room to reopen");
    }

    /// `origin` is the room's origin now (it sent a command, or holds the pin): the next command
    /// that needs the relay subscribes there, with the viewers kept so far.
    pub(crate) fn adopt_origin(
        &self,
        app: &AppId,
        channel: &ChannelName,
        room: &mut EdgeRoom,
        origin: NodeId,
    ) {
        tracing::info!(%app, %channel, from = %room.origin, to = %origin, "edge room follows its room's new origin");
        // Only an orphaned room changes origin: nothing is subscribed to a live one. The dead
        // origin's relay stays until the new one's replaces it (`MediaRelay::subscribe_origin`).
        room.origin = origin;
    }

    /// An orphaned room looks for its new pin: elsewhere, it subscribes there with its viewers;
    /// here, it hands them to this node's channel actor.
    pub(crate) async fn find_new_origin(
        &self,
        app: &AppId,
        channel: &ChannelName,
        generation: u64,
        room: &mut EdgeRoom,
    ) {
        let Some((_, dead)) = &room.orphaned else {
            return;
        };
        let key = ActorKey::Channel(app.clone(), channel.clone());
        let Some(pinned) = self.inner.parts.placement.owner(&key) else {
            return; // not reopened yet
        };
        if pinned == *dead {
            // This node's view still holds the dead origin's pin (its deletion is a watch event behind).
            return;
        }
        if pinned == *self.node() {
            // The room reopened here: the viewers' sessions are in this router's room already.
            // (`Hub::reopened_here` hands them over as the channel starts; this is the fallback.)
            let Some(actor) = self.channel(app, channel) else {
                return; // pinned, not started yet
            };
            self.hand_over_here(app, channel, room, &actor);
            return;
        }
        if pinned != room.origin {
            if let Some(entry) = lock(&self.inner.edges.rooms)
                .get_mut(&(app.clone(), channel.clone()))
                .filter(|e| e.generation == generation)
            {
                entry.origin = pinned.clone();
                entry.orphaned = false;
            }
            self.adopt_origin(app, channel, room, pinned);
        }
        match self.subscribe(app, channel, room).await {
            Ok(()) => {
                room.orphaned = None;
                metrics::edge_origin("found");
            }
            Err(refusal) => {
                // Pinned before its channel actor started, say: the next check tries again.
                tracing::debug!(%app, %channel, origin = %room.origin, ?refusal, "the room's new origin did not take this edge yet");
            }
        }
    }

    /// The room reopened on this node: its viewers, whose sessions are in this router's room, are the
    /// new channel's members, and this node is no longer an edge of it.
    pub(crate) fn hand_over_here(
        &self,
        app: &AppId,
        channel: &ChannelName,
        room: &mut EdgeRoom,
        actor: &ractor::ActorRef<ChannelMsg>,
    ) {
        let viewers: Vec<UserId> = std::mem::take(&mut room.viewers).into_iter().collect();
        tracing::info!(%app, %channel, viewers = viewers.len(), "room reopened on this edge: its viewers handed to the channel");
        let _ = actor.cast(ChannelMsg::EdgeViewers {
            edge: self.node().clone(),
            viewers,
        });
        // The host publishes in this router's room now: the dead origin's relay goes, and the viewers'
        // lines are renegotiated through the channel, which has them as members by then.
        self.inner.parts.relay.unsubscribe_origin(app, channel);
        room.holds_dead_relay = false;
        room.orphaned = None;
        metrics::edge_origin("found");
    }

    /// A live room opened on this node (`actor`, not yet sent anything): if this node kept viewers of
    /// it through its previous origin's death, they become its members first, so the first join's
    /// session (the host's, usually) finds them in the member list and its renegotiations reach them.
    pub(crate) async fn reopened_here(
        &self,
        app: &AppId,
        channel: &ChannelName,
        actor: &ractor::ActorRef<ChannelMsg>,
    ) {
        let (done, handed) = tokio::sync::oneshot::channel();
        {
            let rooms = lock(&self.inner.edges.rooms);
            let Some(room) = rooms.get(&(app.clone(), channel.clone())) else {
                return;
            };
            if !room.orphaned {
                return;
            }
            let input = EdgeRoomInput::ReopenedHere {
                channel: actor.clone(),
                done,
            };
            if room.queue.try_send(input).is_err() {
                return; // busy: its next check finds the pin here
            }
        }
        if tokio::time::timeout(HANDOVER_WAIT, handed).await.is_err() {
            tracing::warn!(%app, %channel, "orphaned edge room slow to hand its viewers over: the room opens meanwhile");
        }
    }

    /// The room did not reopen within the grace period: its sessions here close, and each viewer's
    /// session forgets the room (so the viewer's next join opens a new session).
    pub(crate) fn give_up_orphaned_room(
        &self,
        app: &AppId,
        channel: &ChannelName,
        room: &mut EdgeRoom,
    ) {
        tracing::warn!(%app, %channel, origin = %room.origin, viewers = room.viewers.len(), "room did not reopen within the grace period: its viewers' sessions on this edge closed");
        metrics::edge_origin("given_up");
        self.unsubscribe(app, channel, room);
        self.inner.parts.media.close_channel(app, channel);
        for user in std::mem::take(&mut room.viewers) {
            let input = UserInput::ChannelRemoved {
                channel: channel.clone(),
            };
            self.send_user(app, &user, input);
        }
        room.orphaned = None;
    }
}
