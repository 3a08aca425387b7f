//! [`EtcdBans`]: channel bans kept in etcd, so every node refuses a banned user's join.
//!
//! One key per ban, `<prefix>bans/<app>/<channel>/<user>`, holding the ban as JSON and bound to a lease
//! of the ban's remaining duration: etcd removes it when the ban ends, and a node that restarts or joins
//! sees every ban in force. A join of a live room reads its key (a serializable read: served by the
//! local etcd member without a consensus round, enough for bans, which are set seconds before they
//! matter); the kick that sets a ban returns only once etcd has it.

use etcd_client::{Client, GetOptions, PutOptions};
use showcall_machines::{ChannelName, Millis, UserId};
use showcall_ports::bans::{Ban, BanFuture, Bans};
use showcall_protocol::AppId;

use crate::membership::Membership;

/// See the module docs.
#[derive(Clone)]
pub struct EtcdBans {
    client: Client,
    prefix: String,
}

impl std::fmt::Debug for EtcdBans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBans")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdBans {
    pub fn new(membership: &Membership) -> Self {
        Self {
            client: membership.client(),
            prefix: format!("{}bans/", membership.prefix()),
        }
    }

    fn key(&self, app: &AppId, channel: &ChannelName, user: &UserId) -> String {
        // Channel names and user ids never contain '/' (validated at the edge).
        format!("{}{app}/{channel}/{user}", self.prefix)
    }
}

fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

impl Bans for EtcdBans {
    fn ban(&self, app: &AppId, channel: &ChannelName, user: &UserId, ban: Ban) -> BanFuture<()> {
        let (mut client, key) = (self.client.clone(), self.key(app, channel, user));
        Box::pin(async move {
            let seconds = ban.until.saturating_sub(now_ms()).div_ceil(1000).max(1);
            let lease = client
                .lease_grant(seconds as i64, None)
                .await
                .map_err(|e| format!("etcd: {e}"))?;
            let value = serde_json::to_vec(&ban).expect("bans are plain serde data");
            client
                .put(key, value, Some(PutOptions::new().with_lease(lease.id())))
                .await
                .map_err(|e| format!("etcd: {e}"))?;
            Ok(())
        })
    }

    fn lift(&self, app: &AppId, channel: &ChannelName, user: &UserId) -> BanFuture<bool> {
        let (mut client, key) = (self.client.clone(), self.key(app, channel, user));
        Box::pin(async move {
            let deleted = client
                .delete(key, None)
                .await
                .map_err(|e| format!("etcd: {e}"))?;
            Ok(deleted.deleted() > 0)
        })
    }

    fn check(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        now: Millis,
    ) -> BanFuture<Option<Ban>> {
        let (mut client, key) = (self.client.clone(), self.key(app, channel, user));
        Box::pin(async move {
            let got = client
                .get(key, Some(GetOptions::new().with_serializable()))
                .await
                .map_err(|e| format!("etcd: {e}"))?;
            Ok(got
                .kvs()
                .first()
                .and_then(|kv| serde_json::from_slice::<Ban>(kv.value()).ok())
                // The lease rounds up to whole seconds: the ban's own end is exact.
                .filter(|ban| ban.until > now))
        })
    }
}
