//! [`WebhookDeliverer`]: follows the event log and POSTs each app's events to its webhook, one by one,
//! while this node leads (see [`super::coordinator`]).
//!
//! Per app, one task: it reads the app's checkpoint, watches the log after it, and offers each of the
//! app's events to the receiver until it is delivered or its attempts are used up, then saves the event's
//! cursor as the checkpoint and moves to the next. One at a time, in cursor order, because a receiver
//! sees events in the order they happened (a call's `call.ended` never before its `call.created`) and
//! because the checkpoint can then be one number: everything up to it is done. Apps do not wait for
//! each other: a failing receiver delays only its own app's events.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use showcall_ports::event_log::{EventLog, WatchError};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::coordinator::{CoordinatorError, DeliveryCoordinator};
use super::message::WebhookMessage;
use super::policy::RetryPolicy;
use super::sender::{AttemptOutcome, WebhookSender};
use super::target::WebhookTarget;

/// How long to wait before asking the event log or the coordinator again after they failed.
const STORE_RETRY: Duration = Duration::from_millis(500);

/// Events of other apps skipped before an app's checkpoint is moved past them anyway, so a quiet app's
/// watch does not start from ever older positions (which the log may no longer keep).
const SKIPPED_BEFORE_SAVE: u32 = 1024;

/// What delivery has done so far (for metrics and tests).
#[derive(Debug, Default)]
pub struct WebhookCounters {
    /// Events delivered (a 2xx answer).
    delivered: AtomicU64,
    /// Events given up on after every attempt failed, and gaps the log could no longer replay: the
    /// `showcall_webhook_failures_total` metric.
    failures: AtomicU64,
}

impl WebhookCounters {
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct WebhookDeliverer {
    pub log: Arc<dyn EventLog>,
    pub coordinator: Arc<dyn DeliveryCoordinator>,
    pub targets: Vec<WebhookTarget>,
    pub policy: RetryPolicy,
}

impl WebhookDeliverer {
    /// Delivers until `shutdown` turns `true`; the counters are returned at once.
    pub fn spawn(
        self,
        shutdown: watch::Receiver<bool>,
    ) -> (Arc<WebhookCounters>, tokio::task::JoinHandle<()>) {
        let counters = Arc::new(WebhookCounters::default());
        let task = tokio::spawn(self.run(counters.clone(), shutdown));
        (counters, task)
    }

    async fn run(self, counters: Arc<WebhookCounters>, mut shutdown: watch::Receiver<bool>) {
        if self.targets.is_empty() {
            return;
        }
        let sender = WebhookSender::new(self.policy.attempt_timeout);
        let mut leadership = self.coordinator.leadership();
        loop {
            // Until this node leads.
            tokio::select! {
                led = leadership.wait_for(|leads| *leads) => if led.is_err() { return },
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            tracing::info!(apps = self.targets.len(), "delivering webhooks");
            let mut apps = JoinSet::new();
            for target in &self.targets {
                apps.spawn(
                    AppDelivery {
                        log: self.log.clone(),
                        coordinator: self.coordinator.clone(),
                        target: target.clone(),
                        policy: self.policy,
                        sender: sender.clone(),
                        counters: counters.clone(),
                    }
                    .run(),
                );
            }
            // Until it stops leading (dropping the set aborts the apps' tasks mid-attempt: the next leader
            // repeats from the checkpoint).
            tokio::select! {
                lost = leadership.wait_for(|leads| !*leads) => {
                    tracing::warn!("no longer the webhook deliverer: stopping");
                    if lost.is_err() { return }
                }
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            drop(apps);
        }
    }
}

/// One app's delivery (see the module docs).
struct AppDelivery {
    log: Arc<dyn EventLog>,
    coordinator: Arc<dyn DeliveryCoordinator>,
    target: WebhookTarget,
    policy: RetryPolicy,
    sender: WebhookSender,
    counters: Arc<WebhookCounters>,
}

impl AppDelivery {
    async fn run(self) {
        let app = self.target.app.as_str();
        loop {
            // `NotLeader` here or from `follow` does not end the task: when this node really lost the seat
            // the deliverer aborts it, and when it was a blip (deposed and elected again before the
            // deliverer saw it) the task must go on from the checkpoint.
            let after = match self.coordinator.checkpoint(app).await {
                Ok(cursor) => cursor,
                Err(e) => {
                    tracing::warn!(app, error = %e, "webhook checkpoint not read; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                    continue;
                }
            };
            if let Err(e) = self.follow(after).await {
                tracing::warn!(app, error = %e, "webhook delivery paused");
                tokio::time::sleep(STORE_RETRY).await;
            }
        }
    }

    /// Delivers the app's events after `after` until the watch ends; the caller resumes from the
    /// checkpoint.
    async fn follow(&self, after: u64) -> Result<(), CoordinatorError> {
        let app = self.target.app.as_str();
        let mut events = match self.log.watch(Some(after)) {
            Ok(events) => events,
            Err(e) => return self.watch_failed(e).await,
        };
        let mut skipped = 0;
        while let Some(item) = events.next().await {
            let logged = match item {
                Ok(logged) => logged,
                Err(e) => return self.watch_failed(e).await,
            };
            if logged.event.app.0 != app {
                skipped += 1;
                if skipped >= SKIPPED_BEFORE_SAVE {
                    skipped = 0;
                    self.save(logged.cursor).await?;
                }
                continue;
            }
            skipped = 0;
            let message = WebhookMessage::new(logged);
            self.deliver(&message).await;
            self.save(message.cursor).await?;
        }
        Ok(())
    }

    /// Offers one message until it is delivered or its attempts are used up.
    async fn deliver(&self, message: &WebhookMessage) {
        let app = self.target.app.as_str();
        let mut failed = 0;
        loop {
            let attempt = failed + 1;
            let outcome = self
                .sender
                .attempt(&self.target, message, attempt, unix_secs())
                .await;
            let why = match outcome {
                AttemptOutcome::Delivered => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(app, event_id = %message.id, attempt, "webhook delivered");
                    return;
                }
                AttemptOutcome::Status(status) => format!("answered {status}"),
                AttemptOutcome::TimedOut => "no answer in time".to_owned(),
                AttemptOutcome::Failed(e) => e,
            };
            failed = attempt;
            if !self.policy.retries_after(failed) {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                showcall_protocol::metrics::webhook_failed();
                tracing::error!(
                    app,
                    event_id = %message.id,
                    event_type = message.event_type,
                    attempts = failed,
                    last_error = %why,
                    "webhook not delivered: giving up on this event"
                );
                return;
            }
            let wait = self.policy.jittered_backoff(failed, rand::random::<f64>());
            tracing::warn!(app, event_id = %message.id, attempt, error = %why, retry_in = ?wait, "webhook attempt failed");
            tokio::time::sleep(wait).await;
        }
    }

    /// Saves the checkpoint, retrying while the store is unreachable (the event stays done meanwhile;
    /// if this node dies first, the next leader delivers it again: at least once).
    async fn save(&self, cursor: u64) -> Result<(), CoordinatorError> {
        loop {
            match self.coordinator.save(&self.target.app, cursor).await {
                Ok(()) => return Ok(()),
                Err(CoordinatorError::NotLeader) => return Err(CoordinatorError::NotLeader),
                Err(e) => {
                    tracing::warn!(app = %self.target.app, cursor, error = %e, "webhook checkpoint not saved; retrying");
                    tokio::time::sleep(STORE_RETRY).await;
                }
            }
        }
    }

    /// What a failed watch means for delivery.
    async fn watch_failed(&self, e: WatchError) -> Result<(), CoordinatorError> {
        match e {
            // The events after the checkpoint are gone (the receiver was failing longer than the log
            // keeps events): they cannot be delivered. Count the gap as one failure, say so loudly, and
            // go on from the oldest event kept.
            WatchError::Expired { after, oldest } => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                showcall_protocol::metrics::webhook_failed();
                tracing::error!(app = %self.target.app, after, oldest, "webhook events lost: the log no longer keeps them");
                self.save(oldest.saturating_sub(1)).await
            }
            // Behind the live stream: the caller watches again from the checkpoint, which the log replays.
            WatchError::Lagged => Ok(()),
            WatchError::Unavailable(reason) => {
                tracing::warn!(app = %self.target.app, %reason, "event log unavailable for webhooks; retrying");
                tokio::time::sleep(STORE_RETRY).await;
                Ok(())
            }
        }
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
