//! What this node does when another node dies ([`Hub::node_lost`]) and when it loses its own lease
//! ([`Hub::evict_all`]).

use showcall_protocol::commands::Outbound;
use showcall_protocol::error::CommandError;
use showcall_protocol::inbox::ConnectionInbox;
use showcall_protocol::keys::NodeId;
use showcall_protocol::messages::{CallMsg, ChannelMsg, LostKeys};
use showcall_protocol::sync::lock;

use crate::hub::Hub;

impl Hub {
    /// Another node died (its lease expired); `lost` tells which keys it owned. Connections here whose
    /// session lived there are closed (the client logs in again, on the key's new owner); local actors
    /// whose call, channel or party lived there are told, so those calls end exactly once for the
    /// survivors and paused hosts go back live.
    pub fn node_lost(&self, node: &NodeId, lost: LostKeys) {
        // Requests waiting for that node's answer fail now ("try again": the key has a new owner soon)
        // rather than at their timeout.
        let unanswered = self.inner.pending.take_asked_of(node);
        let failed: Result<(), CommandError> = Err(CommandError::Unavailable(format!(
            "node {node} left the cluster; try again"
        )));
        let failed = serde_json::to_value(&failed).expect("an error is plain serde data");
        for complete in unanswered {
            complete(failed.clone());
        }
        let orphaned: Vec<ConnectionInbox> = {
            let mut sinks = lock(&self.inner.remote_sinks);
            let ids: Vec<u64> = sinks
                .iter()
                .filter(|(_, (owner, _))| owner == node)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| sinks.remove(id).map(|(_, tx)| tx))
                .collect()
        };
        for tx in &orphaned {
            let reason = showcall_machines::user::CloseReason::NodeLost;
            let _ = tx.push(Outbound::closing_notice(self.now_ms(), reason));
            let _ = tx.push(Outbound::Close(reason));
        }
        self.users_node_lost(node, &lost);
        for (call, _) in self.calls_where(|_, _| true) {
            let _ = self.tell_call(&call, CallMsg::OwnersLost(lost.clone()));
        }
        let channels: Vec<_> = lock(&self.inner.channels).values().cloned().collect();
        for actor in channels {
            let _ = actor.cast(ChannelMsg::OwnersLost(lost.clone()));
            let _ = actor.cast(ChannelMsg::MediaNodeLost(node.clone()));
        }
        self.media_node_lost(node, &lost);
        tracing::warn!(%node, sessions = orphaned.len(), "node lost: its sessions closed, its calls ended");
    }

    /// This node's lease expired (it was cut off, or paused, for longer than the TTL): the cluster
    /// counted it as dead and other nodes took its partitions and calls over. Every local actor stops
    /// without effects — no call ends, no record is written or deleted, no channel is told — because
    /// their new owners carry on; connections to local sessions are closed with `NodeLost` so the
    /// clients log in again (on the new owners).
    pub fn evict_all(&self) {
        let users = self.evict_users();
        let calls = self.evict_calls();
        let channels: Vec<_> = lock(&self.inner.channels).values().cloned().collect();
        for actor in &channels {
            let _ = actor.cast(ChannelMsg::Evict);
        }
        tracing::warn!(
            users,
            calls,
            channels = channels.len(),
            "lease lost: every local actor evicted"
        );
    }
}
