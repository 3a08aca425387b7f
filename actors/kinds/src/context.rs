//! What an actor is given: its node, the clock, the ports and the [`Outbox`]. The runtime's registry
//! implements it; an actor holds it as [`Context`] and never names the registry.

use std::sync::Arc;

use showcall_machines::user::UserTimer;
use showcall_machines::{CallId, CallTimer, Millis, UserConfig, UserId};
use showcall_ports::admission::Admission;
use showcall_ports::outbox::Outbox;
use showcall_ports::{CallLedger, CallRecordSink, Directory, MediaControl, Placement};
use showcall_protocol::events::EventKind;
use showcall_protocol::{ActorKey, AppId, NodeId};

/// See the module docs.
pub trait ActorContext: Outbox {
    fn node(&self) -> &NodeId;
    /// Unix ms that follow tokio's clock (paused in tests).
    fn now_ms(&self) -> Millis;
    fn user_config(&self) -> &UserConfig;
    /// Whether this node serves `key` now (not while fenced, or after the key moved).
    fn serves(&self, key: &ActorKey) -> bool;
    fn placement(&self) -> &Arc<dyn Placement>;
    fn media(&self) -> &Arc<dyn MediaControl>;
    /// The media router of `node`: this node's own ([`ActorContext::media`]) or another's, reached over
    /// the node link (a room's edge, `showcall_protocol::media_edge`). Without a link to other nodes,
    /// theirs refuse everything.
    fn media_at(&self, node: &NodeId) -> Arc<dyn MediaControl> {
        if node == self.node() {
            self.media().clone()
        } else {
            Arc::new(showcall_ports::Unreachable(node.clone()))
        }
    }
    fn records(&self) -> &Arc<dyn CallRecordSink>;
    fn ledger(&self) -> &Arc<dyn CallLedger>;
    fn admission(&self) -> &Arc<dyn Admission>;
    /// Where each actor publishes what it is doing now.
    fn directory(&self) -> &Directory;
    /// Reports a business event of `app`.
    fn emit(&self, app: &AppId, kind: EventKind);
    /// Arms `timer` for `user`, due at `at` (this clock's Unix ms). It is delivered as a user message
    /// through the registry, so it reaches the user whether its actor runs or rests.
    fn arm_user_timer(&self, app: &AppId, user: &UserId, timer: UserTimer, at: Millis) -> TimerKey;
    /// Arms `timer` for call `call`, delivered as a call message through the registry, as a user's.
    fn arm_call_timer(&self, app: &AppId, call: &CallId, timer: CallTimer, at: Millis) -> TimerKey;
    /// Disarms a timer (one already fired or disarmed is ignored).
    fn cancel_timer(&self, key: TimerKey);
}

/// An armed timer: its deadline and a number unique on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerKey {
    pub at: Millis,
    pub seq: u64,
}

/// An actor's handle on its context.
pub type Context = Arc<dyn ActorContext>;
