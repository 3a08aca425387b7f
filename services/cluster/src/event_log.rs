//! [`EtcdEventLog`]: the business events of the whole cluster in one order — etcd's revisions.
//!
//! Each node appends its actors' events under `<prefix>timeline/<node>/<n>` ([`Layout::events`]: outside
//! the keys the membership watches, so no node hears of every batch) — one writer queue per node, so a
//! node's events keep their order; puts are retried while etcd is unreachable. The writer puts whatever
//! has queued up since its last put as one batch (a JSON array, at most [`MAX_BATCH`] events), and puts at
//! most once per [`PUT_INTERVAL`] (unless the last batch was full): one etcd write per event made a busy
//! cluster's call setup wait on etcd (BENCHMARKS.md, run 4), and one per round trip still cost etcd as much
//! CPU as a whole call setup costs a node (run 8). A watcher on any node follows the prefix through an etcd
//! watch, so an event's place is its batch's etcd revision and its index in the batch — the cursor is
//! `revision << 10 | index`, the same on every node; resuming after a cursor watches from that revision
//! and skips the batch's events up to the index. Event keys are bound to a retention lease (renewed by
//! rotation: each lease lives [`RETENTION`], a new one is taken every half of it), so they disappear
//! after an hour or so; a watcher can resume from any revision etcd has not compacted yet (`Expired`
//! once it has).
//!
//! **Rolling upgrade** from a release that keeps the log under `<prefix>events/` ([`Layout::older_events`],
//! the same batches; its watchers read only there): a watcher here follows both prefixes in one watch
//! ([`Layout::event_range`]), so the old nodes' events and this node's arrive in one order and a cursor
//! from either release means the same event on both. And while any node in the view lacks
//! [`NodeInfo::timeline`] (an older release, leaving or not), the writer puts its batches under
//! `events/`, where that node's watchers — a `WatchEvents` stream, the webhook leader — read them; once
//! the last one is gone, under `timeline/`. So no event is missed by a reader of either release at any
//! point of the upgrade (`cluster_event_log_rolling_upgrade`). What it costs while older nodes remain:
//! the batches under `events/` reach every node's membership watch, as they did before (the view
//! ignores them; the snapshot skips them).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use showcall_ports::event_log::{BusinessEvent, EventLog, EventStream, LoggedEvent, WatchError};
use tokio::sync::mpsc;

use crate::etcd_timing::timed;
use crate::membership::Membership;
#[cfg(doc)]
use crate::view::NodeInfo;
use crate::view::{ClusterView, Layout};

/// How long events are kept in etcd (at least; up to one and a half times this).
pub const RETENTION: Duration = Duration::from_secs(3600);

/// A node puts at most one batch per interval (a full batch goes at once): under load its events reach
/// watchers up to this much later, in batches of this interval's events, and etcd takes at most 20
/// writes a second per node whatever the call rate. After a quiet interval the first event goes at once.
pub const PUT_INTERVAL: Duration = Duration::from_millis(50);

/// The most events one put carries (cursor indexes have 10 bits).
pub const MAX_BATCH: usize = 1 << INDEX_BITS;

/// Bits of a cursor that index an event inside its batch.
const INDEX_BITS: u32 = 10;

/// The cursor of the `index`th event of the batch written at `revision` (`index` [`MAX_BATCH`] − 1: after
/// every event of that revision).
pub fn cursor_of(revision: u64, index: usize) -> u64 {
    (revision << INDEX_BITS) | index as u64
}

/// The revision and index a cursor names.
fn split_cursor(cursor: u64) -> (u64, usize) {
    (
        cursor >> INDEX_BITS,
        (cursor & ((1 << INDEX_BITS) - 1)) as usize,
    )
}

/// See the module docs.
pub struct EtcdEventLog {
    writes: mpsc::UnboundedSender<BusinessEvent>,
    client: Client,
    layout: Layout,
}

impl std::fmt::Debug for EtcdEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdEventLog")
            .field("prefix", &self.layout.events())
            .finish_non_exhaustive()
    }
}

impl EtcdEventLog {
    pub fn new(membership: &Membership) -> Self {
        let client = membership.client();
        let lease = Arc::new(AtomicI64::new(0));
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(rotate_retention(client.clone(), lease.clone()));
        tokio::spawn(write_in_order(
            client.clone(),
            queue,
            lease,
            membership.clone(),
        ));
        Self {
            writes,
            client,
            layout: membership.layout().clone(),
        }
    }
}

/// Where a node puts its next batch (see the module docs): [`Layout::events`], or
/// [`Layout::older_events`] while a node that reads only there is in the view.
fn log_prefix(layout: &Layout, view: &ClusterView) -> String {
    if view.nodes.values().all(|node| node.timeline) {
        layout.events()
    } else {
        layout.older_events()
    }
}

impl EventLog for EtcdEventLog {
    fn append(&self, event: BusinessEvent) {
        let _ = self.writes.send(event);
    }

    fn watch(&self, after: Option<u64>) -> Result<EventStream, WatchError> {
        let client = self.client.clone();
        let layout = self.layout.clone();
        let opened = futures_util::stream::once(open_watch(client, layout, after));
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
    layout: Layout,
    after: Option<u64>,
) -> Result<EventStream, WatchError> {
    let unavailable = |e: etcd_client::Error| WatchError::Unavailable(e.to_string());
    let (from, to) = layout.event_range();
    let (after_revision, after_index) = match after {
        Some(after) => split_cursor(after),
        None => {
            // From now: after every event of the current revision.
            let now = timed(
                "get",
                client.get(
                    layout.events(),
                    Some(GetOptions::new().with_prefix().with_count_only()),
                ),
            )
            .await
            .map_err(unavailable)?;
            (now.header().map_or(0, |h| h.revision()) as u64, MAX_BATCH)
        }
    };
    let after = cursor_of(after_revision, after_index.min(MAX_BATCH - 1));
    // From the cursor's own revision: the rest of its batch may still be unread.
    let options = WatchOptions::new()
        .with_range(to)
        .with_start_revision(after_revision.max(1) as i64);
    let stream = client
        .watch(from, Some(options))
        .await
        .map_err(unavailable)?;
    let events = futures_util::stream::unfold(Some(stream), move |state| {
        let layout = layout.clone();
        async move {
            let mut stream = state?;
            match stream.message().await {
                Ok(Some(response)) => {
                    if response.compact_revision() > 0 {
                        // `oldest` is a cursor, as in every log: the first event the compacted log still has.
                        let expired = WatchError::Expired {
                            after,
                            oldest: cursor_of(response.compact_revision() as u64, 0),
                        };
                        return Some((vec![Err(expired)], None));
                    }
                    let batch: Vec<Result<LoggedEvent, WatchError>> = response
                        .events()
                        .iter()
                        .filter(|e| e.event_type() == EventType::Put)
                        .filter_map(|e| e.kv())
                        .filter(|kv| layout.is_event(kv.key()))
                        .flat_map(|kv| {
                            let revision = kv.mod_revision() as u64;
                            let batch: Vec<BusinessEvent> =
                                serde_json::from_slice(kv.value()).unwrap_or_default();
                            batch
                                .into_iter()
                                .enumerate()
                                .map(move |(index, event)| LoggedEvent {
                                    cursor: cursor_of(revision, index),
                                    event,
                                })
                        })
                        .filter(|logged| logged.cursor > after)
                        .map(Ok)
                        .collect();
                    Some((batch, Some(stream)))
                }
                Ok(None) => None,
                Err(e) => Some((vec![Err(unavailable(e))], None)),
            }
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
        match timed(
            "lease_grant",
            client.lease_grant(RETENTION.as_secs() as i64, None),
        )
        .await
        {
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

/// Puts the queued events in batches, one batch after another, retrying each until it lands; each under
/// the prefix the view calls for when it is taken ([`log_prefix`]).
async fn write_in_order(
    mut client: Client,
    mut queue: mpsc::UnboundedReceiver<BusinessEvent>,
    lease: Arc<AtomicI64>,
    membership: Membership,
) {
    // Unique per process start: a restarted node does not overwrite its earlier keys.
    let mut next = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut pace = Pace::default();
    let mut written_under = String::new();
    while pace.next_batch(&mut queue, &mut batch).await {
        let prefix = membership.read_view(|view| log_prefix(membership.layout(), view));
        if prefix != written_under {
            tracing::info!(%prefix, "business events written under this prefix now");
            written_under.clone_from(&prefix);
        }
        let key = format!("{prefix}{}/{next:020}", membership.me());
        next += 1;
        let value = serde_json::to_vec(&batch).expect("events are plain serde data");
        batch.clear();
        let mut backoff = Duration::from_millis(50);
        loop {
            let id = lease.load(Ordering::Acquire);
            let options = (id != 0).then(|| PutOptions::new().with_lease(id));
            match timed("put", client.put(key.as_str(), value.clone(), options)).await {
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

/// When the writer may put its next batch (see [`PUT_INTERVAL`]).
#[derive(Debug)]
struct Pace {
    next_put: tokio::time::Instant,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            next_put: tokio::time::Instant::now(),
        }
    }
}

impl Pace {
    /// Fills `batch` (empty) with the next batch to put: waits for a first event, then — unless the
    /// batch is full — until [`PUT_INTERVAL`] after the previous put, taking what comes meanwhile.
    /// `false` when the queue is closed and empty.
    async fn next_batch(
        &mut self,
        queue: &mut mpsc::UnboundedReceiver<BusinessEvent>,
        batch: &mut Vec<BusinessEvent>,
    ) -> bool {
        if queue.recv_many(batch, MAX_BATCH).await == 0 {
            return false;
        }
        if batch.len() < MAX_BATCH && self.next_put > tokio::time::Instant::now() {
            tokio::time::sleep_until(self.next_put).await;
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
        }
        let full = batch.len() == MAX_BATCH;
        // A full batch leaves more behind it: the next goes at once.
        self.next_put =
            tokio::time::Instant::now() + if full { Duration::ZERO } else { PUT_INTERVAL };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(user: &str) -> BusinessEvent {
        BusinessEvent {
            app: showcall_protocol::AppId("demo".into()),
            at: 0,
            kind: showcall_protocol::events::EventKind::UserOnline { user: user.into() },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_node_puts_one_batch_per_interval_and_an_idle_one_at_once() {
        let (tx, mut queue) = mpsc::unbounded_channel();
        let mut pace = Pace::default();
        let mut batch = Vec::new();
        let started = tokio::time::Instant::now();

        // Idle: the first event goes at once, alone.
        tx.send(online("a")).unwrap();
        assert!(pace.next_batch(&mut queue, &mut batch).await);
        assert_eq!((batch.len(), started.elapsed()), (1, Duration::ZERO));
        batch.clear();

        // Busy: events keep coming while the interval runs; they go together at its end.
        let sender = tx.clone();
        let feeding = tokio::spawn(async move {
            for i in 0..9 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                sender.send(online(&format!("u{i}"))).unwrap();
            }
        });
        assert!(pace.next_batch(&mut queue, &mut batch).await);
        assert_eq!(started.elapsed(), PUT_INTERVAL);
        assert_eq!(batch.len(), 9, "every event of the interval in one batch");
        batch.clear();
        feeding.await.unwrap();

        // A full batch goes at once, and so does the rest behind it.
        for i in 0..MAX_BATCH + 3 {
            tx.send(online(&format!("v{i}"))).unwrap();
        }
        let before = tokio::time::Instant::now();
        assert!(pace.next_batch(&mut queue, &mut batch).await);
        assert_eq!(batch.len(), MAX_BATCH);
        batch.clear();
        assert!(pace.next_batch(&mut queue, &mut batch).await);
        assert_eq!((batch.len(), before.elapsed()), (3, Duration::ZERO));
        batch.clear();

        drop(tx);
        assert!(!pace.next_batch(&mut queue, &mut batch).await, "closed");
    }

    fn node(id: &str, timeline: bool, leaving: bool) -> crate::view::NodeInfo {
        crate::view::NodeInfo {
            id: showcall_protocol::NodeId(id.into()),
            grpc_addr: String::new(),
            media_addr: String::new(),
            signal_url: String::new(),
            signal_public_url: None,
            capacity: 1,
            load: 0,
            leaving,
            lease: 0,
            timeline,
            wire_minor: 0,
            media: None,
        }
    }

    #[test]
    fn events_go_under_the_older_prefix_while_any_node_reads_only_there() {
        let layout = Layout {
            prefix: "/showcall/v1/".into(),
        };
        let mut view = ClusterView::default();
        for info in [node("n1", true, false), node("n2", true, false)] {
            view.nodes.insert(info.id.clone(), info);
        }
        assert_eq!(log_prefix(&layout, &view), "/showcall/v1/timeline/");
        // An older node, even one on its way out: its watchers still serve until it exits.
        let older = node("n0", false, true);
        view.nodes.insert(older.id.clone(), older.clone());
        assert_eq!(log_prefix(&layout, &view), "/showcall/v1/events/");
        // An older node's info as it writes it: no `timeline` field at all.
        let mut json = serde_json::to_value(&older).unwrap();
        json.as_object_mut().unwrap().remove("timeline");
        let parsed: crate::view::NodeInfo = serde_json::from_value(json).unwrap();
        assert!(!parsed.timeline);
        view.nodes.remove(&older.id);
        assert_eq!(log_prefix(&layout, &view), "/showcall/v1/timeline/");
    }

    #[test]
    fn a_cursor_names_its_batch_revision_and_index() {
        for (revision, index) in [(1, 0), (7, 3), (1 << 40, MAX_BATCH - 1)] {
            assert_eq!(split_cursor(cursor_of(revision, index)), (revision, index));
        }
        // Later batches sort after every event of earlier ones.
        assert!(cursor_of(8, 0) > cursor_of(7, MAX_BATCH - 1));
    }
}
