//! The hub as its actors' context: what they may send ([`Outbox`]) and what they are given
//! ([`ActorContext`]). Every method is the hub's own; this only names them for the actors.

use std::sync::Arc;

use ractor::ActorId;
use showcall_actors::{ActorContext, TimerKey};
use showcall_machines::user::UserTimer;
use showcall_machines::{
    CallId, CallInput, CallSetup, CallTimer, ChannelInput, ChannelKind, ChannelName, Millis, Role,
    UserConfig, UserId, UserInput,
};
use showcall_ports::admission::Admission;
use showcall_ports::outbox::{Outbox, Sending};
use showcall_ports::{CallLedger, CallRecordSink, Directory, MediaControl, Placement};
use showcall_protocol::events::EventKind;
use showcall_protocol::media_edge::MemberMedia;
use showcall_protocol::messages::Responder;
use showcall_protocol::{ActorKey, AppId, CommandError, CommandOk, NodeId};

use crate::hub::Hub;
use crate::timer_wheel::Due;

impl Outbox for Hub {
    fn send_user(&self, app: &AppId, user: &UserId, input: UserInput) -> bool {
        Hub::send_user(self, app, user, input)
    }

    fn send_call(&self, app: &AppId, call: &CallId, input: CallInput) {
        Hub::send_call(self, app, call, input)
    }

    fn send_channel(&self, app: &AppId, channel: &ChannelName, input: ChannelInput) {
        Hub::send_channel(self, app, channel, input)
    }

    fn command_call(
        &self,
        app: &AppId,
        call: &CallId,
        input: CallInput,
        reply: Responder<CommandOk>,
    ) {
        Hub::command_call(self, app, call, input, reply)
    }

    fn ask_channel(&self, app: &AppId, channel: &ChannelName, call: CallId) {
        Hub::ask_channel(self, app, channel, call)
    }

    fn spawn_call(&self, app: AppId, setup: CallSetup) -> Sending<'_, Result<(), CommandError>> {
        Box::pin(Hub::spawn_call(self, app, setup))
    }

    fn open_call_channel<'a>(
        &'a self,
        app: &'a AppId,
        channel: &'a ChannelName,
        kind: ChannelKind,
    ) -> Sending<'a, Result<(), CommandError>> {
        Box::pin(Hub::open_call_channel(self, app, channel, kind))
    }

    fn join_channel<'a>(
        &'a self,
        app: &'a AppId,
        channel: &'a ChannelName,
        user: UserId,
        role: Role,
        may_publish: bool,
        offer: Option<String>,
        reply: Responder<CommandOk>,
    ) -> Sending<'a, ()> {
        Box::pin(Hub::join_channel(
            self,
            app,
            channel,
            user,
            role,
            may_publish,
            offer,
            reply,
        ))
    }

    fn member_media(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: UserId,
        command: MemberMedia,
        reply: Responder<CommandOk>,
    ) {
        Hub::member_media(self, app, channel, user, command, reply)
    }

    fn forget_call(&self, call: &CallId) {
        Hub::forget_call(self, call)
    }

    fn forget_channel(&self, app: &AppId, channel: &ChannelName, id: ActorId) {
        Hub::forget_channel(self, app, channel, id)
    }
}

impl ActorContext for Hub {
    fn node(&self) -> &NodeId {
        Hub::node(self)
    }

    fn now_ms(&self) -> Millis {
        Hub::now_ms(self)
    }

    fn user_config(&self) -> &UserConfig {
        Hub::user_config(self)
    }

    fn serves(&self, key: &ActorKey) -> bool {
        Hub::serves(self, key)
    }

    fn placement(&self) -> &Arc<dyn Placement> {
        Hub::placement(self)
    }

    fn media(&self) -> &Arc<dyn MediaControl> {
        Hub::media(self)
    }

    fn media_at(&self, node: &NodeId) -> Arc<dyn MediaControl> {
        if node == self.node() {
            self.media().clone()
        } else {
            Arc::new(crate::media_edges::RemoteMedia {
                hub: self.clone(),
                node: node.clone(),
            })
        }
    }

    fn records(&self) -> &Arc<dyn CallRecordSink> {
        Hub::records(self)
    }

    fn ledger(&self) -> &Arc<dyn CallLedger> {
        Hub::ledger(self)
    }

    fn admission(&self) -> &Arc<dyn Admission> {
        Hub::admission(self)
    }

    fn directory(&self) -> &Directory {
        Hub::directory(self)
    }

    fn emit(&self, app: &AppId, kind: EventKind) {
        Hub::emit(self, app, kind)
    }

    fn arm_user_timer(&self, app: &AppId, user: &UserId, timer: UserTimer, at: Millis) -> TimerKey {
        let due = Due::User {
            app: app.clone(),
            user: user.clone(),
            timer,
        };
        self.arm(at, due)
    }

    fn arm_call_timer(&self, _: &AppId, call: &CallId, timer: CallTimer, at: Millis) -> TimerKey {
        let due = Due::Call {
            call: call.clone(),
            timer,
        };
        self.arm(at, due)
    }

    fn cancel_timer(&self, key: TimerKey) {
        self.inner.timers.cancel(key)
    }
}
