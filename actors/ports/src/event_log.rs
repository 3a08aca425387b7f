//! Business events: what an app's business server hears about its users, channels and calls (the admin
//! API's `WatchEvents` stream), and the log that keeps them for a while so a watcher that reconnects
//! resumes where it left off.
//!
//! Actors report what happened through the hub (`Hub::emit`); the [`EventLog`] port numbers and keeps
//! the events. One node keeps them in memory ([`MemoryEventLog`], the last [`MEMORY_RETENTION`] events); a
//! cluster keeps them in etcd so every node's watchers see every node's events in one order
//! (`showcall-cluster`'s `EtcdEventLog`). A watcher passes the cursor of the last event it handled and
//! gets every later one; a cursor older than what is kept is refused (`Expired`), never silently skipped.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Mutex;

use futures_util::Stream;
use tokio::sync::broadcast;

pub use showcall_protocol::events::{BusinessEvent, EventKind, LoggedEvent, WatchError};

/// A watcher's stream of events, in log order.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<LoggedEvent, WatchError>> + Send>>;

/// Where events are kept (see the module docs).
pub trait EventLog: Send + Sync + Debug + 'static {
    /// Adds an event (numbered by the log; never blocks the actor that reports it).
    fn append(&self, event: BusinessEvent);
    /// Every event after `after` (`None`: from now on), then every new one as it comes.
    fn watch(&self, after: Option<u64>) -> Result<EventStream, WatchError>;
}

/// How many events one node keeps in memory.
pub const MEMORY_RETENTION: usize = 100_000;

/// A single node's log: the last `retention` events in memory.
#[derive(Debug)]
pub struct MemoryEventLog {
    retention: usize,
    inner: Mutex<MemoryInner>,
}

#[derive(Debug)]
struct MemoryInner {
    kept: VecDeque<LoggedEvent>,
    next: u64,
    live: broadcast::Sender<LoggedEvent>,
}

impl Default for MemoryEventLog {
    fn default() -> Self {
        Self::with_retention(MEMORY_RETENTION)
    }
}

impl MemoryEventLog {
    pub fn with_retention(retention: usize) -> Self {
        Self {
            retention: retention.max(1),
            inner: Mutex::new(MemoryInner {
                kept: VecDeque::new(),
                next: 1,
                live: broadcast::channel(4096).0,
            }),
        }
    }
}

impl EventLog for MemoryEventLog {
    fn append(&self, event: BusinessEvent) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let logged = LoggedEvent {
            cursor: inner.next,
            event,
        };
        inner.next += 1;
        if inner.kept.len() == self.retention {
            inner.kept.pop_front();
        }
        inner.kept.push_back(logged.clone());
        let _ = inner.live.send(logged);
    }

    fn watch(&self, after: Option<u64>) -> Result<EventStream, WatchError> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let after = after.unwrap_or(inner.next - 1);
        let oldest = inner.kept.front().map_or(inner.next, |e| e.cursor);
        if after + 1 < oldest {
            return Err(WatchError::Expired { after, oldest });
        }
        // Under the lock: nothing can be appended between the backlog and the live subscription.
        let backlog: Vec<LoggedEvent> = inner
            .kept
            .iter()
            .filter(|e| e.cursor > after)
            .cloned()
            .collect();
        let live = inner.live.subscribe();
        drop(inner);
        let backlog = futures_util::stream::iter(backlog.into_iter().map(Ok));
        let live = futures_util::stream::unfold(Some(live), |rx| async move {
            let mut rx = rx?;
            match rx.recv().await {
                Ok(event) => Some((Ok(event), Some(rx))),
                // The stream ends after telling the watcher it fell behind.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some((Err(WatchError::Lagged), None))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Ok(Box::pin(futures_util::StreamExt::chain(backlog, live)))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use showcall_protocol::AppId;

    use super::*;

    fn online(user: &str) -> BusinessEvent {
        BusinessEvent {
            app: AppId("demo".into()),
            at: 0,
            kind: EventKind::UserOnline { user: user.into() },
        }
    }

    #[tokio::test]
    async fn a_watcher_resumes_after_its_cursor_and_then_follows_live() {
        let log = MemoryEventLog::default();
        log.append(online("a"));
        log.append(online("b"));
        let mut from_first = log.watch(Some(1)).expect("kept");
        log.append(online("c"));
        let got: Vec<u64> = from_first
            .by_ref()
            .take(2)
            .map(|e| e.expect("event").cursor)
            .collect()
            .await;
        assert_eq!(
            got,
            vec![2, 3],
            "the backlog after cursor 1, then the live event"
        );
        let mut from_now = log.watch(None).expect("from now");
        log.append(online("d"));
        let next = from_now.next().await.expect("one").expect("event");
        assert_eq!(next.cursor, 4);
        assert_eq!(next.event, online("d"));
    }

    #[tokio::test]
    async fn a_cursor_older_than_what_is_kept_is_refused() {
        let log = MemoryEventLog::with_retention(2);
        for user in ["a", "b", "c"] {
            log.append(online(user));
        }
        assert!(matches!(
            log.watch(Some(0)),
            Err(WatchError::Expired {
                after: 0,
                oldest: 2
            })
        ));
        assert!(
            log.watch(Some(1)).is_ok(),
            "cursor 1 handled: 2 and 3 are kept"
        );
    }
}
