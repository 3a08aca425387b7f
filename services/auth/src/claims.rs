//! The JWT payload, and the rules user ids and channel grants follow.

use serde::{Deserialize, Serialize};

use crate::{AuthError, Grants};

/// Longest user id, in bytes. Ids travel in every signaling frame and log line, so they stay short.
pub const MAX_USER_ID_LEN: usize = 64;

/// Longest channel name in a grant, in bytes.
pub const MAX_CHANNEL_LEN: usize = 64;

/// The channel grant that covers every channel.
pub const WILDCARD_CHANNEL: &str = "*";

/// The payload of a showcall token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The app id; it selects the secret that signs and verifies the token.
    pub app: String,
    /// The user id, unique within the app.
    pub sub: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds: the token is refused from this second on.
    pub exp: u64,
    /// What the holder may do.
    pub grants: Grants,
}

impl Claims {
    /// Checks the rules that hold for every token, signed or not: a valid user id and channel grant, a
    /// non-empty app id, and `iat < exp`. Expiry against a clock is checked by the verifier.
    pub fn validate(&self) -> Result<(), AuthError> {
        if self.app.is_empty() {
            return Err(AuthError::InvalidClaims("app id is empty".into()));
        }
        validate_user_id(&self.sub)?;
        if let Some(channel) = &self.grants.channel {
            validate_channel(channel)?;
        }
        if self.iat >= self.exp {
            return Err(AuthError::InvalidClaims(
                "token expires before it is issued".into(),
            ));
        }
        Ok(())
    }
}

/// Whether `c` may appear in a user id or channel name: `[A-Za-z0-9_.\-@:]`.
///
/// The set is small on purpose: ids end up in URLs, logs, metrics labels and etcd keys, and none of these
/// characters needs escaping in any of them.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | ':')
}

/// Checks a user id: 1..=[`MAX_USER_ID_LEN`] bytes, each in `[A-Za-z0-9_.\-@:]`.
pub fn validate_user_id(uid: &str) -> Result<(), AuthError> {
    if uid.is_empty() {
        return Err(AuthError::InvalidClaims("user id is empty".into()));
    }
    if uid.len() > MAX_USER_ID_LEN {
        return Err(AuthError::InvalidClaims(format!(
            "user id is longer than {MAX_USER_ID_LEN} bytes"
        )));
    }
    if !uid.chars().all(is_id_char) {
        return Err(AuthError::InvalidClaims(
            "user id may only contain A-Z a-z 0-9 _ . - @ :".into(),
        ));
    }
    Ok(())
}

/// Checks a channel grant: `*`, or a name of 1..=[`MAX_CHANNEL_LEN`] bytes in `[A-Za-z0-9_.\-@:]`.
pub fn validate_channel(channel: &str) -> Result<(), AuthError> {
    if channel == WILDCARD_CHANNEL {
        return Ok(());
    }
    if channel.is_empty() {
        return Err(AuthError::InvalidClaims("channel is empty".into()));
    }
    if channel.len() > MAX_CHANNEL_LEN {
        return Err(AuthError::InvalidClaims(format!(
            "channel is longer than {MAX_CHANNEL_LEN} bytes"
        )));
    }
    if !channel.chars().all(is_id_char) {
        return Err(AuthError::InvalidClaims(
            "channel may only contain A-Z a-z 0-9 _ . - @ : (or be `*`)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_follow_the_rules() {
        for ok in [
            "42",
            "alice",
            "a.b-c_d@example.com",
            "tenant:7",
            &"x".repeat(64),
        ] {
            assert_eq!(validate_user_id(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            &"x".repeat(65),
            "has space",
            "slash/",
            "ünï",
            "semi;colon",
        ] {
            assert!(
                matches!(validate_user_id(bad), Err(AuthError::InvalidClaims(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn channels_follow_the_rules() {
        for ok in ["*", "room-1", "show:42"] {
            assert_eq!(validate_channel(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "**", "room 1", &"c".repeat(65)] {
            assert!(validate_channel(bad).is_err(), "{bad:?}");
        }
    }
}
