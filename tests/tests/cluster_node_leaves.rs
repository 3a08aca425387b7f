//! What users see when a node of a three-node cluster stops, as an operator stops it (real processes,
//! real etcd):
//! - SIGTERM while other nodes hold links to it and a business server watches its events: the node exits
//!   by itself (exit status 0), the watch ends with UNAVAILABLE ("watch again"), and the survivors own
//!   every partition.
//! - SIGKILL of the node holding a user's WebSocket while the user's session (its actor) lives on a
//!   survivor: the peer hears `remoteLeft` at once, the business API says the user is away, and past the
//!   grace period the call ends for the peer with remoteLeft (101) — as when any connection drops.
//! - SIGKILL of the node running a user's session: a login through a survivor is answered quickly, with
//!   "try again" while the session has no owner, never after waiting for a dead node's answer.

use std::time::Duration;

use futures_util::StreamExt;
use showcall_proto::admin::{GetCallRequest, GetUserRequest};
use showcall_sdk::{CallEvent, CallState, CallStateReason, ErrorCode, SdkError};
use showcall_tests::admin::{admin_at, watch_events};
use showcall_tests::cluster::{
    DEMO_APP, Etcd, NodeOptions, NodeProcess, connected_call_where, eventually, node_tag, shares,
    start_converged, user_in, wait_converged,
};

const LIMIT: Duration = Duration::from_secs(60);

fn options(grace: &str) -> NodeOptions {
    NodeOptions {
        env: vec![("SHOWCALL_GRACE_PERIOD".into(), grace.into())],
        ..NodeOptions::default()
    }
}

async fn three_nodes(etcd: &Etcd, options: &NodeOptions) -> [NodeProcess; 3] {
    start_converged(etcd, &["n1", "n2", "n3"], options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("three ids, three nodes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_node_exits_with_streams_open_and_its_share_moves() {
    let etcd = Etcd::start().await;
    let options = options("30s");
    let [n1, n2, n3] = three_nodes(&etcd, &options).await;
    let share = shares(&[&n2]).await.remove("n2").expect("n2 answers");
    // Sessions through n1 and n3 whose actors live on n2: both nodes hold a link stream into n2.
    let a = n1
        .user(&user_in("via-n1", &share, options.partitions))
        .await;
    let b = n3
        .user(&user_in("via-n3", &share, options.partitions))
        .await;
    a.api
        .prepare_for_call(Default::default())
        .await
        .expect("a command crosses from n1 to n2");
    b.api
        .prepare_for_call(Default::default())
        .await
        .expect("a command crosses from n3 to n2");
    let mut watcher = admin_at(&n2.grpc_url).await;
    let mut events = watch_events(&mut watcher, DEMO_APP, None).await;

    let (status, took) = n2.terminate().await;
    assert!(status.success(), "n2 exited with {status}");
    println!("n2 exited {took:?} after SIGTERM");

    // The watch ends with a status saying to watch again, not with a silent hang or a reset.
    let ended = loop {
        match events.next().await {
            Some(Ok(_)) => continue,
            Some(Err(status)) => break status,
            None => panic!("the watch ended without a status"),
        }
    };
    assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    // The survivors own everything (n2 revoked its lease: no wait for its expiry).
    wait_converged(&[&n1, &n3], options.partitions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_gateway_is_killed_goes_away_and_its_peer_is_told() {
    let etcd = Etcd::start().await;
    let options = options("8s");
    let [n1, n2, n3] = three_nodes(&etcd, &options).await;
    let by_node = shares(&[&n1, &n2, &n3]).await;
    // The viewer's WebSocket is on n1, its session on n2; the host is wholly on n3.
    let viewer_id = user_in("viewer", &by_node["n2"], options.partitions);
    let host_id = user_in("host", &by_node["n3"], options.partitions);
    let mut viewer = n1.prepared_user(&viewer_id).await;
    let mut host = n3.prepared_user(&host_id).await;
    let n1_tag = node_tag(&n1);
    let n1_share = by_node["n1"].clone();
    let call_id = connected_call_where(&mut viewer, &mut host, options.partitions, |p, tag| {
        !n1_share.contains(&p) && tag != n1_tag
    })
    .await;

    n1.kill().await;

    // As when the viewer's own socket drops: the host hears at once that the viewer left...
    host.wait_event(CallEvent::RemoteLeft).await;
    let mut admin = admin_at(&n3.grpc_url).await;
    let user = admin
        .get_user(GetUserRequest {
            app_id: DEMO_APP.into(),
            user_id: viewer_id.clone(),
        })
        .await
        .expect("the viewer's session is known")
        .into_inner();
    assert!(user.away, "the viewer is away: {user:?}");
    // ...and past the grace period the call ends for the host with remoteLeft, once.
    host.wait_state(CallState::Prepared, CallStateReason::RemoteLeft)
        .await;
    let gone = admin
        .get_call(GetCallRequest {
            app_id: DEMO_APP.into(),
            call_id: call_id.clone(),
        })
        .await
        .expect_err("the call is over");
    assert_eq!(gone.code(), tonic::Code::NotFound, "{gone:?}");
    assert_eq!(showcall_tests::cluster::call_endings(&host, &call_id), 1);
    drop((n2, viewer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_for_a_killed_nodes_session_is_answered_without_waiting_for_the_dead() {
    let etcd = Etcd::start().await;
    let options = options("30s");
    let [n1, n2, n3] = three_nodes(&etcd, &options).await;
    let share = shares(&[&n2]).await.remove("n2").expect("n2 answers");
    let id = user_in("lost", &share, options.partitions);
    let before = n1.user(&id).await;

    n2.kill().await;
    drop(before);

    // Every attempt is answered "try again" (or succeeds once the partition is re-owned): none waits for
    // an answer from the dead node.
    let mut refusals = Vec::new();
    eventually("the user logs in again through n1", LIMIT, async || {
        let signal = showcall_sdk::SignalClient::connect(&n1.signal_url)
            .await
            .map_err(|e| e.to_string())?;
        match signal.login(&n1.token(&id)).await {
            Ok(_) => Ok(()),
            Err(SdkError::Refused { code, message }) => {
                assert_eq!(code, ErrorCode::Unavailable, "{message}");
                assert!(
                    !message.contains("did not answer in time"),
                    "a login waited for the dead node: {message}"
                );
                refusals.push(message.clone());
                Err(message)
            }
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    println!("refused first: {refusals:?}");
    drop(n3);
}
