//! [`WebhookTarget`]: where one app's webhooks go, checked once when the node starts.

use std::fmt;

use hyper::Uri;

/// Shortest accepted webhook secret, in bytes (the same floor as token secrets: HMAC-SHA256 with a
/// shorter key can be brute-forced from one signed body).
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// One app's webhook endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The app whose events go there.
    pub app: String,
    /// An absolute `http://` or `https://` URL; every event is POSTed to it.
    pub url: Uri,
    /// The HMAC key of the `Showcall-Signature` header. Never logged.
    pub secret: Vec<u8>,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("app", &self.app)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a webhook target is refused (lowercase, naming the field).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("webhook_url {url:?} is not an absolute http:// or https:// URL")]
    BadUrl { url: String },
    #[error("webhook_secret is required when webhook_url is set")]
    MissingSecret,
    #[error("webhook_secret is shorter than {MIN_WEBHOOK_SECRET_LEN} bytes")]
    ShortSecret,
}

impl WebhookTarget {
    /// A target from the configured strings, or the first rule they break.
    pub fn parse(app: &str, url: &str, secret: Option<&str>) -> Result<Self, TargetError> {
        let bad = || TargetError::BadUrl {
            url: url.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        if !scheme_ok || uri.host().is_none_or(str::is_empty) {
            return Err(bad());
        }
        let secret = secret.ok_or(TargetError::MissingSecret)?;
        if secret.len() < MIN_WEBHOOK_SECRET_LEN {
            return Err(TargetError::ShortSecret);
        }
        Ok(Self {
            app: app.to_owned(),
            url: uri,
            secret: secret.as_bytes().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec-0123456789abcdef";

    #[test]
    fn http_and_https_urls_are_accepted() {
        for url in [
            "http://127.0.0.1:9000/hooks",
            "https://api.example.com/showcall",
        ] {
            let target = WebhookTarget::parse("demo", url, Some(SECRET)).expect(url);
            assert_eq!(target.url.to_string(), url);
        }
    }

    #[test]
    fn bad_targets_name_what_is_wrong() {
        for url in [
            "",
            "example.com/hooks",
            "ftp://example.com/",
            "/relative",
            "http://",
        ] {
            assert_eq!(
                WebhookTarget::parse("demo", url, Some(SECRET)),
                Err(TargetError::BadUrl { url: url.into() }),
                "{url:?}"
            );
        }
        let url = "https://example.com/";
        assert_eq!(
            WebhookTarget::parse("demo", url, None),
            Err(TargetError::MissingSecret)
        );
        assert_eq!(
            WebhookTarget::parse("demo", url, Some("short")),
            Err(TargetError::ShortSecret)
        );
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let target = WebhookTarget::parse("demo", "https://example.com/", Some(SECRET)).unwrap();
        assert!(!format!("{target:?}").contains(SECRET));
    }
}
