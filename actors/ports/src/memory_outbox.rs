//! [`MemoryOutbox`]: an [`Outbox`] that records what an actor sent instead of delivering it — an
//! actor tested on its own sees only this (`showcall-actors`' `call_actor_alone` test).
//!
//! It says which users have a session (so a ring to anyone else finds nobody, as on a node where that
//! user is not logged in), opens every call channel at once, and refuses what needs a registry behind it
//! (starting a call, joining a channel) with UNAVAILABLE.

use std::collections::HashSet;
use std::sync::Mutex;

use ractor::ActorId;
use showcall_machines::{
    CallId, CallInput, CallSetup, ChannelInput, ChannelKind, ChannelName, Role, UserId, UserInput,
};
use showcall_protocol::media_edge::MemberMedia;
use showcall_protocol::messages::Responder;
use showcall_protocol::sync::lock;
use showcall_protocol::{AppId, CommandError, CommandOk};

use crate::outbox::{Outbox, Sending};

/// One thing an actor sent, in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    User {
        user: UserId,
        input: UserInput,
    },
    Call {
        call: CallId,
        input: CallInput,
    },
    /// A client's command forwarded to its call (its answer port is dropped: the client hears nothing).
    CallCommand {
        call: CallId,
        input: CallInput,
    },
    Channel {
        channel: ChannelName,
        input: ChannelInput,
    },
    AskChannel {
        channel: ChannelName,
        call: CallId,
    },
    SpawnCall(Box<CallSetup>),
    OpenChannel {
        channel: ChannelName,
        kind: ChannelKind,
    },
    JoinChannel {
        channel: ChannelName,
        user: UserId,
        role: Role,
    },
    /// A member's media command (its answer port answers UNAVAILABLE: no channel here).
    MemberMedia {
        channel: ChannelName,
        user: UserId,
        command: MemberMedia,
    },
    ForgetCall(CallId),
    ForgetChannel(ChannelName),
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    sessions: HashSet<UserId>,
    sent: Mutex<Vec<Sent>>,
}

impl MemoryOutbox {
    /// An outbox for which `users` have a session.
    pub fn with_sessions<'a>(users: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            sessions: users.into_iter().map(UserId::from).collect(),
            sent: Mutex::default(),
        }
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.sent).clone()
    }

    fn record(&self, sent: Sent) {
        lock(&self.sent).push(sent);
    }
}

impl Outbox for MemoryOutbox {
    fn send_user(&self, _: &AppId, user: &UserId, input: UserInput) -> bool {
        self.record(Sent::User {
            user: user.clone(),
            input,
        });
        self.sessions.contains(user)
    }

    fn send_call(&self, _: &AppId, call: &CallId, input: CallInput) {
        let call = call.clone();
        self.record(Sent::Call { call, input });
    }

    fn send_channel(&self, _: &AppId, channel: &ChannelName, input: ChannelInput) {
        let channel = channel.clone();
        self.record(Sent::Channel { channel, input });
    }

    fn command_call(&self, _: &AppId, call: &CallId, input: CallInput, _: Responder<CommandOk>) {
        let call = call.clone();
        self.record(Sent::CallCommand { call, input });
    }

    fn ask_channel(&self, _: &AppId, channel: &ChannelName, call: CallId) {
        let channel = channel.clone();
        self.record(Sent::AskChannel { channel, call });
    }

    fn spawn_call(&self, _: AppId, setup: CallSetup) -> Sending<'_, Result<(), CommandError>> {
        self.record(Sent::SpawnCall(Box::new(setup)));
        Box::pin(async { Err(CommandError::Unavailable("no registry here".into())) })
    }

    fn open_call_channel<'a>(
        &'a self,
        _: &'a AppId,
        channel: &'a ChannelName,
        kind: ChannelKind,
    ) -> Sending<'a, Result<(), CommandError>> {
        let channel = channel.clone();
        self.record(Sent::OpenChannel { channel, kind });
        Box::pin(async { Ok(()) })
    }

    fn join_channel<'a>(
        &'a self,
        _: &'a AppId,
        channel: &'a ChannelName,
        user: UserId,
        role: Role,
        _: bool,
        _: Option<String>,
        reply: Responder<CommandOk>,
    ) -> Sending<'a, ()> {
        let channel = channel.clone();
        self.record(Sent::JoinChannel {
            channel,
            user,
            role,
        });
        let _ = reply.send(Err(CommandError::Unavailable("no registry here".into())));
        Box::pin(async {})
    }

    fn member_media(
        &self,
        _: &AppId,
        channel: &ChannelName,
        user: UserId,
        command: MemberMedia,
        reply: Responder<CommandOk>,
    ) {
        let channel = channel.clone();
        self.record(Sent::MemberMedia {
            channel,
            user,
            command,
        });
        let _ = reply.send(Err(CommandError::Unavailable("no registry here".into())));
    }

    fn forget_call(&self, call: &CallId) {
        self.record(Sent::ForgetCall(call.clone()));
    }

    fn forget_channel(&self, _: &AppId, channel: &ChannelName, _: ActorId) {
        self.record(Sent::ForgetChannel(channel.clone()));
    }
}
