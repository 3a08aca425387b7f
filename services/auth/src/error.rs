//! The one error type of this crate.

/// Why a token could not be minted or was refused.
///
/// Verification errors are deliberately coarse: a client learns that its token is bad and roughly why,
/// never anything about the secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a JWT at all: wrong number of parts, bad base64, bad JSON, or an unsupported header (such as
    /// `alg: none`).
    #[error("malformed token")]
    Malformed,
    /// The signature does not match the app's secret, or the token is not signed with HS256.
    #[error("bad token signature")]
    BadSignature,
    /// The token names an app this node has no secret for.
    #[error("unknown app")]
    UnknownApp,
    /// An admin token names an API key this node does not have (never was, or was removed).
    #[error("unknown API key")]
    UnknownKey,
    /// The token was valid until `exp` (Unix seconds) and is no longer.
    #[error("token expired at {exp}")]
    Expired {
        /// When the token stopped being valid, Unix seconds.
        exp: u64,
    },
    /// The claims (or the arguments to mint) break a rule, e.g. a user id that is empty or too long.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
}
