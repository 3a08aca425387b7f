//! The registry of this node's calls, and the runs of their actors.
//!
//! A call's actor ([`CallActor`]) rests in its slot between messages, as a user's does (`crate::users`
//! has the whole story): the first message starts a run that hands the actor the slot's messages in
//! order and puts it back to rest when none is left. Its timers are entries of the node's timer wheel.
//! A call thus starts with an insert and a run, not a task and its mailboxes; and since a run started
//! while a task handles a message runs on that task (`showcall_actors::inline_runs`), the caller's step
//! that starts a call runs the call's first step — the ring — itself.
//!
//! A call ends when its machine says so: the actor forgets itself (`Outbox::forget_call`, which removes
//! the slot) and its run drops it, disarming its timers. A run whose slot was removed meanwhile (the call
//! was handed over, or this node evicted) drops its actor the same way, without a word to anyone.

use std::collections::VecDeque;

use showcall_actors::call_actor::{CallActor, CallStart};
use showcall_machines::CallId;
use showcall_protocol::error::CommandError;
use showcall_protocol::keys::AppId;
use showcall_protocol::messages::CallMsg;
use showcall_protocol::sync::lock;

use crate::hub::Hub;

/// How many messages may wait for one call's run. A call hears from its two parties, its channel and
/// its timers: a handful at a time. Only a flood is refused.
pub const MAX_QUEUED_PER_CALL: usize = 10_000;

/// One call's place in the registry. `generation` tells this start's run from a later one's (a call
/// handed back to this node).
pub(crate) enum CallSlot {
    /// A run has the actor; these messages wait for it, in order.
    Running {
        app: AppId,
        queue: VecDeque<CallMsg>,
        generation: u64,
    },
    /// No run: the actor waits here for the next message.
    Resting {
        actor: Box<CallActor>,
        generation: u64,
    },
}

impl CallSlot {
    pub(crate) fn app(&self) -> &AppId {
        match self {
            CallSlot::Running { app, .. } => app,
            CallSlot::Resting { actor, .. } => actor.app(),
        }
    }
}

/// Why a message did not reach a call.
pub(crate) enum NotTold {
    /// No call by that id here.
    Absent(CallMsg),
    /// [`MAX_QUEUED_PER_CALL`] messages wait already.
    Full(CallMsg),
}

/// Removes a call's slot if its run ends without giving the actor back (a panic in a message's
/// handling); `generation` 0 once given back.
struct RunGuard<'a> {
    hub: &'a Hub,
    id: &'a CallId,
    generation: u64,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if self.generation == 0 || !std::thread::panicking() {
            return;
        }
        let mut calls = lock(&self.hub.inner.calls);
        if let Some(CallSlot::Running { generation, .. }) = calls.get(self.id)
            && *generation == self.generation
        {
            calls.remove(self.id);
            self.hub.inner.directory.remove_call(self.id);
            tracing::error!(call_id = %self.id, "a call's message panicked: the call is dropped");
        }
    }
}

impl Hub {
    /// Sends `msg` to the call's actor here, starting a run if it rests.
    // The message comes back as it was given (the sender may answer the question in it); boxing it
    // would cost every message an allocation for the rare refusal.
    #[allow(clippy::result_large_err)]
    pub(crate) fn tell_call(&self, id: &CallId, msg: CallMsg) -> Result<(), NotTold> {
        let mut calls = lock(&self.inner.calls);
        let Some(slot) = calls.get_mut(id) else {
            return Err(NotTold::Absent(msg));
        };
        match slot {
            CallSlot::Running { queue, .. } if queue.len() >= MAX_QUEUED_PER_CALL => {
                return Err(NotTold::Full(msg));
            }
            CallSlot::Running { queue, .. } => queue.push_back(msg),
            CallSlot::Resting { generation, actor } => {
                let running = CallSlot::Running {
                    app: actor.app().clone(),
                    queue: VecDeque::from([msg]),
                    generation: *generation,
                };
                let CallSlot::Resting { actor, generation } = std::mem::replace(slot, running)
                else {
                    unreachable!("matched above")
                };
                drop(calls);
                self.run_call(id.clone(), generation, actor);
            }
        }
        Ok(())
    }

    /// Starts and registers a call actor (the caller checked that it belongs here). Its first message
    /// is `Begin`: only once registered may the call send anything, so an answer to its ring finds it.
    pub(crate) fn spawn_call_actor(
        &self,
        app: AppId,
        id: CallId,
        start: CallStart,
    ) -> Result<(), CommandError> {
        let actor = CallActor::new(self.context(), app.clone(), start);
        let generation = self.next_id();
        {
            let mut calls = lock(&self.inner.calls);
            if calls.contains_key(&id) {
                return Err(CommandError::Unavailable(format!(
                    "call {id} is already running"
                )));
            }
            let queue = VecDeque::from([CallMsg::Begin]);
            let slot = CallSlot::Running {
                app,
                queue,
                generation,
            };
            calls.insert(id.clone(), slot);
        }
        self.run_call(id, generation, Box::new(actor));
        Ok(())
    }

    /// A run of the call's actor: its slot's messages in order, then back to rest.
    fn run_call(&self, id: CallId, generation: u64, mut actor: Box<CallActor>) {
        let hub = self.clone();
        showcall_actors::inline_runs::start(async move {
            // A message whose handling panics drops the call: the slot must not stay `Running` with
            // nobody to run it.
            let mut unfinished = RunGuard {
                hub: &hub,
                id: &id,
                generation,
            };
            loop {
                let next = {
                    let mut calls = lock(&hub.inner.calls);
                    match calls.get_mut(&id) {
                        Some(CallSlot::Running {
                            queue,
                            generation: g,
                            ..
                        }) if *g == generation => {
                            if actor.stopped() {
                                // Ended (its actor forgets itself first; this is in case it did not).
                                calls.remove(&id);
                                None
                            } else if let Some(msg) = queue.pop_front() {
                                Some(msg)
                            } else {
                                calls.insert(id.clone(), CallSlot::Resting { actor, generation });
                                unfinished.generation = 0;
                                return;
                            }
                        }
                        // Ended, handed over or evicted meanwhile: the call is no longer here.
                        _ => None,
                    }
                };
                match next {
                    Some(msg) => actor.handle(msg).await,
                    None => {
                        unfinished.generation = 0;
                        hub.disarm_call(&actor);
                        return;
                    }
                }
            }
        });
    }

    fn disarm_call(&self, actor: &CallActor) {
        for key in actor.timers() {
            self.inner.timers.cancel(*key);
        }
    }

    /// Removes the call from this node's registry and directory (it ended, or went to another node).
    /// A resting actor is dropped at once; a running one when its run sees it gone.
    pub(crate) fn forget_call(&self, id: &CallId) {
        let slot = lock(&self.inner.calls).remove(id);
        self.inner.directory.remove_call(id);
        showcall_protocol::metrics::call_forgotten(id);
        if let Some(CallSlot::Resting { actor, .. }) = slot {
            self.disarm_call(&actor);
        }
    }

    /// Whether call `id` runs on this node.
    pub fn has_call(&self, id: &CallId) -> bool {
        lock(&self.inner.calls).contains_key(id)
    }

    /// The calls `pick` selects, with their app.
    pub(crate) fn calls_where(
        &self,
        pick: impl Fn(&AppId, &CallId) -> bool,
    ) -> Vec<(CallId, AppId)> {
        lock(&self.inner.calls)
            .iter()
            .filter(|(id, slot)| pick(slot.app(), id))
            .map(|(id, slot)| (id.clone(), slot.app().clone()))
            .collect()
    }

    /// Every call here is dropped without a word (this node lost its lease); the number dropped.
    pub(crate) fn evict_calls(&self) -> usize {
        let slots: Vec<(CallId, CallSlot)> = lock(&self.inner.calls).drain().collect();
        for (id, slot) in &slots {
            self.inner.directory.remove_call(id);
            if let CallSlot::Resting { actor, .. } = slot {
                self.disarm_call(actor);
            }
        }
        slots.len()
    }
}
