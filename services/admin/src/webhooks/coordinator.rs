//! The [`DeliveryCoordinator`] port: who delivers, and from where each app's deliveries resume.
//!
//! A cluster must have exactly one node delivering (otherwise every node would POST every event), and the
//! position reached must outlive that node, so another node resumes there when it dies. That takes etcd,
//! which this crate does not depend on: `showcall-cluster` implements the port (`EtcdWebhookLeader`);
//! a single node uses [`MemoryCoordinator`] (always the leader, checkpoints in memory — its event log is in
//! memory too, so nothing outlives the process on either side).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

/// Why the coordinator could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoordinatorError {
    /// Another node delivers now; this one must stop.
    #[error("this node no longer delivers webhooks")]
    NotLeader,
    /// The store behind the coordinator is unreachable; try again later.
    #[error("the webhook checkpoint store is unavailable: {0}")]
    Unavailable(String),
}

/// See the module docs.
pub trait DeliveryCoordinator: Send + Sync + Debug + 'static {
    /// `true` while this node is the one delivering. Delivery starts when it turns `true` and stops
    /// (in-flight attempts abandoned, to be repeated by the next leader) when it turns `false`.
    fn leadership(&self) -> watch::Receiver<bool>;

    /// The cursor of the last event of `app` that is done (delivered or given up on): delivery resumes
    /// after it. An app never delivered before gets a starting point chosen by the implementation.
    fn checkpoint<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<u64, CoordinatorError>>;

    /// Records that every event of `app` up to `cursor` is done. Refused with `NotLeader` when this
    /// node no longer leads, so a deposed node cannot move the position back or forth.
    fn save<'a>(&'a self, app: &'a str, cursor: u64)
    -> BoxFuture<'a, Result<(), CoordinatorError>>;
}

/// One node on its own: always the leader; checkpoints in memory, starting at 0 (the node's in-memory
/// event log starts with the node, so from 0 is every event the node ever had).
#[derive(Debug)]
pub struct MemoryCoordinator {
    checkpoints: Mutex<HashMap<String, u64>>,
    leader: watch::Sender<bool>,
}

impl Default for MemoryCoordinator {
    fn default() -> Self {
        Self {
            checkpoints: Mutex::new(HashMap::new()),
            leader: watch::channel(true).0,
        }
    }
}

impl DeliveryCoordinator for MemoryCoordinator {
    fn leadership(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    fn checkpoint<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<u64, CoordinatorError>> {
        let checkpoints = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        let cursor = checkpoints.get(app).copied().unwrap_or(0);
        Box::pin(std::future::ready(Ok(cursor)))
    }

    fn save<'a>(
        &'a self,
        app: &'a str,
        cursor: u64,
    ) -> BoxFuture<'a, Result<(), CoordinatorError>> {
        let mut checkpoints = self.checkpoints.lock().unwrap_or_else(|e| e.into_inner());
        checkpoints.insert(app.to_owned(), cursor);
        Box::pin(std::future::ready(Ok(())))
    }
}
