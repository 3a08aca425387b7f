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

use serde::{Deserialize, Serialize};
use showcall_machines::{ChannelName, Millis, Role, UserId};

use crate::hub::lock;
use crate::keys::AppId;

/// The privileges taken and when they come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub join: bool,
    pub publish_audio: bool,
    pub publish_video: bool,
    /// Unix milliseconds.
    pub until: Millis,
}

impl Ban {
    /// Why a join as `role` is refused now, if it is.
    pub fn refusal(&self, role: Role, now: Millis) -> Option<String> {
        if now >= self.until {
            return None;
        }
        let seconds = (self.until - now).div_ceil(1000);
        if self.join {
            return Some(format!("banned from this channel for {seconds} more s"));
        }
        if role == Role::Broadcaster && (self.publish_audio || self.publish_video) {
            return Some(format!(
                "banned from publishing in this channel for {seconds} more s"
            ));
        }
        None
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_ban_refuses_every_role_and_a_publish_ban_only_broadcasters_until_it_ends() {
        let join = Ban {
            join: true,
            publish_audio: false,
            publish_video: false,
            until: 10_000,
        };
        assert!(join.refusal(Role::Audience, 0).is_some());
        assert!(join.refusal(Role::Broadcaster, 9_999).is_some());
        assert_eq!(join.refusal(Role::Audience, 10_000), None);
        let publish = Ban {
            join: false,
            publish_audio: true,
            ..join
        };
        assert!(publish.refusal(Role::Broadcaster, 0).is_some());
        assert_eq!(publish.refusal(Role::Audience, 0), None);
    }
}
