//! The per-app secrets.

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::{DecodingKey, EncodingKey};

/// One app's secret, ready to sign and verify.
#[derive(Clone)]
pub(crate) struct AppKey {
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
}

/// The secrets of every app this node serves, by app id.
///
/// Each app has its own secret so that one app's business server cannot mint tokens for another. The
/// `Debug` output lists app ids only, never secrets.
#[derive(Clone, Default)]
pub struct AppKeys {
    keys: HashMap<String, AppKey>,
}

impl AppKeys {
    /// Builds the key set from `(app id, secret)` pairs; a later pair for the same app replaces an earlier
    /// one.
    ///
    /// Secret strength is checked where secrets are configured (the node's config validation), not here.
    pub fn from_pairs<I, A, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (A, S)>,
        A: Into<String>,
        S: AsRef<[u8]>,
    {
        let keys = pairs
            .into_iter()
            .map(|(app, secret)| {
                let secret = secret.as_ref();
                let key = AppKey {
                    encoding: EncodingKey::from_secret(secret),
                    decoding: DecodingKey::from_secret(secret),
                };
                (app.into(), key)
            })
            .collect();
        Self { keys }
    }

    /// Whether `app` has a secret here.
    pub fn contains(&self, app: &str) -> bool {
        self.keys.contains_key(app)
    }

    /// The configured app ids, in no particular order.
    pub fn app_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// How many apps are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no app is configured (then every token is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn get(&self, app: &str) -> Option<&AppKey> {
        self.keys.get(app)
    }
}

impl fmt::Debug for AppKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppKeys")
            .field("apps", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}
