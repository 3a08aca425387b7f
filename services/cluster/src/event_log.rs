//! [`EtcdEventLog`]: the business events of the whole cluster in one order — etcd's revisions.
//!
//! Each node appends its actors' events under `<prefix>events/<node>/<n>` (one writer queue per node, so a
//! node's events keep their order; puts are retried while etcd is unreachable). A watcher on any node
//! follows the `events/` prefix through an etcd watch from the revision after its cursor, so the cursor
//! is the event's etcd revision, the same on every node. Event keys are bound to a retention lease
//! (renewed by rotation: each lease lives [`RETENTION`], a new one is taken every half of it), so they
//! disappear after an hour or so; a watcher can resume from any revision etcd has not compacted yet
//! (`Expired` once it has).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use showcall_actors::events::{BusinessEvent, EventLog, EventStream, LoggedEvent, WatchError};
use tokio::sync::mpsc;

use crate::membership::Membership;

/// How long events are kept in etcd (at least; up to one and a half times this).
pub const RETENTION: Duration = Duration::from_secs(3600);

/// See the module docs.
pub struct EtcdEventLog {
    writes: mpsc::UnboundedSender<(String, Vec<u8>)>,
    client: Client,
    prefix: String,
    node_prefix: String,
    next: AtomicU64,
}

impl std::fmt::Debug for EtcdEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdEventLog")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdEventLog {
    pub fn new(membership: &Membership) -> Self {
        let client = membership.client();
        let prefix = format!("{}events/", membership.prefix());
        let node_prefix = format!("{prefix}{}/", membership.me());
        let lease = Arc::new(AtomicI64::new(0));
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(rotate_retention(client.clone(), lease.clone()));
        tokio::spawn(write_in_order(client.clone(), queue, lease));
        Self {
            writes,
            client,
            prefix,
            node_prefix,
            // Unique per process start: a restarted node does not overwrite its earlier keys.
            next: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64),
            ),
        }
    }
}

impl EventLog for EtcdEventLog {
    fn append(&self, event: BusinessEvent) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let key = format!("{}{n:020}", self.node_prefix);
        let value = serde_json::to_vec(&event).expect("events are plain serde data");
        let _ = self.writes.send((key, value));
    }

    fn watch(&self, after: Option<u64>) -> Result<EventStream, WatchError> {
        let client = self.client.clone();
        let prefix = self.prefix.clone();
        let opened = futures_util::stream::once(open_watch(client, prefix, after));
        Ok(Box::pin(futures_util::StreamExt::flat_map(
            opened,
            |opened| -> EventStream {
                match opened {
                    Ok(stream) => stream,
                    Err(e) => Box::pin(futures_util::stream::iter([Err(e)])),
                }
            },
        )))
    }
}

async fn open_watch(
    mut client: Client,
    prefix: String,
    after: Option<u64>,
) -> Result<EventStream, WatchError> {
    let unavailable = |e: etcd_client::Error| WatchError::Unavailable(e.to_string());
    let after = match after {
        Some(after) => after,
        None => {
            // From now: the current revision.
            let now = client
                .get(
                    prefix.clone(),
                    Some(GetOptions::new().with_prefix().with_count_only()),
                )
                .await
                .map_err(unavailable)?;
            now.header().map_or(0, |h| h.revision()) as u64
        }
    };
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(after as i64 + 1);
    let stream = client
        .watch(prefix, Some(options))
        .await
        .map_err(unavailable)?;
    let events = futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match stream.message().await {
            Ok(Some(response)) => {
                if response.compact_revision() > 0 {
                    let expired = WatchError::Expired {
                        after,
                        oldest: response.compact_revision() as u64,
                    };
                    return Some((vec![Err(expired)], None));
                }
                let batch: Vec<Result<LoggedEvent, WatchError>> = response
                    .events()
                    .iter()
                    .filter(|e| e.event_type() == EventType::Put)
                    .filter_map(|e| e.kv())
                    .filter_map(|kv| {
                        let event = serde_json::from_slice(kv.value()).ok()?;
                        Some(Ok(LoggedEvent {
                            cursor: kv.mod_revision() as u64,
                            event,
                        }))
                    })
                    .collect();
                Some((batch, Some(stream)))
            }
            Ok(None) => None,
            Err(e) => Some((vec![Err(unavailable(e))], None)),
        }
    });
    Ok(Box::pin(futures_util::StreamExt::flat_map(
        events,
        futures_util::stream::iter,
    )))
}

/// Keeps a retention lease current: a new one every half retention, each living the whole retention.
async fn rotate_retention(mut client: Client, lease: Arc<AtomicI64>) {
    loop {
        match client.lease_grant(RETENTION.as_secs() as i64, None).await {
            Ok(granted) => {
                lease.store(granted.id(), Ordering::Release);
                tokio::time::sleep(RETENTION / 2).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "event retention lease not granted; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Puts the events one after another, retrying each until it lands.
async fn write_in_order(
    mut client: Client,
    mut queue: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    lease: Arc<AtomicI64>,
) {
    while let Some((key, value)) = queue.recv().await {
        let mut backoff = Duration::from_millis(50);
        loop {
            let id = lease.load(Ordering::Acquire);
            let options = (id != 0).then(|| PutOptions::new().with_lease(id));
            match client.put(key.as_str(), value.clone(), options).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(%key, error = %e, retry_in = ?backoff, "event not written");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
