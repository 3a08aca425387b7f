//! A channel ban: which privileges a business server took from a user in a channel, and until when.
//! Where bans are kept is `showcall-ports`' `bans`.

use serde::{Deserialize, Serialize};
use showcall_machines::{Millis, Role};

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
