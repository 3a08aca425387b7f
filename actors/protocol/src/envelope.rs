//! Location transparency: what crosses between nodes, and the port that carries it.
//!
//! An actor lives on the owner of its key's partition (`showcall-ports`' `Placement`). The `Hub` routes
//! every message: to the local registry when this node owns the key, otherwise as an [`Envelope`] handed
//! to the [`Courier`] (the cluster's tonic link), which delivers it to the owner's hub in order per peer.
//!
//! Messages are the actors' own message enums ([`crate::messages`]) in their wire form: what cannot
//! cross — a reply port, a connection's sink — is a handle on the node that holds it ([`ReplyTo`],
//! [`SinkTo`]); the receiver answers or pushes with an envelope back to that node, which completes the
//! port or writes to the connection. A reply forwarded again (gateway → user actor → call actor) keeps
//! pointing at the gateway's node, so the answer goes there directly.
//!

use std::fmt::Debug;

use serde::{Deserialize, Serialize};
use showcall_machines::{CallId, ChannelName, UserId};

use crate::commands::Outbound;
pub use crate::handles::{ReplyTo, SinkTo};
use crate::keys::{AppId, NodeId};
use crate::messages::{CallMsg, ChannelMsg, UserMsg, Wire};
use crate::trace::TraceContext;

/// Carries envelopes to other nodes; the cluster implements it on a tonic stream per peer.
pub trait Courier: Send + Sync + Debug + 'static {
    /// Sends `envelope` to `node`. Envelopes to one node arrive in the order sent; one that cannot be
    /// delivered is dropped and logged. `false` when `node` is not in the cluster (the sender fails a
    /// request at once); `true` when queued for its link — which may still break (the node died):
    /// requests then fail when the node's loss is known, or at their timeout.
    fn send(&self, node: &NodeId, envelope: Envelope) -> bool;

    /// The wire minor `node` announces it reads (`crate::wire`); 0 when it announces none or is not
    /// known.
    fn reads_minor(&self, node: &NodeId) -> u32 {
        let _ = node;
        0
    }
}

/// A single node has no peers: nothing is ever routed away (placement says every key is local).
#[derive(Debug, Default)]
pub struct NoCourier;

impl Courier for NoCourier {
    fn send(&self, node: &NodeId, envelope: Envelope) -> bool {
        tracing::error!(%node, ?envelope, "no route to another node on a single node");
        false
    }
}

/// One message between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub from: NodeId,
    /// The sender's span. Not in the payload: the node link carries it in the frame's `trace_context`.
    #[serde(skip)]
    pub trace: TraceContext,
    /// How many times a node that no longer owned the target passed this envelope on to the owner it
    /// saw (partition handoffs; views a watch event apart). Bounded by [`MAX_HOPS`]; absent = 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hops: u8,
    pub body: Body,
}

/// How often an envelope is passed on before it is treated as undeliverable (views that disagree for
/// longer than a few hops are not converging: the sender retries).
pub const MAX_HOPS: u8 = 3;

fn is_zero(hops: &u8) -> bool {
    *hops == 0
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Body {
    User {
        app: AppId,
        user: UserId,
        msg: UserMsg<Wire>,
    },
    Call {
        app: AppId,
        id: CallId,
        msg: CallMsg<Wire>,
    },
    Channel {
        app: AppId,
        channel: ChannelName,
        msg: ChannelMsg<Wire>,
    },
    /// The answer to request `id` of the receiving node: a serialized `Result<T, CommandError>`.
    Reply { id: u64, result: serde_json::Value },
    /// Something for a connection held by the receiving node.
    Sink { id: u64, outbound: Outbound },
    /// Several things for a connection held by the receiving node, in order (wire 1.1: sent only to a
    /// node that announces it reads 1.1, `crate::wire`).
    Sinks { id: u64, outbounds: Vec<Outbound> },
    /// A partition's actors, handed to the receiving node (answered `Done` once installed;
    /// `crate::handoff`).
    Handoff {
        handoff: crate::handoff::Handoff,
        reply: ReplyTo,
    },
    /// The sender now holds the session of the receiving node's connection sink `id` (its session was
    /// handed over).
    SinkMoved { id: u64 },
    /// A question for the receiving node's directory (answered with a `Reply`).
    Query {
        query: crate::directory::DirectoryQuery,
        reply: ReplyTo,
    },
    /// A room's media across nodes: its origin asks an edge to open or close a viewer's session, or an
    /// edge asks the origin to relay the room (wire 1.4: sent only to a node that announces it reads
    /// 1.4, `crate::media_edge`).
    Media {
        app: AppId,
        channel: ChannelName,
        op: crate::media_edge::MediaOp,
    },
}

impl Envelope {
    /// The envelope's encoding on the wire (JSON: small, debuggable, and every message is serde data).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("envelopes are plain serde data")
    }

    pub fn decode(bytes: &[u8]) -> Result<Envelope, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The actor the envelope is for, as `ActorKey` text (for logs and the link's metadata).
    pub fn target(&self) -> String {
        match &self.body {
            Body::User { app, user, .. } => format!("user/{app}/{user}"),
            Body::Call { app, id, .. } => format!("call/{app}/{id}"),
            Body::Channel { app, channel, .. } => format!("channel/{app}/{channel}"),
            Body::Reply { id, .. } => format!("reply/{id}"),
            Body::Sink { id, .. } | Body::Sinks { id, .. } => format!("sink/{id}"),
            Body::Query { .. } => "directory".to_owned(),
            Body::Handoff { .. } => "handoff".to_owned(),
            Body::SinkMoved { id } => format!("sink/{id}"),
            Body::Media { app, channel, .. } => format!("media/{app}/{channel}"),
        }
    }
}
