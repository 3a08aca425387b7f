//! Two real node processes on a real etcd, one app with a webhook: exactly one node (the holder of the
//! webhook leader key) delivers, so no event arrives twice. When it is SIGKILLed, the other takes the seat once the dead node's
//! lease expires and resumes from the checkpoint in etcd: the events keep arriving, signed, none lost.

use std::time::Duration;

use axum::http::StatusCode;
use showcall_node::config::{DEMO_API_KEY, DEMO_API_SECRET, DEMO_APP_ID, DEMO_SECRET};
use showcall_tests::cluster::{Etcd, NodeOptions, NodeProcess, eventually, wait_converged};
use showcall_tests::webhook_receiver::{Answer, Received, WebhookReceiver};

const SECRET: &str = "whsec-cluster-0123456789abcdef";
const LEADER_KEY: &str = "/showcall/v1/webhooks/leader";

fn config(url: &str) -> String {
    format!(
        r#"
        [[apps]]
        id = "{DEMO_APP_ID}"
        secret = "{DEMO_SECRET}"
        api_keys = [{{ key = "{DEMO_API_KEY}", secret = "{DEMO_API_SECRET}" }}]
        webhook_url = "{url}"
        webhook_secret = "{SECRET}"

        [webhooks]
        initial_backoff = "20ms"
        max_backoff = "200ms"
        max_attempts = 50
        "#
    )
}

/// The node id in the webhook leader key, once there is one.
async fn leader(etcd: &Etcd) -> String {
    let mut client = etcd_client::Client::connect([etcd.url.as_str()], None)
        .await
        .expect("etcd reachable");
    eventually(
        "a node holds the webhook leader key",
        Duration::from_secs(60),
        async || {
            let got = client
                .get(LEADER_KEY, None)
                .await
                .map_err(|e| e.to_string())?;
            got.kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
                .ok_or_else(|| "no leader key".to_owned())
        },
    )
    .await
}

/// Delivered events until one is `user.online <user>`; every one must be signed.
async fn until_online(receiver: &mut WebhookReceiver, user: &str) -> Vec<Received> {
    let mut got = Vec::new();
    loop {
        let r = receiver.next_delivered().await;
        assert_eq!(r.signature, Ok(()), "{r:?}");
        let done = r.event_type == "user.online" && r.body["userOnline"]["userId"] == user;
        got.push(r);
        if done {
            return got;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_delivering_node_dies_another_resumes_from_the_checkpoint() {
    let mut receiver = WebhookReceiver::start(SECRET, |_| Answer::Status(StatusCode::OK)).await;
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let config = config(&receiver.url);
    let a = NodeProcess::start_with_config(&etcd, "a", &options, &config).await;
    let b = NodeProcess::start_with_config(&etcd, "b", &options, &config).await;
    wait_converged(&[&a, &b], options.partitions).await;

    let first = leader(&etcd).await;
    let (dying, survivor) = if first == a.id { (a, b) } else { (b, a) };
    assert_eq!(dying.id, first, "the leader is one of the two nodes");

    // Delivered while the first leader runs, by it alone: the receiver accepts everything, so a second
    // delivering node would show up as the same event twice.
    let before = survivor.log_in_again("before").await;
    until_online(&mut receiver, "before").await;
    let also = survivor.log_in_again("also").await;
    until_online(&mut receiver, "also").await;
    let ids: Vec<&str> = receiver.seen.iter().map(|r| r.id.as_str()).collect();
    let distinct: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "one node delivers: {ids:?}");

    dying.kill().await;
    // Reported after the deliverer died: only the survivor can deliver it, from the checkpoint on.
    let after = survivor.log_in_again("after").await;
    let resumed = until_online(&mut receiver, "after").await;
    assert_eq!(
        leader(&etcd).await,
        survivor.id,
        "the survivor took the seat"
    );

    // At least once, and each delivered id is an event of the log: resumed deliveries never go back
    // before the checkpoint of what was already delivered.
    let delivered: Vec<u64> = receiver
        .seen
        .iter()
        .filter(|r| r.answered.is_success())
        .map(|r| {
            r.id.trim_start_matches("evt-")
                .parse()
                .expect("evt-<cursor>")
        })
        .collect();
    let before_kill = delivered.len() - resumed.len();
    assert!(
        resumed.iter().all(|r| r
            .id
            .trim_start_matches("evt-")
            .parse::<u64>()
            .expect("cursor")
            >= delivered[before_kill - 1]),
        "the new leader resumed at the checkpoint: {delivered:?}"
    );
    drop((before, also, after));
}
