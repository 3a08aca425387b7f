//! A business server talks to a running node's admin API: it mints tokens the node accepts, is told
//! which field is wrong, reads the node's info, and sees the node healthy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use showcall_admin::{AdminCredentials, AdminService, NodeInfo, serve};
use showcall_auth::{ApiKeys, AppKeys, TokenVerifier};
use showcall_proto::admin::admin_client::AdminClient;
use showcall_proto::admin::{GetNodeInfoRequest, MintTokenRequest};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SECRET: &str = "test-secret-0123456789";
const API_KEY: &str = "demo-key";
const API_SECRET: &str = "test-api-secret-0123456789";

/// What the business server signs its requests with.
fn credentials() -> AdminCredentials {
    AdminCredentials::new(API_KEY, API_SECRET)
}

/// A running admin server and the means to stop it.
struct Node {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Node {
    async fn start() -> Self {
        let keys = Arc::new(AppKeys::from_pairs([("demo", SECRET)]));
        let api_keys = Arc::new(ApiKeys::from_triples([(API_KEY, "demo", API_SECRET)]));
        let service = AdminService::new(keys, || NodeInfo {
            node_id: "node-test".into(),
            version: "0.0.0-test".into(),
            signal_url: "ws://127.0.0.1:1/signal".into(),
            users_online: 3,
            calls_active: 1,
            ..NodeInfo::default()
        })
        .with_api_keys(api_keys);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, service, async {
            let _ = stopped.await;
        }));
        Self { addr, stop, task }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn mint_request(user_id: &str) -> MintTokenRequest {
    MintTokenRequest {
        app_id: "demo".into(),
        user_id: user_id.into(),
        ttl_seconds: 600,
        channel: "room-1".into(),
        publish: true,
        subscribe: None,
    }
}

#[tokio::test]
async fn minted_token_verifies_with_the_app_secret() {
    let node = Node::start().await;
    let mut client = AdminClient::with_interceptor(node.channel().await, credentials());

    let before = now_unix();
    let minted = client
        .mint_token(mint_request("42"))
        .await
        .unwrap()
        .into_inner();

    let keys = AppKeys::from_pairs([("demo", SECRET)]);
    let claims = TokenVerifier::verify(&keys, &minted.token, now_unix()).unwrap();
    assert_eq!(claims.app, "demo");
    assert_eq!(claims.sub, "42");
    assert_eq!(claims.exp, minted.expires_at);
    assert!((before + 600..=now_unix() + 600).contains(&minted.expires_at));
    assert!(claims.grants.signal && claims.grants.publish && claims.grants.subscribe);
    assert!(claims.grants.allows_channel("room-1"));
    assert!(!claims.grants.allows_channel("room-2"));

    node.stop().await;
}

#[tokio::test]
async fn empty_user_id_is_refused_naming_the_field() {
    let node = Node::start().await;
    let mut client = AdminClient::with_interceptor(node.channel().await, credentials());

    let status = client.mint_token(mint_request("")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("user_id:"), "{status:?}");

    // A key acts for its own app: another app id is not this caller's to mint for.
    let mut unknown_app = mint_request("42");
    unknown_app.app_id = "not-configured".into();
    let status = client.mint_token(unknown_app).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    node.stop().await;
}

#[tokio::test]
async fn node_info_is_what_the_node_reports() {
    let node = Node::start().await;
    let mut client = AdminClient::with_interceptor(node.channel().await, credentials());

    let info = client
        .get_node_info(GetNodeInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "node-test");
    assert_eq!(info.users_online, 3);
    assert_eq!(info.calls_active, 1);

    node.stop().await;
}

#[tokio::test]
async fn health_check_answers_serving() {
    let node = Node::start().await;
    let mut health = HealthClient::new(node.channel().await);

    for service in ["", "showcall.admin.v1.Admin"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    node.stop().await;
}
