//! Short-lived TURN credentials, minted from a secret the node shares with the TURN server.
//!
//! The scheme is the one coturn calls `use-auth-secret` (the "TURN REST API" draft,
//! draft-uberti-behave-turn-rest-00): the username is `<expiry>:<app>:<user>` (expiry in Unix seconds)
//! and the password is `base64(HMAC-SHA1(secret, username))`. The TURN server recomputes the password
//! from the username with the same secret and refuses a username whose expiry has passed, so nothing is
//! stored per user and a credential that leaks stops working at its expiry. The app and user in the
//! username show in the TURN server's logs, which tells an operator whose relay it is.
//!
//! SHA-1 is what the scheme (and every TURN server implementing it) uses; as an HMAC it is not open to
//! SHA-1's collision attacks.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;

/// The shortest secret accepted: the password is only as strong as the secret behind it.
pub const MIN_TURN_SECRET_LEN: usize = 32;

/// A username and password for the TURN servers that share [`TurnSecret`]'s secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `<expiry>:<app>:<user>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: String,
    /// When the TURN server stops accepting it, Unix seconds.
    pub expires_at: u64,
}

/// The secret shared with the TURN servers (coturn's `static-auth-secret`). Never logged.
#[derive(Clone)]
pub struct TurnSecret {
    key: hmac::Key,
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(<redacted>)")
    }
}

impl TurnSecret {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret),
        }
    }

    /// A credential for `user` of `app`, valid from `now_unix` for `ttl` (whole seconds, rounded down).
    pub fn mint(&self, app: &str, user: &str, ttl: Duration, now_unix: u64) -> TurnCredential {
        let expires_at = now_unix.saturating_add(ttl.as_secs());
        let username = format!("{expires_at}:{app}:{user}");
        let tag = hmac::sign(&self.key, username.as_bytes());
        TurnCredential {
            password: base64::engine::general_purpose::STANDARD.encode(tag.as_ref()),
            username,
            expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"turn-shared-secret-0123456789abcdef";

    #[test]
    fn the_password_is_the_base64_hmac_sha1_of_the_username_as_coturn_computes_it() {
        // Computed independently: python3 -c 'import hmac,hashlib,base64;
        // print(base64.b64encode(hmac.new(SECRET, b"1700003600:demo:alice", hashlib.sha1).digest()))'
        let credential =
            TurnSecret::new(SECRET).mint("demo", "alice", Duration::from_secs(3600), 1_700_000_000);
        assert_eq!(credential.username, "1700003600:demo:alice");
        assert_eq!(credential.password, "keF7qfJA7CtMCnCbi9nJvKR44PA=");
        assert_eq!(credential.expires_at, 1_700_003_600);
    }

    #[test]
    fn another_secret_gives_another_password() {
        let ttl = Duration::from_secs(60);
        let a = TurnSecret::new(SECRET).mint("demo", "alice", ttl, 0);
        let b = TurnSecret::new(b"another-secret-0123456789abcdefgh").mint("demo", "alice", ttl, 0);
        assert_eq!(a.username, b.username);
        assert_ne!(a.password, b.password);
    }

    #[test]
    fn the_secret_is_never_printed() {
        assert_eq!(
            format!("{:?}", TurnSecret::new(SECRET)),
            "TurnSecret(<redacted>)"
        );
    }
}
