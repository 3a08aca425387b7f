//! Channels are pinned to a media node when they open: the least loaded live node, recorded in etcd
//! under that node's lease. Real node processes and etcd; every join goes through node 1's gateway.
//! - 30 live rooms opened one after another spread over the three nodes (each gets a fair part), each
//!   running on exactly one node.
//! - A room stays on its node while it is open: joining it again from another gateway reaches it there.
//! - A room whose last member left closes and its pin goes with it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use showcall_sdk::{ChannelRole, SignalClient};
use showcall_tests::cluster::{Etcd, NodeOptions, NodeProcess, eventually, start_converged};

const APP: &str = "demo";
const LIMIT: Duration = Duration::from_secs(60);
const ROOMS: usize = 30;

/// The node each channel runs on (and that none runs on two).
async fn channel_homes(nodes: &[&NodeProcess]) -> HashMap<String, String> {
    let mut home = HashMap::new();
    for node in nodes {
        let info = node.info().await.expect("node answers");
        for actor in info.active_actors {
            if let Some(channel) = actor.strip_prefix(&format!("channel/{APP}/"))
                && let Some(other) = home.insert(channel.to_owned(), node.id.clone())
            {
                panic!("{channel} runs on {other} and {}", node.id);
            }
        }
    }
    home
}

async fn connect(node: &NodeProcess, uid: &str) -> SignalClient {
    let signal = SignalClient::connect(&node.signal_url)
        .await
        .expect("websocket connects");
    signal.login(&node.token(uid)).await.expect("login");
    signal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_open_on_the_least_loaded_node_and_stay_there_while_open() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let [n1, n2, n3]: [NodeProcess; 3] = start_converged(&etcd, &["n1", "n2", "n3"], &options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("three nodes"));
    let nodes = [&n1, &n2, &n3];

    // One host per room, all through node 1's gateway.
    let mut hosts = Vec::new();
    for i in 0..ROOMS {
        let host = connect(&n1, &format!("host-{i}")).await;
        host.join_channel(&format!("room-{i}"), ChannelRole::Broadcaster)
            .await
            .expect("the host opens its room");
        hosts.push(host);
    }
    let home = channel_homes(&nodes).await;
    assert_eq!(home.len(), ROOMS, "every room runs somewhere: {home:?}");
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for node in home.values() {
        *per_node.entry(node.clone()).or_default() += 1;
    }
    println!("rooms per node: {per_node:?}");
    assert_eq!(per_node.len(), 3, "every node got rooms: {per_node:?}");
    assert!(
        per_node.values().all(|n| *n >= ROOMS / 3 - 3),
        "the least loaded node takes each new room: {per_node:?}"
    );

    // An audience member joining through another gateway reaches the room where it runs.
    let fan = connect(&n3, "fan").await;
    let joined = fan
        .join_channel("room-0", ChannelRole::Audience)
        .await
        .expect("the fan joins");
    assert!(
        joined.members.iter().any(|m| m.user_id == "host-0"),
        "the fan sees the host of the one room-0: {joined:?}"
    );
    assert_eq!(
        channel_homes(&nodes).await.get("room-0"),
        home.get("room-0")
    );

    // The room closes when its last member leaves; its pin goes, so nothing runs it any more.
    fan.leave_channel("room-0").await.expect("the fan leaves");
    hosts[0]
        .leave_channel("room-0")
        .await
        .expect("the host leaves");
    eventually("the empty room closes", LIMIT, async || {
        let homes = channel_homes(&nodes).await;
        match homes.get("room-0") {
            None => Ok(()),
            Some(node) => Err(node.clone()),
        }
    })
    .await;
    // And opens again (wherever is least loaded now) on the next join.
    hosts[0]
        .join_channel("room-0", ChannelRole::Broadcaster)
        .await
        .expect("the room opens again");
    assert!(channel_homes(&nodes).await.contains_key("room-0"));
}
