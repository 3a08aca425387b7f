//! One gate per key being started: two starts of the same key's actor take turns (so a key never gets
//! two actors), while starts of other keys go on — a slow start (a channel's media session, a user
//! actor under a login storm) holds up only its own key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use showcall_protocol::ActorKey;
use showcall_protocol::sync::lock;
use tokio::sync::OwnedMutexGuard;

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct SpawnGates {
    gates: Mutex<HashMap<ActorKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while one start of `key` runs; the next start of that key waits for it to drop.
pub(crate) struct SpawnGate<'a> {
    gates: &'a SpawnGates,
    key: ActorKey,
    held: Option<OwnedMutexGuard<()>>,
}

impl SpawnGates {
    /// Waits until no other start of `key` runs.
    pub(crate) async fn enter(&self, key: ActorKey) -> SpawnGate<'_> {
        let gate = lock(&self.gates).entry(key.clone()).or_default().clone();
        let held = gate.lock_owned().await;
        SpawnGate {
            gates: self,
            key,
            held: Some(held),
        }
    }

    /// Keys with a gate now (someone starting or waiting to).
    #[cfg(test)]
    fn open(&self) -> usize {
        lock(&self.gates).len()
    }
}

impl Drop for SpawnGate<'_> {
    fn drop(&mut self) {
        let mut gates = lock(&self.gates.gates);
        drop(self.held.take());
        // Waiters clone the gate under this same lock: one reference left means nobody waits.
        if gates
            .get(&self.key)
            .is_some_and(|gate| Arc::strong_count(gate) == 1)
        {
            gates.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use showcall_protocol::AppId;

    use super::*;

    fn key(user: &str) -> ActorKey {
        ActorKey::User(AppId("app".into()), user.into())
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_start_holds_up_its_own_key_only() {
        let gates = Arc::new(SpawnGates::default());
        let slow = gates.enter(key("a")).await;
        // Another key starts at once.
        let other = tokio::time::timeout(Duration::from_secs(1), gates.enter(key("b"))).await;
        assert!(other.is_ok(), "a start of another key waited");
        drop(other);
        // The same key waits until the first start is done.
        let g = gates.clone();
        let second = tokio::spawn(async move {
            let _gate = g.enter(key("a")).await;
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "two starts of one key ran together");
        drop(slow);
        second.await.expect("the second start ran after the first");
        assert_eq!(gates.open(), 0, "no gate is left behind");
    }
}
