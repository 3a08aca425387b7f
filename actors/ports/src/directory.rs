//! The node's directory: what its actors are doing now, for the business-server API (presence, host
//! lists, channel members, calls).
//!
//! Each actor writes its own entry after every input it handles and removes it when it stops, so a
//! query never waits on an actor's mailbox (a host directory page must not queue behind a busy user) and
//! listing is a range scan in key order. Entries are the node's own actors only: cluster-wide lists ask
//! every node (the runtime's `admin_ops`) and merge, single-key lookups ask the key's owner.
//!
//! Paging is by key (keyset): a page returns entries after the last key of the previous one, so pages
//! stay consistent while users come and go (nothing is skipped or repeated because of an offset shift).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use showcall_machines::{CallId, ChannelName, UserId};

use showcall_protocol::keys::AppId;
use showcall_protocol::sync::lock;

pub use showcall_protocol::directory::*;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Directory {
    users: Mutex<BTreeMap<(AppId, UserId), UserEntry>>,
    channels: Mutex<BTreeMap<(AppId, ChannelName), ChannelEntry>>,
    calls: Mutex<HashMap<CallId, CallEntry>>,
}

/// The entries of `map` for `app` after `after` (from `first`, a key no other sorts before, when
/// `None`), in key order, at most `limit`, that pass `keep`.
fn page<K: Ord + Clone, V: Clone>(
    map: &BTreeMap<(AppId, K), V>,
    app: &AppId,
    after: Option<&K>,
    first: K,
    limit: usize,
    keep: impl Fn(&V) -> bool,
) -> Vec<V> {
    let start = match after {
        Some(after) => Bound::Excluded((app.clone(), after.clone())),
        None => Bound::Included((app.clone(), first)),
    };
    map.range((start, Bound::Unbounded))
        .take_while(|((a, _), _)| a == app)
        .map(|(_, v)| v)
        .filter(|v| keep(v))
        .take(limit.min(MAX_PAGE))
        .cloned()
        .collect()
}

impl Directory {
    /// The call channels open on this node, with their app and call.
    pub fn call_channels(&self) -> Vec<(AppId, ChannelName, CallId)> {
        lock(&self.channels)
            .iter()
            .filter_map(|((app, name), entry)| {
                entry
                    .call
                    .clone()
                    .map(|call| (app.clone(), name.clone(), call))
            })
            .collect()
    }

    pub fn set_user(&self, app: &AppId, entry: UserEntry) {
        lock(&self.users).insert((app.clone(), entry.user.clone()), entry);
    }

    pub fn remove_user(&self, app: &AppId, user: &UserId) {
        lock(&self.users).remove(&(app.clone(), user.clone()));
    }

    pub fn set_channel(&self, app: &AppId, entry: ChannelEntry) {
        lock(&self.channels).insert((app.clone(), entry.channel.clone()), entry);
    }

    pub fn remove_channel(&self, app: &AppId, channel: &ChannelName) {
        lock(&self.channels).remove(&(app.clone(), channel.clone()));
    }

    pub fn set_call(&self, entry: CallEntry) {
        lock(&self.calls).insert(entry.id.clone(), entry);
    }

    pub fn remove_call(&self, id: &CallId) {
        lock(&self.calls).remove(id);
    }

    /// Answers from this node's entries only.
    pub fn answer(&self, query: &DirectoryQuery) -> DirectoryAnswer {
        match query {
            DirectoryQuery::User { app, user } => {
                DirectoryAnswer::User(lock(&self.users).get(&(app.clone(), user.clone())).cloned())
            }
            DirectoryQuery::Users {
                app,
                after,
                limit,
                hosts_only,
            } => {
                let users = lock(&self.users);
                let first = UserId(String::new());
                DirectoryAnswer::Users(page(&users, app, after.as_ref(), first, *limit, |u| {
                    !hosts_only || u.is_available_host()
                }))
            }
            DirectoryQuery::Channel { app, channel } => DirectoryAnswer::Channel(
                lock(&self.channels)
                    .get(&(app.clone(), channel.clone()))
                    .cloned(),
            ),
            DirectoryQuery::LiveChannels { app, after, limit } => {
                let channels = lock(&self.channels);
                let first = ChannelName(String::new());
                DirectoryAnswer::Channels(page(
                    &channels,
                    app,
                    after.as_ref(),
                    first,
                    *limit,
                    |c| c.call.is_none(),
                ))
            }
            DirectoryQuery::Call { id, .. } => {
                DirectoryAnswer::Call(lock(&self.calls).get(id).cloned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, presence: Presence) -> UserEntry {
        UserEntry {
            user: UserId(id.into()),
            presence,
            away: false,
            prepared: true,
            call: None,
            channels: Vec::new(),
        }
    }

    fn ids(answer: DirectoryAnswer) -> Vec<String> {
        match answer {
            DirectoryAnswer::Users(users) => users.into_iter().map(|u| u.user.0).collect(),
            other => panic!("not a user list: {other:?}"),
        }
    }

    #[test]
    fn pages_are_keyset_pages_of_one_app() {
        let directory = Directory::default();
        let (a, b) = (AppId("a".into()), AppId("b".into()));
        for id in ["u3", "u1", "u2", "u4"] {
            directory.set_user(&a, user(id, Presence::Online));
        }
        directory.set_user(&b, user("u0", Presence::Online));
        directory.set_user(&b, user("u9", Presence::Online));
        let query = |after: Option<&str>| DirectoryQuery::Users {
            app: a.clone(),
            after: after.map(|s| UserId(s.into())),
            limit: 2,
            hosts_only: false,
        };
        assert_eq!(ids(directory.answer(&query(None))), ["u1", "u2"]);
        assert_eq!(ids(directory.answer(&query(Some("u2")))), ["u3", "u4"]);
        assert!(ids(directory.answer(&query(Some("u4")))).is_empty());
        // An app whose ids sort before the others' still starts at its own first user.
        let first_of_b = DirectoryQuery::Users {
            app: b.clone(),
            after: None,
            limit: 10,
            hosts_only: false,
        };
        assert_eq!(ids(directory.answer(&first_of_b)), ["u0", "u9"]);
    }

    #[test]
    fn only_live_idle_prepared_connected_users_are_available_hosts() {
        let directory = Directory::default();
        let app = AppId("a".into());
        directory.set_user(&app, user("host", Presence::Live));
        directory.set_user(&app, user("viewer", Presence::Online));
        let mut away = user("away-host", Presence::Live);
        away.away = true;
        directory.set_user(&app, away);
        let mut busy = user("busy-host", Presence::Live);
        busy.call = Some(UserCall {
            id: CallId("c".into()),
            peer: UserId("v".into()),
            state: 4,
        });
        directory.set_user(&app, busy);
        let hosts = DirectoryQuery::Users {
            app,
            after: None,
            limit: 10,
            hosts_only: true,
        };
        assert_eq!(ids(directory.answer(&hosts)), ["host"]);
    }
}
