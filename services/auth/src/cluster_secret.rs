//! The node link's credential: a secret every member of one cluster shares.
//!
//! A node opening a link stream to a peer sends `authorization: Bearer <token>`, an HS256 JWT signed
//! with the cluster secret that names the sending node (`iss`) and the node-link audience, valid for
//! [`LINK_TOKEN_TTL`]. The receiver verifies it once, when the stream opens, and then only accepts
//! envelopes that say they come from that node. A process without the secret cannot open a stream, and
//! a captured token is worth minutes (nothing once the link runs over TLS).
//!
//! Why a shared secret rather than mTLS with a cluster CA: it needs no certificate authority and no
//! per-node certificates, it works the same with TLS off (a cluster inside one private network) and on,
//! and rotating it is one rolling restart. mTLS remains possible in front (a service mesh) without
//! anything here changing.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AuthError;
use crate::token::map_decode_error;

/// How long a link token is valid: it is checked when a stream opens, so this only bounds replay.
pub const LINK_TOKEN_TTL: Duration = Duration::from_secs(300);

/// The audience of link tokens, so no other token signed with the same bytes passes.
const AUDIENCE: &str = "showcall-node-link";

/// Clock difference tolerated between two members.
const SKEW_SECONDS: u64 = 30;

/// The payload of a link token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LinkClaims {
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// The cluster's shared secret, ready to sign and verify link tokens. `Debug` never shows it.
#[derive(Clone)]
pub struct ClusterSecret {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl ClusterSecret {
    /// The secret; its strength is checked where it is configured.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        let secret = secret.as_ref();
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// A token saying `node` sends, valid from `now_unix` for [`LINK_TOKEN_TTL`].
    pub fn mint(&self, node: &str, now_unix: u64) -> Result<String, AuthError> {
        let claims = LinkClaims {
            iss: node.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now_unix,
            exp: now_unix + LINK_TOKEN_TTL.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::InvalidClaims(format!("cannot sign: {e}")))
    }

    /// The node a link token was minted for, if it was minted with this secret and is current.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<String, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<LinkClaims>(token, &self.decoding, &validation)
            .map_err(map_decode_error)?
            .claims;
        if now_unix >= claims.exp.saturating_add(SKEW_SECONDS) {
            return Err(AuthError::Expired { exp: claims.exp });
        }
        if claims.iat > now_unix.saturating_add(SKEW_SECONDS) {
            return Err(AuthError::InvalidClaims("issued in the future".into()));
        }
        if claims.iss.is_empty() {
            return Err(AuthError::InvalidClaims("iss is empty".into()));
        }
        Ok(claims.iss)
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    #[test]
    fn a_member_token_names_the_sending_node() {
        let secret = ClusterSecret::new("cluster-secret-0123456789");
        let token = secret.mint("node-2", NOW).unwrap();
        assert_eq!(secret.verify(&token, NOW + 1).unwrap(), "node-2");
    }

    #[test]
    fn a_stranger_with_another_secret_is_refused() {
        let ours = ClusterSecret::new("cluster-secret-0123456789");
        let theirs = ClusterSecret::new("guessed-secret-0123456789");
        let token = theirs.mint("node-9", NOW).unwrap();
        assert_eq!(ours.verify(&token, NOW), Err(AuthError::BadSignature));
        assert_eq!(ours.verify("not a token", NOW), Err(AuthError::Malformed));
    }

    #[test]
    fn an_old_token_is_refused() {
        let secret = ClusterSecret::new("cluster-secret-0123456789");
        let token = secret.mint("node-2", NOW).unwrap();
        let late = NOW + LINK_TOKEN_TTL.as_secs() + SKEW_SECONDS;
        assert!(matches!(
            secret.verify(&token, late),
            Err(AuthError::Expired { .. })
        ));
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let shown = format!("{:?}", ClusterSecret::new("cluster-secret-0123456789"));
        assert!(!shown.contains("0123"), "{shown}");
    }
}
