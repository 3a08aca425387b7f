//! The business API answers only callers with an admin token of the app they act on: no credential, an
//! expired or forged one, or another app's key is refused and changes nothing; the right key works, and
//! two keys of one app work at once (rotation). Health and reflection stay open.

use std::time::Duration;

use futures_util::StreamExt as _;
use showcall_admin::AdminCredentials;
use showcall_auth::AdminTokenIssuer;
use showcall_node::config::{ApiKeyConfig, AppConfig};
use showcall_proto::admin::admin_client::AdminClient;
use showcall_proto::admin::event::Kind;
use showcall_proto::admin::{
    GetNodeInfoRequest, GetUserRequest, KickUserRequest, MintTokenRequest, WatchEventsRequest,
};
use showcall_tests::admin::{admin_with, watch_events};
use showcall_tests::{JsonClient, TestNode, now_secs};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const SHOP_KEY_OLD: (&str, &str) = ("shop-2025", "shop-api-secret-2025-0123456789");
const SHOP_KEY_NEW: (&str, &str) = ("shop-2026", "shop-api-secret-2026-0123456789");
const BLOG_KEY: (&str, &str) = ("blog-1", "blog-api-secret-0123456789");

fn app(id: &str, secret: &str, keys: &[(&str, &str)]) -> AppConfig {
    AppConfig {
        id: id.into(),
        secret: secret.into(),
        api_keys: keys
            .iter()
            .map(|(key, secret)| ApiKeyConfig {
                key: (*key).into(),
                secret: (*secret).into(),
            })
            .collect(),
        call_policy_url: None,
        webhook_url: None,
        webhook_secret: None,
    }
}

async fn two_app_node() -> TestNode {
    TestNode::start_with(|c| {
        c.apps = vec![
            app(
                "shop",
                "shop-token-secret-0123456789",
                &[SHOP_KEY_OLD, SHOP_KEY_NEW],
            ),
            app("blog", "blog-token-secret-0123456789", &[BLOG_KEY]),
        ];
    })
    .await
}

fn grpc_url(node: &TestNode) -> String {
    format!("http://{}", node.handle.grpc_addr)
}

async fn plain_channel(node: &TestNode) -> Channel {
    Channel::from_shared(grpc_url(node))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A client that sends `authorization` exactly as given.
async fn client_sending(
    node: &TestNode,
    header: Option<String>,
) -> AdminClient<
    tonic::service::interceptor::InterceptedService<
        Channel,
        impl tonic::service::Interceptor + use<>,
    >,
> {
    let channel = plain_channel(node).await;
    AdminClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
        if let Some(header) = &header {
            request
                .metadata_mut()
                .insert("authorization", header.parse().unwrap());
        }
        Ok(request)
    })
}

fn kick_viewer(app: &str) -> KickUserRequest {
    KickUserRequest {
        app_id: app.into(),
        channel: "room".into(),
        user_id: "viewer".into(),
        ban_seconds: 600,
        ban_join: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn admin_requests_need_the_apps_own_key() {
    let node = two_app_node().await;
    let url = grpc_url(&node);
    let mut shop = admin_with(&url, AdminCredentials::new(SHOP_KEY_OLD.0, SHOP_KEY_OLD.1)).await;
    let mut events = watch_events(&mut shop, "shop", None).await;

    // A shop viewer in a live room: what a refused kick would have removed.
    let viewer_token = node.token("viewer");
    let mut viewer = JsonClient::login(&node.url(), &viewer_token).await;
    let joined = viewer
        .request(serde_json::json!({"joinChannel": {"channel": "room", "role": "CHANNEL_ROLE_AUDIENCE"}}))
        .await;
    assert!(joined.get("error").is_none(), "{joined}");
    loop {
        let event = events.next().await.unwrap().unwrap();
        if matches!(&event.kind, Some(Kind::MemberJoined(m)) if m.user_id == "viewer") {
            break;
        }
    }

    let now = now_secs();
    let expired = AdminTokenIssuer::mint_with_secret(
        SHOP_KEY_OLD.0,
        SHOP_KEY_OLD.1.as_bytes(),
        Duration::from_secs(60),
        now - 3600,
    )
    .unwrap()
    .0;
    let forged = AdminTokenIssuer::mint_with_secret(
        SHOP_KEY_OLD.0,
        b"a-guessed-secret-0123456789",
        Duration::from_secs(60),
        now,
    )
    .unwrap()
    .0;
    let refused_unauthenticated = [
        ("no credential", None),
        ("not a bearer", Some("Basic c2hvcDpzaG9w".to_owned())),
        ("garbage token", Some("Bearer not.a.jwt".to_owned())),
        ("expired token", Some(format!("Bearer {expired}"))),
        ("forged token", Some(format!("Bearer {forged}"))),
    ];
    for (what, header) in refused_unauthenticated {
        let mut client = client_sending(&node, header).await;
        let refused = client.kick_user(kick_viewer("shop")).await.expect_err(what);
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}: {refused:?}");
        let refused = client
            .get_node_info(GetNodeInfoRequest {})
            .await
            .expect_err(what);
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}: {refused:?}");
    }

    // The blog's key acts on the blog only: every shop request is PERMISSION_DENIED.
    let mut blog = admin_with(&url, AdminCredentials::new(BLOG_KEY.0, BLOG_KEY.1)).await;
    let refused = blog.kick_user(kick_viewer("shop")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = blog
        .get_user(GetUserRequest {
            app_id: "shop".into(),
            user_id: "viewer".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = blog
        .mint_token(MintTokenRequest {
            app_id: "shop".into(),
            user_id: "intruder".into(),
            ttl_seconds: 60,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = blog
        .watch_events(WatchEventsRequest {
            after_cursor: None,
            app_id: "shop".into(),
        })
        .await
        .expect_err("another app's events are refused");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    // The blog's own watch (no app named) sees nothing of the shop's.
    let mut blog_events = watch_events(&mut blog, "", Some(0)).await;

    // Nothing of the above changed anything: the viewer is still in the room, unbanned.
    let user = shop
        .get_user(GetUserRequest {
            app_id: "shop".into(),
            user_id: "viewer".into(),
        })
        .await
        .expect("the shop's key reads its users")
        .into_inner();
    assert_eq!(user.channels.len(), 1, "{user:?}");

    // No refused request emitted an event: the shop's next event is a marker made now.
    let _marker = JsonClient::login(&node.url(), &node.token("marker")).await;
    let next = events.next().await.unwrap().unwrap();
    assert!(
        matches!(&next.kind, Some(Kind::UserOnline(u)) if u.user_id == "marker"),
        "the marker is the next event: {next:?}"
    );

    // Both shop keys work (rotation): the new one kicks.
    let mut rotated = admin_with(&url, AdminCredentials::new(SHOP_KEY_NEW.0, SHOP_KEY_NEW.1)).await;
    rotated
        .kick_user(kick_viewer("shop"))
        .await
        .expect("the app's second key works too");
    loop {
        let event = events.next().await.unwrap().unwrap();
        if matches!(&event.kind, Some(Kind::MemberLeft(m)) if m.user_id == "viewer") {
            break;
        }
    }

    // The blog's watch, from the start of the log, carries only the blog's events: its first is the
    // blog's first user, not any of the shop's above.
    let blog_token = blog
        .mint_token(MintTokenRequest {
            app_id: "blog".into(),
            user_id: "reader".into(),
            ttl_seconds: 60,
            ..Default::default()
        })
        .await
        .expect("the blog mints for the blog")
        .into_inner()
        .token;
    let _reader = JsonClient::login(&node.url(), &blog_token).await;
    let first = blog_events.next().await.unwrap().unwrap();
    assert!(
        matches!(&first.kind, Some(Kind::UserOnline(u)) if u.user_id == "reader"),
        "the blog sees its own events only: {first:?}"
    );
}

#[tokio::test]
async fn health_and_reflection_need_no_credential() {
    let node = two_app_node().await;
    let mut health = HealthClient::new(plain_channel(&node).await);
    let status = health
        .check(HealthCheckRequest {
            service: "showcall.admin.v1.Admin".into(),
        })
        .await
        .expect("health is open")
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");
}
