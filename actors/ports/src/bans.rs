//! Channel bans: which privileges a business server took from a user in a channel, and until when.
//!
//! A kick with a ban duration records a [`Ban`] here before the user is removed, so a rejoin racing the
//! kick is already refused. Joins of live rooms check it (call channels admit only their two parties
//! anyway, and a kick there ends the call). One node keeps bans in memory ([`MemoryBans`]); a cluster
//! keeps them in etcd with a lease of the ban's duration, so every node sees them and they vanish when
//! they end (`showcall-cluster`'s `EtcdBans`).
//!
//! Privileges: `join` refuses every join; `publish_audio` or `publish_video` refuses joining as the
//! broadcaster (audience joins are allowed). A session's media layout is fixed at join (one audio and one
//! video line), so a ban on one kind refuses publishing altogether rather than forwarding the other
//! kind alone.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use showcall_machines::{ChannelName, Millis, UserId};

use showcall_protocol::keys::AppId;
use showcall_protocol::sync::lock;

pub use showcall_protocol::bans::Ban;

/// What a ban store answers, later.
pub type BanFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// Where bans are kept (see the module docs). Errors are the store being unreachable.
pub trait Bans: Send + Sync + Debug + 'static {
    /// Records `ban` (replacing an earlier one of the same user in the same channel).
    fn ban(&self, app: &AppId, channel: &ChannelName, user: &UserId, ban: Ban) -> BanFuture<()>;
    /// Lifts it; `true` when there was one.
    fn lift(&self, app: &AppId, channel: &ChannelName, user: &UserId) -> BanFuture<bool>;
    /// The ban in force, if any.
    fn check(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        now: Millis,
    ) -> BanFuture<Option<Ban>>;
}

type BanKey = (AppId, ChannelName, UserId);

/// One node's bans, in memory.
#[derive(Debug, Default)]
pub struct MemoryBans {
    bans: Mutex<HashMap<BanKey, Ban>>,
}

impl Bans for MemoryBans {
    fn ban(&self, app: &AppId, channel: &ChannelName, user: &UserId, ban: Ban) -> BanFuture<()> {
        lock(&self.bans).insert((app.clone(), channel.clone(), user.clone()), ban);
        Box::pin(async { Ok(()) })
    }

    fn lift(&self, app: &AppId, channel: &ChannelName, user: &UserId) -> BanFuture<bool> {
        let lifted = lock(&self.bans)
            .remove(&(app.clone(), channel.clone(), user.clone()))
            .is_some();
        Box::pin(async move { Ok(lifted) })
    }

    fn check(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        now: Millis,
    ) -> BanFuture<Option<Ban>> {
        let mut bans = lock(&self.bans);
        // Ended bans go as they are found (a node keeps at most the bans still asked about).
        bans.retain(|_, ban| ban.until > now);
        let ban = bans
            .get(&(app.clone(), channel.clone(), user.clone()))
            .copied();
        Box::pin(async move { Ok(ban) })
    }
}
