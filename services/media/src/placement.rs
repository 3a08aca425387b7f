//! Which worker each media session lives on.
//!
//! A channel starts on its **home** worker (a hash of the channel), so its sessions forward to each other
//! within one loop. When a channel has `room_capacity` sessions on every worker it is on, its next session
//! goes to the worker with the fewest sessions: the channel **spreads**, and from then on the workers it is
//! on hand each other its publishers' packets ([`crate::relay`]). A member that joins again stays on its
//! worker (its new session replaces the old one there). Pure: the router's handle keeps one behind a lock.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::protocol::PeerKey;

/// (app, channel).
pub type RoomKey = (String, String);

/// Sessions per worker and where each one is.
#[derive(Debug)]
pub struct Placement {
    workers: usize,
    room_capacity: usize,
    /// Per channel: its sessions on each worker.
    rooms: HashMap<RoomKey, Vec<usize>>,
    /// Each session's worker.
    sessions: HashMap<PeerKey, usize>,
    /// Sessions on each worker.
    load: Vec<usize>,
}

/// What placing or removing a session changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Placed {
    pub worker: usize,
    /// The channel's set of workers changed: these are all of them now (each must learn the others).
    pub room_workers: Option<Vec<usize>>,
}

impl Placement {
    pub fn new(workers: usize, room_capacity: usize) -> Self {
        Self {
            workers: workers.max(1),
            room_capacity: room_capacity.max(1),
            rooms: HashMap::new(),
            sessions: HashMap::new(),
            load: vec![0; workers.max(1)],
        }
    }

    /// The worker a channel starts on.
    pub fn home(&self, app: &str, channel: &str) -> usize {
        let mut hasher = std::hash::DefaultHasher::new();
        (app, channel).hash(&mut hasher);
        (hasher.finish() % self.workers as u64) as usize
    }

    /// The workers a channel is on (its home when it has no session).
    pub fn room_workers(&self, app: &str, channel: &str) -> Vec<usize> {
        let key = (app.to_owned(), channel.to_owned());
        match self.rooms.get(&key) {
            Some(counts) => on(counts),
            None => vec![self.home(app, channel)],
        }
    }

    /// The worker a session is on.
    pub fn worker_of(&self, key: &PeerKey) -> Option<usize> {
        self.sessions.get(key).copied()
    }

    /// Places a new (or replacing) session.
    pub fn place(&mut self, key: &PeerKey) -> Placed {
        if let Some(worker) = self.sessions.get(key) {
            return Placed {
                worker: *worker,
                room_workers: None,
            };
        }
        let home = self.home(&key.app, &key.channel);
        let room = (key.app.clone(), key.channel.clone());
        let counts = self
            .rooms
            .entry(room)
            .or_insert_with(|| vec![0; self.workers]);
        let has_room = |w: usize| counts[w] > 0 && counts[w] < self.room_capacity;
        let worker = if counts[home] < self.room_capacity {
            home
        } else if let Some(w) = (0..self.workers).find(|w| has_room(*w)) {
            w
        } else {
            // Every worker the channel is on is full: the least loaded worker takes it.
            (0..self.workers)
                .min_by_key(|w| (counts[*w] >= self.room_capacity, self.load[*w]))
                .unwrap_or(home)
        };
        let before = on(counts);
        counts[worker] += 1;
        let after = on(counts);
        self.load[worker] += 1;
        self.sessions.insert(key.clone(), worker);
        Placed {
            worker,
            room_workers: (!before.is_empty() && before != after).then_some(after),
        }
    }

    /// Removes a session; says which worker it was on and whether the channel's workers changed.
    pub fn remove(&mut self, key: &PeerKey) -> Option<Placed> {
        let worker = self.sessions.remove(key)?;
        self.load[worker] -= 1;
        let room = (key.app.clone(), key.channel.clone());
        let counts = self.rooms.get_mut(&room)?;
        let before = on(counts);
        counts[worker] -= 1;
        let after = on(counts);
        if after.is_empty() {
            self.rooms.remove(&room);
        }
        Some(Placed {
            worker,
            room_workers: (before.len() > 1 && before != after).then_some(after),
        })
    }

    /// Removes every session of a channel; the workers it was on.
    pub fn remove_room(&mut self, app: &str, channel: &str) -> Vec<usize> {
        let room = (app.to_owned(), channel.to_owned());
        let Some(counts) = self.rooms.remove(&room) else {
            return Vec::new();
        };
        self.sessions
            .retain(|k, _| k.app != app || k.channel != channel);
        for (w, n) in counts.iter().enumerate() {
            self.load[w] -= n;
        }
        on(&counts)
    }
}

/// The workers with at least one session.
fn on(counts: &[usize]) -> Vec<usize> {
    (0..counts.len()).filter(|w| counts[*w] > 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: &str) -> PeerKey {
        PeerKey {
            app: "app".into(),
            channel: "live".into(),
            user: user.into(),
        }
    }

    #[test]
    fn a_channel_fills_its_home_then_spreads_to_the_least_loaded_worker() {
        let mut p = Placement::new(3, 2);
        let home = p.home("app", "live");
        assert_eq!(p.place(&member("host")).worker, home);
        let second = p.place(&member("a"));
        assert_eq!(second.worker, home);
        assert_eq!(second.room_workers, None);
        let third = p.place(&member("b"));
        assert_ne!(third.worker, home);
        let mut both = vec![home, third.worker];
        both.sort();
        assert_eq!(third.room_workers, Some(both.clone()));
        // The second worker fills before a third is taken.
        assert_eq!(p.place(&member("c")).worker, third.worker);
        assert_eq!(p.room_workers("app", "live"), both);
        // Joining again stays put.
        assert_eq!(p.place(&member("b")).worker, third.worker);
    }

    #[test]
    fn the_last_session_on_a_worker_takes_the_channel_off_it() {
        let mut p = Placement::new(2, 1);
        let home = p.home("app", "live");
        p.place(&member("host"));
        let other = p.place(&member("a")).worker;
        assert_ne!(other, home);
        let gone = p.remove(&member("a")).unwrap();
        assert_eq!(gone.worker, other);
        assert_eq!(gone.room_workers, Some(vec![home]));
        assert_eq!(p.remove(&member("a")), None);
        assert_eq!(p.remove_room("app", "live"), vec![home]);
        assert_eq!(p.room_workers("app", "live"), vec![home]);
        assert_eq!(p.load, vec![0, 0]);
    }
}
