//! `showcall-bench lifecycle`: what operating a cluster costs its users — etcd from PATH, in-process
//! nodes (each stopped through [`NodeHandle::shutdown`], the code SIGTERM runs).
//!
//! 1. **Leave**: a node of three stops gracefully; time until it is gone and the two survivors serve
//!    every partition — first with no users (the floor: bare etcd round trips), then with `users`
//!    logged in, so its share of sessions is handed over.
//! 2. **Join under load**: with `users` logged in over three nodes, a fourth joins; time until it serves
//!    its rendezvous share (busy partitions handed over with their sessions) — floor: the same join
//!    with no users.
//! 3. **Rolling restart**: `restart_users` logged in and `calls` connected calls (signaling only) over
//!    three nodes; each node in turn stops and starts again with the same id. Clients of the stopped
//!    node reconnect to another node and log in again: the resume latency is counted from the stop,
//!    beside the floor of a plain login on an idle node. Reports how many sessions resumed, how many
//!    calls were lost (none should be: a call whose channel's node restarts moves to a channel on
//!    another node), and the total time.
//!
//! In-process, both ends of every WebSocket count against the process's open-file limit: keep
//! `users` × 2 well under it (20,000 on the machines this project runs on).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use showcall_cluster::rendezvous::target;
use showcall_node::NodeHandle;
use showcall_node::config::NodeConfig;
use showcall_proto::signal::{self as pb, client_frame::Command, response::Result as Answer};
use showcall_protocol::AppId;
use showcall_protocol::NodeId;

use super::cluster::{PARTITIONS, node_config, start_etcd, until_served};
use super::report::{histogram, percentiles, progress};
use super::signal_client::Client;
use super::tokens::token_factory;

/// Waits until `nodes` together serve every partition and each serves its rendezvous share among them.
async fn settled(nodes: &[&NodeHandle]) -> anyhow::Result<Duration> {
    let live: BTreeSet<NodeId> = nodes
        .iter()
        .filter_map(|n| n.membership().map(|m| m.me().clone()))
        .collect();
    let share = |node: &NodeId| {
        (0..PARTITIONS)
            .filter(|p| target(*p, &live) == Some(node))
            .count()
    };
    until_served(nodes, Some(&share)).await
}

async fn start_nodes(etcd: &str, ids: &[&str]) -> anyhow::Result<Vec<NodeHandle>> {
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(showcall_node::start(lifecycle_config(id, etcd)?).await?);
    }
    settled(&nodes.iter().collect::<Vec<_>>()).await?;
    Ok(nodes)
}

fn lifecycle_config(id: &str, etcd: &str) -> anyhow::Result<NodeConfig> {
    let mut config = node_config(id, Some(etcd))?;
    // Nobody's session may run out while the benchmark waits for a step.
    config.grace_period = Duration::from_secs(120);
    Ok(config)
}

/// Logs `count` users in, round robin over `nodes`; returns each client with the index of its node.
async fn log_in(
    nodes: &[&NodeHandle],
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<(usize, String, Client)>> {
    let token = token_factory(&NodeConfig::default());
    let bar = progress(count as u64, "login");
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let at = i % nodes.len();
        let id = format!("{prefix}-{i}");
        clients.push((
            at,
            id.clone(),
            Client::login_prepared(&nodes[at].signal_url(), token(&id)?).await?,
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(clients)
}

/// Stops `node` gracefully; returns how long until the survivors serve every partition.
async fn leave(node: NodeHandle, survivors: &[&NodeHandle]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    node.shutdown().await;
    settled(survivors).await?;
    Ok(started.elapsed())
}

/// Logs `id` in through `url`, again and again while the cluster answers "try again"; `Ok(resumed)`.
async fn resume(url: &str, token: String) -> anyhow::Result<(Client, bool)> {
    for _ in 0..500 {
        let mut client = Client::connect(url).await?;
        let id = client
            .send(Command::Login(pb::Login {
                token: token.clone(),
                follow_home: false,
            }))
            .await?;
        loop {
            let frame = client.next().await?;
            let Some(pb::server_frame::Frame::Response(r)) = frame.frame else {
                continue;
            };
            if r.request_id != id {
                continue;
            }
            match (r.error, r.result) {
                (None, Some(Answer::Login(login))) => return Ok((client, login.resumed)),
                (Some(e), _) if e.code == pb::ErrorCode::Unavailable as i32 => break,
                (e, _) => bail!("login refused: {e:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("login still UNAVAILABLE after 500 tries")
}

/// `calls` calls between consecutive pairs of `clients`, connected (both joined the call channel).
async fn connect_calls(
    clients: &mut [(usize, String, Client)],
    calls: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for pair in clients.chunks_mut(2).take(calls) {
        let [(_, _, caller), (_, callee_id, callee)] = pair else {
            bail!("not enough users for {calls} calls");
        };
        let created = caller
            .request(Command::Call(pb::Call {
                remote_user_id: callee_id.clone(),
                call_type: pb::CallType::Video as i32,
                ..Default::default()
            }))
            .await?;
        let Some(Answer::CallCreated(created)) = created.result else {
            bail!("call answered without its id");
        };
        callee.wait_state(pb::CallState::Calling).await?;
        callee
            .request(Command::Accept(pb::Accept {
                call_id: created.call_id.clone(),
            }))
            .await?;
        for client in [&mut *caller, &mut *callee] {
            client
                .request(Command::JoinChannel(pb::JoinChannel {
                    channel: created.channel.clone(),
                    role: pb::ChannelRole::Broadcaster as i32,
                    ..Default::default()
                }))
                .await?;
        }
        caller.wait_state(pb::CallState::Connected).await?;
        ids.push(created.call_id);
    }
    Ok(ids)
}

pub async fn run(users: usize, restart_users: usize, calls: usize) -> anyhow::Result<()> {
    let etcd = start_etcd().await?;
    let app = AppId(showcall_node::config::DEMO_APP_ID.to_owned());
    let token = token_factory(&NodeConfig::default());

    // 1. Leave, bare then loaded.
    let mut nodes = start_nodes(&etcd.url, &["l1", "l2", "l3"]).await?;
    let leaving = nodes.pop().expect("three nodes");
    let leave_floor = leave(leaving, &nodes.iter().collect::<Vec<_>>()).await?;
    nodes.push(showcall_node::start(lifecycle_config("l3", &etcd.url)?).await?);
    settled(&nodes.iter().collect::<Vec<_>>()).await?;
    let clients = log_in(&nodes.iter().collect::<Vec<_>>(), "leave", users).await?;
    let leaving = nodes.pop().expect("three nodes");
    let leave_loaded = leave(leaving, &nodes.iter().collect::<Vec<_>>()).await?;
    drop(clients);
    for node in nodes {
        node.shutdown().await;
    }

    // 2. Join, bare then under load.
    let mut nodes = start_nodes(&etcd.url, &["j1", "j2", "j3"]).await?;
    let joined_at = Instant::now();
    nodes.push(showcall_node::start(lifecycle_config("j4", &etcd.url)?).await?);
    settled(&nodes.iter().collect::<Vec<_>>()).await?;
    let join_floor = joined_at.elapsed();
    let joined = nodes.pop().expect("four nodes");
    leave(joined, &nodes.iter().collect::<Vec<_>>()).await?;
    let clients = log_in(&nodes.iter().collect::<Vec<_>>(), "join", users).await?;
    let joined_at = Instant::now();
    nodes.push(showcall_node::start(lifecycle_config("j4", &etcd.url)?).await?);
    settled(&nodes.iter().collect::<Vec<_>>()).await?;
    let join_loaded = joined_at.elapsed();
    let moved = nodes[3].hub().users_online();
    drop(clients);
    for node in nodes {
        node.shutdown().await;
    }

    // 3. Rolling restart.
    let ids = ["r1", "r2", "r3"];
    let mut nodes: Vec<Option<NodeHandle>> = start_nodes(&etcd.url, &ids)
        .await?
        .into_iter()
        .map(Some)
        .collect();
    let live = |nodes: &[Option<NodeHandle>]| -> Vec<String> {
        nodes
            .iter()
            .map(|n| n.as_ref().expect("running").signal_url())
            .collect()
    };
    // The floor: a plain login on an idle node of this cluster.
    let mut login_floor = histogram();
    for i in 0..100 {
        let url = &live(&nodes)[i % 3];
        let started = Instant::now();
        let (client, _) = resume(url, token(&format!("floor-{i}"))?).await?;
        login_floor.record(started.elapsed().as_micros() as u64)?;
        drop(client);
    }
    let handles: Vec<&NodeHandle> = nodes.iter().map(|n| n.as_ref().expect("running")).collect();
    let mut clients = log_in(&handles, "restart", restart_users).await?;
    // Callers and callees on different nodes: consecutive clients are.
    let call_ids = connect_calls(&mut clients, calls).await?;
    let mut resumed_latency = histogram();
    let (mut resumed, mut fresh) = (0, 0);
    let mut per_node = Vec::new();
    let rolling = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        let node = nodes[i].take().expect("running");
        let stopped = Instant::now();
        node.shutdown().await;
        let exited = stopped.elapsed();
        nodes[i] = Some(showcall_node::start(lifecycle_config(id, &etcd.url)?).await?);
        let handles: Vec<&NodeHandle> =
            nodes.iter().map(|n| n.as_ref().expect("running")).collect();
        settled(&handles).await?;
        let converged = stopped.elapsed();
        let urls = live(&nodes);
        for (at, user, client) in clients.iter_mut().filter(|(at, ..)| *at == i) {
            let elsewhere = (i + 1) % 3;
            let (again, was_resumed) = resume(&urls[elsewhere], token(user)?).await?;
            resumed_latency.record(stopped.elapsed().as_micros() as u64)?;
            if was_resumed {
                resumed += 1;
            } else {
                fresh += 1;
            }
            *client = again;
            *at = elsewhere;
        }
        per_node.push(serde_json::json!({
            "node": id,
            "exit_ms": exited.as_millis(),
            "converged_ms": converged.as_millis(),
            "clients_resumed_ms": stopped.elapsed().as_millis(),
        }));
    }
    let rolling = rolling.elapsed();
    let hub = nodes[0].as_ref().expect("running").hub();
    let mut calls_lost = 0;
    for call in &call_ids {
        let found = hub
            .find_call(&app, &showcall_machines::CallId(call.clone()))
            .await;
        if !matches!(found, Ok(Some(_))) {
            calls_lost += 1;
        }
    }
    let result = serde_json::json!({
        "bench": "lifecycle",
        "partitions": PARTITIONS,
        "users": users,
        "leave_floor_no_users_ms": leave_floor.as_millis(),
        "leave_with_users_ms": leave_loaded.as_millis(),
        "join_floor_no_users_ms": join_floor.as_millis(),
        "join_with_users_ms": join_loaded.as_millis(),
        "join_sessions_moved": moved,
        "restart_users": restart_users,
        "restart_calls": calls,
        "restart_per_node": per_node,
        "restart_total_ms": rolling.as_millis(),
        "login_floor": percentiles(&login_floor),
        "resume_after_stop": percentiles(&resumed_latency),
        "sessions_resumed": resumed,
        "sessions_started_fresh": fresh,
        "calls_lost": calls_lost,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    drop(clients);
    for node in nodes.into_iter().flatten() {
        node.shutdown().await;
    }
    drop(etcd);
    Ok(())
}
