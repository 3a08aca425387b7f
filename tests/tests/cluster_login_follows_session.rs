//! A client may connect to any node; when the nodes announce the URLs clients reach them at
//! (`signal_public_url`), the SDK's login is sent to the node serving the user's session and logs in
//! there (`Login.follow_home`), so the client's commands and events cross no node link. Real etcd, real
//! node processes, the Rust SDK.

use std::time::Duration;

use showcall_sdk::{CallState, CallStateReason, Recorded, SignalClient};
use showcall_tests::cluster::{
    Etcd, NodeOptions, NodeProcess, eventually, shares, start_converged, user_in,
};
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::{SdkUser, hang_up, video_call_with_media};

const SENT_ELSEWHERE: &str = "showcall_signaling_logins_sent_elsewhere_total";
const CONNECTIONS: &str = "showcall_signaling_connections";
const CHANNELS_OPEN: &str = "showcall_channels_open";

/// Two nodes that announce their signaling URLs, converged.
async fn announced_pair(etcd: &Etcd) -> [NodeProcess; 2] {
    let options = NodeOptions {
        announce_signal_url: true,
        ..NodeOptions::default()
    };
    start_converged(etcd, &["n1", "n2"], &options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("two nodes"))
}

/// A user id (`prefix-<n>`) whose session `node` serves.
async fn user_served_by(prefix: &str, node: &NodeProcess, all: &[&NodeProcess]) -> String {
    let served = shares(all).await.remove(&node.id).unwrap_or_default();
    user_in(prefix, &served, NodeOptions::default().partitions)
}

/// Waits until each node holds exactly `want` signaling connections (a connection the SDK left closes
/// in the background).
async fn connections_become(nodes: &[&NodeProcess], want: &[f64]) {
    eventually(
        "the nodes hold the expected signaling connections",
        Duration::from_secs(20),
        async || {
            let mut held = Vec::new();
            for node in nodes {
                held.push(scrape(node.http_addr).await.get(CONNECTIONS));
            }
            if held == want {
                Ok(())
            } else {
                Err(format!("connections per node {held:?}, want {want:?}"))
            }
        },
    )
    .await;
}

fn signal_disconnections(user: &SdkUser) -> usize {
    user.rec
        .seen()
        .iter()
        .filter(|r| matches!(r, Recorded::SignalDisconnected { .. }))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connected_to_another_node_logs_in_where_its_session_is_and_its_calls_work() {
    let etcd = Etcd::start().await;
    let [n1, n2] = announced_pair(&etcd).await;
    let both = [&n1, &n2];
    // Each user connects to the node that does NOT serve its session.
    let caller_id = user_served_by("caller", &n2, &both).await;
    let callee_id = user_served_by("callee", &n1, &both).await;
    let mut caller = n1.prepared_user(&caller_id).await;
    let mut callee = n2.prepared_user(&callee_id).await;

    // Each was sent once to the other node, and each node now holds one connection: its own user's.
    assert_eq!(scrape(n1.http_addr).await.get(SENT_ELSEWHERE), 1.0);
    assert_eq!(scrape(n2.http_addr).await.get(SENT_ELSEWHERE), 1.0);
    connections_become(&both, &[1.0, 1.0]).await;
    // Leaving the first connection is not a disconnection the app hears of.
    assert_eq!(signal_disconnections(&caller), 0);
    assert_eq!(signal_disconnections(&callee), 0);

    // The whole call flow works from there, with media.
    let call = video_call_with_media(&mut caller, &mut callee).await;
    call.caller_media
        .wait_video_frames(10)
        .await
        .expect("the caller sees the callee");
    call.callee_media
        .wait_video_frames(10)
        .await
        .expect("the callee sees the caller");
    // Its channel opened on the caller's node (where the call runs), not on the callee's.
    assert_eq!(scrape(n2.http_addr).await.get(CHANNELS_OPEN), 1.0);
    assert_eq!(scrape(n1.http_addr).await.get(CHANNELS_OPEN), 0.0);
    hang_up(&mut caller, &mut callee).await;

    // A client that does not ask to follow its session stays where it connected.
    let stays = user_served_by("stays", &n2, &both).await;
    let signal = SignalClient::connect(&n1.signal_url)
        .await
        .expect("connects");
    signal.set_follow_home(false);
    let info = signal.login(&n1.token(&stays)).await.expect("logged in");
    assert_eq!(info.user_id, stays);
    assert_eq!(scrape(n1.http_addr).await.get(SENT_ELSEWHERE), 1.0);
    connections_become(&both, &[2.0, 1.0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_sessions_node_cannot_be_reached_logs_in_where_it_connected() {
    let etcd = Etcd::start().await;
    // Node 2 announces a URL nobody answers at (a port bound and closed again).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("its address");
    let n1 = NodeProcess::start(
        &etcd,
        "n1",
        &NodeOptions {
            announce_signal_url: true,
            ..NodeOptions::default()
        },
    )
    .await;
    let n2 = NodeProcess::start(
        &etcd,
        "n2",
        &NodeOptions {
            env: vec![(
                "SHOWCALL_SIGNAL_PUBLIC_URL".into(),
                format!("ws://{dead}/signal"),
            )],
            ..NodeOptions::default()
        },
    )
    .await;
    let both = [&n1, &n2];
    showcall_tests::cluster::wait_converged(&both, NodeOptions::default().partitions).await;

    let stranded_id = user_served_by("stranded", &n2, &both).await;
    let caller_id = user_served_by("caller", &n1, &both).await;
    let mut stranded = n1.prepared_user(&stranded_id).await;
    // Sent to node 2's announced URL, which refused the connection: served from node 1.
    assert_eq!(scrape(n1.http_addr).await.get(SENT_ELSEWHERE), 1.0);
    connections_become(&both, &[1.0, 0.0]).await;
    assert_eq!(signal_disconnections(&stranded), 0);

    // It is reachable like any user: a call rings it, through the node link.
    let mut caller = n1.prepared_user(&caller_id).await;
    caller
        .api
        .call(
            &stranded_id,
            showcall_sdk::CallType::Video,
            Default::default(),
        )
        .await
        .expect("call placed");
    stranded
        .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    stranded
        .api
        .reject(&caller_id, "not now")
        .await
        .expect("rejected");
    caller
        .wait_state(CallState::Prepared, CallStateReason::RemoteRejected)
        .await;
}
