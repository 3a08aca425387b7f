//! A user's session as it moves between nodes: a node that hands a partition to another (it leaves the
//! cluster, or a joining node takes its share) sends each session's [`UserSnapshot`]; the receiver
//! restores the machine ([`UserMachine::restore`]) and arms its timers again
//! ([`UserMachine::restored_timers`]), so the session — its connection, call, channels, buffered events
//! and numbering — goes on as if nothing had happened.
//!
//! **Format.** Serde data, versioned by [`USER_SNAPSHOT_VERSION`]. The rule between versions: a field
//! added later has a default (`#[serde(default)]`), so a snapshot from the previous version restores;
//! unknown fields are ignored, so a snapshot from the next version restores too as long as it keeps the
//! version number. A change that cannot follow that rule bumps the version, and a node refuses a
//! snapshot of a version it does not know ([`UserSnapshotError::Version`]) — the sender keeps the session.
//!
//! **Timers.** The machine checks its own deadlines when a timer fires (a stale firing does nothing), so
//! the receiver arms every timer at the deadline the snapshot implies; the takeover wait of an orphaned
//! call starts again in full.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{
    ActiveCall, Prepared, Pushed, Session, UserConfig, UserEffect, UserMachine, UserTimer,
};
use crate::types::{CallId, ChannelName, Millis, Role, UserId};

/// The version of [`UserSnapshot`] this build writes and reads.
pub const USER_SNAPSHOT_VERSION: u32 = 1;

/// A session's state, without the node's configuration (the receiver uses its own). See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSnapshot {
    version: u32,
    user: UserId,
    session: Session,
    token_expires_at: Millis,
    warned: bool,
    prepared: Option<Prepared>,
    call: Option<ActiveCall>,
    just_ended: Option<CallId>,
    channels: BTreeMap<ChannelName, Role>,
    /// Absent from a snapshot written before wire 1.5: the session then knows no broadcasters of its
    /// channels (their node's death is not told as members leaving).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    broadcasters: BTreeMap<ChannelName, BTreeSet<UserId>>,
    joining: BTreeSet<ChannelName>,
    seq: u64,
    buffered: Vec<Pushed>,
    resumed: bool,
    orphaned: Option<CallId>,
}

impl UserSnapshot {
    /// The user whose session this is.
    pub fn user(&self) -> &UserId {
        &self.user
    }
}

/// Why a snapshot cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum UserSnapshotError {
    #[error(
        "user snapshot version {0} is not known to this node (it knows {USER_SNAPSHOT_VERSION})"
    )]
    Version(u32),
}

impl UserMachine {
    /// This session as it stands, to go on elsewhere.
    pub fn snapshot(&self) -> UserSnapshot {
        UserSnapshot {
            version: USER_SNAPSHOT_VERSION,
            user: self.user.clone(),
            session: self.session,
            token_expires_at: self.token_expires_at,
            warned: self.warned,
            prepared: self.prepared.clone(),
            call: self.call.clone(),
            just_ended: self.just_ended.clone(),
            channels: self.channels.clone(),
            broadcasters: self.broadcasters.clone(),
            joining: self.joining.clone(),
            seq: self.seq,
            buffered: self.buffered.clone(),
            resumed: self.resumed,
            orphaned: self.orphaned.clone(),
        }
    }

    /// The session of `snapshot`, run with this node's `config`.
    pub fn restore(snapshot: UserSnapshot, config: UserConfig) -> Result<Self, UserSnapshotError> {
        if snapshot.version != USER_SNAPSHOT_VERSION {
            return Err(UserSnapshotError::Version(snapshot.version));
        }
        Ok(Self {
            user: snapshot.user,
            config,
            session: snapshot.session,
            token_expires_at: snapshot.token_expires_at,
            warned: snapshot.warned,
            prepared: snapshot.prepared,
            call: snapshot.call,
            just_ended: snapshot.just_ended,
            channels: snapshot.channels,
            broadcasters: snapshot.broadcasters,
            joining: snapshot.joining,
            seq: snapshot.seq,
            buffered: snapshot.buffered,
            resumed: snapshot.resumed,
            orphaned: snapshot.orphaned,
        })
    }

    /// The timers a restored session needs, due at the deadlines its state implies (`now` is the
    /// receiving node's clock; deadlines are wall-clock milliseconds, comparable across nodes).
    pub fn restored_timers(&self, now: Millis) -> Vec<UserEffect> {
        let mut fx = Vec::new();
        let mut at = |timer: UserTimer, due: Millis| {
            fx.push(UserEffect::SetTimer { timer, at: due });
        };
        if matches!(self.session, Session::Online(_) | Session::Away { .. }) {
            if !self.warned {
                let warn_at = self
                    .token_expires_at
                    .saturating_sub(self.config.token_warning_ms);
                at(UserTimer::TokenWarning, warn_at);
            }
            at(UserTimer::TokenExpiry, self.token_expires_at);
        }
        if let Session::Away { since } = self.session {
            at(UserTimer::Grace, since + self.config.grace_ms);
        }
        if self.orphaned.is_some() {
            at(UserTimer::Takeover, now + self.config.takeover_wait_ms);
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ConnId;
    use crate::user::UserInput;

    fn config() -> UserConfig {
        UserConfig {
            grace_ms: 30_000,
            token_warning_ms: 30_000,
            default_call_timeout_ms: 15_000,
            pause_at: crate::PauseAt::Accept,
            takeover_wait_ms: 15_000,
            billing_tick_ms: 0,
        }
    }

    fn timers(fx: &[UserEffect]) -> Vec<(UserTimer, u64)> {
        fx.iter()
            .filter_map(|e| match e {
                UserEffect::SetTimer { timer, at } => Some((*timer, *at)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_session_restored_elsewhere_goes_on_with_its_numbering_and_deadlines() {
        let mut m = UserMachine::new("alice".into(), config());
        m.handle(
            UserInput::Login {
                conn: ConnId(7),
                token_expires_at: 100_000,
            },
            0,
        )
        .expect("login");
        m.handle(UserInput::Prepare(Prepared::default()), 10)
            .expect("prepare");
        m.handle(UserInput::ConnectionLost { conn: ConnId(7) }, 1_000)
            .expect("connection lost");

        // Across the wire (the node link carries serde data) and back.
        let wire = serde_json::to_string(&m.snapshot()).expect("serializes");
        let snapshot: UserSnapshot = serde_json::from_str(&wire).expect("deserializes");
        let mut restored = UserMachine::restore(snapshot, config()).expect("same version");
        assert_eq!(restored.snapshot(), m.snapshot());
        assert!(restored.is_away() && restored.is_prepared());

        // Grace runs from the drop, the token keeps its deadlines.
        assert_eq!(
            timers(&restored.restored_timers(5_000)),
            vec![
                (UserTimer::TokenWarning, 70_000),
                (UserTimer::TokenExpiry, 100_000),
                (UserTimer::Grace, 31_000),
            ]
        );
        // The client comes back within grace on another connection: the same session resumes.
        restored
            .handle(
                UserInput::Login {
                    conn: ConnId(8),
                    token_expires_at: 100_000,
                },
                6_000,
            )
            .expect("resume");
        assert!(restored.resumed());
        assert_eq!(restored.connection(), Some(ConnId(8)));
    }

    #[test]
    fn a_snapshot_of_an_unknown_version_is_refused() {
        let m = UserMachine::new("alice".into(), config());
        let mut wire = serde_json::to_value(m.snapshot()).expect("serializes");
        wire["version"] = serde_json::json!(USER_SNAPSHOT_VERSION + 1);
        // An unknown field from a newer build is ignored; an unknown version is not.
        wire["added_later"] = serde_json::json!(true);
        let snapshot: UserSnapshot = serde_json::from_value(wire).expect("deserializes");
        assert_eq!(
            UserMachine::restore(snapshot, config()).err(),
            Some(UserSnapshotError::Version(USER_SNAPSHOT_VERSION + 1))
        );
    }
}
