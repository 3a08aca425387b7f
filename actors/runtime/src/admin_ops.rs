//! The business server's questions and orders, as [`Hub`] methods the admin API calls on any node.
//!
//! - One key (a user, a channel, a call): asked of the node that owns it, from its directory.
//! - Lists (online users, available hosts, live rooms): asked of every live node at once, merged in key
//!   order and cut to the page (each node returns at most a page after the cursor, so the merge is exact).
//!   A node that does not answer fails the list (UNAVAILABLE) rather than silently shortening it.
//! - Orders go through the actors like client commands do: ending a call is the call machine's
//!   `Terminate`; a kick records the ban first, then removes the user through the channel's machine.

use futures_util::future::join_all;
use showcall_machines::channel::ChannelInput;
use showcall_machines::{CallId, CallInput, ChannelName, UserId};

use crate::hub::Hub;
use crate::routing::Route;
use showcall_ports::bans::Ban;
use showcall_ports::directory::{
    CallEntry, ChannelEntry, DirectoryAnswer, DirectoryQuery, MAX_PAGE, UserEntry,
};
use showcall_ports::event_log::EventKind;
use showcall_protocol::commands::CommandOk;
use showcall_protocol::error::CommandError;
use showcall_protocol::keys::{ActorKey, AppId, NodeId};

/// A directory answer of the wrong kind: a node speaking another version.
fn mismatched() -> CommandError {
    CommandError::Unavailable("a node answered a different question".into())
}

impl Hub {
    /// Asks `node`'s directory (this node's own without a round trip).
    async fn ask_directory(
        &self,
        node: &NodeId,
        query: DirectoryQuery,
    ) -> Result<DirectoryAnswer, CommandError> {
        if node == self.node() {
            return self.answer_query(&query);
        }
        self.request(node, |reply| showcall_protocol::envelope::Body::Query {
            query,
            reply,
        })
        .await
    }

    /// This node's answer to `query`. A question about one actor is answered only by the node serving
    /// it: a node that just handed it over (or has not taken it yet) says "try again", never "no such
    /// user or call".
    pub(crate) fn answer_query(
        &self,
        query: &DirectoryQuery,
    ) -> Result<DirectoryAnswer, CommandError> {
        if let Some(key) = query.key()
            && !matches!(self.route(&key), Route::Here)
        {
            return Err(CommandError::Unavailable(format!(
                "{key} is moving between nodes; try again"
            )));
        }
        Ok(self.directory().answer(query))
    }

    /// Asks the node owning `key`; `None` when nobody owns it (no such actor anywhere).
    async fn ask_owner(
        &self,
        key: &ActorKey,
        query: DirectoryQuery,
    ) -> Result<Option<DirectoryAnswer>, CommandError> {
        let owner = match self.route(key) {
            Route::Here => self.node().clone(),
            Route::There(node) => node,
            Route::Nowhere => match self.placement().owner(key) {
                // A channel pinned nowhere is closed; a user or call key between owners is in flux.
                None if matches!(key, ActorKey::Channel(..)) => return Ok(None),
                _ => {
                    return Err(CommandError::Unavailable(format!(
                        "{key} is moving between nodes; try again"
                    )));
                }
            },
        };
        self.ask_directory(&owner, query).await.map(Some)
    }

    /// A user's presence, call and channels; `None` when the user has no session anywhere.
    pub async fn find_user(
        &self,
        app: &AppId,
        user: &UserId,
    ) -> Result<Option<UserEntry>, CommandError> {
        let key = ActorKey::User(app.clone(), user.clone());
        let query = DirectoryQuery::User {
            app: app.clone(),
            user: user.clone(),
        };
        match self.ask_owner(&key, query).await? {
            Some(DirectoryAnswer::User(entry)) => Ok(entry),
            Some(_) => Err(mismatched()),
            None => Ok(None),
        }
    }

    /// A channel's members; `None` when it is not open.
    pub async fn find_channel(
        &self,
        app: &AppId,
        channel: &ChannelName,
    ) -> Result<Option<ChannelEntry>, CommandError> {
        let key = ActorKey::Channel(app.clone(), channel.clone());
        let query = DirectoryQuery::Channel {
            app: app.clone(),
            channel: channel.clone(),
        };
        match self.ask_owner(&key, query).await? {
            Some(DirectoryAnswer::Channel(entry)) => Ok(entry),
            Some(_) => Err(mismatched()),
            None => Ok(None),
        }
    }

    /// A running call; `None` when there is no such call (never was, or ended).
    pub async fn find_call(
        &self,
        app: &AppId,
        call: &CallId,
    ) -> Result<Option<CallEntry>, CommandError> {
        let key = ActorKey::Call(app.clone(), call.clone());
        let query = DirectoryQuery::Call {
            app: app.clone(),
            id: call.clone(),
        };
        match self.ask_owner(&key, query).await? {
            Some(DirectoryAnswer::Call(entry)) => Ok(entry.filter(|e| &e.app == app)),
            Some(_) => Err(mismatched()),
            None => Ok(None),
        }
    }

    /// Asks every live node and merges their answers in key order, cut to `limit`.
    async fn ask_everyone<T, K: Ord>(
        &self,
        query: DirectoryQuery,
        limit: usize,
        pick: impl Fn(DirectoryAnswer) -> Option<Vec<T>>,
        key: impl Fn(&T) -> K,
    ) -> Result<Vec<T>, CommandError> {
        let nodes = self.placement().nodes();
        let answers = join_all(
            nodes
                .iter()
                .map(|node| self.ask_directory(node, query.clone())),
        )
        .await;
        let mut merged = Vec::new();
        for answer in answers {
            merged.extend(pick(answer?).ok_or_else(mismatched)?);
        }
        merged.sort_by_key(&key);
        merged.truncate(limit.min(MAX_PAGE));
        Ok(merged)
    }

    /// Users with a session, after `after` in id order; only hosts a viewer can call now when
    /// `hosts_only`.
    pub async fn list_users(
        &self,
        app: &AppId,
        after: Option<UserId>,
        limit: usize,
        hosts_only: bool,
    ) -> Result<Vec<UserEntry>, CommandError> {
        let query = DirectoryQuery::Users {
            app: app.clone(),
            after,
            limit,
            hosts_only,
        };
        self.ask_everyone(
            query,
            limit,
            |answer| match answer {
                DirectoryAnswer::Users(users) => Some(users),
                _ => None,
            },
            |u| u.user.clone(),
        )
        .await
    }

    /// Open live rooms, after `after` in name order.
    pub async fn list_live_channels(
        &self,
        app: &AppId,
        after: Option<ChannelName>,
        limit: usize,
    ) -> Result<Vec<ChannelEntry>, CommandError> {
        let query = DirectoryQuery::LiveChannels {
            app: app.clone(),
            after,
            limit,
        };
        self.ask_everyone(
            query,
            limit,
            |answer| match answer {
                DirectoryAnswer::Channels(channels) => Some(channels),
                _ => None,
            },
            |c| c.channel.clone(),
        )
        .await
    }

    /// Ends a running call for both parties (`EndedByServer` with `reason`); its record says
    /// `terminated` with `reason`. `NoSuchCall` when it is not running.
    pub async fn end_call(
        &self,
        app: &AppId,
        call: &CallId,
        reason: String,
    ) -> Result<(), CommandError> {
        let (port, answer) = ractor::concurrency::oneshot();
        self.command_call(
            app,
            call,
            CallInput::Terminate { reason },
            showcall_protocol::messages::Responder::Local(port.into()),
        );
        match tokio::time::timeout(showcall_protocol::commands::COMMAND_TIMEOUT, answer).await {
            Ok(Ok(answer)) => answer.map(|_: CommandOk| ()),
            Ok(Err(_)) => Err(CommandError::NoSuchCall),
            Err(_) => Err(CommandError::Unavailable(
                "the call did not answer in time".into(),
            )),
        }
    }

    /// Removes `user` from `channel` (the client hears onCallError 123; in a call channel the call
    /// ends), after recording `ban` if one is given, so a rejoin is refused from the moment this
    /// returns. A user who is not in the channel is only banned.
    pub async fn kick(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        ban: Option<Ban>,
    ) -> Result<(), CommandError> {
        let now = self.now_ms();
        if let Some(ban) = ban {
            self.bans()
                .ban(app, channel, user, ban)
                .await
                .map_err(CommandError::Unavailable)?;
        }
        let ban_seconds = ban.map_or(0, |b| b.until.saturating_sub(now).div_ceil(1000));
        self.emit(
            app,
            EventKind::MemberKicked {
                channel: channel.clone(),
                user: user.clone(),
                ban,
            },
        );
        self.send_channel(
            app,
            channel,
            ChannelInput::Kick {
                user: user.clone(),
                ban_seconds,
            },
        );
        Ok(())
    }

    /// Lifts a ban; `false` when there was none.
    pub async fn unban(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
    ) -> Result<bool, CommandError> {
        self.bans()
            .lift(app, channel, user)
            .await
            .map_err(CommandError::Unavailable)
    }
}
