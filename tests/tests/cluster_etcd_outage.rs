//! etcd frozen (SIGSTOP: connections stay open, nothing answers — a partition from etcd) while a call
//! with media runs between clients on two nodes. Media keeps flowing both ways the whole time, also once
//! the nodes fence (signaling to fenced partitions waits); when etcd returns the cluster converges, the
//! call is still connected — neither party was told anything — and hangs up as usual, once.
//!
//! The lease TTL here is 16 s, so etcd is frozen past the nodes' fencing point (TTL − TTL/4 after their
//! last acknowledged renewal, ≤ 12 s) but not past their leases: an outage longer than the TTL expires the leases
//! when etcd returns, which the cluster treats as every node dying at once (see `cluster_zombie`).

use std::collections::HashMap;
use std::time::Duration;

use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole};
use showcall_tests::cluster::{
    Etcd, NodeOptions, NodeProcess, call_endings, eventually, wait_converged,
};
use showcall_tests::sdk_helpers::more_video;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_established_call_goes_on_while_etcd_is_frozen() {
    let etcd = Etcd::start().await;
    let options = NodeOptions {
        lease_ttl: "16s",
        ..NodeOptions::default()
    };
    let n1 = NodeProcess::start(&etcd, "n1", &options).await;
    let n2 = NodeProcess::start(&etcd, "n2", &options).await;
    wait_converged(&[&n1, &n2], options.partitions).await;

    let mut viewer = n1.prepared_user("viewer").await;
    let mut host = n2.prepared_user("host").await;
    let created = viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    let call = created.call_id.as_str();
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    host.api.accept("viewer").await.expect("accepted");
    let viewer_media = viewer
        .join_media(&created.channel, ChannelRole::Broadcaster)
        .await;
    let host_media = host
        .join_media(&created.channel, ChannelRole::Broadcaster)
        .await;
    viewer
        .wait_state(CallState::Connected, CallStateReason::RecvRemoteFirstFrame)
        .await;
    host.wait_state(CallState::Connected, CallStateReason::RecvRemoteFirstFrame)
        .await;

    etcd.pause();
    more_video(&viewer_media, 15).await;
    more_video(&host_media, 15).await;
    eventually("both nodes fence", LIMIT, async || {
        let (a, b) = (n1.info().await, n2.info().await);
        match (&a, &b) {
            (Some(a), Some(b)) if a.fenced && b.fenced => Ok(()),
            _ => Err((a.map(|i| i.fenced), b.map(|i| i.fenced))),
        }
    })
    .await;
    // Fenced, the nodes serve no signaling, but the media routers go on.
    more_video(&viewer_media, 15).await;
    more_video(&host_media, 15).await;

    etcd.resume();
    wait_converged(&[&n1, &n2], options.partitions).await;
    assert_eq!(
        (call_endings(&viewer, call), call_endings(&host, call)),
        (0, 0),
        "nobody was told the call ended"
    );
    more_video(&viewer_media, 30).await;
    viewer
        .api
        .hangup("host", "bye")
        .await
        .expect("hangup after the outage");
    viewer
        .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
        .await;
    host.wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
    assert_eq!(
        (call_endings(&viewer, call), call_endings(&host, call)),
        (1, 1),
        "one end each"
    );
}
