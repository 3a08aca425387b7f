//! Routing: every message to an actor goes through [`Hub::route`], one function for every actor kind
//! (`crate::routed` has what differs per kind). It delivers the message to the local actor when this
//! node owns the key's partition, sends it to the owner otherwise ([`showcall_protocol::envelope`]), and
//! parks it while the key has no owner:
//!
//! - A key whose partition has no owner right now (a dead node's partition not yet claimed, a handoff,
//!   this node fenced or its view a watch event behind): notifications and client commands for calls
//!   wait for an owner, in order, up to `flux::FLUX_WAIT` ([`crate::flux`]); other requests fail with
//!   UNAVAILABLE ("try again") at once and the client retries.
//! - A message leaving for another node has its handles detached ([`Detach`]): a local reply port is
//!   parked until that node answers, a local connection is relayed. Requests wait at most
//!   [`COMMAND_TIMEOUT`] for the answer — less when that node is not in the cluster (at once) or leaves
//!   it meanwhile (when its loss is known, `Hub::node_lost`).
//! - On the receiving side, [`Hub::deliver`] binds the handles to the sender's node and goes on as the
//!   local path does. An envelope for a user or call that arrives at a node which does not serve its
//!   partition (any more, or not yet) is passed on to the owner that node sees, or handled as above; an
//!   actor is only ever started on the node serving its partition (`Hub::start_here`).

use std::sync::atomic::Ordering;

use showcall_machines::{
    CallId, CallInput, CallSetup, ChannelInput, ChannelKind, ChannelName, ConnId, Millis, Role,
    UserId, UserInput,
};
use showcall_protocol::commands::{COMMAND_TIMEOUT, CommandOk, LoginOk, Outbound, UserCommand};
use showcall_protocol::envelope::{Body, Envelope, MAX_HOPS, ReplyTo, SinkTo};
use showcall_protocol::error::CommandError;
use showcall_protocol::inbox::ConnectionInbox;
use showcall_protocol::keys::{ActorKey, AppId, NodeId};
use showcall_protocol::media_edge::{EDGE_WIRE_MINOR, MemberMedia};
use showcall_protocol::messages::{
    Answer, BindHere, CallMsg, ChannelMsg, HandleMap, Local, Responder, SessionSink, TraceContext,
    Traced, UserMsg, Wire,
};
use showcall_protocol::sync::lock;
use tokio::sync::oneshot;

use crate::hub::Hub;
use crate::routed::{Delivery, Routed, no_owner};
use crate::session::Session;

/// Where a key's actor runs.
pub(crate) enum Route {
    Here,
    There(NodeId),
    /// Between owners (or this node is fenced): not deliverable now.
    Nowhere,
}

/// Detaches a message's handles for node `node` (see the module docs); `undo` when the message could
/// not be sent after all.
pub(crate) struct Detach<'a> {
    hub: &'a Hub,
    node: &'a NodeId,
    parked: Vec<u64>,
    relayed: Vec<u64>,
}

impl HandleMap<Local, Wire> for Detach<'_> {
    fn reply<A: Answer>(&mut self, reply: Responder<A>) -> ReplyTo {
        match reply {
            // Answered by the node that asked first, wherever the question goes on to.
            Responder::Remote { to, .. } => to,
            Responder::Local(port) => {
                let to = self.hub.await_answer(self.node, move |answer| {
                    let _ = port.send(answer);
                });
                self.parked.push(to.id);
                to
            }
        }
    }

    fn sink(&mut self, sink: SessionSink) -> SinkTo {
        match sink {
            SessionSink::Remote { to, .. } => to,
            SessionSink::Local(inbox) => {
                let id = self.hub.next_id();
                lock(&self.hub.inner.remote_sinks).insert(id, (self.node.clone(), inbox));
                self.relayed.push(id);
                SinkTo {
                    node: self.hub.node().clone(),
                    id,
                }
            }
        }
    }
}

impl Detach<'_> {
    /// The message was not sent: its questions fail with `why` now, its relays go.
    fn undo(self, why: &str) {
        for id in self.relayed {
            lock(&self.hub.inner.remote_sinks).remove(&id);
        }
        let failed: Result<(), CommandError> = Err(CommandError::Unavailable(why.to_owned()));
        let failed = serde_json::to_value(&failed).expect("an error is plain serde data");
        for id in self.parked {
            if let Some(answered) = self.hub.inner.pending.take(id) {
                answered(failed.clone());
            }
        }
    }
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
    pub(crate) fn route_opening(&self, app: &AppId, channel: &ChannelName) -> Route {
        let key = ActorKey::Channel(app.clone(), channel.clone());
        let placement = &self.inner.parts.placement;
        if placement.owner(&key).is_some() {
            return self.route(&key);
        }
        match placement.choose_channel_node(app, channel) {
            Some(node) if &node == placement.this_node() => Route::Here,
            Some(node) => Route::There(node),
            None => Route::Nowhere,
        }
    }

    /// Routes `msg` to the actor `name` of `app`, wherever it lives (see the module docs).
    pub(crate) fn route_msg<M: Routed>(&self, app: &AppId, name: &M::Name, msg: M) -> Delivery<M> {
        match msg.route(self, app, name) {
            Route::Here => msg.deliver_here(self, app.clone(), name.clone()),
            Route::There(node) => {
                self.send_away(&node, 0, None, app, name, msg);
                Delivery::Done
            }
            Route::Nowhere => {
                self.without_owner(app, name, msg);
                Delivery::Done
            }
        }
    }

    /// Asks actor `name` of `app` and waits for its answer (at most [`COMMAND_TIMEOUT`]).
    pub(crate) async fn ask<M: Routed, T: Answer>(
        &self,
        app: &AppId,
        name: &M::Name,
        ask: impl FnOnce(Responder<T>) -> M,
    ) -> Result<T, CommandError> {
        let (tx, rx) = ractor::concurrency::oneshot();
        let msg = ask(ractor::RpcReplyPort::from(tx).into());
        self.route_msg(app, name, msg).finish(self, app, name).await;
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(M::unanswered()),
            Err(_) => Err(CommandError::Unavailable(
                "the server did not answer in time".into(),
            )),
        }
    }

    /// Sends `msg` to `node` as that node reads it; `trace`: the span it continues (else the current
    /// one's).
    fn send_away<M: Routed>(
        &self,
        node: &NodeId,
        hops: u8,
        trace: Option<TraceContext>,
        app: &AppId,
        name: &M::Name,
        msg: M,
    ) {
        let minor = self.inner.parts.courier.reads_minor(node);
        for msg in msg.readable_by(minor) {
            let mut handles = Detach {
                hub: self,
                node,
                parked: Vec::new(),
                relayed: Vec::new(),
            };
            let Ok(wire) = msg.detach(&mut handles) else {
                let key = M::key(app, name);
                tracing::error!(%key, "a message of this node's own was routed to another node: dropped");
                return;
            };
            let mut envelope = self.envelope(M::body(app.clone(), name.clone(), wire));
            envelope.hops = hops;
            if let Some(trace) = &trace {
                envelope.trace = trace.clone();
            }
            if !self.inner.parts.courier.send(node, envelope) {
                handles.undo(&format!("node {node} is not in the cluster; try again"));
            }
        }
    }

    /// A message whose key has no owner now: it waits for one, or is refused (see the module docs).
    fn without_owner<M: Routed>(&self, app: &AppId, name: &M::Name, msg: M) {
        let key = M::key(app, name);
        if !msg.waits_for_owner() {
            msg.refuse(self, app, name, no_owner(&key));
            return;
        }
        // The message rides in the parked closure; a closure refused for want of room is called at once
        // as if its wait had run out.
        let (app, name) = (app.clone(), name.clone());
        let refusal = no_owner(&key);
        let parked: crate::hub::ParkedMessage = Box::new(move |hub, replay| {
            if replay {
                hub.route_msg(&app, &name, msg).settle(hub, &app, &name);
            } else {
                msg.refuse(hub, &app, &name, refusal);
            }
        });
        if let Err(refused) = self.hold_for_owner(key, parked) {
            refused(self, false);
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
        let _ = self.responder(reply).send(refused);
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
    /// (`Hub::node_lost`) instead of waiting for an answer that cannot come; if it never answers, the
    /// request is given up after the command timeout (`crate::pending_answers`).
    fn await_answer<T: Answer>(
        &self,
        node: &NodeId,
        complete: impl FnOnce(Result<T, CommandError>) + Send + 'static,
    ) -> ReplyTo {
        let id = self.next_id();
        let answered = Box::new(move |value| {
            complete(
                serde_json::from_value::<Result<T, CommandError>>(value).unwrap_or_else(|e| {
                    Err(CommandError::Unavailable(format!("unreadable answer: {e}")))
                }),
            );
        });
        self.inner.pending.insert(id, node, answered);
        ReplyTo {
            node: self.node().clone(),
            id,
        }
    }

    /// Binds handles read from another node's envelope to that node.
    fn bind_here(&self) -> BindHere {
        BindHere {
            node: self.node().clone(),
            courier: self.inner.parts.courier.clone(),
        }
    }

    /// A responder that answers request `to` of another node.
    pub(crate) fn responder<T>(&self, to: ReplyTo) -> Responder<T> {
        Responder::Remote {
            to,
            from: self.node().clone(),
            courier: self.inner.parts.courier.clone(),
        }
    }

    /// Sends a node-wide request (no actor's: a directory question, a handoff) to `node` and waits for
    /// the answer.
    pub(crate) async fn request<T: Answer>(
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
            self.inner.pending.take(id);
            return Err(CommandError::Unavailable(format!(
                "node {node} is not in the cluster; try again"
            )));
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            _ => {
                self.inner.pending.take(id);
                Err(CommandError::Unavailable(format!(
                    "node {node} did not answer in time"
                )))
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // What is sent to actors
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
        // An actor whose session just ended refuses the attach (its slot is cleared as it stops); the
        // second attempt starts a fresh session.
        let mut answer = Err(CommandError::SessionClosed);
        for _ in 0..2 {
            let sink = SessionSink::Local(inbox.clone());
            answer = self
                .ask(&app, &user, |reply| UserMsg::Attach {
                    conn,
                    sink,
                    token_expires_at,
                    reply,
                })
                .await;
            if !matches!(answer, Err(CommandError::SessionClosed)) {
                break;
            }
            // Not relayed for that attempt's session (a retry relays anew).
            self.forget_remote_inbox(&inbox);
        }
        let ok = match answer {
            Ok(ok) => ok,
            Err(e) => {
                // Not relayed from another node's session after all.
                self.forget_remote_inbox(&inbox);
                return Err(e);
            }
        };
        let session = Session {
            hub: self.clone(),
            app,
            user,
            conn,
        };
        Ok((session, ok))
    }

    /// A client command from connection `conn` to its user actor, wherever it lives.
    pub async fn user_command(
        &self,
        app: &AppId,
        user: &UserId,
        conn: ConnId,
        command: UserCommand,
    ) -> Result<CommandOk, CommandError> {
        // The steps this command sets off run on the caller's task (`inline_runs`).
        showcall_actors::inline_runs::within(self.ask(app, user, |reply| UserMsg::Command {
            conn,
            command,
            reply,
        }))
        .await
    }

    /// Connection `conn` dropped without logging out.
    pub(crate) fn connection_lost(&self, app: &AppId, user: &UserId, conn: ConnId) {
        self.route_msg(app, user, UserMsg::ConnectionLost { conn })
            .settle(self, app, user);
    }

    /// How many questions to other nodes wait for their answer now.
    pub fn answers_awaited(&self) -> usize {
        self.inner.pending.len()
    }

    /// Stops relaying to a connection whose user actor lives elsewhere (the connection ended).
    pub fn forget_remote_inbox(&self, inbox: &ConnectionInbox) {
        lock(&self.inner.remote_sinks).retain(|_, (_, tx)| !tx.same_inbox(inbox));
    }

    /// A notification to a user actor. `false` when the user has no session here to take it (the
    /// sender hears what that means: `UserInput::unreachable_answer`); `true` when it was delivered
    /// here, sent to the owner, or parked until the user's partition has one (a parked message that
    /// finds no session, or no owner in time, is answered by the router).
    pub fn send_user(&self, app: &AppId, user: &UserId, input: UserInput) -> bool {
        match self.route_msg(app, user, UserMsg::Input(Traced::new(input))) {
            Delivery::Absent(_) => false,
            delivery => {
                delivery.settle(self, app, user);
                true
            }
        }
    }

    /// Starts a call's actor on the owner of its key; it rings the callee itself.
    pub(crate) async fn spawn_call(
        &self,
        app: AppId,
        setup: CallSetup,
    ) -> Result<(), CommandError> {
        let id = setup.id.clone();
        let _: CommandOk = self
            .ask(&app, &id, |reply| CallMsg::Spawn { setup, reply })
            .await?;
        Ok(())
    }

    /// A notification to a call actor.
    pub fn send_call(&self, app: &AppId, call: &CallId, input: CallInput) {
        self.route_msg(app, call, CallMsg::Input(Traced::new(input)))
            .settle(self, app, call);
    }

    /// A client command for a call; the call machine's verdict is the answer.
    pub(crate) fn command_call(
        &self,
        app: &AppId,
        call: &CallId,
        input: CallInput,
        reply: Responder<CommandOk>,
    ) {
        self.route_msg(app, call, CallMsg::Command { input, reply })
            .settle(self, app, call);
    }

    /// Opens a call's private channel on its owner, waiting until it is open.
    pub(crate) async fn open_call_channel(
        &self,
        app: &AppId,
        channel: &ChannelName,
        kind: ChannelKind,
    ) -> Result<(), CommandError> {
        let _: CommandOk = self
            .ask(app, channel, |reply| ChannelMsg::Open { kind, reply })
            .await?;
        Ok(())
    }

    /// Asks a channel to admit `user` (opening a live channel on first use); the channel answers.
    /// Returns once the join is with the channel (or on its way to the channel's node), so the user's
    /// next messages to the channel come after it.
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
        // The joiner's gateway: where the answer goes (a reply forwarded by the user actor keeps
        // pointing at the node holding the connection). A viewer's media may go there.
        let client_node = match &reply {
            Responder::Local(_) => self.node().clone(),
            Responder::Remote { to, .. } => to.node.clone(),
        };
        let join = ChannelMsg::Join {
            user,
            role,
            may_publish,
            offer,
            reply,
            client_node: Some(client_node),
        };
        self.route_msg(app, channel, join)
            .finish(self, app, channel)
            .await;
    }

    /// A member's command for its media session in `channel`, carried by the channel's actor to the node
    /// holding the session. A channel on a node of wire 1.3 or older has every session on itself and
    /// does not read the command: it is applied to this node's router, as before rooms spanned nodes.
    pub(crate) fn member_media(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: UserId,
        command: MemberMedia,
        reply: Responder<CommandOk>,
    ) {
        let key = ActorKey::Channel(app.clone(), channel.clone());
        if let Route::There(node) = self.route(&key)
            && self.inner.parts.courier.reads_minor(&node) < EDGE_WIRE_MINOR
        {
            self.member_media_here(app, channel, user, command, reply);
            return;
        }
        let msg = ChannelMsg::MemberMedia {
            user,
            command,
            reply,
        };
        self.route_msg(app, channel, msg).settle(self, app, channel);
    }

    /// A member's media command applied to this node's router.
    fn member_media_here(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: UserId,
        command: MemberMedia,
        reply: Responder<CommandOk>,
    ) {
        let done = showcall_ports::media::member_media(
            self.media().as_ref(),
            app,
            channel,
            &user,
            command,
        );
        tokio::spawn(async move {
            let answer = done.await;
            let _ = reply.send(answer);
        });
    }

    /// A notification to a channel actor (only if the channel is open).
    pub fn send_channel(&self, app: &AppId, channel: &ChannelName, input: ChannelInput) {
        self.route_msg(app, channel, ChannelMsg::Input(Traced::new(input)))
            .settle(self, app, channel);
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
        self.route_msg(app, channel, ChannelMsg::Adopt { call })
            .settle(self, app, channel);
    }

    /// The media router forwarded `from`'s first frame in `channel`.
    pub fn media_flowing(&self, app: &AppId, channel: &ChannelName, from: UserId) {
        self.route_msg(app, channel, ChannelMsg::MediaFlowing { from })
            .settle(self, app, channel);
    }

    // ---------------------------------------------------------------------------------------------
    // Receiving
    // ---------------------------------------------------------------------------------------------

    /// Carries out an envelope from another node, in the order its link received it.
    pub async fn deliver(&self, envelope: Envelope) {
        // What the delivery sends or starts (a call actor, a call channel) continues the sender's trace.
        let cx = envelope.trace.context();
        // The steps it sets off run on the link's task, as a client's on its connection's
        // (`showcall_actors::inline_runs`): a ring from another node reaches the callee's outbox
        // without a task switch here.
        let delivery =
            opentelemetry::context::FutureExt::with_context(self.deliver_now(envelope), cx);
        showcall_actors::inline_runs::within(delivery).await
    }

    async fn deliver_now(&self, envelope: Envelope) {
        let from = envelope.from.clone();
        let (hops, trace) = (envelope.hops, envelope.trace);
        match envelope.body {
            Body::Reply { id, result } => match self.inner.pending.take(id) {
                Some(answered) => answered(result),
                None => tracing::debug!(id, %from, "late answer dropped"),
            },
            Body::Sink { id, outbound } => self.relay(id, [outbound]),
            Body::Sinks { id, outbounds } => self.relay(id, outbounds),
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
            Body::User { app, user, msg } => {
                self.receive::<UserMsg>(hops, trace, app, user, msg).await;
            }
            Body::Call { app, id, msg } => self.receive::<CallMsg>(hops, trace, app, id, msg).await,
            Body::Channel { app, channel, msg } => {
                self.receive::<ChannelMsg>(hops, trace, app, channel, msg)
                    .await
            }
            Body::Media { app, channel, op } => self.media_op(from, app, channel, op),
        }
    }

    /// Hands what another node pushed to this node's connection `id` (relayed until it is closed).
    fn relay(&self, id: u64, outbounds: impl IntoIterator<Item = Outbound>) {
        let mut sinks = lock(&self.inner.remote_sinks);
        for outbound in outbounds {
            let closing = matches!(outbound, Outbound::Close(_));
            if let Some((_, tx)) = sinks.get(&id) {
                let _ = tx.push(outbound);
            }
            if closing {
                sinks.remove(&id);
            }
        }
    }

    /// A message for actor `name` from another node. A user's or call's message whose partition this
    /// node does not serve (any more, or not yet) is not carried out here: a node that stopped owning
    /// the key between the sender's routing and the envelope's arrival would otherwise start an actor
    /// no owner knows of (a session that then answers "session is closed" from the real owner). It goes
    /// on to the owner this node sees, at most [`MAX_HOPS`] times; with no owner now, it waits for one
    /// or is refused, as when the sender itself finds the key between owners.
    async fn receive<M: Routed>(
        &self,
        hops: u8,
        trace: TraceContext,
        app: AppId,
        name: M::Name,
        wire: M::Wire,
    ) {
        let route = if M::PINNED {
            Route::Here
        } else {
            self.route(&M::key(&app, &name))
        };
        let msg = match M::bind(wire, &mut self.bind_here()) {
            Ok(msg) => msg,
            Err(_) => {
                let key = M::key(&app, &name);
                tracing::warn!(%key, "a node sent a message of its own: dropped");
                return;
            }
        };
        match route {
            Route::Here => {
                msg.deliver_here(self, app.clone(), name.clone())
                    .finish(self, &app, &name)
                    .await
            }
            Route::There(node) if hops < MAX_HOPS => {
                let key = M::key(&app, &name);
                tracing::debug!(%key, to = %node, hops, "envelope passed on to the key's owner");
                // Sent by this node now (a link carries only its member's envelopes), as that node
                // reads it; its answers and pushes go by the handles it carries (bound and detached
                // again, they are the same handles), to the node that asked.
                self.send_away(&node, hops + 1, Some(trace), &app, &name, msg);
            }
            // Between owners, or passed around too often (views a watch event apart).
            _ => self.without_owner(&app, &name, msg),
        }
    }
}
