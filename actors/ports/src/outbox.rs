//! What an actor may send: to other actors (wherever they live), to the registry that runs it. The
//! runtime's registry implements it; the actors never name it.

use std::future::Future;
use std::pin::Pin;

use ractor::ActorId;
use showcall_machines::{
    CallId, CallInput, CallSetup, ChannelInput, ChannelKind, ChannelName, Role, UserId, UserInput,
};
use showcall_protocol::media_edge::MemberMedia;
use showcall_protocol::messages::Responder;
use showcall_protocol::{AppId, CommandError, CommandOk};

/// The future of an outbox operation that waits for its outcome.
pub type Sending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// See the module docs. Sends never wait for the receiver: a full or missing mailbox is the receiver's
/// (or the router's) to report.
pub trait Outbox: Send + Sync + 'static {
    /// Tells `user`'s actor something; `false` when nobody runs it (no session anywhere).
    fn send_user(&self, app: &AppId, user: &UserId, input: UserInput) -> bool;
    fn send_call(&self, app: &AppId, call: &CallId, input: CallInput);
    fn send_channel(&self, app: &AppId, channel: &ChannelName, input: ChannelInput);
    /// A client's command for its call; the call machine's verdict answers `reply`.
    fn command_call(
        &self,
        app: &AppId,
        call: &CallId,
        input: CallInput,
        reply: Responder<CommandOk>,
    );
    /// A restored call asks whether `channel` is still its channel.
    fn ask_channel(&self, app: &AppId, channel: &ChannelName, call: CallId);
    /// Starts the actor of a call just placed (on the call's owner).
    fn spawn_call(&self, app: AppId, setup: CallSetup) -> Sending<'_, Result<(), CommandError>>;
    /// Opens a call's channel; resolves once it is open, so the parties' joins find it.
    fn open_call_channel<'a>(
        &'a self,
        app: &'a AppId,
        channel: &'a ChannelName,
        kind: ChannelKind,
    ) -> Sending<'a, Result<(), CommandError>>;
    /// Joins `user` to `channel` (opening a live room on first join); the channel answers `reply`.
    #[allow(clippy::too_many_arguments)]
    fn join_channel<'a>(
        &'a self,
        app: &'a AppId,
        channel: &'a ChannelName,
        user: UserId,
        role: Role,
        may_publish: bool,
        offer: Option<String>,
        reply: Responder<CommandOk>,
    ) -> Sending<'a, ()>;
    /// A member's command for its own media session in `channel` (an answer to the router's offer, an
    /// ICE restart, a layer cap): carried to the node that holds the session; answered on `reply`.
    fn member_media(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: UserId,
        command: MemberMedia,
        reply: Responder<CommandOk>,
    );
    fn forget_call(&self, call: &CallId);
    fn forget_channel(&self, app: &AppId, channel: &ChannelName, id: ActorId);
}
