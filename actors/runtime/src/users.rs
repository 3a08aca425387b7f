//! The registry of this node's users, and the runs of their actors.
//!
//! A user's actor ([`UserActor`]) is not a task of its own: it **rests** in its slot here, as state,
//! until a message comes. The first message starts a *run* — a task that takes the slot's messages one
//! at a time, in order, and hands each to the actor — and messages that come meanwhile queue in the
//! slot behind it; when none is left, the run puts the actor back to rest. An idle logged-in user thus
//! costs its state alone: no task, no mailbox, and its timers are entries of the node's timer wheel
//! (`crate::timer_wheel`). A run is a `tokio::spawn` and a move of the state, cheaper than a ractor
//! actor's start, so a user may rest between any two messages.
//!
//! When a message ends the session ([`UserActor::stopped`]), the run removes the slot: messages still
//! queued are dropped (a question among them is answered `SessionClosed` as its port drops, and a
//! login retries on a new session) and the session's timers are disarmed. A run whose slot was removed
//! or replaced meanwhile (the session was handed over, or evicted) drops its actor the same way.
//!
//! Node-wide orders read a resting user's state without starting a run where they can: a handover takes
//! its snapshot, an eviction closes its connections, a node's death reaches only the users it concerns.

use std::collections::VecDeque;

use showcall_actors::user_actor::{UserActor, UserStart};
use showcall_machines::UserId;
use showcall_protocol::error::CommandError;
use showcall_protocol::keys::{ActorKey, AppId, NodeId};
use showcall_protocol::messages::{LostKeys, UserMsg, UserStanding};
use showcall_protocol::sync::lock;

use crate::hub::Hub;

pub(crate) type UserKey = (AppId, UserId);

/// How many messages from other actors and clients may wait for one user's run. Far above any burst
/// the scenario makes (a popular host's room filling, a node link delivering a backlog at once: the run
/// drains a message in microseconds), so only a flood is refused; ≈ 20 MB of messages at most.
pub const MAX_QUEUED_PER_USER: usize = 100_000;

/// Removes a session's slot if its run ends without giving the actor back (a panic in a message's
/// handling); `session` 0 once given back.
struct RunGuard<'a> {
    hub: &'a Hub,
    key: &'a UserKey,
    session: u64,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if self.session == 0 || !std::thread::panicking() {
            return;
        }
        let mut users = lock(&self.hub.inner.users);
        if let Some(UserSlot::Running { session, .. }) = users.get(self.key)
            && *session == self.session
        {
            users.remove(self.key);
            self.hub
                .inner
                .directory
                .remove_user(&self.key.0, &self.key.1);
            tracing::error!(user = %self.key.1, "a user's message panicked: its session is dropped");
        }
    }
}

/// One user's place in the registry.
pub(crate) enum UserSlot {
    /// A run has the actor; these messages wait for it, in order. `session` tells this session's run
    /// from a later one's.
    Running {
        queue: VecDeque<UserMsg>,
        session: u64,
    },
    /// No run: the actor waits here for the next message.
    Resting { actor: Box<UserActor>, session: u64 },
}

/// Where a user stands in the registry, for a node-wide order.
pub(crate) enum UserHere {
    /// A run has its actor: asked through the registry.
    Running,
    /// Resting: its state, read without starting a run.
    Resting(Box<UserStanding>),
}

impl Hub {
    /// Sends `msg` to the user's actor here, starting a run if it rests. `Err(msg)` when the user has
    /// no session on this node.
    // The message comes back as it was given (the caller may answer the question in it); boxing it
    // would cost every message an allocation for the rare refusal.
    #[allow(clippy::result_large_err)]
    pub(crate) fn tell_user(
        &self,
        app: &AppId,
        user: &UserId,
        msg: UserMsg,
    ) -> Result<(), UserMsg> {
        self.tell_user_within(app, user, msg, usize::MAX)
            .map_err(|(msg, _)| msg)
    }

    /// Like [`Hub::tell_user`] for a message from another actor or a client: refused, with `true`, when
    /// [`MAX_QUEUED_PER_USER`] messages already wait for the user's run (a flood of rings at one host
    /// while her run waits on something). The node's own orders (timers, snapshots, evictions) are
    /// never refused.
    #[allow(clippy::result_large_err)]
    pub(crate) fn tell_user_within(
        &self,
        app: &AppId,
        user: &UserId,
        msg: UserMsg,
        max_queued: usize,
    ) -> Result<(), (UserMsg, bool)> {
        let mut users = lock(&self.inner.users);
        let Some(slot) = users.get_mut(&(app.clone(), user.clone())) else {
            return Err((msg, false));
        };
        match slot {
            UserSlot::Running { queue, .. } if queue.len() >= max_queued => {
                return Err((msg, true));
            }
            UserSlot::Running { queue, .. } => queue.push_back(msg),
            UserSlot::Resting { session, .. } => {
                let session = *session;
                let running = UserSlot::Running {
                    queue: VecDeque::from([msg]),
                    session,
                };
                let UserSlot::Resting { actor, .. } = std::mem::replace(slot, running) else {
                    unreachable!("matched above")
                };
                drop(users);
                self.run_user(app.clone(), user.clone(), session, actor, false);
            }
        }
        Ok(())
    }

    /// Like [`Hub::tell_user`], starting a new session when the user has none here (a login). Fails,
    /// with the message back, when this node may not start the user's actor now (it is leaving, or
    /// the key is moving).
    #[allow(clippy::result_large_err)]
    pub(crate) fn tell_or_start_user(
        &self,
        app: &AppId,
        user: &UserId,
        msg: UserMsg,
    ) -> Result<(), (UserMsg, CommandError)> {
        let Err(msg) = self.tell_user(app, user, msg) else {
            return Ok(());
        };
        // Marked as starting before the partition is checked (see `Hub::start_here`); the slot keeps the
        // key busy from then on.
        let starting = match self.start_here(ActorKey::User(app.clone(), user.clone())) {
            Ok(starting) => starting,
            Err(refusal) => return Err((msg, refusal)),
        };
        let actor = UserActor::new(self.context(), app.clone(), user.clone(), UserStart::New)
            .expect("a new session has no snapshot to refuse");
        let session = self.next_id();
        {
            let mut users = lock(&self.inner.users);
            let key = (app.clone(), user.clone());
            if users.contains_key(&key) {
                // Started by another login meanwhile.
                drop(users);
                return self
                    .tell_user(app, user, msg)
                    .map_err(|msg| (msg, CommandError::SessionClosed));
            }
            let queue = VecDeque::from([msg]);
            users.insert(key, UserSlot::Running { queue, session });
        }
        drop(starting);
        self.run_user(app.clone(), user.clone(), session, Box::new(actor), false);
        Ok(())
    }

    /// Registers a session handed over by another node and arms its timers; `false` when the user
    /// already has one here.
    pub(crate) fn start_handed_over_user(
        &self,
        app: AppId,
        user: UserId,
        actor: UserActor,
    ) -> bool {
        let session = self.next_id();
        {
            let mut users = lock(&self.inner.users);
            let key = (app.clone(), user.clone());
            if users.contains_key(&key) {
                return false;
            }
            let queue = VecDeque::new();
            users.insert(key, UserSlot::Running { queue, session });
        }
        self.run_user(app, user, session, Box::new(actor), true);
        true
    }

    /// A run of the user's actor: its slot's messages in order, then back to rest (see the module docs).
    /// `begin`: a handed-over session, whose timers are armed first.
    fn run_user(
        &self,
        app: AppId,
        user: UserId,
        session: u64,
        mut actor: Box<UserActor>,
        begin: bool,
    ) {
        let hub = self.clone();
        showcall_actors::inline_runs::start(async move {
            let key = (app, user);
            // A message whose handling panics ends the session, as it would end an actor: the slot
            // must not stay `Running` with nobody to run it.
            let mut unfinished = RunGuard {
                hub: &hub,
                key: &key,
                session,
            };
            if begin {
                actor.begin().await;
            }
            loop {
                let next = {
                    let mut users = lock(&hub.inner.users);
                    match users.get_mut(&key) {
                        Some(UserSlot::Running { queue, session: s }) if *s == session => {
                            if actor.stopped() {
                                users.remove(&key);
                                hub.inner.directory.remove_user(&key.0, &key.1);
                                None
                            } else if let Some(msg) = queue.pop_front() {
                                Some(msg)
                            } else {
                                users.insert(key.clone(), UserSlot::Resting { actor, session });
                                unfinished.session = 0;
                                return;
                            }
                        }
                        // Handed over or evicted meanwhile: this session is no longer here. The message
                        // it was handling may have published it again: its directory entry goes too
                        // (unless a newer session of the user has the slot now).
                        Some(_) => None,
                        None => {
                            hub.inner.directory.remove_user(&key.0, &key.1);
                            None
                        }
                    }
                };
                match next {
                    Some(msg) => actor.handle(msg).await,
                    None => {
                        hub.disarm(&actor);
                        return;
                    }
                }
            }
        });
    }

    fn disarm(&self, actor: &UserActor) {
        for key in actor.timers() {
            self.inner.timers.cancel(*key);
        }
    }

    /// Drops the user's session from this node without a word to anyone (it was handed over): a
    /// resting actor is dropped and its timers disarmed; a running one is when its run sees it.
    pub(crate) fn drop_user(&self, app: &AppId, user: &UserId) {
        let slot = lock(&self.inner.users).remove(&(app.clone(), user.clone()));
        self.inner.directory.remove_user(app, user);
        if let Some(UserSlot::Resting { actor, .. }) = slot {
            self.disarm(&actor);
        }
    }

    /// Whether the user has a session on this node (running or resting).
    pub fn has_user(&self, app: &AppId, user: &UserId) -> bool {
        lock(&self.inner.users).contains_key(&(app.clone(), user.clone()))
    }

    /// Users whose actor rests now (of [`Hub::users_online`]).
    pub fn users_resting(&self) -> usize {
        lock(&self.inner.users)
            .values()
            .filter(|slot| matches!(slot, UserSlot::Resting { .. }))
            .count()
    }

    /// The users `pick` selects, each running (ask it) or resting (its state).
    pub(crate) fn users_where(
        &self,
        pick: impl Fn(&AppId, &UserId) -> bool,
    ) -> Vec<(AppId, UserId, UserHere)> {
        lock(&self.inner.users)
            .iter()
            .filter(|((app, user), _)| pick(app, user))
            .map(|((app, user), slot)| {
                let here = match slot {
                    UserSlot::Resting { actor, .. } => {
                        UserHere::Resting(Box::new(actor.standing()))
                    }
                    UserSlot::Running { .. } => UserHere::Running,
                };
                (app.clone(), user.clone(), here)
            })
            .collect()
    }

    /// Node `node` died: every running user hears it; a resting one only if it concerns it.
    pub(crate) fn users_node_lost(&self, node: &NodeId, lost: &LostKeys) {
        let keys: Vec<UserKey> = lock(&self.inner.users)
            .iter()
            .filter(|(_, slot)| match slot {
                UserSlot::Resting { actor, .. } => actor.concerns(node, lost),
                UserSlot::Running { .. } => true,
            })
            .map(|(key, _)| key.clone())
            .collect();
        for (app, user) in keys {
            let msg = UserMsg::NodeLost {
                node: node.clone(),
                lost: lost.clone(),
            };
            let _ = self.tell_user(&app, &user, msg);
        }
    }

    /// This node lost its lease: every session's connections close and the session is dropped here
    /// without a word to anyone else (a running one after its run's current message). The number of
    /// sessions.
    pub(crate) fn evict_users(&self) -> usize {
        let mut users = lock(&self.inner.users);
        let count = users.len();
        let mut resting = Vec::new();
        for (key, slot) in users.iter_mut() {
            match slot {
                UserSlot::Running { queue, .. } => queue.push_back(UserMsg::Evict),
                UserSlot::Resting { .. } => resting.push(key.clone()),
            }
        }
        for key in resting {
            if let Some(UserSlot::Resting { mut actor, .. }) = users.remove(&key) {
                actor.evict();
                self.disarm(&actor);
                self.inner.directory.remove_user(&key.0, &key.1);
            }
        }
        count
    }
}
