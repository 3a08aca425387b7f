//! Requests checked into domain values, and errors mapped to gRPC statuses.
//!
//! Every RPC validates its whole request here before it changes or mints anything, and names the
//! offending field in its INVALID_ARGUMENT answer (the contract in `admin.proto`).

use std::time::Duration;

use showcall_auth::{AppKeys, AuthError, Grants, validate_channel, validate_user_id};
use showcall_proto::admin::MintTokenRequest;

/// Longest token lifetime the API mints: a week. Longer-lived tokens could not be revoked by rotation in
/// any reasonable time.
pub const MAX_TTL_SECONDS: u32 = 604_800;

/// Why an admin request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// A request field breaks its rule; `field` is its name in the `.proto`.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The proto field name, e.g. `user_id`.
        field: &'static str,
        /// What is wrong with it, lowercase.
        reason: String,
    },
    /// Something on this side failed; the request itself was fine.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AdminError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }
}

impl From<AdminError> for tonic::Status {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::InvalidArgument { .. } => tonic::Status::invalid_argument(e.to_string()),
            AdminError::Internal(_) => tonic::Status::internal(e.to_string()),
        }
    }
}

/// A checked `MintToken` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintToken {
    /// A configured app.
    pub app_id: String,
    /// A valid user id.
    pub user_id: String,
    /// 1 s..=[`MAX_TTL_SECONDS`].
    pub ttl: Duration,
    /// The grants to sign in; signal login is always granted (it is what a token is for).
    pub grants: Grants,
}

impl MintToken {
    /// Checks `req` field by field, in proto order, against the apps in `keys`.
    pub fn parse(req: MintTokenRequest, keys: &AppKeys) -> Result<Self, AdminError> {
        if req.app_id.is_empty() {
            return Err(AdminError::invalid("app_id", "is empty"));
        }
        if !keys.contains(&req.app_id) {
            return Err(AdminError::invalid(
                "app_id",
                format!("app {:?} is not configured on this node", req.app_id),
            ));
        }
        validate_user_id(&req.user_id).map_err(|e| AdminError::invalid("user_id", rule(e)))?;
        if !(1..=MAX_TTL_SECONDS).contains(&req.ttl_seconds) {
            return Err(AdminError::invalid(
                "ttl_seconds",
                format!("must be 1..={MAX_TTL_SECONDS}"),
            ));
        }
        let channel = if req.channel.is_empty() {
            None
        } else {
            validate_channel(&req.channel).map_err(|e| AdminError::invalid("channel", rule(e)))?;
            Some(req.channel)
        };
        // The proto's default: a channel grant comes with subscribing unless the caller says otherwise.
        let subscribe = req.subscribe.unwrap_or(channel.is_some());
        Ok(Self {
            app_id: req.app_id,
            user_id: req.user_id,
            ttl: Duration::from_secs(req.ttl_seconds.into()),
            grants: Grants {
                signal: true,
                channel,
                publish: req.publish,
                subscribe,
            },
        })
    }
}

/// The rule an [`AuthError::InvalidClaims`] states, without its prefix.
fn rule(e: AuthError) -> String {
    match e {
        AuthError::InvalidClaims(reason) => reason,
        other => other.to_string(),
    }
}

/// Maps a minting failure after [`MintToken::parse`] accepted the request.
pub(crate) fn mint_error(e: AuthError) -> AdminError {
    match e {
        // Parse checked the app; it can only vanish if the keys changed in between.
        AuthError::UnknownApp => AdminError::invalid("app_id", "is not configured on this node"),
        AuthError::InvalidClaims(reason) => AdminError::invalid("user_id", reason),
        other => AdminError::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AppKeys {
        AppKeys::from_pairs([("demo", "demo-secret-0123456789")])
    }

    fn request() -> MintTokenRequest {
        MintTokenRequest {
            app_id: "demo".into(),
            user_id: "42".into(),
            ttl_seconds: 3600,
            channel: String::new(),
            publish: false,
            subscribe: None,
        }
    }

    fn field_of(r: Result<MintToken, AdminError>) -> &'static str {
        match r {
            Err(AdminError::InvalidArgument { field, .. }) => field,
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }

    /// Breaks one field of a valid request.
    type Breaker = fn(&mut MintTokenRequest);

    #[test]
    fn each_bad_field_is_named() {
        let cases: [(&str, Breaker); 7] = [
            ("app_id", |r| r.app_id.clear()),
            ("app_id", |r| r.app_id = "nope".into()),
            ("user_id", |r| r.user_id.clear()),
            ("user_id", |r| r.user_id = "u".repeat(65)),
            ("ttl_seconds", |r| r.ttl_seconds = 0),
            ("ttl_seconds", |r| r.ttl_seconds = MAX_TTL_SECONDS + 1),
            ("channel", |r| r.channel = "has space".into()),
        ];
        for (field, break_it) in cases {
            let mut req = request();
            break_it(&mut req);
            assert_eq!(field_of(MintToken::parse(req, &keys())), field);
        }
    }

    #[test]
    fn channel_grant_subscribes_by_default() {
        let mut req = request();
        req.channel = "*".into();
        let parsed = MintToken::parse(req.clone(), &keys()).unwrap();
        assert!(parsed.grants.signal && parsed.grants.subscribe);
        assert_eq!(parsed.grants.channel.as_deref(), Some("*"));

        req.subscribe = Some(false);
        assert!(!MintToken::parse(req, &keys()).unwrap().grants.subscribe);
    }

    #[test]
    fn no_channel_means_no_subscribe_unless_asked() {
        let parsed = MintToken::parse(request(), &keys()).unwrap();
        assert_eq!(parsed.grants.channel, None);
        assert!(!parsed.grants.subscribe);
        assert_eq!(parsed.ttl, Duration::from_secs(3600));
    }

    #[test]
    fn invalid_argument_becomes_a_status_naming_the_field() {
        let status = tonic::Status::from(AdminError::invalid("user_id", "user id is empty"));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "user_id: user id is empty");
    }
}
