//! A node frozen past its lease (a long GC or VM stall; SIGSTOP here) while it runs sessions. The cluster
//! counts it as dead and the survivors take its partitions over; when it wakes it learns its lease is gone,
//! drops every local actor without side effects, and registers again. Checked on the way: no actor is
//! ever reported active on two nodes, the client connected to the frozen node is told to log in again,
//! and logs in again; the node takes a share again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use showcall_protocol::ActorKey;

use showcall_cluster::partition_of;
use showcall_protocol::AppId;
use showcall_sdk::{Recorded, SessionCloseReason};
use showcall_tests::cluster::{Etcd, NodeOptions, NodeProcess, eventually};
use showcall_tests::sdk_helpers::SdkUser;

const APP: &str = "demo";
const LIMIT: Duration = Duration::from_secs(60);

/// Where every actor (and partition) is served now; panics if one is served twice at once.
async fn placement(nodes: &[&NodeProcess]) -> HashMap<String, String> {
    showcall_tests::cluster::homes(nodes).await
}

/// A user id whose actor lives on one of `partitions`.
fn id_on(prefix: &str, partitions: &BTreeSet<u32>, count: u32) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}"))
        .find(|id| {
            let key = ActorKey::User(AppId(APP.into()), id.as_str().into());
            partitions.contains(&partition_of(&key, count))
        })
        .expect("some id hashes onto those partitions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_frozen_past_its_lease_drops_its_actors_when_it_wakes() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let n1 = NodeProcess::start(&etcd, "n1", &options).await;
    let n2 = NodeProcess::start(&etcd, "n2", &options).await;
    let frozen = NodeProcess::start(&etcd, "n3", &options).await;
    // Settled first: every node serves exactly its rendezvous share, nothing in flight.
    showcall_tests::cluster::wait_converged(&[&n1, &n2, &frozen], options.partitions).await;
    let shares = eventually("three nodes share every partition", LIMIT, async || {
        let mut by_node = BTreeMap::new();
        for node in [&n1, &n2, &frozen] {
            let served = node.info().await.map(|i| i.partitions).unwrap_or_default();
            by_node.insert(node.id.clone(), served);
        }
        let total: usize = by_node.values().map(Vec::len).sum();
        if total == options.partitions as usize && by_node.values().all(|p| !p.is_empty()) {
            Ok(by_node)
        } else {
            Err(by_node)
        }
    })
    .await;
    let frozen_partitions: BTreeSet<u32> = shares["n3"].iter().copied().collect();

    // One client connected to the node that will freeze, one connected to a survivor; both sessions
    // (user actors) live on the node that will freeze.
    let local_id = id_on("local", &frozen_partitions, options.partitions);
    let remote_id = id_on("remote", &frozen_partitions, options.partitions);
    let mut local =
        SdkUser::login_at(&frozen.signal_url, APP, &local_id, &frozen.token(&local_id)).await;
    let mut remote =
        SdkUser::login_at(&n1.signal_url, APP, &remote_id, &n1.token(&remote_id)).await;
    let home = placement(&[&n1, &n2, &frozen]).await;
    assert_eq!(
        home.get(&format!("user/{APP}/{local_id}")),
        Some(&"n3".to_owned())
    );
    assert_eq!(
        home.get(&format!("user/{APP}/{remote_id}")),
        Some(&"n3".to_owned())
    );

    frozen.pause();
    eventually("the survivors own every partition", LIMIT, async || {
        let mut total = 0;
        for node in [&n1, &n2] {
            total += node.info().await.map_or(0, |i| i.partitions.len());
        }
        placement(&[&n1, &n2]).await;
        if total == options.partitions as usize {
            Ok(())
        } else {
            Err(total)
        }
    })
    .await;
    // The client on a survivor whose session was on the frozen node is told, and logs in again there.
    remote
        .wait_signal(|r| matches!(r, Recorded::SessionClosed { .. }))
        .await;
    let again = n1.log_in_again(&remote_id).await;
    assert!(again.login_info().is_some());
    let home = placement(&[&n1, &n2]).await;
    let survivor = home
        .get(&format!("user/{APP}/{remote_id}"))
        .cloned()
        .expect("the session runs on a survivor now");

    frozen.resume();
    // The woken node finds its lease gone: its client hears why its session ended.
    let closed = local
        .wait_signal(|r| matches!(r, Recorded::SessionClosed { .. }))
        .await;
    assert!(
        matches!(
            closed,
            Recorded::SessionClosed {
                reason: SessionCloseReason::ServerShutdown,
                ..
            }
        ),
        "told to log in again: {closed:?}"
    );
    // It registers again and takes a share — busy partitions too, handed over with their sessions —
    // and at no sample is an actor active twice; the session that moved is there all along.
    eventually("the woken node serves a share again", LIMIT, async || {
        let home = placement(&[&n1, &n2, &frozen]).await;
        let session = home.get(&format!("user/{APP}/{remote_id}")).cloned();
        let served = frozen.info().await.map(|i| i.partitions.len()).unwrap_or(0);
        // (While its partition is being handed over the session is briefly served nowhere.)
        if served > 0 && session.is_some() {
            Ok(served)
        } else {
            Err((served, session, &survivor))
        }
    })
    .await;
    // Wherever it runs now, it is the same session: it answers its client's commands ("try again"
    // only while its partition is in flight).
    eventually("the moved session answers", LIMIT, async || {
        match again
            .join_channel("after-wake", showcall_sdk::ChannelRole::Audience)
            .await
        {
            Err(showcall_sdk::SdkError::Refused {
                code: showcall_sdk::ErrorCode::Unavailable,
                message,
            }) => Err(message),
            other => Ok(other.expect("the moved session answers")),
        }
    })
    .await;
    // Its old session is gone for good: the user logs in again, on any node.
    let back = frozen.log_in_again(&local_id).await;
    assert!(back.login_info().is_some());
}
