//! Starts webhook delivery (`showcall_admin::webhooks`) for the apps that have a `webhook_url`: a single
//! node delivers from its in-memory log; a cluster node campaigns for the one delivering seat in etcd.

use std::sync::Arc;

use anyhow::Context as _;
use showcall_admin::webhooks::{
    DeliveryCoordinator, MemoryCoordinator, WebhookCounters, WebhookDeliverer,
};
use showcall_runtime::Hub;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::NodeConfig;

/// Starts delivery (until `shutdown`) and returns its counters; nothing runs when no app has a webhook.
pub async fn start(
    config: &NodeConfig,
    hub: &Hub,
    membership: Option<&showcall_cluster::Membership>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Arc<WebhookCounters>> {
    let targets = config.webhook_targets();
    if targets.is_empty() {
        return Ok(Arc::default());
    }
    let coordinator: Arc<dyn DeliveryCoordinator> = match membership {
        Some(m) => Arc::new(showcall_cluster::EtcdWebhookLeader::start(
            m,
            config.lease_ttl,
            shutdown.clone(),
        )),
        None => Arc::new(MemoryCoordinator::default()),
    };
    // Before this node serves anyone: an app new to webhooks gets a checkpoint older than every event
    // this node will report (see `EtcdWebhookLeader`).
    for target in &targets {
        coordinator
            .checkpoint(&target.app)
            .await
            .with_context(|| format!("reading the webhook checkpoint of app {}", target.app))?;
    }
    let (counters, delivery) = WebhookDeliverer {
        log: hub.events().clone(),
        coordinator,
        targets,
        policy: config.webhooks.policy(),
    }
    .spawn(shutdown.clone());
    tasks.spawn(async move {
        let _ = delivery.await;
    });
    Ok(counters)
}
