//! Handles on what another node holds for a request: where an answer goes ([`ReplyTo`]) and a
//! connection's event sink ([`SinkTo`]). They travel in envelopes and handoffs.

use serde::{Deserialize, Serialize};

use crate::keys::NodeId;

/// Where an answer goes: request `id` of `node`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    pub node: NodeId,
    pub id: u64,
}

/// A connection's event sink on another node (the gateway that holds the WebSocket).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkTo {
    pub node: NodeId,
    pub id: u64,
}
