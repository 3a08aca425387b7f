//! Ports: what the actors need from the outside world, as traits that services implement.
//!
//! The actors crate sits below the services; it names what it needs here and the node binary wires in
//! the implementations (DESIGN.md "Dependencies point down").

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use showcall_machines::{CallId, CallRecord, CallSnapshot, ChannelName, UserId};

use crate::keys::{ActorKey, AppId, NodeId};

/// Where an actor lives. The single-node default answers "here" for every key; the cluster's etcd
/// placement (`showcall-cluster`) answers from partition ownership for users and calls, and from the
/// channel's pin for channels (a channel runs on the media node it was pinned to when it opened).
pub trait Placement: Send + Sync + Debug + 'static {
    /// This node.
    fn this_node(&self) -> &NodeId;
    /// The node that runs `key`'s actor now; `None` while its partition is between owners, or for a
    /// channel that is not open anywhere.
    fn owner(&self, key: &ActorKey) -> Option<NodeId>;
    /// Whether this node may run `key`'s actor now (it owns the key and is not fenced).
    fn serves(&self, key: &ActorKey) -> bool {
        self.owner(key).as_ref() == Some(self.this_node())
    }
    /// Where a channel that is not open anywhere should open (the least loaded media node).
    fn choose_channel_node(&self, _app: &AppId, _channel: &ChannelName) -> Option<NodeId> {
        Some(self.this_node().clone())
    }
    /// Every live node (this one included), for questions asked of the whole cluster.
    fn nodes(&self) -> Vec<NodeId> {
        vec![self.this_node().clone()]
    }
    /// Pins a channel that is opening here to this node. Refused when another node holds it, or this
    /// node cannot take new channels now.
    fn pin_channel(&self, _app: &AppId, _channel: &ChannelName) -> PinFuture {
        Box::pin(async { Ok(()) })
    }
    /// The channel closed here: its pin goes.
    fn unpin_channel(&self, _app: &AppId, _channel: &ChannelName) {}
    /// For a new call's channel: the tag of the media node chosen for it, carried in the channel's name
    /// (call channels are never pinned in etcd: their name says where they run). `None` on one node.
    fn call_channel_tag(&self) -> Option<String> {
        None
    }
}

/// The outcome of pinning a channel.
pub type PinFuture = Pin<Box<dyn Future<Output = Result<(), PinRefusal>> + Send>>;

/// Why a channel could not be pinned to this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinRefusal {
    /// Another node pinned it first.
    Elsewhere(NodeId),
    /// This node cannot take new channels now (fenced, or etcd unreachable).
    Unavailable(String),
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

    fn owner(&self, _key: &ActorKey) -> Option<NodeId> {
        Some(self.node.clone())
    }

    fn serves(&self, _key: &ActorKey) -> bool {
        true
    }
}

/// A media session's SDP answer, or why the offer was refused (shown to the client).
pub type SessionOpening = Pin<Box<dyn Future<Output = Result<String, MediaRefusal>> + Send>>;

/// Why a media session could not be opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaRefusal {
    /// The offer is malformed or cannot be negotiated.
    InvalidOffer(String),
    /// A member that may not publish offered to send.
    PublishNotAllowed,
    /// An answer to the router's offer that is malformed or cannot be applied.
    InvalidAnswer(String),
    /// No offer to answer: no media session, nothing pending, or a stale revision.
    NotNegotiating(String),
    /// No media router (or it stopped).
    Unavailable(String),
}

/// The outcome of answering the router's offer.
pub type AnswerApplied = Pin<Box<dyn Future<Output = Result<(), MediaRefusal>> + Send>>;

/// Commands to the media router, sent by channel actors; the node implements it on the str0m router.
pub trait MediaControl: Send + Sync + Debug + 'static {
    /// Opens the media session of a channel member from its SDP offer; resolves to the SDP answer.
    fn open_session(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        may_publish: bool,
        offer: String,
    ) -> SessionOpening;
    /// Closes a member's media session (left, removed, or the channel closed).
    fn close_session(&self, app: &AppId, channel: &ChannelName, user: &UserId);
    /// Closes every media session of a channel at once (it ended).
    fn close_channel(&self, app: &AppId, channel: &ChannelName);
    /// Applies a member's answer to the router's renegotiation offer `revision`.
    fn accept_answer(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        revision: u64,
        answer: String,
    ) -> AnswerApplied;
    /// Start or stop forwarding a publisher's media to a channel's subscribers.
    fn set_forwarding(&self, app: &AppId, channel: &ChannelName, publisher: &UserId, forward: bool);
    /// Ask a publisher for a keyframe (PLI), so subscribers can start decoding at once.
    fn request_keyframe(&self, app: &AppId, channel: &ChannelName, publisher: &UserId);
}

/// No media router (signaling only): commands are logged and dropped.
#[derive(Debug, Default)]
pub struct NoMedia;

impl MediaControl for NoMedia {
    fn open_session(
        &self,
        _: &AppId,
        _: &ChannelName,
        _: &UserId,
        _: bool,
        _: String,
    ) -> SessionOpening {
        Box::pin(async {
            Err(MediaRefusal::Unavailable(
                "this node has no media router".into(),
            ))
        })
    }

    fn close_session(&self, _: &AppId, _: &ChannelName, _: &UserId) {}

    fn close_channel(&self, _: &AppId, _: &ChannelName) {}

    fn accept_answer(
        &self,
        _: &AppId,
        _: &ChannelName,
        _: &UserId,
        _: u64,
        _: String,
    ) -> AnswerApplied {
        Box::pin(async {
            Err(MediaRefusal::NotNegotiating(
                "this node has no media router".into(),
            ))
        })
    }

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

/// Where connected calls are kept while they last, so that the new owner of a call's partition can take
/// the call over when the node running it dies (the cluster keeps them in etcd). Writes are ordered per
/// node and never block the call.
pub trait CallLedger: Send + Sync + Debug + 'static {
    /// The call connected (or was restored): keep its snapshot.
    fn connected(&self, app: &AppId, snapshot: &CallSnapshot);
    /// The call ended: forget it.
    fn ended(&self, app: &AppId, call: &CallId);
}

/// A single node keeps nothing: a call's actor can only die with the whole node.
#[derive(Debug, Default)]
pub struct NoLedger;

impl CallLedger for NoLedger {
    fn connected(&self, _: &AppId, _: &CallSnapshot) {}

    fn ended(&self, _: &AppId, _: &CallId) {}
}
