//! Messages to a key whose partition is between owners (a dead node's partition not yet claimed, a
//! handoff, this node's view lagging the claim by a watch event) wait here briefly instead of being lost.
//!
//! Each key has a queue; while it has one, every later message to that key queues behind it, so a key's
//! messages keep their order. One task re-checks the parked keys every [`RECHECK`]; a key that has an owner
//! again has its queue replayed through the normal routing, in order. A key still without an owner after
//! [`FLUX_WAIT`] gives up: requests are answered UNAVAILABLE ("try again"), notifications are dropped with
//! a log line — as before parking existed, only later.
//!
//! The wait is bounded: at most [`MAX_PARKED_PER_KEY`] messages per key and [`MAX_PARKED`] in all. A
//! message that finds no room is not parked: it is refused as if its wait had run out (a request
//! UNAVAILABLE, a ring "offline"), so a peer flooding a moving key costs this node a bounded amount.
//!
//! Only fire-and-forget paths park (notifications to users, calls and channels — a ring among them, so a
//! logged-in callee whose partition is moving still rings — and client commands for calls, which the
//! client awaits anyway). Requests that create actors (login, call spawn, join) answer
//! UNAVAILABLE at once: the client retries them, and they must not wait for a partition that may be
//! this node's own fenced one.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

// tokio's clock, so the waits run on virtual time in tests (paused) as timers do.
use tokio::time::Instant;

use crate::hub::{Hub, ParkedMessage, ParkedQueue};
use showcall_protocol::keys::ActorKey;
use showcall_protocol::sync::lock;

/// How long a message waits for its key's partition to get an owner: as long as a handoff may take (its
/// actors' snapshots, then their install on the target, each with its own limit) and a second more, so a
/// notification to a key whose handoff is slow (a hangup to a call being handed over) is delivered late
/// rather than dropped. A dead node's partitions are unowned for about `lease_ttl` (2 s by default);
/// with a `lease_ttl` above this wait, messages to them give up first — the takeover then asks the
/// parties whether they still hold each call (README "Placement"), so a lost hangup ends the call there.
pub const FLUX_WAIT: Duration = Duration::from_secs(
    crate::handoff::SNAPSHOT_TIMEOUT.as_secs() + crate::handoff::INSTALL_TIMEOUT.as_secs() + 1,
);

/// How often parked keys are re-checked.
const RECHECK: Duration = Duration::from_millis(20);

/// How many messages may wait for one key's owner.
pub const MAX_PARKED_PER_KEY: usize = 10_000;

/// How many messages may wait for owners on this node in all.
pub const MAX_PARKED: usize = 200_000;

impl Hub {
    /// Whether `key` has messages waiting (later ones must queue behind them).
    pub(crate) fn is_parked(&self, key: &ActorKey) -> bool {
        lock(&self.inner.parked).contains_key(key)
    }

    /// Waits until no message waits for an owner here, at most `limit`: a node that handed its
    /// partitions over lets the messages it held for them go on to their new owners before it exits.
    /// `false` when some still wait.
    pub async fn drain_parked(&self, limit: Duration) -> bool {
        let started = Instant::now();
        loop {
            if lock(&self.inner.parked).is_empty() {
                return true;
            }
            if started.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(RECHECK).await;
        }
    }

    /// Queues `message` for `key` until the key has an owner again; `Err` (the message back) when
    /// there is no room (see the module docs).
    pub(crate) fn hold_for_owner(
        &self,
        key: ActorKey,
        message: ParkedMessage,
    ) -> Result<(), ParkedMessage> {
        {
            let mut parked = lock(&self.inner.parked);
            let total = self.inner.parked_total.load(Ordering::Acquire);
            let here = parked.get(&key).map_or(0, |queue| queue.messages.len());
            if total >= MAX_PARKED || here >= MAX_PARKED_PER_KEY {
                tracing::warn!(%key, total, here, "no room to wait for the key's owner: refused");
                return Err(message);
            }
            tracing::debug!(%key, "message waits for the key's owner");
            parked
                .entry(key)
                .or_insert_with(|| ParkedQueue {
                    since: Instant::now(),
                    messages: VecDeque::new(),
                })
                .messages
                .push_back(message);
            self.inner.parked_total.fetch_add(1, Ordering::AcqRel);
        }
        if !self.inner.flux_task.swap(true, Ordering::AcqRel) {
            let hub = self.clone();
            tokio::spawn(async move { hub.recheck_parked().await });
        }
        Ok(())
    }

    async fn recheck_parked(self) {
        loop {
            tokio::time::sleep(RECHECK).await;
            let placement = self.inner.parts.placement.clone();
            let due: Vec<(ActorKey, ParkedQueue, bool)> = {
                let mut parked = lock(&self.inner.parked);
                let keys: Vec<ActorKey> = parked
                    .iter()
                    .filter_map(|(key, queue)| {
                        let owned = match placement.owner(key) {
                            Some(owner) => owner != *placement.this_node() || placement.serves(key),
                            None => false,
                        };
                        (owned || queue.since.elapsed() >= FLUX_WAIT).then(|| key.clone())
                    })
                    .collect();
                keys.into_iter()
                    .filter_map(|key| {
                        let queue = parked.remove(&key)?;
                        let expired = queue.since.elapsed() >= FLUX_WAIT;
                        Some((key, queue, !expired))
                    })
                    .collect()
            };
            let leaving: usize = due.iter().map(|(_, queue, _)| queue.messages.len()).sum();
            self.inner.parked_total.fetch_sub(leaving, Ordering::AcqRel);
            for (key, queue, replay) in due {
                tracing::debug!(%key, replay, messages = queue.messages.len(), "parked messages go on");
                if !replay {
                    tracing::warn!(%key, messages = queue.messages.len(), "gave up: the key's partition has no owner");
                }
                for message in queue.messages {
                    message(&self, replay);
                }
            }
            let parked = lock(&self.inner.parked);
            if parked.is_empty() {
                self.inner.flux_task.store(false, Ordering::Release);
                return;
            }
        }
    }
}
