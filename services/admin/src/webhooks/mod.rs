//! Webhooks: the business events of `WatchEvents`, POSTed to each app's HTTP endpoint.
//!
//! Layout:
//! - [`target`]: [`WebhookTarget`], an app's URL and secret, checked at start-up.
//! - [`message`]: [`WebhookMessage`], an event as a body (the canonical protobuf JSON of
//!   `showcall.admin.v1.Event`), its id and its type.
//! - [`signing`]: the `Showcall-Signature` header, and how a receiver verifies it.
//! - [`policy`]: [`RetryPolicy`], the per-attempt timeout and the exponential backoff with jitter.
//! - [`sender`]: [`WebhookSender`], one HTTP(S) attempt.
//! - [`coordinator`]: the [`DeliveryCoordinator`] port (which node delivers; the checkpoints), and
//!   [`MemoryCoordinator`] for a single node.
//! - [`deliverer`]: [`WebhookDeliverer`], the loop that ties them together.
//!
//! Decisions where the issue is silent:
//! - **At least once, in order per app.** An event is POSTed again until a 2xx (or its attempts are used
//!   up); only then does its app's checkpoint move past it. A leader that dies between the answer and the
//!   checkpoint makes the next one POST the event again: receivers deduplicate by `Idempotency-Key`
//!   (`evt-<cursor>`, the same id `WatchEvents` gives the event).
//! - **Giving up moves on.** After `max_attempts` the event is logged with its id, counted in
//!   `showcall_webhook_failures_total` ([`WebhookCounters::failures`]) and skipped, so one poisoned event
//!   (a receiver that always answers 400 to it) does not stop every later one. The events stay readable
//!   through `WatchEvents` for the log's retention, which is how to recover them.
//! - **What a new app gets.** An app whose webhook was never delivered starts where the coordinator says:
//!   a single node from its first event; a cluster from the moment its webhook was first configured on a
//!   running node (earlier history is not replayed at anyone).
//! - **Headers.** `Idempotency-Key: evt-<cursor>`, `Showcall-Event-Type: call.ended` (…),
//!   `Showcall-Delivery-Attempt: <n>`, `Showcall-Signature: t=…,v1=…`, `Content-Type: application/json`.

pub mod coordinator;
pub mod deliverer;
pub mod message;
pub mod policy;
pub mod sender;
pub mod signing;
pub mod target;

pub use coordinator::{CoordinatorError, DeliveryCoordinator, MemoryCoordinator};
pub use deliverer::{WebhookCounters, WebhookDeliverer};
pub use message::WebhookMessage;
pub use policy::RetryPolicy;
pub use sender::{AttemptOutcome, WebhookSender};
pub use target::{MIN_WEBHOOK_SECRET_LEN, TargetError, WebhookTarget};
