//! Who may call the business API: admin tokens checked on every request, and the credentials a Rust
//! business server (and the tests, and the CLI) sends them with.
//!
//! - [`AdminAuth`] is the server's interceptor: it reads `authorization: Bearer <admin token>`, verifies
//!   it against the node's [`ApiKeys`] and puts the [`AdminCaller`] in the request's extensions, or
//!   answers UNAUTHENTICATED before the request is decoded. It guards the `Admin` service only: the
//!   health and reflection services on the same port stay open (load balancers and `grpcurl list`
//!   need no credential, and neither reveals or changes anything).
//! - [`authorize`] is the per-request check that follows: the caller's key acts for one app, and a
//!   request naming another app is PERMISSION_DENIED, changing nothing.
//! - [`AdminCredentials`] is the client side: given a key id and its secret it signs short-lived
//!   tokens and attaches one to every request, minting the next a minute before the current expires.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use showcall_auth::{AdminCaller, AdminTokenIssuer, AdminTokenVerifier, ApiKeys, AuthError};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata key the token travels in (HTTP/2's `authorization` header, as every gRPC auth does).
pub const AUTHORIZATION: &str = "authorization";

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The server side; see the module docs.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    keys: Arc<ApiKeys>,
}

impl AdminAuth {
    pub fn new(keys: Arc<ApiKeys>) -> Self {
        Self { keys }
    }

    /// The caller `request` authenticates at `now_unix`, or why not: a reason label for
    /// `showcall_admin_refused_total` and the status to answer.
    fn caller(
        &self,
        request: &Request<()>,
        now_unix: u64,
    ) -> Result<AdminCaller, (&'static str, Status)> {
        let header = request.metadata().get(AUTHORIZATION).ok_or((
            "missing",
            Status::unauthenticated(
                "missing credential: send `authorization: Bearer <admin token>` \
                 (an HS256 JWT signed with one of the app's API key secrets, iss = the key id)",
            ),
        ))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or((
                "malformed",
                Status::unauthenticated("authorization must be `Bearer <admin token>`"),
            ))?;
        AdminTokenVerifier::verify(&self.keys, token.trim(), now_unix).map_err(|e| {
            let reason = match e {
                AuthError::Malformed => "malformed",
                AuthError::BadSignature => "bad_signature",
                AuthError::UnknownKey | AuthError::UnknownApp => "unknown_key",
                AuthError::Expired { .. } => "expired",
                AuthError::InvalidClaims(_) => "invalid_claims",
            };
            (
                reason,
                Status::unauthenticated(format!("admin token refused: {e}")),
            )
        })
    }
}

impl Interceptor for AdminAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        match self.caller(&request, now_unix()) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Ok(request)
            }
            Err((reason, status)) => {
                metrics::counter!("showcall_admin_refused_total", "reason" => reason).increment(1);
                tracing::info!(reason, message = status.message(), "admin request refused");
                Err(status)
            }
        }
    }
}

/// The authenticated caller of `request` (put there by [`AdminAuth`]).
pub fn caller_of<T>(request: &Request<T>) -> Result<AdminCaller, Status> {
    request
        .extensions()
        .get::<AdminCaller>()
        .cloned()
        // Only reachable if the service were served without its interceptor: refuse, never allow.
        .ok_or_else(|| Status::unauthenticated("no credential checked for this request"))
}

/// Refuses a request for `app_id` by a caller whose key acts for another app. An empty `app_id` is
/// left to the request's own validation (or, for `WatchEvents`, means the caller's app).
pub fn authorize(caller: &AdminCaller, app_id: &str) -> Result<(), Status> {
    if app_id.is_empty() || app_id == caller.app {
        return Ok(());
    }
    metrics::counter!("showcall_admin_refused_total", "reason" => "other_app").increment(1);
    tracing::info!(key = %caller.key_id, own = %caller.app, asked = %app_id, "admin request refused: another app");
    Err(Status::permission_denied(format!(
        "API key {:?} acts for app {:?}, not {app_id:?}",
        caller.key_id, caller.app
    )))
}

/// An `authorization` header value and its token's expiry (Unix seconds).
type SignedHeader = (MetadataValue<tonic::metadata::Ascii>, u64);

/// The client side; see the module docs. Cloning shares the cached token.
#[derive(Clone)]
pub struct AdminCredentials {
    key_id: String,
    secret: Arc<[u8]>,
    ttl: Duration,
    cached: Arc<Mutex<Option<SignedHeader>>>,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AdminCredentials {
    /// Signs with `key_id`'s `secret`; each token lives five minutes.
    pub fn new(key_id: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        Self {
            key_id: key_id.into(),
            secret: secret.as_ref().into(),
            ttl: Duration::from_secs(300),
            cached: Arc::default(),
        }
    }

    /// The header value for a request made at `now_unix`, reusing the cached token while it has more
    /// than a minute left.
    fn header(&self, now_unix: u64) -> Result<MetadataValue<tonic::metadata::Ascii>, Status> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((value, exp)) = cached.as_ref()
            && *exp > now_unix + 60
        {
            return Ok(value.clone());
        }
        let (token, exp) =
            AdminTokenIssuer::mint_with_secret(&self.key_id, &self.secret, self.ttl, now_unix)
                .map_err(|e| Status::internal(format!("cannot sign an admin token: {e}")))?;
        let value: MetadataValue<_> = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("an admin token is not a valid header value"))?;
        *cached = Some((value.clone(), exp));
        Ok(value)
    }
}

impl Interceptor for AdminCredentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let value = self.header(now_unix())?;
        request.metadata_mut().insert(AUTHORIZATION, value);
        Ok(request)
    }
}
