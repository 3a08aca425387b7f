//! Minting and verifying tokens.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::Deserialize;

use crate::{AppKeys, AuthError, Claims, Grants};

/// The only algorithm showcall signs with or accepts.
const ALGORITHM: Algorithm = Algorithm::HS256;

/// Mints tokens. Stateless: the secrets are passed in, like the clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenIssuer;

impl TokenIssuer {
    /// Mints a token for user `uid` of `app`, valid from `now_unix` for `ttl` (whole seconds; any fraction
    /// is dropped). Returns the token and its expiry, Unix seconds.
    ///
    /// Fails with [`AuthError::UnknownApp`] when `app` has no secret, and [`AuthError::InvalidClaims`]
    /// when the user id or channel grant breaks the rules or `ttl` is under a second.
    pub fn mint(
        keys: &AppKeys,
        app: &str,
        uid: &str,
        ttl: Duration,
        grants: Grants,
        now_unix: u64,
    ) -> Result<(String, u64), AuthError> {
        let key = keys.get(app).ok_or(AuthError::UnknownApp)?;
        if ttl.as_secs() == 0 {
            return Err(AuthError::InvalidClaims(
                "ttl must be at least one second".into(),
            ));
        }
        let exp = now_unix
            .checked_add(ttl.as_secs())
            .ok_or_else(|| AuthError::InvalidClaims("ttl is too long".into()))?;
        let claims = Claims {
            app: app.to_owned(),
            sub: uid.to_owned(),
            iat: now_unix,
            exp,
            grants,
        };
        claims.validate()?;
        let token = jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &key.encoding)
            // HS256 with a secret key and a serializable struct has no failure mode but a broken
            // crypto provider; report it as what the caller can act on least badly.
            .map_err(|e| AuthError::InvalidClaims(format!("cannot sign: {e}")))?;
        Ok((token, exp))
    }
}

/// Verifies tokens. Stateless: the secrets are passed in, like the clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenVerifier;

/// The only claim read before the signature is checked: it selects the secret.
#[derive(Deserialize)]
struct UnverifiedApp {
    app: String,
}

impl TokenVerifier {
    /// Verifies `token` at `now_unix` and returns its claims.
    ///
    /// The unverified `app` claim picks the secret; the signature is then checked with that secret
    /// (HS256 only), the claims against their rules, and the expiry against `now_unix` with no leeway.
    pub fn verify(keys: &AppKeys, token: &str, now_unix: u64) -> Result<Claims, AuthError> {
        // Nothing from this decode is trusted except as a lookup key; it also refuses headers this
        // library cannot represent, such as `alg: none`.
        let unverified = jsonwebtoken::dangerous::insecure_decode::<UnverifiedApp>(token)
            .map_err(|_| AuthError::Malformed)?;
        let key = keys
            .get(&unverified.claims.app)
            .ok_or(AuthError::UnknownApp)?;

        let mut validation = Validation::new(ALGORITHM);
        // The clock is ours (see below), so the library must not read its own.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);

        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(map_decode_error)?
            .claims;
        claims.validate()?;
        if now_unix >= claims.exp {
            return Err(AuthError::Expired { exp: claims.exp });
        }
        Ok(claims)
    }
}

/// The error a jsonwebtoken decode failure is reported as (shared by every token kind).
pub(crate) fn map_decode_error(e: jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            AuthError::BadSignature
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            AuthError::InvalidClaims(format!("missing claim {claim}"))
        }
        // Only reachable once the signature has matched, so the issuer put it there: still refused.
        ErrorKind::Json(_) => AuthError::InvalidClaims("claims do not parse".into()),
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const HOUR: Duration = Duration::from_secs(3600);

    fn keys() -> AppKeys {
        AppKeys::from_pairs([
            ("demo", "demo-secret-0123456789"),
            ("other", "other-secret-0123456789"),
        ])
    }

    fn signal_grants() -> Grants {
        Grants {
            signal: true,
            channel: Some("room-1".into()),
            publish: true,
            subscribe: true,
        }
    }

    fn mint(keys: &AppKeys, app: &str, uid: &str) -> String {
        TokenIssuer::mint(keys, app, uid, HOUR, signal_grants(), NOW)
            .expect("mint")
            .0
    }

    /// Splits a JWT into its three base64url parts.
    fn parts(token: &str) -> [String; 3] {
        let v: Vec<&str> = token.split('.').collect();
        assert_eq!(v.len(), 3);
        [v[0].into(), v[1].into(), v[2].into()]
    }

    /// base64url without padding, as JWT parts use; small enough not to warrant a dependency.
    fn b64(value: &impl serde::Serialize) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = serde_json::to_vec(value).unwrap();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    /// The claims [`mint`] puts in its tokens, with `app` and `sub` replaced.
    fn claims_as_minted(app: &str, sub: &str) -> Claims {
        Claims {
            app: app.into(),
            sub: sub.into(),
            iat: NOW,
            exp: NOW + 3600,
            grants: signal_grants(),
        }
    }

    #[test]
    fn minted_token_verifies_to_the_same_claims() {
        let keys = keys();
        let (token, exp) =
            TokenIssuer::mint(&keys, "demo", "42", HOUR, signal_grants(), NOW).unwrap();
        assert_eq!(exp, NOW + 3600);
        let claims = TokenVerifier::verify(&keys, &token, NOW + 10).unwrap();
        assert_eq!(
            claims,
            Claims {
                app: "demo".into(),
                sub: "42".into(),
                iat: NOW,
                exp,
                grants: signal_grants(),
            }
        );
    }

    #[test]
    fn token_signed_with_another_secret_is_refused() {
        let forger = AppKeys::from_pairs([("demo", "not-the-real-secret-at-all")]);
        let token = mint(&forger, "demo", "42");
        assert_eq!(
            TokenVerifier::verify(&keys(), &token, NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn token_is_refused_from_its_expiry_second_on() {
        let keys = keys();
        let token = mint(&keys, "demo", "42");
        let exp = NOW + 3600;
        assert!(TokenVerifier::verify(&keys, &token, exp - 1).is_ok());
        assert_eq!(
            TokenVerifier::verify(&keys, &token, exp),
            Err(AuthError::Expired { exp })
        );
        assert_eq!(
            TokenVerifier::verify(&keys, &token, exp + 86_400),
            Err(AuthError::Expired { exp })
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let keys = keys();
        let [header, _, signature] = parts(&mint(&keys, "demo", "42"));
        let mut elevated = claims_as_minted("demo", "admin");
        elevated.grants.channel = Some("*".into());
        let tampered = format!("{header}.{}.{signature}", b64(&elevated));
        assert_eq!(
            TokenVerifier::verify(&keys, &tampered, NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn token_moved_to_another_app_is_refused() {
        let keys = keys();
        let [header, payload, signature] = parts(&mint(&keys, "demo", "42"));
        // The helper encodes exactly what the issuer did, so only the app differs.
        assert_eq!(payload, b64(&claims_as_minted("demo", "42")));
        let moved = format!(
            "{header}.{}.{signature}",
            b64(&claims_as_minted("other", "42"))
        );
        assert_eq!(
            TokenVerifier::verify(&keys, &moved, NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn token_for_an_app_this_node_does_not_serve_is_refused() {
        let token = mint(&keys(), "demo", "42");
        let only_other = AppKeys::from_pairs([("other", "other-secret-0123456789")]);
        assert_eq!(
            TokenVerifier::verify(&only_other, &token, NOW),
            Err(AuthError::UnknownApp)
        );
        assert_eq!(
            TokenIssuer::mint(&only_other, "demo", "42", HOUR, Grants::default(), NOW),
            Err(AuthError::UnknownApp)
        );
    }

    #[test]
    fn wildcard_channel_grant_survives_the_round_trip() {
        let keys = keys();
        let grants = Grants {
            signal: true,
            channel: Some("*".into()),
            publish: false,
            subscribe: true,
        };
        let (token, _) = TokenIssuer::mint(&keys, "demo", "viewer-7", HOUR, grants, NOW).unwrap();
        let claims = TokenVerifier::verify(&keys, &token, NOW).unwrap();
        assert!(claims.grants.allows_channel("room-1"));
        assert!(claims.grants.allows_channel("show:99"));
        assert!(!claims.grants.publish);
    }

    #[test]
    fn unsigned_alg_none_token_is_refused() {
        let keys = keys();
        let [_, payload, _] = parts(&mint(&keys, "demo", "42"));
        let header = b64(&serde_json::json!({ "alg": "none", "typ": "JWT" }));
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            assert_eq!(
                TokenVerifier::verify(&keys, &token, NOW),
                Err(AuthError::Malformed),
                "{token}"
            );
        }
    }

    #[test]
    fn token_signed_with_another_hmac_algorithm_is_refused() {
        let keys = keys();
        let claims = Claims {
            app: "demo".into(),
            sub: "42".into(),
            iat: NOW,
            exp: NOW + 60,
            grants: Grants::default(),
        };
        let secret = jsonwebtoken::EncodingKey::from_secret(b"demo-secret-0123456789");
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &secret).unwrap();
        assert_eq!(
            TokenVerifier::verify(&keys, &token, NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "abc", "a.b.c", "a.b.c.d"] {
            assert_eq!(
                TokenVerifier::verify(&keys(), token, NOW),
                Err(AuthError::Malformed),
                "{token:?}"
            );
        }
    }

    #[test]
    fn minting_checks_user_id_and_ttl() {
        let keys = keys();
        for uid in ["", &"u".repeat(65), "bad id"] {
            assert!(matches!(
                TokenIssuer::mint(&keys, "demo", uid, HOUR, Grants::default(), NOW),
                Err(AuthError::InvalidClaims(_))
            ));
        }
        assert!(matches!(
            TokenIssuer::mint(&keys, "demo", "42", Duration::ZERO, Grants::default(), NOW),
            Err(AuthError::InvalidClaims(_))
        ));
    }

    #[test]
    fn validly_signed_token_with_a_bad_user_id_is_refused() {
        // An issuer that skipped the rules (e.g. another implementation) must not get a bad id past us.
        let claims = Claims {
            app: "demo".into(),
            sub: "has space".into(),
            iat: NOW,
            exp: NOW + 60,
            grants: Grants::default(),
        };
        let secret = jsonwebtoken::EncodingKey::from_secret(b"demo-secret-0123456789");
        let token = jsonwebtoken::encode(&Header::new(ALGORITHM), &claims, &secret).unwrap();
        assert!(matches!(
            TokenVerifier::verify(&keys(), &token, NOW),
            Err(AuthError::InvalidClaims(_))
        ));
    }
}
