//! Admission: the port through which a call asks the app's business server whether it may ring, and its
//! gRPC implementation (`showcall.policy.v1.CallPolicy`, `proto/policy/v1/policy.proto`).
//!
//! The call machine decides what a verdict means (`showcall_machines::call::admission`); the call actor
//! carries out its `Authorize` effect by calling [`Admission::authorize`] on a task of its own — the actor
//! never waits for the business server — and feeds the verdict back as an input. The machine's admission
//! timer bounds the wait, so a verdict that comes too late is simply dropped.
//!
//! Decisions:
//! - Fail closed: an error status or an unreachable service refuses the call ("admission unavailable"; the
//!   status is logged, not shown to the caller, since it may name internals). A business server that is
//!   down must not let unpaid calls through.
//! - One lazily connected tonic channel per endpoint URL, shared by every call (and every app naming the
//!   same URL): HTTP/2 multiplexes the requests, and the first call does not wait for a connection set up
//!   in advance. The request carries the deadline (grpc-timeout) so the business server can give up too.
//! - `http://` or `https://`. Over TLS the service's certificate is checked against the public web roots
//!   plus the node's `trusted_ca` (for a business server with a private CA).
//! - The refusal text is cut at [`MAX_REASON_BYTES`] (it travels to the client as an event reason); an
//!   empty one reads [`REFUSED_WITHOUT_REASON`].

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use showcall_machines::call::ADMISSION_TIMED_OUT;
use showcall_machines::{AdmissionRequest, CallType};
use showcall_proto::policy as pb;
use showcall_proto::policy::call_policy_client::CallPolicyClient;
use tonic::transport::{Channel, Endpoint};

use showcall_protocol::keys::AppId;

/// The longest refusal reason passed on to the caller, in bytes.
pub const MAX_REASON_BYTES: usize = 256;

/// What the caller sees when the business server refused without a reason.
pub const REFUSED_WITHOUT_REASON: &str = "call refused";

/// What the caller sees when the business server could not be asked or answered with an error.
pub const ADMISSION_UNAVAILABLE: &str = "admission unavailable";

/// The business server's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused, with the text the caller is shown.
    Refused(String),
}

/// A verdict on its way.
pub type VerdictFuture = Pin<Box<dyn Future<Output = Verdict> + Send>>;

/// Whether and how an app's calls are authorized (see the module docs).
pub trait Admission: Send + Sync + Debug + 'static {
    /// How long `app`'s business server has to answer; `None` when the app's calls need no admission.
    fn timeout(&self, app: &AppId) -> Option<Duration>;
    /// Asks `app`'s business server about a call. Never fails: every failure is a refusal.
    fn authorize(&self, app: &AppId, request: AdmissionRequest) -> VerdictFuture;
}

/// No app requires admission (the default).
#[derive(Debug, Default)]
pub struct NoAdmission;

impl Admission for NoAdmission {
    fn timeout(&self, _: &AppId) -> Option<Duration> {
        None
    }

    fn authorize(&self, _: &AppId, _: AdmissionRequest) -> VerdictFuture {
        Box::pin(std::future::ready(Verdict::Allowed))
    }
}

/// A URL that cannot be a CallPolicy endpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("call_policy_url of app {app} ({url}): {why}")]
pub struct BadPolicyUrl {
    pub app: String,
    pub url: String,
    pub why: String,
}

/// Checks a CallPolicy URL: `http://host:port` or `https://host:port` (an optional path prefix is
/// kept). An `https` endpoint trusts the public web roots; [`GrpcAdmission::new`] adds the node's own.
pub fn policy_endpoint(app: &str, url: &str) -> Result<Endpoint, BadPolicyUrl> {
    let bad = |why: &str| BadPolicyUrl {
        app: app.to_owned(),
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|_| bad("not a URL"))?;
    let uri = endpoint.uri();
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("the scheme must be http or https")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if uri.scheme_str() == Some("https") {
        return endpoint
            .tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots())
            .map_err(|e| bad(&format!("TLS: {e}")));
    }
    Ok(endpoint)
}

/// Asks each configured app's business server over gRPC.
#[derive(Debug)]
pub struct GrpcAdmission {
    /// How long a business server has to answer (the node's `call_policy_timeout`).
    timeout: Duration,
    /// Each app that requires admission, with its endpoint's URL.
    apps: HashMap<AppId, String>,
    /// The endpoints by URL, checked at construction.
    endpoints: HashMap<String, Endpoint>,
    /// One channel per URL, connected on first use (creating one needs the runtime).
    channels: Mutex<HashMap<String, Channel>>,
}

impl GrpcAdmission {
    /// `apps` are (app id, CallPolicy URL) pairs; every URL is checked here. `https` URLs trust
    /// `trusted_ca` (PEM) beside the public web roots.
    pub fn new(
        apps: impl IntoIterator<Item = (AppId, String)>,
        timeout: Duration,
        trusted_ca: Option<&[u8]>,
    ) -> Result<Self, BadPolicyUrl> {
        let mut by_app = HashMap::new();
        let mut endpoints = HashMap::new();
        for (app, url) in apps {
            let mut endpoint = policy_endpoint(&app.0, &url)?.connect_timeout(timeout);
            if let (Some(ca), Some("https")) = (trusted_ca, endpoint.uri().scheme_str()) {
                let tls = tonic::transport::ClientTlsConfig::new()
                    .with_webpki_roots()
                    .ca_certificate(tonic::transport::Certificate::from_pem(ca));
                endpoint = endpoint.tls_config(tls).map_err(|e| BadPolicyUrl {
                    app: app.0.clone(),
                    url: url.clone(),
                    why: format!("TLS: {e}"),
                })?;
            }
            endpoints.insert(url.clone(), endpoint);
            by_app.insert(app, url);
        }
        Ok(Self {
            timeout,
            apps: by_app,
            endpoints,
            channels: Mutex::default(),
        })
    }

    fn channel(&self, url: &str) -> Option<Channel> {
        let mut channels = showcall_protocol::sync::lock(&self.channels);
        if let Some(channel) = channels.get(url) {
            return Some(channel.clone());
        }
        let channel = self.endpoints.get(url)?.connect_lazy();
        channels.insert(url.to_owned(), channel.clone());
        Some(channel)
    }
}

impl Admission for GrpcAdmission {
    fn timeout(&self, app: &AppId) -> Option<Duration> {
        self.apps.contains_key(app).then_some(self.timeout)
    }

    fn authorize(&self, app: &AppId, request: AdmissionRequest) -> VerdictFuture {
        let channel = self.apps.get(app).and_then(|url| self.channel(url));
        let Some(channel) = channel else {
            // Not asked for: only apps with a URL get `Some` from `timeout`.
            return Box::pin(std::future::ready(Verdict::Allowed));
        };
        let timeout = self.timeout;
        let app = app.clone();
        Box::pin(async move {
            let call_id = request.call_id.clone();
            let mut message = tonic::Request::new(to_proto(&app, request));
            message.set_timeout(timeout);
            let answer =
                tokio::time::timeout(timeout, CallPolicyClient::new(channel).authorize(message))
                    .await;
            match answer {
                Err(_) => Verdict::Refused(ADMISSION_TIMED_OUT.to_owned()),
                Ok(Ok(response)) => verdict(response.into_inner()),
                // A server that honours the request's deadline answers CANCELLED when it passes (tonic's
                // does), which races the local timeout: both mean the business server took too long.
                Ok(Err(status))
                    if matches!(
                        status.code(),
                        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                    ) =>
                {
                    Verdict::Refused(ADMISSION_TIMED_OUT.to_owned())
                }
                Ok(Err(status)) => {
                    tracing::warn!(%app, %call_id, code = ?status.code(), message = status.message(),
                        "call policy failed: the call is refused");
                    Verdict::Refused(ADMISSION_UNAVAILABLE.to_owned())
                }
            }
        })
    }
}

fn to_proto(app: &AppId, r: AdmissionRequest) -> pb::AuthorizeRequest {
    pb::AuthorizeRequest {
        app_id: app.0.clone(),
        call_id: r.call_id.0,
        caller_user_id: r.caller.0,
        callee_user_id: r.callee.0,
        call_type: match r.call_type {
            CallType::Video => pb::CallType::Video,
            CallType::Audio => pb::CallType::Audio,
        } as i32,
        extension: r.extension.into_iter().collect(),
    }
}

/// The business server's answer as the caller will see it.
pub fn verdict(response: pb::AuthorizeResponse) -> Verdict {
    if response.allowed {
        return Verdict::Allowed;
    }
    let mut reason = response.reason;
    if reason.is_empty() {
        return Verdict::Refused(REFUSED_WITHOUT_REASON.to_owned());
    }
    if reason.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    Verdict::Refused(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_urls_with_a_host_are_endpoints() {
        assert!(policy_endpoint("a", "http://127.0.0.1:9000").is_ok());
        assert!(policy_endpoint("a", "http://policy.internal:9000/prefix").is_ok());
        assert!(policy_endpoint("a", "https://policy.internal:443").is_ok());
        for url in ["ftp://x", "policy:9000", "", "http://"] {
            let err = policy_endpoint("a", url).expect_err(url);
            assert_eq!((err.app.as_str(), err.url.as_str()), ("a", url));
        }
    }

    #[test]
    fn a_refusal_always_has_a_short_reason_for_the_caller() {
        let refused = |reason: &str| {
            verdict(pb::AuthorizeResponse {
                allowed: false,
                reason: reason.to_owned(),
            })
        };
        assert_eq!(
            refused("no credit"),
            Verdict::Refused("no credit".to_owned())
        );
        assert_eq!(
            refused(""),
            Verdict::Refused(REFUSED_WITHOUT_REASON.to_owned())
        );
        let long = "é".repeat(200);
        let Verdict::Refused(cut) = refused(&long) else {
            panic!("refused")
        };
        assert!(cut.len() <= MAX_REASON_BYTES && long.starts_with(&cut));
        let allowed = verdict(pb::AuthorizeResponse {
            allowed: true,
            reason: "ignored".into(),
        });
        assert_eq!(allowed, Verdict::Allowed);
    }

    #[test]
    fn apps_without_a_url_need_no_admission() {
        let admission = GrpcAdmission::new(
            [(AppId("shop".into()), "http://127.0.0.1:1".to_owned())],
            Duration::from_secs(2),
            None,
        )
        .expect("valid");
        assert_eq!(
            admission.timeout(&AppId("shop".into())),
            Some(Duration::from_secs(2))
        );
        assert_eq!(admission.timeout(&AppId("demo".into())), None);
        let bad = GrpcAdmission::new(
            [(AppId("shop".into()), "ftp://x".to_owned())],
            Duration::from_secs(2),
            None,
        );
        assert!(bad.is_err());
    }
}
