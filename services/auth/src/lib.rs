//! Signed tokens for showcall: HS256 JWTs that bind an app id and a user id, with an expiry and grants.
//!
//! Layout:
//! - [`grants`]: what a token allows (signal login, a channel or `*`, publish, subscribe).
//! - [`claims`]: the JWT payload and the rules every user id and channel grant follows.
//! - [`keys`]: the per-app secrets ([`AppKeys`]).
//! - [`token`]: minting ([`TokenIssuer`]) and verifying ([`TokenVerifier`]).
//! - [`api_keys`]: the business API's per-app API keys and the admin tokens signed with them.
//! - [`cluster_secret`]: the node link's shared secret and the link tokens signed with it.
//! - [`turn`]: short-lived TURN credentials minted from the secret shared with the TURN servers.
//! - [`error`]: the error type, [`AuthError`].
//!
//! Time is always an argument (`now_unix`, seconds since the Unix epoch): nothing here reads a clock, so
//! callers decide what "now" is and tests use a fixed one.
#![forbid(unsafe_code)]

pub mod api_keys;
pub mod claims;
pub mod cluster_secret;
pub mod error;
pub mod grants;
pub mod keys;
pub mod token;
pub mod turn;

pub use api_keys::{
    ADMIN_CLOCK_SKEW, AdminCaller, AdminClaims, AdminTokenIssuer, AdminTokenVerifier, ApiKeys,
    MAX_ADMIN_TOKEN_TTL, MAX_API_KEY_ID_LEN,
};
pub use claims::{
    Claims, MAX_CHANNEL_LEN, MAX_USER_ID_LEN, WILDCARD_CHANNEL, validate_channel, validate_user_id,
};
pub use cluster_secret::{ClusterSecret, LINK_TOKEN_TTL};
pub use error::AuthError;
pub use grants::Grants;
pub use keys::AppKeys;
pub use token::{TokenIssuer, TokenVerifier};
pub use turn::{MIN_TURN_SECRET_LEN, TurnCredential, TurnSecret};
