//! What an actor is given: its node, the clock, the ports and the [`Outbox`]. The runtime's registry
//! implements it; an actor holds it as [`Context`] and never names the registry.

use std::sync::Arc;

use showcall_machines::{Millis, UserConfig};
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
    fn records(&self) -> &Arc<dyn CallRecordSink>;
    fn ledger(&self) -> &Arc<dyn CallLedger>;
    fn admission(&self) -> &Arc<dyn Admission>;
    /// Where each actor publishes what it is doing now.
    fn directory(&self) -> &Directory;
    /// Reports a business event of `app`.
    fn emit(&self, app: &AppId, kind: EventKind);
}

/// An actor's handle on its context.
pub type Context = Arc<dyn ActorContext>;
