//! Credentials of the business API: per-app API keys, and the short-lived admin tokens a business server
//! signs with them.
//!
//! The scheme is LiveKit's, which operators of this kind of system already know: each app has one or
//! more API keys (a public key id and a secret); the caller signs a short-lived HS256 JWT with the
//! secret, puts the key id in `iss`, and sends it as `authorization: Bearer <token>`. The secret itself
//! never crosses the wire, so a captured request is worth at most [`MAX_ADMIN_TOKEN_TTL`] to an
//! eavesdropper (and nothing once TLS is on), and the key id says which app acts — an app's key acts on
//! that app only. Two keys of one app are valid at once, which is how a secret is rotated: add the new
//! key, move the business servers to it, remove the old one.
//!
//! Admin tokens and user tokens cannot stand in for each other: they are signed with different secrets
//! (the node's config refuses an API secret equal to the app's token secret), and each verifier
//! requires the other kind's missing claims (`iss` here, `app` and `sub` for user tokens).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AuthError;
use crate::token::map_decode_error;

/// The longest an admin token may live, counted from the verifier's clock: a leaked token is worth
/// this at most. Business servers mint one per request or cache one for a few minutes.
pub const MAX_ADMIN_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Clock difference tolerated between the business server that signs and the node that verifies
/// (they are different machines, unlike a user token's minting node and verifying node, which share
/// a cluster's time discipline closely enough that user tokens get none).
pub const ADMIN_CLOCK_SKEW: Duration = Duration::from_secs(30);

/// The longest accepted API key id: it is logged and sent in every request.
pub const MAX_API_KEY_ID_LEN: usize = 64;

const ALGORITHM: Algorithm = Algorithm::HS256;

/// One API key: the app it acts for and its secret, ready to sign and verify.
#[derive(Clone)]
struct ApiKey {
    app: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Every API key this node accepts, by key id. Key ids are unique across apps (the node's config
/// checks it), so a key id alone names the app.
///
/// The `Debug` output lists key ids and their apps only, never secrets.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: HashMap<String, ApiKey>,
}

impl ApiKeys {
    /// Builds the key set from `(key id, app id, secret)` triples; a later triple with the same key id
    /// replaces an earlier one (the config refuses duplicates before this).
    pub fn from_triples<I, K, A, S>(triples: I) -> Self
    where
        I: IntoIterator<Item = (K, A, S)>,
        K: Into<String>,
        A: Into<String>,
        S: AsRef<[u8]>,
    {
        let keys = triples
            .into_iter()
            .map(|(id, app, secret)| {
                let secret = secret.as_ref();
                let key = ApiKey {
                    app: app.into(),
                    encoding: EncodingKey::from_secret(secret),
                    decoding: DecodingKey::from_secret(secret),
                };
                (id.into(), key)
            })
            .collect();
        Self { keys }
    }

    /// The app `key_id` acts for, when it is configured here.
    pub fn app_of(&self, key_id: &str) -> Option<&str> {
        self.keys.get(key_id).map(|k| k.app.as_str())
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is configured (then every admin request is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<(&str, &str)> = self
            .keys
            .iter()
            .map(|(id, k)| (id.as_str(), k.app.as_str()))
            .collect();
        keys.sort_unstable();
        f.debug_struct("ApiKeys").field("keys", &keys).finish()
    }
}

/// The payload of an admin token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminClaims {
    /// The API key id that signed the token.
    pub iss: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not valid from this Unix second on.
    pub exp: u64,
    /// Not valid before this Unix second (optional, as in JWT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Who made an admin request, once its token verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCaller {
    /// The app the key acts for: the only app the request may read or change.
    pub app: String,
    /// The key that signed, for logs (never secret).
    pub key_id: String,
}

/// Mints admin tokens (the `showcall admin-token` command, the tests, a Rust business server).
/// Stateless: the keys and the clock are passed in.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminTokenIssuer;

impl AdminTokenIssuer {
    /// Signs a token with `key_id`'s secret, valid from `now_unix` for `ttl` (whole seconds, at least
    /// one, at most [`MAX_ADMIN_TOKEN_TTL`]). Returns the token and its expiry, Unix seconds.
    pub fn mint(
        keys: &ApiKeys,
        key_id: &str,
        ttl: Duration,
        now_unix: u64,
    ) -> Result<(String, u64), AuthError> {
        let key = keys.keys.get(key_id).ok_or(AuthError::UnknownKey)?;
        Self::sign(key_id, &key.encoding, ttl, now_unix)
    }

    /// Signs a token for `key_id` with `secret` directly: what a business server holding one key and
    /// its secret does, with no key set around it.
    pub fn mint_with_secret(
        key_id: &str,
        secret: &[u8],
        ttl: Duration,
        now_unix: u64,
    ) -> Result<(String, u64), AuthError> {
        Self::sign(key_id, &EncodingKey::from_secret(secret), ttl, now_unix)
    }

    fn sign(
        key_id: &str,
        encoding: &EncodingKey,
        ttl: Duration,
        now_unix: u64,
    ) -> Result<(String, u64), AuthError> {
        if ttl.as_secs() == 0 || ttl > MAX_ADMIN_TOKEN_TTL {
            return Err(AuthError::InvalidClaims(format!(
                "an admin token lives between 1 s and {} s",
                MAX_ADMIN_TOKEN_TTL.as_secs()
            )));
        }
        let exp = now_unix + ttl.as_secs();
        let claims = AdminClaims {
            iss: key_id.to_owned(),
            iat: now_unix,
            exp,
            nbf: None,
        };
        let token = jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, encoding)
            .map_err(|e| AuthError::InvalidClaims(format!("cannot sign: {e}")))?;
        Ok((token, exp))
    }
}

/// Verifies admin tokens. Stateless: the keys and the clock are passed in.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdminTokenVerifier;

/// The only claim read before the signature is checked: it selects the secret.
#[derive(Deserialize)]
struct UnverifiedIssuer {
    iss: String,
}

impl AdminTokenVerifier {
    /// Verifies `token` at `now_unix` and names the caller.
    ///
    /// The unverified `iss` picks the key; the signature is checked with its secret (HS256 only); then
    /// the time claims, each with [`ADMIN_CLOCK_SKEW`] of tolerance: expired, not yet valid, and an
    /// expiry further ahead than [`MAX_ADMIN_TOKEN_TTL`] (a long-lived token is refused, not trusted for
    /// its first hour) are all refused.
    pub fn verify(keys: &ApiKeys, token: &str, now_unix: u64) -> Result<AdminCaller, AuthError> {
        let unverified = jsonwebtoken::dangerous::insecure_decode::<UnverifiedIssuer>(token)
            .map_err(|_| AuthError::Malformed)?;
        let key_id = unverified.claims.iss;
        let key = keys.keys.get(&key_id).ok_or(AuthError::UnknownKey)?;

        let mut validation = Validation::new(ALGORITHM);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss"]);
        let claims = jsonwebtoken::decode::<AdminClaims>(token, &key.decoding, &validation)
            .map_err(map_decode_error)?
            .claims;

        let skew = ADMIN_CLOCK_SKEW.as_secs();
        if now_unix >= claims.exp.saturating_add(skew) {
            return Err(AuthError::Expired { exp: claims.exp });
        }
        if claims
            .nbf
            .is_some_and(|nbf| now_unix.saturating_add(skew) < nbf)
        {
            return Err(AuthError::InvalidClaims("not valid yet (nbf)".into()));
        }
        if claims.exp > now_unix + MAX_ADMIN_TOKEN_TTL.as_secs() + skew {
            return Err(AuthError::InvalidClaims(format!(
                "exp is more than {} s ahead: admin tokens are short-lived",
                MAX_ADMIN_TOKEN_TTL.as_secs()
            )));
        }
        Ok(AdminCaller {
            app: key.app.clone(),
            key_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppKeys, Grants, TokenIssuer, TokenVerifier};

    const NOW: u64 = 1_700_000_000;
    const MINUTE: Duration = Duration::from_secs(60);

    fn keys() -> ApiKeys {
        ApiKeys::from_triples([
            ("shop-key-1", "shop", "shop-api-secret-0123456789"),
            ("shop-key-2", "shop", "shop-api-secret-rotated-987"),
            ("blog-key", "blog", "blog-api-secret-0123456789"),
        ])
    }

    #[test]
    fn a_minted_token_names_its_app_and_key() {
        let (token, exp) = AdminTokenIssuer::mint(&keys(), "shop-key-1", MINUTE, NOW).unwrap();
        assert_eq!(exp, NOW + 60);
        assert_eq!(
            AdminTokenVerifier::verify(&keys(), &token, NOW + 1).unwrap(),
            AdminCaller {
                app: "shop".into(),
                key_id: "shop-key-1".into()
            }
        );
    }

    #[test]
    fn both_keys_of_an_app_are_valid_at_once() {
        for key in ["shop-key-1", "shop-key-2"] {
            let (token, _) = AdminTokenIssuer::mint(&keys(), key, MINUTE, NOW).unwrap();
            assert_eq!(
                AdminTokenVerifier::verify(&keys(), &token, NOW)
                    .unwrap()
                    .app,
                "shop"
            );
        }
    }

    #[test]
    fn a_removed_key_is_refused() {
        let (token, _) = AdminTokenIssuer::mint(&keys(), "shop-key-1", MINUTE, NOW).unwrap();
        let rotated =
            ApiKeys::from_triples([("shop-key-2", "shop", "shop-api-secret-rotated-987")]);
        assert_eq!(
            AdminTokenVerifier::verify(&rotated, &token, NOW),
            Err(AuthError::UnknownKey)
        );
    }

    #[test]
    fn a_forged_signature_is_refused() {
        let (token, _) =
            AdminTokenIssuer::mint_with_secret("shop-key-1", b"guessed-secret-000000", MINUTE, NOW)
                .unwrap();
        assert_eq!(
            AdminTokenVerifier::verify(&keys(), &token, NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn expiry_is_checked_with_the_clock_skew() {
        let (token, exp) = AdminTokenIssuer::mint(&keys(), "blog-key", MINUTE, NOW).unwrap();
        let skew = ADMIN_CLOCK_SKEW.as_secs();
        assert!(AdminTokenVerifier::verify(&keys(), &token, exp + skew - 1).is_ok());
        assert_eq!(
            AdminTokenVerifier::verify(&keys(), &token, exp + skew),
            Err(AuthError::Expired { exp })
        );
    }

    #[test]
    fn a_long_lived_token_is_refused() {
        let claims = AdminClaims {
            iss: "blog-key".into(),
            iat: NOW,
            exp: NOW + 30 * 24 * 3600,
            nbf: None,
        };
        let token = jsonwebtoken::encode(
            &Header::new(ALGORITHM),
            &claims,
            &EncodingKey::from_secret(b"blog-api-secret-0123456789"),
        )
        .unwrap();
        assert!(matches!(
            AdminTokenVerifier::verify(&keys(), &token, NOW),
            Err(AuthError::InvalidClaims(_))
        ));
        assert!(AdminTokenIssuer::mint(&keys(), "blog-key", 2 * MAX_ADMIN_TOKEN_TTL, NOW).is_err());
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let claims = AdminClaims {
            iss: "blog-key".into(),
            iat: NOW,
            exp: NOW + 600,
            nbf: Some(NOW + 300),
        };
        let token = jsonwebtoken::encode(
            &Header::new(ALGORITHM),
            &claims,
            &EncodingKey::from_secret(b"blog-api-secret-0123456789"),
        )
        .unwrap();
        assert!(AdminTokenVerifier::verify(&keys(), &token, NOW).is_err());
        assert!(AdminTokenVerifier::verify(&keys(), &token, NOW + 300).is_ok());
    }

    #[test]
    fn user_and_admin_tokens_do_not_stand_in_for_each_other() {
        // Even with the same secret on both sides, the claims differ.
        let secret = "one-secret-for-both-0123";
        let app_keys = AppKeys::from_pairs([("shop", secret)]);
        let api_keys = ApiKeys::from_triples([("shop", "shop", secret)]);
        let (user_token, _) = TokenIssuer::mint(
            &app_keys,
            "shop",
            "u1",
            MINUTE,
            Grants {
                signal: true,
                ..Grants::default()
            },
            NOW,
        )
        .unwrap();
        assert!(AdminTokenVerifier::verify(&api_keys, &user_token, NOW).is_err());
        let (admin_token, _) = AdminTokenIssuer::mint(&api_keys, "shop", MINUTE, NOW).unwrap();
        assert!(TokenVerifier::verify(&app_keys, &admin_token, NOW).is_err());
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "a.b", "a.b.c", "Bearer x"] {
            assert_eq!(
                AdminTokenVerifier::verify(&keys(), token, NOW),
                Err(AuthError::Malformed),
                "{token:?}"
            );
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let shown = format!("{:?}", keys());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("shop-key-1"), "{shown}");
    }
}
