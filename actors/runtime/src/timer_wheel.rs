//! `TimerWheel`: the node's one timer for its user sessions.
//!
//! A logged-in user has two timers armed all the time (its token's warning and expiry, up to a week
//! away), and a dropped one a third (its grace period). A tokio task with a `Sleep` per timer cost about
//! 1.1 KiB a session and kept the actor's mailboxes alive; here a timer is one entry in an ordered map
//! (deadline, number) → what is due, and one task per node sleeps until the earliest deadline. A timer
//! is delivered through the registry ([`Hub::fire`]) as a message, so it reaches a user whether its actor
//! runs or rests (waking it). Deadlines are the [`Clock`](showcall_ports::clock::Clock)'s Unix ms, so
//! tokio's paused clock drives the wheel in tests like every other timer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use showcall_actors::TimerKey;
use showcall_machines::user::UserTimer;
use showcall_machines::{CallId, CallTimer, Millis, UserId};
use showcall_protocol::keys::AppId;
use showcall_protocol::sync::lock;
use tokio::sync::Notify;

use crate::hub::{Hub, Inner};

/// What a deadline brings: a timer a user's or a call's machine armed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Due {
    User {
        app: AppId,
        user: UserId,
        timer: UserTimer,
    },
    Call {
        call: CallId,
        timer: CallTimer,
    },
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct TimerWheel {
    due: Mutex<BTreeMap<TimerKey, Due>>,
    next_seq: AtomicU64,
    /// Woken when a deadline earlier than every other is armed (its own `Arc`: the sleeping task holds
    /// it, not the hub).
    earlier: Arc<Notify>,
    /// Whether the task that fires deadlines runs (started with the first timer).
    driving: AtomicBool,
}

impl TimerWheel {
    /// Arms `due` at `at`; `true` in the second field when it is now the earliest deadline.
    fn insert(&self, at: Millis, due: Due) -> (TimerKey, bool) {
        let key = TimerKey {
            at,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
        };
        let mut map = lock(&self.due);
        map.insert(key, due);
        let earliest = map.first_key_value().is_some_and(|(k, _)| *k == key);
        (key, earliest)
    }

    /// Disarms `key` (nothing if it fired or was disarmed).
    pub(crate) fn cancel(&self, key: TimerKey) {
        lock(&self.due).remove(&key);
    }

    /// Takes every deadline at or before `now`, earliest first.
    fn take_due(&self, now: Millis) -> Vec<Due> {
        let mut map = lock(&self.due);
        let later = map.split_off(&TimerKey {
            at: now.saturating_add(1),
            seq: 0,
        });
        std::mem::replace(&mut *map, later).into_values().collect()
    }

    /// The earliest deadline armed.
    fn next_at(&self) -> Option<Millis> {
        lock(&self.due).first_key_value().map(|(k, _)| k.at)
    }

    /// Timers armed now.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.due).len()
    }
}

impl Hub {
    /// Arms `due` at `at` on the node's wheel, starting the wheel's task with the first timer.
    pub(crate) fn arm(&self, at: Millis, due: Due) -> TimerKey {
        let wheel = &self.inner.timers;
        let (key, earliest) = wheel.insert(at, due);
        if !wheel.driving.swap(true, Ordering::AcqRel) {
            tokio::spawn(drive(Arc::downgrade(&self.inner)));
        } else if earliest {
            wheel.earlier.notify_one();
        }
        key
    }
}

impl Hub {
    /// Delivers what a deadline brings.
    fn fire(&self, due: Due) {
        // A session or call that ended meanwhile has no slot: the timer has nobody to tell.
        match due {
            Due::User { app, user, timer } => {
                let _ = self.tell_user(
                    &app,
                    &user,
                    showcall_protocol::messages::UserMsg::Timer(timer),
                );
            }
            Due::Call { call, timer } => {
                let _ = self.tell_call(&call, showcall_protocol::messages::CallMsg::Timer(timer));
            }
        }
    }
}

/// Fires deadlines as they come, until the hub is dropped.
async fn drive(hub: Weak<Inner>) {
    loop {
        let (inner, wait) = {
            let Some(inner) = hub.upgrade() else { return };
            let hub = Hub { inner };
            let now = hub.now_ms();
            for due in hub.inner.timers.take_due(now) {
                hub.fire(due);
            }
            let wait = hub
                .inner
                .timers
                .next_at()
                .map(|at| Duration::from_millis(at.saturating_sub(now).max(1)));
            (hub.inner.clone(), wait)
        };
        let earlier = inner.timers.earlier.clone();
        // A sleeping wheel does not keep the hub alive.
        drop(inner);
        // An arm since `next_at` above left a permit: this completes at once.
        let earlier = earlier.notified();
        match wait {
            Some(wait) => {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = earlier => {}
                }
            }
            None => earlier.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(n: &str) -> Due {
        Due::User {
            app: AppId("app".into()),
            user: n.into(),
            timer: UserTimer::Grace,
        }
    }

    #[test]
    fn deadlines_come_out_in_order_and_disarmed_ones_never() {
        let wheel = TimerWheel::default();
        let (late, _) = wheel.insert(300, due("late"));
        let (first, earliest) = wheel.insert(100, due("first"));
        assert!(earliest);
        let (gone, _) = wheel.insert(200, due("gone"));
        let (_, earliest) = wheel.insert(200, due("second"));
        assert!(!earliest);
        wheel.cancel(gone);
        assert_eq!(wheel.take_due(99), vec![]);
        assert_eq!(wheel.take_due(200), vec![due("first"), due("second")]);
        assert_eq!(wheel.next_at(), Some(300));
        wheel.cancel(first);
        wheel.cancel(late);
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.take_due(1_000), vec![]);
    }
}
