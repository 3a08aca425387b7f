//! The node link accepts only cluster members: a process without the cluster secret is refused before
//! anything it sends is read, a member cannot speak for another node, and a cluster with TLS on (gRPC
//! and a node link on its own port) forms and runs a call between users on different nodes.

use std::collections::HashMap;

use showcall_auth::ClusterSecret;
use showcall_proto::node::node_link_client::NodeLinkClient;
use showcall_proto::node::{DeliverSummary, Envelope};
use showcall_tests::cluster::{CLUSTER_SECRET, Etcd, NodeOptions, NodeProcess, start_converged};
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::video_call_with_media;
use tonic::Code;

/// What a stranger (or a member) could try to deliver: a reply to a request id, as nodes send.
fn envelope(from: &str) -> Envelope {
    Envelope {
        from_node: from.into(),
        actor_key: "reply/1".into(),
        payload: br#"{"from":"n2","hops":0,"body":{"Reply":{"id":1,"result":{"Ok":"Done"}}}}"#
            .to_vec(),
        trace_context: HashMap::new(),
        wire_major: 1,
        wire_minor: 0,
    }
}

/// Opens a link stream to `node` with `token` (if any), sends one envelope from `from`, closes.
async fn deliver(
    node: &NodeProcess,
    token: Option<String>,
    from: &str,
) -> Result<DeliverSummary, tonic::Status> {
    let mut client = NodeLinkClient::connect(node.grpc_url.clone())
        .await
        .expect("the link port is reachable");
    let mut request = tonic::Request::new(futures_util::stream::iter([envelope(from)]));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    client.deliver(request).await.map(|r| r.into_inner())
}

fn now() -> u64 {
    showcall_tests::now_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_refused_on_the_node_link_and_a_member_cannot_speak_for_another() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let [n1, _n2]: [NodeProcess; 2] = start_converged(&etcd, &["n1", "n2"], &options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("two nodes"));
    let refused_before = scrape(n1.http_addr)
        .await
        .find("showcall_node_link_refused_total")
        .unwrap_or(0.0);

    // No token; a token signed with a guessed secret: refused, nothing read.
    let forged = ClusterSecret::new("a-guessed-secret-0123456789")
        .mint("n2", now())
        .unwrap();
    for (what, token) in [("no token", None), ("forged token", Some(forged))] {
        let refused = deliver(&n1, token, "n2").await.expect_err(what);
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}: {refused:?}");
    }
    let metrics = scrape(n1.http_addr).await;
    assert_eq!(
        metrics.find("showcall_node_link_refused_total"),
        Some(refused_before + 2.0),
        "each refusal is counted"
    );

    // A member's token names the member: an envelope claiming another sender is dropped, not delivered.
    let token = ClusterSecret::new(CLUSTER_SECRET)
        .mint("n2", now())
        .unwrap();
    let summary = deliver(&n1, Some(token), "n3")
        .await
        .expect("a member's link opens");
    assert_eq!(
        (summary.delivered, summary.malformed),
        (0, 1),
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_tls_and_a_separate_link_port_runs_a_call_across_nodes() {
    let etcd = Etcd::start().await;
    let fixture = |name| {
        showcall_tests::tls_fixture(name)
            .to_string_lossy()
            .into_owned()
    };
    let options = NodeOptions {
        env: vec![
            ("SHOWCALL_GRPC_TLS_CERT".into(), fixture("localhost.crt")),
            ("SHOWCALL_GRPC_TLS_KEY".into(), fixture("localhost.key")),
            ("SHOWCALL_TRUSTED_CA".into(), fixture("ca.crt")),
            ("SHOWCALL_LINK_ADDR".into(), "127.0.0.1:0".into()),
        ],
        ..NodeOptions::default()
    };
    let [n1, n2]: [NodeProcess; 2] = start_converged(&etcd, &["n1", "n2"], &options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("two nodes"));
    assert!(n1.grpc_url.starts_with("https://"), "{}", n1.grpc_url);
    assert!(
        n1.output.iter().any(|l| l.contains("node link (gRPC)")),
        "{:?}",
        n1.output
    );

    // The host on node 1, the viewer on node 2: the call's envelopes cross the TLS link both ways.
    let mut host = n1.prepared_user("host").await;
    let mut viewer = n2.prepared_user("viewer").await;
    let call = video_call_with_media(&mut viewer, &mut host).await;
    let created = call.created.clone();
    call.caller_media
        .wait_video_frames(10)
        .await
        .expect("the viewer sees the host");

    // The business API answers over TLS with an admin token.
    let mut admin = showcall_tests::admin::admin_at(&n2.grpc_url).await;
    let call = admin
        .get_call(showcall_proto::admin::GetCallRequest {
            app_id: "demo".into(),
            call_id: created.call_id.clone(),
        })
        .await
        .expect("the call is found over TLS")
        .into_inner();
    assert_eq!(call.call_id, created.call_id);
}
