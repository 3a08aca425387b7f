//! Tokens for the benchmarks' users, minted in-process with the node configuration's app secret.

use std::time::Duration;

use showcall_auth::{Grants, TokenIssuer};
use showcall_node::config::NodeConfig;

/// Mints a token for any user id: the first configured app's, granting signaling, every channel,
/// publishing and subscribing, valid for an hour.
pub(super) fn token_factory(
    config: &NodeConfig,
) -> impl Fn(&str) -> anyhow::Result<String> + use<> {
    let keys = config.app_keys();
    let app = config.apps[0].id.clone();
    move |uid: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let grants = Grants {
            signal: true,
            channel: Some("*".into()),
            publish: true,
            subscribe: true,
        };
        Ok(TokenIssuer::mint(&keys, &app, uid, Duration::from_secs(3600), grants, now)?.0)
    }
}
