//! Handoff: a partition's actors move to another node with their state, so nothing a user sees ends.
//!
//! A node hands a partition over when it leaves the cluster (SIGTERM) and when a joining node should own
//! it now. The cluster's membership drives it; the order is what makes it safe:
//! 1. The owner stops serving the partition. Messages for its keys wait for an owner from then on, in
//!    order per key, here and on every other node (`crate::flux`); the actors' timers wait too.
//! 2. [`Hub::hand_off`] asks each of the partition's actors for its state: a user session's
//!    [`UserSnapshot`](showcall_machines::user::UserSnapshot) (its connection, call, channels, buffered
//!    events and timers) and a connected call's [`CallSnapshot`](showcall_machines::CallSnapshot). A connection this node holds becomes
//!    a sink the new owner pushes through (this node relays until the socket closes); a connection on a
//!    third node stays where it is and that node is told who holds its session now
//!    ([`Body::SinkMoved`]).
//! 3. The target installs them (`Hub::install`): the actors start suspended — they get messages only
//!    once the target serves the partition. A handed-over call goes on as it was (nothing to ask: its
//!    parties and channel were fine a moment ago, unlike after a crash), its billing ticks where they
//!    stood.
//! 4. Once the target answered, the local actors stop without a word (no call ends, nothing is told) and
//!    the owner gives the partition's key up; the target claims it, and the waiting messages go there.
//!
//! Channels are not partitioned: a leaving node moves the *call channels* it runs first
//! ([`Hub::move_call_channels`]): each connected call mints a channel on another node, opens it for its
//! parties and tells them (`mediaMoved`), so they join it again while this node still relays to them.
//!
//! A call that has not connected yet has no snapshot: a joining node waits for it to connect or end
//! ([`HandoffOutcome::NotNow`], retried a moment later); a leaving node past its patience ends it with
//! a reason (the parties are told `endedByServer`; `call_ended` says `terminated`). If the target does
//! not answer, nothing moved: the local actors go on and the partition stays.
//!
//! What crosses between nodes is serde data like every envelope ([`Handoff`]); the user snapshot is
//! versioned (see its module docs for the compatibility rule).

use std::time::Duration;

use showcall_machines::{CallId, CallInput, UserId};

use crate::hub::Hub;
use crate::users::UserHere;
use showcall_actors::call_actor::CallStart;
use showcall_actors::user_actor::{RestoredUser, UserActor, UserStart};
use showcall_protocol::commands::CommandOk;
use showcall_protocol::envelope::{Body, SinkTo};
use showcall_protocol::error::CommandError;
use showcall_protocol::handoff::{CallHandoff, Handoff, HandoffOutcome, UserHandoff};
use showcall_protocol::keys::{ActorKey, AppId, NodeId};
use showcall_protocol::messages::{CallMsg, Responder, SessionSink, Traced, UserMsg};
use showcall_protocol::messages::{CallStanding, UserStanding};
use showcall_protocol::sync::lock;

/// How long an actor has to answer with its state.
pub(crate) const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the target has to install what it was handed.
pub(crate) const INSTALL_TIMEOUT: Duration = Duration::from_secs(5);

impl Hub {
    /// This node leaves the cluster: from now on no actor starts here (logins, calls and channels
    /// opening here answer UNAVAILABLE, "try again", and go to the next owner).
    pub fn set_leaving(&self) {
        self.inner
            .leaving
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_leaving(&self) -> bool {
        self.inner
            .leaving
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Hands the actors whose keys `moving` accepts (one partition, which this node no longer serves)
    /// to `target`. `force`: end calls that have not connected rather than wait for them.
    pub async fn hand_off(
        &self,
        moving: &(dyn Fn(&ActorKey) -> bool + Send + Sync),
        target: &NodeId,
        force: bool,
    ) -> HandoffOutcome {
        let outcome = self.hand_off_now(moving, target, force).await;
        match &outcome {
            HandoffOutcome::Moved { users, calls } => {
                showcall_protocol::metrics::handoff("moved", *users, *calls)
            }
            HandoffOutcome::NotNow(_) => showcall_protocol::metrics::handoff("not_now", 0, 0),
            HandoffOutcome::Failed(_) => showcall_protocol::metrics::handoff("failed", 0, 0),
        }
        outcome
    }

    async fn hand_off_now(
        &self,
        moving: &(dyn Fn(&ActorKey) -> bool + Send + Sync),
        target: &NodeId,
        force: bool,
    ) -> HandoffOutcome {
        let users =
            self.users_where(|app, user| moving(&ActorKey::User(app.clone(), user.clone())));
        let calls = self.calls_where(|app, id| moving(&ActorKey::Call(app.clone(), id.clone())));
        let mut handoff = Handoff::default();
        let mut moved_calls = Vec::new();
        for (id, app) in calls {
            match self.call_standing(&id).await {
                Some(CallStanding::Connected(snapshot)) => {
                    handoff.calls.push(CallHandoff {
                        app,
                        snapshot: *snapshot,
                    });
                    moved_calls.push(id);
                }
                Some(CallStanding::Ended) => {}
                Some(CallStanding::Unsettled) if force => {
                    let reason = "the node running this call left before it connected; call again";
                    let end = CallInput::Terminate {
                        reason: reason.into(),
                    };
                    let _ = self.tell_call(&id, CallMsg::Input(Traced::new(end)));
                }
                Some(CallStanding::Unsettled) => {
                    return HandoffOutcome::NotNow(format!("call {id} has not connected yet"));
                }
                _ if force => tracing::warn!(call_id = %id, "call did not answer: not handed over"),
                _ => return HandoffOutcome::NotNow(format!("call {id} did not answer")),
            }
        }
        let me = self.node().clone();
        let mut relayed = Vec::new();
        let mut moved_users = Vec::new();
        for (app, user, here) in users {
            let state = match here {
                UserHere::Resting(state) => *state,
                UserHere::Running => match self.user_standing(&app, &user).await {
                    Some(state) => state,
                    None => {
                        self.forget_relays(&relayed);
                        return HandoffOutcome::NotNow(format!("user {user} did not answer"));
                    }
                },
            };
            let sinks = state
                .sinks
                .into_iter()
                .map(|(conn, sink)| match sink {
                    // This node keeps the socket and relays what the new owner pushes to it.
                    SessionSink::Local(inbox) => {
                        let id = self.next_id();
                        lock(&self.inner.remote_sinks).insert(id, (target.clone(), inbox));
                        relayed.push(id);
                        (
                            conn,
                            SinkTo {
                                node: me.clone(),
                                id,
                            },
                        )
                    }
                    SessionSink::Remote { to, .. } => (conn, to),
                })
                .collect();
            handoff.users.push(UserHandoff {
                app: app.clone(),
                snapshot: state.snapshot,
                sinks,
                online: state.online,
            });
            moved_users.push((app, user));
        }
        let (users, calls) = (handoff.users.len(), handoff.calls.len());
        if users + calls > 0 {
            let installed = tokio::time::timeout(
                INSTALL_TIMEOUT,
                self.request::<CommandOk>(target, |reply| Body::Handoff { handoff, reply }),
            )
            .await;
            match installed {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.forget_relays(&relayed);
                    return HandoffOutcome::Failed(e.to_string());
                }
                Err(_) => {
                    self.forget_relays(&relayed);
                    return HandoffOutcome::Failed(format!("{target} did not answer in time"));
                }
            }
        }
        // The target runs them now: the local copies stop without a word.
        for (app, user) in moved_users {
            self.drop_user(&app, &user);
        }
        for id in moved_calls {
            self.forget_call(&id);
        }
        HandoffOutcome::Moved { users, calls }
    }

    /// A running user's state for a handover (`None` when it did not answer in time).
    /// A call's state for a handover (`None` when it did not answer in time).
    async fn call_standing(&self, id: &CallId) -> Option<CallStanding> {
        let (tx, rx) = ractor::concurrency::oneshot();
        self.tell_call(id, CallMsg::Snapshot(tx.into())).ok()?;
        tokio::time::timeout(SNAPSHOT_TIMEOUT, rx).await.ok()?.ok()
    }

    async fn user_standing(&self, app: &AppId, user: &UserId) -> Option<UserStanding> {
        let (tx, rx) = ractor::concurrency::oneshot();
        self.tell_user(app, user, UserMsg::Snapshot(tx.into()))
            .ok()?;
        tokio::time::timeout(SNAPSHOT_TIMEOUT, rx).await.ok()?.ok()
    }

    fn forget_relays(&self, ids: &[u64]) {
        let mut sinks = lock(&self.inner.remote_sinks);
        for id in ids {
            sinks.remove(id);
        }
    }

    /// Starts what another node handed over (see the module docs). The actors run suspended until this
    /// node serves their partition.
    pub(crate) async fn install(
        &self,
        from: &NodeId,
        handoff: Handoff,
    ) -> Result<(), CommandError> {
        if self.is_leaving() {
            return Err(CommandError::Unavailable(format!(
                "{} is leaving the cluster",
                self.node()
            )));
        }
        let me = self.node().clone();
        for user in handoff.users {
            let sinks = user
                .sinks
                .into_iter()
                .map(|(conn, to)| {
                    if to.node == me {
                        // A connection of this node whose session lived elsewhere: local again.
                        if let Some((_, inbox)) = lock(&self.inner.remote_sinks).remove(&to.id) {
                            return (conn, SessionSink::Local(inbox));
                        }
                    } else if &to.node != from {
                        // Its gateway must know who holds the session now (it closes connections
                        // whose session's node dies).
                        self.ship(&to.node, Body::SinkMoved { id: to.id });
                    }
                    (
                        conn,
                        SessionSink::Remote {
                            to,
                            from: me.clone(),
                            courier: self.inner.parts.courier.clone(),
                        },
                    )
                })
                .collect();
            let name = user.snapshot.user().clone();
            let restored = RestoredUser {
                snapshot: user.snapshot,
                sinks,
                online: user.online,
            };
            let start = UserStart::HandedOver(Box::new(restored));
            let actor = UserActor::new(self.context(), user.app.clone(), name.clone(), start)
                .map_err(|e| CommandError::Unavailable(format!("cannot start user actor: {e}")))?;
            if !self.start_handed_over_user(user.app, name.clone(), actor) {
                tracing::warn!(user = %name, "handed a session that already runs here: kept the one here");
            }
        }
        for call in handoff.calls {
            let id = call.snapshot.setup.id.clone();
            if self.has_call(&id) {
                tracing::warn!(call_id = %id, "handed a call that already runs here: kept the one here");
                continue;
            }
            if let Err(e) =
                self.spawn_call_actor(call.app, id.clone(), CallStart::HandedOver(call.snapshot))
            {
                tracing::warn!(call_id = %id, error = %e, "handed call not started");
            }
        }
        Ok(())
    }

    /// Moves the connected calls whose channel runs here to a channel on another node (this node is
    /// leaving and its media router goes with it): each call opens a new channel elsewhere and tells its
    /// parties to join it (`mediaMoved`). Waits for every call's answer, at most `limit` in all; returns
    /// how many moved. Calls that are not connected are not moved (they end with the node).
    pub async fn move_call_channels(&self, limit: Duration) -> usize {
        let mut answers = Vec::new();
        for (app, channel, call) in self.directory().call_channels() {
            // A node that takes new channels (this one does not any more: it is leaving).
            let Some(tag) = self.placement().call_channel_tag() else {
                break;
            };
            let to = showcall_protocol::ids::call_channel(Some(&tag));
            tracing::debug!(%channel, %call, %to, "moving a call channel");
            let (port, answer) = ractor::concurrency::oneshot();
            let input = CallInput::MoveChannel { to };
            self.command_call(&app, &call, input, Responder::Local(port.into()));
            answers.push((channel, answer));
        }
        let deadline = tokio::time::Instant::now() + limit;
        let mut moved = 0;
        for (channel, answer) in answers {
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(Ok(_))) => moved += 1,
                Ok(Ok(Err(e))) => tracing::debug!(%channel, error = %e, "call channel not moved"),
                _ => tracing::warn!(%channel, "call channel not moved: no answer in time"),
            }
        }
        moved
    }

    /// A node took over the session of connection sink `id` of this node.
    pub(crate) fn sink_moved(&self, id: u64, to: NodeId) {
        if let Some((owner, _)) = lock(&self.inner.remote_sinks).get_mut(&id) {
            *owner = to;
        }
    }
}
