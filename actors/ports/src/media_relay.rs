//! The media router's relay between nodes, as the runtime needs it for one live room across nodes
//! (`showcall_protocol::media_edge`): an **edge** subscribes to the room's **origin** once, with a key
//! it draws for that subscription, and fans the origin's publishers out to its own viewers.
//!
//! The origin's side is [`MediaRelay::add_edge`] / [`MediaRelay::remove_edge`]; the edge's is
//! [`MediaRelay::edge_ticket`], [`MediaRelay::subscribe_origin`] and [`MediaRelay::unsubscribe_origin`].
//! The node implements it on its str0m router; [`NoRelay`] (a node without one) refuses, so such a
//! node is never announced as an edge.

use std::fmt::Debug;

use showcall_machines::ChannelName;
use showcall_protocol::media_edge::RelayTicket;
use showcall_protocol::{AppId, NodeId};

use crate::media::MediaRefusal;

/// See the module docs.
pub trait MediaRelay: Send + Sync + Debug + 'static {
    /// Whether this node's router relays at all (announced in its node info: only such nodes are edges).
    fn relays(&self) -> bool;
    /// A fresh ticket to subscribe with: this node's relay address and a new random key.
    fn edge_ticket(&self) -> Result<RelayTicket, MediaRefusal>;
    /// On the origin: relay `channel`'s publishers to `edge_node` at `edge` (its address, the key it
    /// drew). Answers this node's own ticket (its relay address, the same key).
    fn add_edge(
        &self,
        app: &AppId,
        channel: &ChannelName,
        edge_node: &NodeId,
        edge: &RelayTicket,
    ) -> Result<RelayTicket, MediaRefusal>;
    /// On the origin: stop relaying `channel` to `edge_node`.
    fn remove_edge(&self, app: &AppId, channel: &ChannelName, edge_node: &NodeId);
    /// On an edge: receive `channel`'s publishers from `origin_node` at `origin` (the ticket it
    /// answered); the router then treats them as its own for the room's sessions here. Called while
    /// the router still receives the room from an origin that died, it replaces that relay (the
    /// viewers' lines keep their publishers until the new origin's state says who publishes).
    fn subscribe_origin(
        &self,
        app: &AppId,
        channel: &ChannelName,
        origin_node: &NodeId,
        origin: &RelayTicket,
    ) -> Result<(), MediaRefusal>;
    /// On an edge: stop receiving `channel` from its origin (its last viewer here left).
    fn unsubscribe_origin(&self, app: &AppId, channel: &ChannelName);
}

/// A node whose media router does not relay (or has no router): never an edge, refuses to be one.
#[derive(Debug, Default)]
pub struct NoRelay;

fn no_relay() -> MediaRefusal {
    MediaRefusal::Unavailable("this node's media router does not relay rooms between nodes".into())
}

impl MediaRelay for NoRelay {
    fn relays(&self) -> bool {
        false
    }

    fn edge_ticket(&self) -> Result<RelayTicket, MediaRefusal> {
        Err(no_relay())
    }

    fn add_edge(
        &self,
        _: &AppId,
        _: &ChannelName,
        _: &NodeId,
        _: &RelayTicket,
    ) -> Result<RelayTicket, MediaRefusal> {
        Err(no_relay())
    }

    fn remove_edge(&self, _: &AppId, _: &ChannelName, _: &NodeId) {}

    fn subscribe_origin(
        &self,
        _: &AppId,
        _: &ChannelName,
        _: &NodeId,
        _: &RelayTicket,
    ) -> Result<(), MediaRefusal> {
        Err(no_relay())
    }

    fn unsubscribe_origin(&self, _: &AppId, _: &ChannelName) {}
}
