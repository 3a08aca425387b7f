//! The TURN servers a login answer hands to its client (`LoginResult.ice_servers`), each login with
//! credentials of its own (`showcall_auth::turn`).
//!
//! Only a session whose token may move media (the publish or subscribe grant) gets them: a relay is an
//! open door to the TURN server's bandwidth, and a signaling-only token has no use for one.

use std::time::Duration;

use showcall_auth::{Claims, TurnSecret};
use showcall_proto::signal as pb;

/// TURN servers sharing one secret with this node (coturn's `use-auth-secret`).
#[derive(Debug, Clone)]
pub struct TurnServers {
    /// `turn:` / `turns:` URLs, as clients get them.
    pub urls: Vec<String>,
    pub secret: TurnSecret,
    /// How long a minted credential stays valid: at least as long as a session keeps media open, since
    /// the TURN server refuses to refresh an allocation past its credential's expiry.
    pub credential_ttl: Duration,
}

impl TurnServers {
    /// What a login of `claims` is answered with: nothing when the token cannot move media.
    pub fn for_login(&self, claims: &Claims, now_unix: u64) -> Vec<pb::IceServer> {
        if !(claims.grants.publish || claims.grants.subscribe) {
            return Vec::new();
        }
        let credential = self
            .secret
            .mint(&claims.app, &claims.sub, self.credential_ttl, now_unix);
        vec![pb::IceServer {
            urls: self.urls.clone(),
            username: credential.username,
            credential: credential.password,
            expires_at_ms: credential.expires_at.saturating_mul(1000),
        }]
    }
}
