//! [`EtcdWebhookLeader`]: the cluster's [`DeliveryCoordinator`] — one node delivers webhooks, and each app's
//! position survives it.
//!
//! - **Leadership**: `<prefix>webhooks/leader` holds the delivering node's id, bound to that node's
//!   membership lease and created only if absent (a transaction), so at most one node holds it and it
//!   frees itself when its holder dies (lease expiry) or leaves (lease revoked). Every node campaigns after
//!   each cluster change (a node key appears or vanishes at the same moment as a leader's lease) and every
//!   TTL/2. A node leads while the key names it under its current lease and it is not fenced: a node that
//!   cannot renew its lease stops delivering before etcd can expire the lease and elect another, so two
//!   nodes deliver at once only for the length of an attempt already in flight (at least once, never zero).
//! - **Checkpoints**: `<prefix>webhooks/checkpoints/<app>` → the decimal cursor of the app's last finished
//!   event, no lease (it outlives every node). Written after every event, by a transaction that succeeds
//!   only while the leader key names this node, so a deposed node cannot move it. One etcd write per
//!   webhook: the POST it follows costs more, and a failover then repeats at most one event per app.
//! - **A new app** (no checkpoint yet) starts after the cluster's current revision: its webhook gets what
//!   happens from now on, not the log's history. The node creates the missing checkpoints when it starts,
//!   before it serves anyone, so no event of its own can slip before them.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use futures_util::future::BoxFuture;
use showcall_admin::webhooks::{CoordinatorError, DeliveryCoordinator};
use tokio::sync::watch;

use crate::event_log::{MAX_BATCH, cursor_of};
use crate::membership::Membership;

/// See the module docs.
#[derive(Clone)]
pub struct EtcdWebhookLeader {
    membership: Membership,
    client: Client,
    leader_key: String,
    checkpoints: String,
    events: String,
    leads: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for EtcdWebhookLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdWebhookLeader")
            .field("leader_key", &self.leader_key)
            .field("leads", &*self.leads.borrow())
            .finish_non_exhaustive()
    }
}

impl EtcdWebhookLeader {
    /// Starts campaigning (until `shutdown` turns `true`); `ttl` is the membership's lease TTL.
    pub fn start(membership: &Membership, ttl: Duration, shutdown: watch::Receiver<bool>) -> Self {
        let prefix = membership.prefix();
        let leader = Self {
            membership: membership.clone(),
            client: membership.client(),
            leader_key: format!("{prefix}webhooks/leader"),
            checkpoints: format!("{prefix}webhooks/checkpoints/"),
            events: membership.layout().events(),
            leads: Arc::new(watch::channel(false).0),
        };
        tokio::spawn(leader.clone().campaign(ttl, shutdown));
        leader
    }

    /// Whether this node delivers now.
    pub fn is_leader(&self) -> bool {
        *self.leads.borrow()
    }

    async fn campaign(self, ttl: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.membership.watch_changes();
        loop {
            let leads = if self.membership.is_fenced() {
                false
            } else {
                match self.try_lead().await {
                    Ok(leads) => leads,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook leadership not checked; retrying");
                        false
                    }
                }
            };
            self.leads.send_if_modified(|was| {
                let changed = *was != leads;
                if changed && leads {
                    tracing::info!(node = %self.membership.me(), "this node delivers webhooks now");
                }
                *was = leads;
                changed
            });
            let cluster_changed = async {
                if changes.changed().await.is_err() {
                    // Membership gone (the node is stopping): only the tick re-checks.
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = cluster_changed => {}
                _ = tokio::time::sleep(ttl / 2) => {}
                _ = shutdown.wait_for(|stop| *stop) => {
                    self.leads.send_replace(false);
                    return;
                }
            }
        }
    }

    /// Takes the leader key if it is free; whether it names this node under its current lease.
    async fn try_lead(&self) -> Result<bool, etcd_client::Error> {
        let mut client = self.client.clone();
        let me = self.membership.me().0.clone();
        let lease = self.membership.lease_id();
        let take = Txn::new()
            .when([Compare::create_revision(
                self.leader_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                self.leader_key.clone(),
                me.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )]);
        if client.txn(take).await?.succeeded() {
            return Ok(true);
        }
        let held = client.get(self.leader_key.clone(), None).await?;
        Ok(held
            .kvs()
            .first()
            .is_some_and(|kv| kv.value() == me.as_bytes() && kv.lease() == lease))
    }

    fn checkpoint_key(&self, app: &str) -> String {
        format!("{}{app}", self.checkpoints)
    }

    async fn read_or_create(&self, app: &str) -> Result<u64, CoordinatorError> {
        let mut client = self.client.clone();
        let key = self.checkpoint_key(app);
        let found = client.get(key.clone(), None).await.map_err(unavailable)?;
        if let Some(kv) = found.kvs().first() {
            return parse(kv.value());
        }
        // No checkpoint: from the cluster's current revision on (every event of it and before is old).
        let now = client
            .get(
                self.events.clone(),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .map_err(unavailable)?;
        let revision = now.header().map_or(0, |h| h.revision()).max(0) as u64;
        let start = cursor_of(revision, MAX_BATCH - 1);
        let create = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), start.to_string(), None)]);
        if client.txn(create).await.map_err(unavailable)?.succeeded() {
            tracing::info!(app, cursor = start, "webhook checkpoint created");
            return Ok(start);
        }
        // Another node created it meanwhile: theirs is as good.
        let found = client.get(key, None).await.map_err(unavailable)?;
        match found.kvs().first() {
            Some(kv) => parse(kv.value()),
            None => Ok(start),
        }
    }

    async fn write(&self, app: &str, cursor: u64) -> Result<(), CoordinatorError> {
        if self.membership.is_fenced() {
            return Err(CoordinatorError::NotLeader);
        }
        let mut client = self.client.clone();
        let me = self.membership.me().0.clone();
        let save = Txn::new()
            .when([Compare::value(
                self.leader_key.clone(),
                CompareOp::Equal,
                me,
            )])
            .and_then([TxnOp::put(
                self.checkpoint_key(app),
                cursor.to_string(),
                None,
            )]);
        if client.txn(save).await.map_err(unavailable)?.succeeded() {
            Ok(())
        } else {
            // Deposed: say so at once; the campaign finds out who leads.
            self.leads.send_replace(false);
            Err(CoordinatorError::NotLeader)
        }
    }
}

impl DeliveryCoordinator for EtcdWebhookLeader {
    fn leadership(&self) -> watch::Receiver<bool> {
        self.leads.subscribe()
    }

    fn checkpoint<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<u64, CoordinatorError>> {
        Box::pin(self.read_or_create(app))
    }

    fn save<'a>(
        &'a self,
        app: &'a str,
        cursor: u64,
    ) -> BoxFuture<'a, Result<(), CoordinatorError>> {
        Box::pin(self.write(app, cursor))
    }
}

fn unavailable(e: etcd_client::Error) -> CoordinatorError {
    CoordinatorError::Unavailable(e.to_string())
}

fn parse(value: &[u8]) -> Result<u64, CoordinatorError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CoordinatorError::Unavailable("a webhook checkpoint is not a number".into()))
}
