//! The node's directory: what its actors are doing now, for the business-server API (presence, host
//! lists, channel members, calls).
//!
//! Each actor writes its own entry after every input it handles and removes it when it stops, so a
//! query never waits on an actor's mailbox (a host directory page must not queue behind a busy user) and
//! listing is a range scan in key order. Entries are the node's own actors only: cluster-wide lists ask
//! every node ([`crate::admin_ops`]) and merge, single-key lookups ask the key's owner.
//!
//! Paging is by key (keyset): a page returns entries after the last key of the previous one, so pages
//! stay consistent while users come and go (nothing is skipped or repeated because of an offset shift).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use showcall_machines::call::CallStatus;
use showcall_machines::{CallId, CallType, ChannelName, PublishState, Role, UserId};

use crate::hub::lock;
use crate::keys::{ActorKey, AppId};

/// Most entries one page may hold.
pub const MAX_PAGE: usize = 1000;

/// What a user is doing, coarsest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Presence {
    /// Has a session (possibly in its grace period), not live, not in a call.
    Online,
    /// Broadcasting in a live room.
    Live,
    /// In a call (ringing, connecting or connected).
    InCall,
}

/// One user with a session on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserEntry {
    pub user: UserId,
    pub presence: Presence,
    /// The connection dropped and the grace period runs.
    pub away: bool,
    /// Takes calls (prepared).
    pub prepared: bool,
    pub call: Option<UserCall>,
    pub channels: Vec<(ChannelName, Role)>,
}

impl UserEntry {
    /// A host a viewer can call right now: live, taking calls, connected, not in a call.
    pub fn is_available_host(&self) -> bool {
        self.presence == Presence::Live && self.prepared && !self.away && self.call.is_none()
    }
}

/// The user's side of its current call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCall {
    pub id: CallId,
    pub peer: UserId,
    /// The CallAPI state number the user's client shows (calling 2, connecting 3, connected 4).
    pub state: u32,
}

/// One channel open on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEntry {
    pub channel: ChannelName,
    /// The call whose private channel this is; `None` for a live room.
    pub call: Option<CallId>,
    pub members: Vec<MemberEntry>,
    pub broadcaster_paused: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEntry {
    pub user: UserId,
    pub role: Role,
    pub publish: PublishState,
}

/// One call whose actor runs on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEntry {
    pub app: AppId,
    pub id: CallId,
    pub caller: UserId,
    pub callee: UserId,
    pub channel: ChannelName,
    pub call_type: CallType,
    pub status: CallStatus,
}

/// A question one node answers from its directory (it crosses nodes: serde data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryQuery {
    User {
        app: AppId,
        user: UserId,
    },
    /// Users after `after` in id order, at most `limit`; only available hosts when `hosts_only`.
    Users {
        app: AppId,
        after: Option<UserId>,
        limit: usize,
        hosts_only: bool,
    },
    Channel {
        app: AppId,
        channel: ChannelName,
    },
    /// Live rooms after `after` in name order, at most `limit`.
    LiveChannels {
        app: AppId,
        after: Option<ChannelName>,
        limit: usize,
    },
    Call {
        app: AppId,
        id: CallId,
    },
}

impl DirectoryQuery {
    /// The one actor the question is about, when it is about one (its owner answers it).
    pub fn key(&self) -> Option<ActorKey> {
        match self {
            DirectoryQuery::User { app, user } => Some(ActorKey::User(app.clone(), user.clone())),
            DirectoryQuery::Call { app, id } => Some(ActorKey::Call(app.clone(), id.clone())),
            _ => None,
        }
    }
}

/// The answer to a [`DirectoryQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryAnswer {
    User(Option<UserEntry>),
    Users(Vec<UserEntry>),
    Channel(Option<ChannelEntry>),
    Channels(Vec<ChannelEntry>),
    Call(Option<CallEntry>),
}

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
    pub(crate) fn call_channels(&self) -> Vec<(AppId, ChannelName, CallId)> {
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
