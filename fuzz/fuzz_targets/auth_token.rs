//! A user token, as the gateway verifies it at login: `TokenVerifier::verify` with a fixed key set and a
//! fixed clock.
//!
//! Random bytes almost never carry a valid signature, which would leave everything after the signature
//! check (the claims' JSON, their rules, the expiry) unreached. So an input holding a newline is also
//! taken as `<header JSON>\n<claims JSON>`: both are encoded and signed with the `demo` app's secret, as a
//! genuine (or leaked-key) issuer would, and the token verified. Without a newline the input is only the
//! raw token.
//!
//! Beyond "no panic": accepted claims obey the rules verification promises (valid user id and grants,
//! not expired, the app that signed them), and minting them again gives a token that verifies to the
//! same claims.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use showcall_auth::{AppKeys, Claims, TokenIssuer, TokenVerifier};

/// "Now" for every verification: 2023-11-14, the seeds' tokens are valid then.
const NOW: u64 = 1_700_000_000;
const APP: &str = "demo";
const SECRET: &str = "demo-secret-0123456789";

thread_local! {
    static KEYS: AppKeys = AppKeys::from_pairs([(APP, SECRET), ("other", "other-secret-0123456789")]);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    KEYS.with(|keys| {
        check(keys, text);
        if let Some((header, claims)) = text.split_once('\n') {
            check(keys, &signed(header, claims));
        }
    });
});

/// `header.claims.signature` with both parts as given and a valid HS256 signature by [`APP`]'s secret.
fn signed(header: &str, claims: &str) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256)
        .expect("HS256 signs anything");
    format!("{message}.{signature}")
}

fn check(keys: &AppKeys, token: &str) {
    let Ok(claims) = TokenVerifier::verify(keys, token, NOW) else {
        return;
    };
    claims.validate().expect("verified claims obey the rules");
    assert!(NOW < claims.exp, "a verified token is not expired");
    assert!(
        keys.contains(&claims.app),
        "a verified token's app is known"
    );
    assert_reminted_token_verifies(keys, &claims);
}

fn assert_reminted_token_verifies(keys: &AppKeys, claims: &Claims) {
    let ttl = std::time::Duration::from_secs(claims.exp - NOW);
    let (token, exp) = TokenIssuer::mint(
        keys,
        &claims.app,
        &claims.sub,
        ttl,
        claims.grants.clone(),
        NOW,
    )
    .expect("verified claims can be minted again");
    let again = TokenVerifier::verify(keys, &token, NOW).expect("a minted token verifies");
    let expected = Claims {
        iat: NOW,
        exp,
        ..claims.clone()
    };
    assert_eq!(again, expected, "minting and verifying keep the claims");
}
