//! Admission and billing ticks, end to end, against a business server written here: a real tonic
//! `CallPolicy` server on 127.0.0.1, configured as the test app's `call_policy_url`, and a watcher of the
//! admin API's business events.
//!
//! - A refused call ends for the caller with `refusedByPolicy` and the business server's reason; the
//!   callee never rings; the events say created, then ended "refused".
//! - An allowed call rings and connects as usual; the business server was asked once, with the caller,
//!   callee, call type and extension.
//! - A business server that never answers: the call ends for the caller with "admission timed out".
//! - A connected call ticks (1, 2, 3 with growing connected time, in order) until it ends; no tick follows
//!   its record.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use showcall_proto::admin::Event;
use showcall_proto::admin::event::Kind;
use showcall_proto::policy::call_policy_server::{CallPolicy, CallPolicyServer};
use showcall_proto::policy::{AuthorizeRequest, AuthorizeResponse, CallType as PolicyCallType};
use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole, PrepareConfig, Recorded};
use showcall_tests::admin::{admin_at, watch_events};
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::{DEADLINE, TestNode};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// Calls to this host are refused with [`VIP_ONLY`].
const VIP_HOST: &str = "vip-host";
const VIP_ONLY: &str = "only subscribers may call this host";
/// The business server never answers about calls to this host.
const SILENT_HOST: &str = "silent-host";

/// The business server's admission rules; every request it gets is reported on `seen`.
struct Policy {
    seen: mpsc::UnboundedSender<AuthorizeRequest>,
}

#[tonic::async_trait]
impl CallPolicy for Policy {
    async fn authorize(
        &self,
        request: Request<AuthorizeRequest>,
    ) -> Result<Response<AuthorizeResponse>, Status> {
        let request = request.into_inner();
        let _ = self.seen.send(request.clone());
        let (allowed, reason) = match request.callee_user_id.as_str() {
            VIP_HOST => (false, VIP_ONLY),
            SILENT_HOST => std::future::pending().await,
            _ => (true, ""),
        };
        Ok(Response::new(AuthorizeResponse {
            allowed,
            reason: reason.to_owned(),
        }))
    }
}

/// A running policy server; stops when dropped.
struct PolicyServer {
    url: String,
    seen: mpsc::UnboundedReceiver<AuthorizeRequest>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn policy_server() -> PolicyServer {
    serve_policy(None).await
}

/// A policy server over TLS with the test `localhost` certificate (signed by the test CA).
async fn policy_server_tls() -> PolicyServer {
    let read = |name| std::fs::read(showcall_tests::tls_fixture(name)).expect("TLS fixture");
    let identity =
        tonic::transport::Identity::from_pem(read("localhost.crt"), read("localhost.key"));
    serve_policy(Some(
        tonic::transport::ServerTlsConfig::new().identity(identity),
    ))
    .await
}

async fn serve_policy(tls: Option<tonic::transport::ServerTlsConfig>) -> PolicyServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the policy server");
    let port = listener.local_addr().expect("bound").port();
    let url = match tls {
        Some(_) => format!("https://localhost:{port}"),
        None => format!("http://127.0.0.1:{port}"),
    };
    let (tx, seen) = mpsc::unbounded_channel();
    let service = CallPolicyServer::new(Policy { seen: tx });
    let task = tokio::spawn(async move {
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).expect("TLS settings");
        }
        builder
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .expect("policy server runs");
    });
    PolicyServer { url, seen, task }
}

/// A node whose app asks `policy` about every call, with `timeout` to answer.
async fn node_with_policy(policy: &PolicyServer, timeout: Duration) -> TestNode {
    let url = policy.url.clone();
    TestNode::start_with(move |c| {
        c.apps[0].call_policy_url = Some(url);
        c.call_policy_timeout = timeout;
    })
    .await
}

/// A business server's view of the app's events.
struct Watcher {
    stream: Streaming<Event>,
    seen: Vec<Event>,
}

impl Watcher {
    async fn open(node: &TestNode) -> Watcher {
        let mut admin = admin_at(&format!("http://{}", node.handle.grpc_addr)).await;
        let stream = watch_events(&mut admin, node.app(), None).await;
        Watcher {
            stream,
            seen: Vec::new(),
        }
    }

    /// The next event whose kind `pred` accepts (every event is kept in `seen`).
    async fn until(&mut self, pred: impl Fn(&Kind) -> bool) -> Kind {
        loop {
            let event = tokio::time::timeout(DEADLINE, self.stream.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("no such event within {DEADLINE:?}; saw {:?}", self.seen)
                })
                .expect("the stream goes on")
                .expect("an event");
            self.seen.push(event.clone());
            let kind = event.kind.expect("every event has a kind");
            if pred(&kind) {
                return kind;
            }
        }
    }

    /// The kinds seen so far that concern `call` (by call id).
    fn of_call(&self, call: &str) -> Vec<Kind> {
        self.seen
            .iter()
            .filter_map(|e| e.kind.clone())
            .filter(|k| call_of(k) == Some(call))
            .collect()
    }
}

fn call_of(kind: &Kind) -> Option<&str> {
    match kind {
        Kind::CallCreated(c) => Some(&c.call_id),
        Kind::CallRinging(c) | Kind::CallAccepted(c) | Kind::CallConnected(c) => Some(&c.call_id),
        Kind::CallEnded(c) => Some(&c.call_id),
        Kind::BillingTick(t) => Some(&t.call_id),
        _ => None,
    }
}

fn ended(kind: &Kind, call: &str) -> bool {
    matches!(kind, Kind::CallEnded(e) if e.call_id == call)
}

fn rang(user: &SdkUser) -> bool {
    user.rec.seen().iter().any(|r| {
        matches!(
            r,
            Recorded::State {
                state: CallState::Calling,
                ..
            }
        )
    })
}

#[tokio::test]
async fn a_refused_call_ends_for_the_caller_with_the_business_servers_reason_and_never_rings() {
    let policy = policy_server().await;
    let node = node_with_policy(&policy, Duration::from_secs(10)).await;
    let mut watcher = Watcher::open(&node).await;
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let host = SdkUser::prepared(&node, VIP_HOST, PrepareConfig::default()).await;

    let created = viewer
        .api
        .call(VIP_HOST, CallType::Video, HashMap::new())
        .await
        .expect("the call is placed (and then authorized)");
    // While the business server decides, the caller sees what it always sees.
    viewer
        .wait_state(CallState::Calling, CallStateReason::LocalVideoCall)
        .await;
    let (text, info) = viewer
        .wait_state_text(CallState::Prepared, CallStateReason::RefusedByPolicy)
        .await;
    assert_eq!(
        text, VIP_ONLY,
        "the business server's reason reaches the caller"
    );
    assert_eq!(info.call_id, created.call_id);

    let end = watcher.until(|k| ended(k, &created.call_id)).await;
    let Kind::CallEnded(record) = end else {
        unreachable!("matched call_ended")
    };
    assert_eq!(record.end_reason, "refused");
    assert_eq!(record.detail, VIP_ONLY);
    assert_eq!(record.connected_at_ms, None);
    let lifecycle: Vec<&str> = watcher
        .of_call(&created.call_id)
        .iter()
        .map(|k| match k {
            Kind::CallCreated(_) => "created",
            Kind::CallEnded(_) => "ended",
            _ => "other",
        })
        .collect();
    assert_eq!(lifecycle, ["created", "ended"], "it never rang");

    // A ring would have reached the host before anything the host asks for after the call ended: go live
    // (a round trip through the host's session) and look at everything the host saw.
    host.signal
        .join_channel("vip_live", ChannelRole::Broadcaster)
        .await
        .expect("the host goes live");
    watcher
        .until(|k| matches!(k, Kind::MemberJoined(m) if m.user_id == VIP_HOST))
        .await;
    assert!(!rang(&host), "the callee never rang: {:?}", host.rec.seen());
    assert_eq!(host.api.state(), CallState::Prepared);
    assert_eq!(
        viewer.api.state(),
        CallState::Prepared,
        "free to call again"
    );
}

#[tokio::test]
async fn a_policy_service_over_https_is_asked_and_its_refusal_reaches_the_caller() {
    let mut policy = policy_server_tls().await;
    let url = policy.url.clone();
    let node = TestNode::start_with(move |c| {
        c.apps[0].call_policy_url = Some(url);
        c.trusted_ca = Some(showcall_tests::tls_fixture("ca.crt"));
    })
    .await;
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let _host = SdkUser::prepared(&node, VIP_HOST, PrepareConfig::default()).await;
    viewer
        .api
        .call(VIP_HOST, CallType::Video, HashMap::new())
        .await
        .expect("the call is placed (and then authorized)");
    let (text, _) = viewer
        .wait_state_text(CallState::Prepared, CallStateReason::RefusedByPolicy)
        .await;
    assert_eq!(text, VIP_ONLY, "the verdict came over TLS");
    let asked = policy.seen.recv().await.expect("asked");
    assert_eq!(asked.callee_user_id, VIP_HOST);
}

#[tokio::test]
async fn an_allowed_call_rings_and_connects_and_the_business_server_was_asked_once() {
    let mut policy = policy_server().await;
    let node = node_with_policy(&policy, Duration::from_secs(10)).await;
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let mut host = SdkUser::prepared(&node, "open-host", PrepareConfig::default()).await;

    let extension = HashMap::from([("gift".to_owned(), "rose".to_owned())]);
    let created = viewer
        .api
        .call("open-host", CallType::Audio, extension)
        .await
        .expect("call placed");
    let info = host
        .wait_state(CallState::Calling, CallStateReason::RemoteAudioCall)
        .await;
    assert_eq!(info.extension.get("gift").map(String::as_str), Some("rose"));
    host.api.accept("viewer").await.expect("accepted");
    viewer.api.join_call_channel().await.expect("viewer joins");
    host.api.join_call_channel().await.expect("host joins");
    viewer
        .wait_state(CallState::Connected, CallStateReason::BothJoined)
        .await;
    host.wait_state(CallState::Connected, CallStateReason::BothJoined)
        .await;

    let asked = policy.seen.try_recv().expect("asked before it rang");
    assert_eq!(asked.app_id, node.app());
    assert_eq!(asked.call_id, created.call_id);
    assert_eq!(
        (asked.caller_user_id.as_str(), asked.callee_user_id.as_str()),
        ("viewer", "open-host")
    );
    assert_eq!(asked.call_type, PolicyCallType::Audio as i32);
    assert_eq!(
        asked.extension.get("gift").map(String::as_str),
        Some("rose")
    );
    assert!(policy.seen.try_recv().is_err(), "asked exactly once");

    viewer.api.hangup("open-host", "bye").await.expect("hangup");
    host.wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
}

#[tokio::test]
async fn a_business_server_that_never_answers_refuses_by_timeout() {
    let mut policy = policy_server().await;
    let node = node_with_policy(&policy, Duration::from_millis(300)).await;
    let mut watcher = Watcher::open(&node).await;
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let host = SdkUser::prepared(&node, SILENT_HOST, PrepareConfig::default()).await;

    let created = viewer
        .api
        .call(SILENT_HOST, CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    let (text, _) = viewer
        .wait_state_text(CallState::Prepared, CallStateReason::RefusedByPolicy)
        .await;
    assert_eq!(text, "admission timed out");
    let Kind::CallEnded(record) = watcher.until(|k| ended(k, &created.call_id)).await else {
        unreachable!("matched call_ended")
    };
    assert_eq!(
        (record.end_reason.as_str(), record.detail.as_str()),
        ("refused", "admission timed out")
    );
    let asked = policy
        .seen
        .recv()
        .await
        .expect("the business server was asked");
    assert_eq!(asked.call_id, created.call_id);
    assert!(!rang(&host), "the callee never rang");
}

#[tokio::test]
async fn a_connected_call_ticks_in_order_until_it_ends_and_never_after() {
    let node = TestNode::start_with(|c| c.billing_tick = Duration::from_millis(200)).await;
    let mut watcher = Watcher::open(&node).await;
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let mut host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;

    let first = connect(&mut viewer, &mut host).await;
    let mut ticks = Vec::new();
    while ticks.len() < 3 {
        let kind = watcher.until(|k| matches!(k, Kind::BillingTick(_))).await;
        let Kind::BillingTick(tick) = kind else {
            unreachable!("matched a tick")
        };
        assert_eq!(tick.call_id, first, "only the connected call ticks");
        assert_eq!(
            (tick.caller_user_id.as_str(), tick.callee_user_id.as_str()),
            ("viewer", "host")
        );
        ticks.push((tick.tick, tick.connected_ms));
    }
    assert_eq!(
        ticks.iter().map(|t| t.0).collect::<Vec<_>>(),
        [1, 2, 3],
        "numbered in order: {ticks:?}"
    );
    assert!(
        ticks.windows(2).all(|w| w[0].1 < w[1].1),
        "connected time grows: {ticks:?}"
    );
    let connected = watcher.of_call(&first);
    assert!(
        matches!(connected.iter().position(|k| matches!(k, Kind::CallConnected(_))),
            Some(i) if connected[i + 1..].iter().all(|k| matches!(k, Kind::BillingTick(_)))),
        "ticks come after the connect: {connected:?}"
    );

    viewer.api.hangup("host", "bye").await.expect("hangup");
    let Kind::CallEnded(record) = watcher.until(|k| ended(k, &first)).await else {
        unreachable!("matched call_ended")
    };
    let last_tick = ticks.last().expect("three ticks").1;
    assert!(record.connected_duration_ms >= last_tick, "{record:?}");

    // Had the first call's tick survived its end, it would come within one period of the end. A second
    // call connected after that end ticks only a full period after its own connect: when its first tick
    // arrives, a stray tick of the first call would have shown already.
    host.wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
    let second = connect(&mut viewer, &mut host).await;
    let kind = watcher
        .until(|k| matches!(k, Kind::BillingTick(t) if t.call_id == second))
        .await;
    assert!(matches!(kind, Kind::BillingTick(t) if t.tick == 1));
    let after_end: Vec<Kind> = watcher
        .of_call(&first)
        .into_iter()
        .skip_while(|k| !ended(k, &first))
        .skip(1)
        .collect();
    assert!(
        after_end.is_empty(),
        "no tick after the record: {after_end:?}"
    );
    viewer.api.hangup("host", "bye").await.expect("hangup");
}

/// viewer calls host, host accepts, both join: connected. Returns the call id.
async fn connect(viewer: &mut SdkUser, host: &mut SdkUser) -> String {
    let created = viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    host.api.accept("viewer").await.expect("accepted");
    viewer.api.join_call_channel().await.expect("viewer joins");
    host.api.join_call_channel().await.expect("host joins");
    viewer
        .wait_state(CallState::Connected, CallStateReason::BothJoined)
        .await;
    host.wait_state(CallState::Connected, CallStateReason::BothJoined)
        .await;
    created.call_id
}
