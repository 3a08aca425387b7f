//! The demo pages and the web SDK, served on the signaling address next to `/signal`, so one URL
//! (`http://127.0.0.1:7800/`) is all a person needs to try the showroom-to-1v1 flow in browsers.
//!
//! Routes:
//! - `GET /`, `/host.html`, `/viewer.html`, `/live.html`: the pages (`sdk/web/demo/`);
//! - `GET /showcall.js` (the SDK, `sdk/web/showcall.js`), `/demo.js`, `/demo.css`: what the pages load;
//! - `GET /demo/token?uid=UID[&publish=1]`: a token for the demo app, **only** on a node that runs with the
//!   built-in demo secret ([`NodeConfig::uses_demo_secret`]); otherwise 404. The route hands a signed
//!   token to anyone who asks, for any user id, so it must never exist where the secret is private; the
//!   demo secret is public anyway (it is in the source), so the route gives away nothing there.
//!
//! The files are compiled into the binary (`include_str!`): the node stays one self-contained file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use showcall_auth::{AppKeys, Grants, TokenIssuer, WILDCARD_CHANNEL};

use crate::config::{DEMO_SECRET, NodeConfig};

/// How long a demo token lives. The pages renew it when the server warns that it will expire.
const DEMO_TOKEN_TTL: Duration = Duration::from_secs(3600);

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every static file: (route, content type, body).
const FILES: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../../../sdk/web/demo/index.html")),
    (
        "/index.html",
        HTML,
        include_str!("../../../sdk/web/demo/index.html"),
    ),
    (
        "/host.html",
        HTML,
        include_str!("../../../sdk/web/demo/host.html"),
    ),
    (
        "/viewer.html",
        HTML,
        include_str!("../../../sdk/web/demo/viewer.html"),
    ),
    (
        "/live.html",
        HTML,
        include_str!("../../../sdk/web/demo/live.html"),
    ),
    (
        "/demo.js",
        JS,
        include_str!("../../../sdk/web/demo/demo.js"),
    ),
    (
        "/demo.css",
        CSS,
        include_str!("../../../sdk/web/demo/demo.css"),
    ),
    (
        "/showcall.js",
        JS,
        include_str!("../../../sdk/web/showcall.js"),
    ),
];

/// What the token route needs: the demo app and its keys, or nothing when the node has no demo app.
#[derive(Clone)]
struct DemoTokens {
    /// `Some((app id, keys))` only when an app uses the public demo secret.
    app: Option<(String, AppKeys)>,
}

/// The demo routes, to merge into the signaling router.
pub fn router(config: &NodeConfig) -> Router {
    let app = config
        .apps
        .iter()
        .find(|a| a.secret == DEMO_SECRET)
        .map(|a| (a.id.clone(), config.app_keys()));
    let mut router = Router::new().route("/demo/token", get(token));
    for &(path, content_type, body) in FILES {
        router = router.route(path, get(move || async move { file(content_type, body) }));
    }
    router.with_state(DemoTokens { app })
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // A demo: always fetch the current build's files.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    uid: String,
    /// `1` (or `true`) adds the publish grant: going live as broadcaster.
    #[serde(default)]
    publish: Option<String>,
}

async fn token(State(demo): State<DemoTokens>, query: Query<TokenQuery>) -> Response {
    let Some((app, keys)) = &demo.app else {
        return (
            StatusCode::NOT_FOUND,
            "no demo tokens: this node does not use the public demo secret, so it mints no tokens for \
             strangers; get tokens from your business server (MintToken) and open the pages with ?token=\n",
        )
            .into_response();
    };
    let publish = matches!(query.publish.as_deref(), Some("1" | "true"));
    let grants = Grants {
        signal: true,
        channel: Some(WILDCARD_CHANNEL.to_owned()),
        publish,
        subscribe: true,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match TokenIssuer::mint(keys, app, &query.uid, DEMO_TOKEN_TTL, grants, now) {
        Ok((token, exp)) => (
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(serde_json::json!({
                "token": token,
                "appId": app,
                "userId": query.uid,
                "expiresAtMs": exp.saturating_mul(1000),
            })),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("uid: {e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use showcall_auth::TokenVerifier;
    use tower::ServiceExt as _;

    use super::*;
    use crate::config::AppConfig;

    async fn get_text(router: Router, uri: &str) -> (StatusCode, String, Option<String>) {
        let response = router
            .oneshot(
                Request::get(uri)
                    .body(Body::empty())
                    .expect("valid request"),
            )
            .await
            .expect("infallible router");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            String::from_utf8(body.to_vec()).expect("utf-8"),
            content_type,
        )
    }

    #[tokio::test]
    async fn pages_and_sdk_are_served() {
        let router = router(&NodeConfig::default());
        for (path, kind) in [
            ("/", "text/html"),
            ("/host.html", "text/html"),
            ("/viewer.html", "text/html"),
            ("/live.html", "text/html"),
            ("/showcall.js", "text/javascript"),
            ("/demo.js", "text/javascript"),
            ("/demo.css", "text/css"),
        ] {
            let (status, body, content_type) = get_text(router.clone(), path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(content_type.unwrap().starts_with(kind), "{path}");
            assert!(!body.is_empty(), "{path}");
        }
    }

    #[tokio::test]
    async fn demo_node_mints_tokens_that_verify() {
        let config = NodeConfig::default();
        let (status, body, _) = get_text(router(&config), "/demo/token?uid=host-1&publish=1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let reply: serde_json::Value = serde_json::from_str(&body).expect("json");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = TokenVerifier::verify(
            &config.app_keys(),
            reply["token"].as_str().expect("token"),
            now,
        )
        .expect("the token verifies with the node's keys");
        assert_eq!(claims.sub, "host-1");
        assert!(claims.grants.signal && claims.grants.publish && claims.grants.subscribe);

        let (_, body, _) = get_text(router(&config), "/demo/token?uid=fan").await;
        let reply: serde_json::Value = serde_json::from_str(&body).expect("json");
        let claims =
            TokenVerifier::verify(&config.app_keys(), reply["token"].as_str().unwrap(), now)
                .unwrap();
        assert!(!claims.grants.publish, "no publish unless asked");
    }

    #[tokio::test]
    async fn bad_user_ids_are_refused() {
        let (status, body, _) =
            get_text(router(&NodeConfig::default()), "/demo/token?uid=a%20b").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.starts_with("uid:"), "{body}");
    }

    #[tokio::test]
    async fn a_node_with_its_own_secrets_mints_nothing() {
        let config = NodeConfig {
            apps: vec![AppConfig {
                id: "prod".into(),
                secret: "a-private-secret-of-enough-length".into(),
                api_keys: Vec::new(),
                call_policy_url: None,
                webhook_url: None,
                webhook_secret: None,
            }],
            ..NodeConfig::default()
        };
        let (status, _, _) = get_text(router(&config), "/demo/token?uid=anyone&publish=1").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // The pages are still served (they take ?token=).
        let (status, _, _) = get_text(router(&config), "/host.html").await;
        assert_eq!(status, StatusCode::OK);
    }
}
