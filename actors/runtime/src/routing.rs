//! Routing: every message to an actor goes through these [`Hub`] methods, which deliver it to the local
//! actor when this node owns the key's partition and otherwise send it to the owner ([`showcall_protocol::envelope`]).
//!
//! - A key whose partition has no owner right now (a dead node's partition not yet claimed, a handoff,
//!   this node fenced or its view a watch event behind): notifications to users, calls and channels and
//!   client commands for calls wait for an owner, in order, up to `flux::FLUX_WAIT` ([`crate::flux`]);
//!   other requests fail with UNAVAILABLE ("try again") at once and the client retries.
//! - Requests to another node wait at most [`COMMAND_TIMEOUT`] for the answer — less when that node is
//!   not in the cluster (at once) or leaves it meanwhile (when its loss is known, [`Hub::node_lost`]).
//! - An envelope for a user or call that arrives at a node which does not serve its partition (any more,
//!   or not yet) is passed on to the owner that node sees, or handled as above ([`Hub::deliver`]); an
//!   actor is only ever started on the node serving its partition (`Hub::start_here`).
//! - On the receiving side, [`Hub::deliver`] does what the local path does: get-or-spawn where the local
//!   path would, answer NO_SUCH_CALL / SESSION_CLOSED where the actor is missing, and tell a call that its
//!   ring found no callee.

use std::sync::atomic::Ordering;

use ractor::MessagingErr;
use serde::de::DeserializeOwned;
use showcall_machines::{
    CallId, CallInput, CallSetup, ChannelInput, ChannelKind, ChannelName, ConnId, Millis, Role,
    UserId, UserInput,
};
use tokio::sync::oneshot;

use crate::hub::Hub;
use crate::session::Session;
use showcall_protocol::commands::{COMMAND_TIMEOUT, CommandOk, LoginOk, UserCommand};
use showcall_protocol::envelope::{
    Body, CallWire, ChannelWire, Envelope, MAX_HOPS, ReplyTo, SinkTo, UserWire,
};
use showcall_protocol::error::CommandError;
use showcall_protocol::inbox::ConnectionInbox;
use showcall_protocol::keys::{ActorKey, AppId, NodeId};
use showcall_protocol::messages::{
    CallMsg, ChannelMsg, LostKeys, Responder, SessionSink, TraceContext, Traced, UserMsg,
};
use showcall_protocol::sync::lock;

/// Where a key's actor runs.
pub(crate) enum Route {
    Here,
    There(NodeId),
    /// Between owners (or this node is fenced): not deliverable now.
    Nowhere,
}

fn in_flux(key: &ActorKey) -> CommandError {
    CommandError::Unavailable(format!("{key} is moving between nodes; try again"))
}

impl Hub {
    pub(crate) fn route(&self, key: &ActorKey) -> Route {
        if self.is_parked(key) {
            // Earlier messages to this key wait for an owner: later ones queue behind them.
            return Route::Nowhere;
        }
        let placement = &self.inner.parts.placement;
        match placement.owner(key) {
            Some(owner) if &owner == placement.this_node() => {
                if placement.serves(key) {
                    Route::Here
                } else {
                    Route::Nowhere
                }
            }
            Some(owner) => Route::There(owner),
            None => Route::Nowhere,
        }
    }

    /// Where a request that may open `channel` goes: where it is open, or — when it is open nowhere —
    /// the node placement picks for a new channel (which pins it there as it opens).
    fn route_opening(&self, key: &ActorKey, app: &AppId, channel: &ChannelName) -> Route {
        let placement = &self.inner.parts.placement;
        if placement.owner(key).is_some() {
            return self.route(key);
        }
        match placement.choose_channel_node(app, channel) {
            Some(node) if &node == placement.this_node() => Route::Here,
            Some(node) => Route::There(node),
            None => Route::Nowhere,
        }
    }

    fn envelope(&self, body: Body) -> Envelope {
        Envelope {
            from: self.node().clone(),
            hops: 0,
            // Sent under the current span, so the receiver continues this trace (`showcall_protocol::trace`).
            trace: TraceContext::current(),
            body,
        }
    }

    /// Answers another node's request UNAVAILABLE with `why` (e.g. it is a message kind this node does
    /// not know: `showcall_protocol::wire`).
    pub fn refuse_request(&self, reply: ReplyTo, why: String) {
        let refused: Result<(), CommandError> = Err(CommandError::Unavailable(why));
        let result = serde_json::to_value(&refused).expect("a refusal is plain serde data");
        self.ship(
            &reply.node,
            Body::Reply {
                id: reply.id,
                result,
            },
        );
    }

    /// `false` when `node` is not in the cluster (the envelope was dropped).
    pub(crate) fn ship(&self, node: &NodeId, body: Body) -> bool {
        self.inner.parts.courier.send(node, self.envelope(body))
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Parks `complete` until another node answers; returns the handle that answer must carry.
    /// `node` is the node asked: if it leaves the cluster first, the request fails at once
    /// ([`Hub::node_lost`]) instead of waiting for an answer that cannot come.
    fn await_answer<T: DeserializeOwned + Send + 'static>(
        &self,
        node: &NodeId,
        complete: impl FnOnce(Result<T, CommandError>) + Send + 'static,
    ) -> ReplyTo {
        let id = self.next_id();
        let pending: crate::hub::Pending = Box::new(move |value| {
            complete(
                serde_json::from_value::<Result<T, CommandError>>(value).unwrap_or_else(|e| {
                    Err(CommandError::Unavailable(format!("unreadable answer: {e}")))
                }),
            );
        });
        lock(&self.inner.pending).insert(id, (node.clone(), pending));
        ReplyTo {
            node: self.node().clone(),
            id,
        }
    }

    /// A handle another node can answer `responder` through.
    fn park<T: DeserializeOwned + Send + 'static>(
        &self,
        node: &NodeId,
        responder: Responder<T>,
    ) -> ReplyTo {
        match responder {
            Responder::Remote { to, .. } => to,
            Responder::Local(port) => self.await_answer(node, move |answer| {
                let _ = port.send(answer);
            }),
        }
    }

    /// A responder that answers request `to` of another node.
    fn responder<T>(&self, to: ReplyTo) -> Responder<T> {
        Responder::Remote {
            to,
            from: self.node().clone(),
            courier: self.inner.parts.courier.clone(),
        }
    }

    /// Sends a request to `node` and waits for the answer.
    pub(crate) async fn request<T: DeserializeOwned + Send + 'static>(
        &self,
        node: &NodeId,
        body: impl FnOnce(ReplyTo) -> Body,
    ) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        let reply = self.await_answer(node, move |answer: Result<T, CommandError>| {
            let _ = tx.send(answer);
        });
        let id = reply.id;
        if !self.ship(node, body(reply)) {
            lock(&self.inner.pending).remove(&id);
            return Err(CommandError::Unavailable(format!(
                "node {node} is not in the cluster; try again"
            )));
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            _ => {
                lock(&self.inner.pending).remove(&id);
                Err(CommandError::Unavailable(format!(
                    "node {node} did not answer in time"
                )))
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Users
    // ---------------------------------------------------------------------------------------------

    /// Logs a connection in as `user` (token already verified), resuming an away session if there is one.
    /// The user's actor may live on another node; `inbox` is where this connection's events arrive.
    pub async fn login(
        &self,
        app: AppId,
        user: UserId,
        conn: ConnId,
        token_expires_at: Millis,
        inbox: ConnectionInbox,
    ) -> Result<(Session, LoginOk), CommandError> {
        let key = ActorKey::User(app.clone(), user.clone());
        let ok = match self.route(&key) {
            Route::Here => {
                self.attach_here(
                    &app,
                    &user,
                    conn,
                    token_expires_at,
                    SessionSink::Local(inbox),
                )
                .await?
            }
            Route::There(node) => {
                let sink_id = self.next_id();
                lock(&self.inner.remote_sinks).insert(sink_id, (node.clone(), inbox));
                let sink = SinkTo {
                    node: self.node().clone(),
                    id: sink_id,
                };
                let (a, u) = (app.clone(), user.clone());
                let answer = self
                    .request(&node, move |reply| Body::User {
                        app: a,
                        user: u,
                        msg: UserWire::Attach {
                            conn,
                            sink,
                            token_expires_at,
                            reply,
                        },
                    })
                    .await;
                if answer.is_err() {
                    lock(&self.inner.remote_sinks).remove(&sink_id);
                }
                answer?
            }
            Route::Nowhere => return Err(in_flux(&key)),
        };
        let session = Session {
            hub: self.clone(),
            app,
            user,
            conn,
        };
        Ok((session, ok))
    }

    async fn attach_here(
        &self,
        app: &AppId,
        user: &UserId,
        conn: ConnId,
        token_expires_at: Millis,
        sink: SessionSink,
    ) -> Result<LoginOk, CommandError> {
        // An actor whose session just ended refuses the attach (its slot is cleared as it stops); the
        // second attempt starts a fresh session.
        let mut last = CommandError::SessionClosed;
        for _ in 0..2 {
            let sink = sink.clone();
            let answer = self
                .ask_user(app, user, true, |reply| UserMsg::Attach {
                    conn,
                    sink,
                    token_expires_at,
                    reply,
                })
                .await;
            match answer {
                Ok(ok) => return Ok(ok),
                Err(CommandError::SessionClosed) => last = CommandError::SessionClosed,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// A client command from connection `conn` to its user actor, wherever it lives.
    pub async fn user_command(
        &self,
        app: &AppId,
        user: &UserId,
        conn: ConnId,
        command: UserCommand,
    ) -> Result<CommandOk, CommandError> {
        let key = ActorKey::User(app.clone(), user.clone());
        match self.route(&key) {
            Route::Here => {
                self.ask_user(app, user, false, |reply| UserMsg::Command {
                    conn,
                    command,
                    reply,
                })
                .await
            }
            Route::There(node) => {
                let (a, u) = (app.clone(), user.clone());
                self.request(&node, move |reply| Body::User {
                    app: a,
                    user: u,
                    msg: UserWire::Command {
                        conn,
                        command,
                        reply,
                    },
                })
                .await
            }
            Route::Nowhere => Err(in_flux(&key)),
        }
    }

    /// Connection `conn` dropped without logging out.
    pub(crate) fn connection_lost(&self, app: &AppId, user: &UserId, conn: ConnId) {
        self.send_user_msg(app, user, UserWire::ConnectionLost { conn }, move |_| {
            UserMsg::ConnectionLost { conn }
        });
    }

    /// Stops relaying to a connection whose user actor lives elsewhere (the connection ended).
    pub fn forget_remote_inbox(&self, inbox: &ConnectionInbox) {
        lock(&self.inner.remote_sinks).retain(|_, (_, tx)| !tx.same_inbox(inbox));
    }

    /// A notification to a user actor. `true` when it was delivered here or sent to the owner; `false`
    /// when the user has no actor here (no session) or the key is between owners.
    pub fn send_user(&self, app: &AppId, user: &UserId, input: UserInput) -> bool {
        let traced = Traced::new(input);
        self.send_user_msg(app, user, UserWire::Input(traced.clone()), move |_| {
            UserMsg::Input(traced)
        })
    }

    /// `true` when delivered here, sent to the owner, or parked until the user's partition has one (a
    /// parked message that finds no user actor, or no owner in time, gets the answer the asking call
    /// would get from a node without that user: see `UserInput::unreachable_answer`).
    fn send_user_msg(
        &self,
        app: &AppId,
        user: &UserId,
        wire: UserWire,
        local: impl FnOnce(()) -> UserMsg + Send + 'static,
    ) -> bool {
        let key = ActorKey::User(app.clone(), user.clone());
        match self.route(&key) {
            Route::Here => self.tell_user(app, user, local(())).is_ok(),
            Route::There(node) => {
                self.ship(
                    &node,
                    Body::User {
                        app: app.clone(),
                        user: user.clone(),
                        msg: wire,
                    },
                );
                true
            }
            Route::Nowhere => {
                // A restarted node claiming its share, or a dead node's partition not yet re-owned: the
                // user's actor is about to have an owner again. Waiting keeps a ring from reading as
                // "offline" for a user that is logged in.
                let (app, user) = (app.clone(), user.clone());
                self.hold_for_owner(
                    key,
                    Box::new(move |hub, replay| {
                        let answer = match &wire {
                            UserWire::Input(traced) => traced.payload.unreachable_answer(&user),
                            _ => None,
                        };
                        let delivered = replay && hub.send_user_msg(&app, &user, wire, local);
                        if !delivered && let Some((call, answer)) = answer {
                            hub.send_call(&app, &call, answer);
                        }
                    }),
                );
                true
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Calls
    // ---------------------------------------------------------------------------------------------

    /// Starts a call's actor on the owner of its key; it rings the callee itself.
    pub(crate) async fn spawn_call(
        &self,
        app: AppId,
        setup: CallSetup,
    ) -> Result<(), CommandError> {
        let key = ActorKey::Call(app.clone(), setup.id.clone());
        match self.route(&key) {
            Route::Here => self.spawn_call_here(app, setup).await,
            Route::There(node) => {
                let _: CommandOk = self
                    .request(&node, move |reply| Body::Call {
                        app,
                        id: setup.id.clone(),
                        msg: CallWire::Spawn { setup, reply },
                    })
                    .await?;
                Ok(())
            }
            Route::Nowhere => Err(in_flux(&key)),
        }
    }

    /// A notification to a call actor.
    pub fn send_call(&self, app: &AppId, call: &CallId, input: CallInput) {
        let key = ActorKey::Call(app.clone(), call.clone());
        let traced = Traced::new(input);
        match self.route(&key) {
            Route::Here => {
                if let Some(actor) = self.call(call) {
                    let _ = actor.cast(CallMsg::Input(traced));
                }
            }
            Route::There(node) => {
                self.ship(
                    &node,
                    Body::Call {
                        app: app.clone(),
                        id: call.clone(),
                        msg: CallWire::Input(traced),
                    },
                );
            }
            Route::Nowhere => {
                let (app, call) = (app.clone(), call.clone());
                self.hold_for_owner(
                    key,
                    Box::new(move |hub, replay| {
                        if replay {
                            hub.send_call(&app, &call, traced.payload);
                        }
                    }),
                );
            }
        }
    }

    /// A client command for a call; the call machine's verdict is the answer.
    pub(crate) fn command_call(
        &self,
        app: &AppId,
        call: &CallId,
        input: CallInput,
        reply: Responder<CommandOk>,
    ) {
        let key = ActorKey::Call(app.clone(), call.clone());
        match self.route(&key) {
            Route::Here => self.command_call_here(call, input, reply),
            Route::There(node) => {
                let reply = self.park(&node, reply);
                self.ship(
                    &node,
                    Body::Call {
                        app: app.clone(),
                        id: call.clone(),
                        msg: CallWire::Command { input, reply },
                    },
                );
            }
            Route::Nowhere => {
                let (app, call) = (app.clone(), call.clone());
                let failed = in_flux(&key);
                self.hold_for_owner(
                    key,
                    Box::new(move |hub, replay| {
                        if replay {
                            hub.command_call(&app, &call, input, reply);
                        } else {
                            let _ = reply.send(Err(failed));
                        }
                    }),
                );
            }
        }
    }

    fn command_call_here(&self, call: &CallId, input: CallInput, reply: Responder<CommandOk>) {
        match self.call(call) {
            Some(actor) => {
                if let Err(MessagingErr::SendErr(CallMsg::Command { reply, .. })) =
                    actor.cast(CallMsg::Command { input, reply })
                {
                    let _ = reply.send(Err(CommandError::NoSuchCall));
                }
            }
            None => {
                let _ = reply.send(Err(CommandError::NoSuchCall));
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Channels
    // ---------------------------------------------------------------------------------------------

    /// Opens a call's private channel on its owner, waiting until it is open.
    pub(crate) async fn open_call_channel(
        &self,
        app: &AppId,
        channel: &ChannelName,
        kind: ChannelKind,
    ) -> Result<(), CommandError> {
        let key = ActorKey::Channel(app.clone(), channel.clone());
        match self.route_opening(&key, app, channel) {
            Route::Here => self
                .channel_or_open(app, channel, Some(kind))
                .await
                .map(drop),
            Route::There(node) => {
                let (a, c) = (app.clone(), channel.clone());
                let _: CommandOk = self
                    .request(&node, move |reply| Body::Channel {
                        app: a,
                        channel: c,
                        msg: ChannelWire::Open { kind, reply },
                    })
                    .await?;
                Ok(())
            }
            Route::Nowhere => Err(in_flux(&key)),
        }
    }

    /// Asks a channel to admit `user` (opening a live channel on first use); the channel answers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn join_channel(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: UserId,
        role: Role,
        may_publish: bool,
        offer: Option<String>,
        reply: Responder<CommandOk>,
    ) {
        // Bans are the business server's: checked before the channel is even asked (or opened). Call
        // channels admit only their two parties, and a kick there ends the call: no ban to check.
        if !channel.is_call_channel() {
            let now = self.now_ms();
            let refusal = match self.bans().check(app, channel, &user, now).await {
                Ok(ban) => ban
                    .and_then(|ban| ban.refusal(role, now))
                    .map(CommandError::Banned),
                Err(e) => Some(CommandError::Unavailable(e)),
            };
            if let Some(refusal) = refusal {
                let _ = reply.send(Err(refusal));
                return;
            }
        }
        let key = ActorKey::Channel(app.clone(), channel.clone());
        match self.route_opening(&key, app, channel) {
            Route::Here => {
                self.join_here(app, channel, user, role, may_publish, offer, reply)
                    .await
            }
            Route::There(node) => {
                let reply = self.park(&node, reply);
                self.ship(
                    &node,
                    Body::Channel {
                        app: app.clone(),
                        channel: channel.clone(),
                        msg: ChannelWire::Join {
                            user,
                            role,
                            may_publish,
                            offer,
                            reply,
                        },
                    },
                );
            }
            Route::Nowhere => {
                let _ = reply.send(Err(in_flux(&key)));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn join_here(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: UserId,
        role: Role,
        may_publish: bool,
        offer: Option<String>,
        reply: Responder<CommandOk>,
    ) {
        match self.channel_or_open(app, channel, None).await {
            Ok(actor) => {
                // The channel may stop between lookup and send (its last member left): answer as busy.
                if let Err(MessagingErr::SendErr(ChannelMsg::Join { reply, .. })) =
                    actor.cast(ChannelMsg::Join {
                        user,
                        role,
                        may_publish,
                        offer,
                        reply,
                    })
                {
                    let _ = reply.send(Err(CommandError::Unavailable(
                        "channel is closing, try again".into(),
                    )));
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// A notification to a channel actor (only if the channel is open).
    pub fn send_channel(&self, app: &AppId, channel: &ChannelName, input: ChannelInput) {
        let traced = Traced::new(input);
        self.send_channel_msg(
            app,
            channel,
            ChannelWire::Input(traced.clone()),
            move || ChannelMsg::Input(traced),
        );
    }

    /// A restored call asks its channel whether it still exists; the answer comes back as
    /// `CallInput::ChannelPresent` (at once, `false`, when there is no channel actor to ask).
    pub(crate) fn ask_channel(&self, app: &AppId, channel: &ChannelName, call: CallId) {
        let key = ActorKey::Channel(app.clone(), channel.clone());
        if self.inner.parts.placement.owner(&key).is_none() {
            // Open nowhere (its node died with it): no need to wait for an owner.
            self.send_call(app, &call, CallInput::ChannelPresent { present: false });
            return;
        }
        let wire = ChannelWire::Adopt { call: call.clone() };
        let asked = self.send_channel_msg(app, channel, wire, {
            let call = call.clone();
            move || ChannelMsg::Adopt { call }
        });
        if !asked {
            self.send_call(app, &call, CallInput::ChannelPresent { present: false });
        }
    }

    /// The media router forwarded `from`'s first frame in `channel`.
    pub fn media_flowing(&self, app: &AppId, channel: &ChannelName, from: UserId) {
        let wire = ChannelWire::MediaFlowing { from: from.clone() };
        self.send_channel_msg(app, channel, wire, move || ChannelMsg::MediaFlowing {
            from,
        });
    }

    /// `true` when delivered here, sent to the owner, or parked until the channel's partition has one.
    fn send_channel_msg(
        &self,
        app: &AppId,
        channel: &ChannelName,
        wire: ChannelWire,
        local: impl FnOnce() -> ChannelMsg + Send + 'static,
    ) -> bool {
        let key = ActorKey::Channel(app.clone(), channel.clone());
        match self.route(&key) {
            Route::Here => self
                .channel(app, channel)
                .is_some_and(|actor| actor.cast(local()).is_ok()),
            Route::There(node) => {
                self.ship(
                    &node,
                    Body::Channel {
                        app: app.clone(),
                        channel: channel.clone(),
                        msg: wire,
                    },
                );
                true
            }
            Route::Nowhere => {
                let (app, channel) = (app.clone(), channel.clone());
                self.hold_for_owner(
                    key,
                    Box::new(move |hub, replay| {
                        if replay {
                            hub.send_channel_msg(&app, &channel, wire, local);
                        }
                    }),
                );
                true
            }
        }
    }

    /// Another node died (its lease expired); `lost` tells which keys it owned. Connections here whose
    /// session lived there are closed (the client logs in again, on the key's new owner); local actors
    /// whose call, channel or party lived there are told, so those calls end exactly once for the
    /// survivors and paused hosts go back live.
    pub fn node_lost(&self, node: &NodeId, lost: LostKeys) {
        // Requests waiting for that node's answer fail now ("try again": the key has a new owner soon)
        // rather than at their timeout.
        let unanswered: Vec<crate::hub::Pending> = {
            let mut pending = lock(&self.inner.pending);
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, (asked, _))| asked == node)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| pending.remove(id).map(|(_, complete)| complete))
                .collect()
        };
        let failed: Result<(), CommandError> = Err(CommandError::Unavailable(format!(
            "node {node} left the cluster; try again"
        )));
        let failed = serde_json::to_value(&failed).expect("an error is plain serde data");
        for complete in unanswered {
            complete(failed.clone());
        }
        let orphaned: Vec<ConnectionInbox> = {
            let mut sinks = lock(&self.inner.remote_sinks);
            let ids: Vec<u64> = sinks
                .iter()
                .filter(|(_, (owner, _))| owner == node)
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| sinks.remove(id).map(|(_, tx)| tx))
                .collect()
        };
        for tx in &orphaned {
            let reason = showcall_machines::user::CloseReason::NodeLost;
            let _ = tx.push(showcall_protocol::commands::Outbound::closing_notice(
                self.now_ms(),
                reason,
            ));
            let _ = tx.push(showcall_protocol::commands::Outbound::Close(reason));
        }
        self.users_node_lost(node, &lost);
        let calls: Vec<_> = lock(&self.inner.calls)
            .values()
            .map(|(_, a)| a.clone())
            .collect();
        for actor in calls {
            let _ = actor.cast(CallMsg::OwnersLost(lost.clone()));
        }
        let channels: Vec<_> = lock(&self.inner.channels).values().cloned().collect();
        for actor in channels {
            let _ = actor.cast(ChannelMsg::OwnersLost(lost.clone()));
        }
        tracing::warn!(%node, sessions = orphaned.len(), "node lost: its sessions closed, its calls ended");
    }

    /// This node's lease expired (it was cut off, or paused, for longer than the TTL): the cluster
    /// counted it as dead and other nodes took its partitions and calls over. Every local actor stops
    /// without effects — no call ends, no record is written or deleted, no channel is told — because
    /// their new owners carry on; connections to local sessions are closed with `NodeLost` so the
    /// clients log in again (on the new owners).
    pub fn evict_all(&self) {
        let users = self.evict_users();
        let calls: Vec<_> = lock(&self.inner.calls)
            .drain()
            .map(|(_, (_, actor))| actor)
            .collect();
        for actor in &calls {
            actor.stop(Some("evicted: this node lost its lease".into()));
        }
        let channels: Vec<_> = lock(&self.inner.channels).values().cloned().collect();
        for actor in &channels {
            let _ = actor.cast(ChannelMsg::Evict);
        }
        tracing::warn!(
            users,
            calls = calls.len(),
            channels = channels.len(),
            "lease lost: every local actor evicted"
        );
    }

    // ---------------------------------------------------------------------------------------------
    // Receiving
    // ---------------------------------------------------------------------------------------------

    /// Carries out an envelope from another node, in the order its link received it.
    pub async fn deliver(&self, envelope: Envelope) {
        // What the delivery sends or starts (a call actor, a call channel) continues the sender's trace.
        let cx = envelope.trace.context();
        opentelemetry::context::FutureExt::with_context(self.deliver_now(envelope), cx).await
    }

    async fn deliver_now(&self, envelope: Envelope) {
        let Some(envelope) = self.take_or_pass_on(envelope) else {
            return;
        };
        let from = envelope.from.clone();
        match envelope.body {
            Body::Reply { id, result } => {
                let pending = lock(&self.inner.pending).remove(&id);
                match pending {
                    Some((_, complete)) => complete(result),
                    None => tracing::debug!(id, %from, "late answer dropped"),
                }
            }
            Body::Sink { id, outbound } => {
                let closing = matches!(outbound, showcall_protocol::commands::Outbound::Close(_));
                let mut sinks = lock(&self.inner.remote_sinks);
                if let Some((_, tx)) = sinks.get(&id) {
                    let _ = tx.push(outbound);
                }
                if closing {
                    sinks.remove(&id);
                }
            }
            Body::Handoff { handoff, reply } => {
                let responder: Responder<CommandOk> = self.responder(reply);
                let answer = self.install(&from, handoff).await;
                let _ = responder.send(answer.map(|()| CommandOk::Done));
            }
            Body::SinkMoved { id } => self.sink_moved(id, from),
            Body::Query { query, reply } => {
                let answer = self.answer_query(&query);
                let _ = self.responder(reply).send(answer);
            }
            Body::User { app, user, msg } => self.deliver_user(app, user, msg).await,
            Body::Call { app, id, msg } => self.deliver_call(app, id, msg).await,
            Body::Channel { app, channel, msg } => self.deliver_channel(app, channel, msg).await,
        }
    }

    /// An envelope for a user or a call whose partition this node does not serve (any more, or not yet)
    /// is not carried out here: a node that stopped owning the key between the sender's routing and
    /// the envelope's arrival would otherwise start an actor no owner knows of (a session that then
    /// answers "session is closed" from the real owner). It goes on to the owner this node sees, at
    /// most [`MAX_HOPS`] times; with no owner now, notifications wait for one in order
    /// ([`crate::flux`]) and requests are answered UNAVAILABLE ("try again") at once, as when the
    /// sender itself finds the key between owners. `Some` when the envelope is for this node.
    fn take_or_pass_on(&self, mut envelope: Envelope) -> Option<Envelope> {
        let key = match &envelope.body {
            Body::User { app, user, .. } => ActorKey::User(app.clone(), user.clone()),
            Body::Call { app, id, .. } => ActorKey::Call(app.clone(), id.clone()),
            // Channels are pinned by their opener (`route_opening`), replies and sinks belong here.
            _ => return Some(envelope),
        };
        let route = self.route(&key);
        if let Route::Here = route {
            return Some(envelope);
        }
        if let Route::There(node) = &route
            && envelope.hops < MAX_HOPS
        {
            tracing::debug!(%key, to = %node, hops = envelope.hops, "envelope passed on to the key's owner");
            envelope.hops += 1;
            // Sent by this node now: a link carries only its member's envelopes (the receiver drops one
            // naming another sender). A user's or call's message needs no original sender — its answers
            // and pushes go by the handles it carries.
            envelope.from = self.node().clone();
            self.inner.parts.courier.send(node, envelope);
            return None;
        }
        let unavailable = || in_flux(&key);
        // Between owners, or passed around too often (views a watch event apart): requests fail at
        // once (the sender retries), notifications wait for the views to settle, in order per key.
        match envelope.body {
            Body::User {
                msg: UserWire::Attach { reply, .. },
                ..
            } => {
                let _ = self.responder::<LoginOk>(reply).send(Err(unavailable()));
            }
            Body::User {
                msg: UserWire::Command { reply, .. },
                ..
            }
            | Body::Call {
                msg: CallWire::Spawn { reply, .. },
                ..
            } => {
                let _ = self.responder::<CommandOk>(reply).send(Err(unavailable()));
            }
            body => {
                tracing::debug!(%key, "envelope waits for the key's owner");
                self.hold_for_owner(
                    key,
                    Box::new(move |hub, replay| hub.redeliver(body, replay)),
                );
            }
        }
        None
    }

    /// A notification held for its key's owner (`take_or_pass_on`), sent on through the routing once
    /// the key has one (`replay`), or given up on: a ring or a takeover question then gets its
    /// "nobody" answer, a call command its UNAVAILABLE.
    fn redeliver(&self, body: Body, replay: bool) {
        match body {
            Body::User { app, user, msg } => match msg {
                UserWire::ConnectionLost { conn } if replay => {
                    self.connection_lost(&app, &user, conn)
                }
                UserWire::Input(traced) if replay => {
                    let local = traced.clone();
                    self.send_user_msg(&app, &user, UserWire::Input(traced), move |_| {
                        UserMsg::Input(local)
                    });
                }
                UserWire::Input(traced) => {
                    if let Some((call, answer)) = traced.payload.unreachable_answer(&user) {
                        self.send_call(&app, &call, answer);
                    }
                }
                _ => {}
            },
            Body::Call { app, id, msg } => match msg {
                CallWire::Input(traced) if replay => self.send_call(&app, &id, traced.payload),
                CallWire::Command { input, reply } if replay => {
                    self.command_call(&app, &id, input, self.responder(reply))
                }
                CallWire::Command { reply, .. } => {
                    let key = ActorKey::Call(app, id);
                    let _ = self.responder::<CommandOk>(reply).send(Err(in_flux(&key)));
                }
                _ => {}
            },
            _ => {}
        }
    }

    async fn deliver_user(&self, app: AppId, user: UserId, msg: UserWire) {
        match msg {
            UserWire::Attach {
                conn,
                sink,
                token_expires_at,
                reply,
            } => {
                let responder: Responder<LoginOk> = self.responder(reply);
                let sink = SessionSink::Remote {
                    to: sink,
                    from: self.node().clone(),
                    courier: self.inner.parts.courier.clone(),
                };
                // Attaching waits for the user actor; off the link's loop so other envelopes go on.
                let hub = self.clone();
                tokio::spawn(async move {
                    let answer = hub
                        .attach_here(&app, &user, conn, token_expires_at, sink)
                        .await;
                    let _ = responder.send(answer);
                });
            }
            UserWire::Command {
                conn,
                command,
                reply,
            } => {
                let reply: Responder<CommandOk> = self.responder(reply);
                let command = UserMsg::Command {
                    conn,
                    command,
                    reply,
                };
                if let Err(UserMsg::Command { reply, .. }) = self.tell_user(&app, &user, command) {
                    let _ = reply.send(Err(CommandError::SessionClosed));
                }
            }
            UserWire::ConnectionLost { conn } => {
                let _ = self.tell_user(&app, &user, UserMsg::ConnectionLost { conn });
            }
            UserWire::Input(traced) => {
                let unanswered = traced.payload.unreachable_answer(&user);
                let delivered = self.tell_user(&app, &user, UserMsg::Input(traced)).is_ok();
                if !delivered && let Some((call, answer)) = unanswered {
                    self.send_call(&app, &call, answer);
                }
            }
        }
    }

    async fn deliver_call(&self, app: AppId, id: CallId, msg: CallWire) {
        match msg {
            CallWire::Spawn { setup, reply } => {
                let responder: Responder<CommandOk> = self.responder(reply);
                let answer = self.spawn_call_here(app, setup).await;
                let _ = responder.send(answer.map(|()| CommandOk::Done));
            }
            CallWire::Input(traced) => {
                if let Some(actor) = self.call(&id) {
                    let _ = actor.cast(CallMsg::Input(traced));
                }
            }
            CallWire::Command { input, reply } => {
                self.command_call_here(&id, input, self.responder(reply));
            }
        }
    }

    async fn deliver_channel(&self, app: AppId, channel: ChannelName, msg: ChannelWire) {
        match msg {
            ChannelWire::Open { kind, reply } => {
                let responder: Responder<CommandOk> = self.responder(reply);
                let answer = self.channel_or_open(&app, &channel, Some(kind)).await;
                let _ = responder.send(answer.map(|_| CommandOk::Done));
            }
            ChannelWire::Join {
                user,
                role,
                may_publish,
                offer,
                reply,
            } => {
                let responder = self.responder(reply);
                self.join_here(&app, &channel, user, role, may_publish, offer, responder)
                    .await;
            }
            ChannelWire::Input(traced) => {
                if let Some(actor) = self.channel(&app, &channel) {
                    let _ = actor.cast(ChannelMsg::Input(traced));
                }
            }
            ChannelWire::MediaFlowing { from } => {
                if let Some(actor) = self.channel(&app, &channel) {
                    let _ = actor.cast(ChannelMsg::MediaFlowing { from });
                }
            }
            ChannelWire::Adopt { call } => {
                let asked = self.channel(&app, &channel).is_some_and(|actor| {
                    actor.cast(ChannelMsg::Adopt { call: call.clone() }).is_ok()
                });
                if !asked {
                    self.send_call(&app, &call, CallInput::ChannelPresent { present: false });
                }
            }
        }
    }
}
