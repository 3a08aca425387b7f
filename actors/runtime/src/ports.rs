//! Ports: what the actors need from the outside world, as traits that services implement.
//!
//! The actors crate sits below the services; it names what it needs here and the node binary wires in
//! the implementations (DESIGN.md "Dependencies point down").

use std::fmt::Debug;

use showcall_machines::{CallRecord, ChannelName, UserId};

use crate::keys::{ActorKey, AppId, NodeId};

/// Where an actor lives. The single-node default answers "here" for every key; the cluster issue adds an
/// etcd-backed implementation behind the same trait.
pub trait Placement: Send + Sync + Debug + 'static {
    /// This node.
    fn this_node(&self) -> &NodeId;
    /// The node that owns `key` now.
    fn owner(&self, key: &ActorKey) -> NodeId;
}

/// Every actor lives on this node.
#[derive(Debug)]
pub struct LocalPlacement {
    node: NodeId,
}

impl LocalPlacement {
    pub fn new(node: NodeId) -> Self {
        Self { node }
    }
}

impl Placement for LocalPlacement {
    fn this_node(&self) -> &NodeId {
        &self.node
    }

    fn owner(&self, _key: &ActorKey) -> NodeId {
        self.node.clone()
    }
}

/// Commands to the media router, sent by channel actors. The media issue implements it on str0m.
pub trait MediaControl: Send + Sync + Debug + 'static {
    /// Start or stop forwarding a publisher's media to a channel's subscribers.
    fn set_forwarding(&self, app: &AppId, channel: &ChannelName, publisher: &UserId, forward: bool);
    /// Ask a publisher for a keyframe (PLI), so subscribers can start decoding at once.
    fn request_keyframe(&self, app: &AppId, channel: &ChannelName, publisher: &UserId);
}

/// No media router (signaling only): commands are logged and dropped.
#[derive(Debug, Default)]
pub struct NoMedia;

impl MediaControl for NoMedia {
    fn set_forwarding(
        &self,
        app: &AppId,
        channel: &ChannelName,
        publisher: &UserId,
        forward: bool,
    ) {
        tracing::debug!(%app, %channel, %publisher, forward, "media forwarding (no media router)");
    }

    fn request_keyframe(&self, app: &AppId, channel: &ChannelName, publisher: &UserId) {
        tracing::debug!(%app, %channel, %publisher, "keyframe request (no media router)");
    }
}

/// Where finished calls' records go (the business server's billing feed, with the admin issue).
pub trait CallRecordSink: Send + Sync + Debug + 'static {
    fn record(&self, app: &AppId, record: &CallRecord);
}

/// Logs each record.
#[derive(Debug, Default)]
pub struct LogRecords;

impl CallRecordSink for LogRecords {
    fn record(&self, app: &AppId, record: &CallRecord) {
        tracing::info!(
            %app,
            call_id = %record.id,
            caller = %record.caller,
            callee = %record.callee,
            connected_ms = record.connected_ms,
            cause = ?record.cause,
            "call ended"
        );
    }
}
