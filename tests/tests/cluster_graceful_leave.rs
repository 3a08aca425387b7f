//! A node that gets SIGTERM hands its share over before it exits (three real node processes, real etcd):
//! - sessions and connected calls that ran on it go on on the partitions' next owners — a call whose
//!   parties' connections are elsewhere sees nothing at all, and hangs up normally afterwards;
//! - clients whose WebSocket was on it are closed with "service restart", log in on another node and
//!   resume the same session, with the same call, which hangs up normally;
//! - a call whose channel (its media) ran on it moves to a channel on another node: both parties are
//!   told (`connected`, `mediaMoved`, the new channel), join it again, and the call goes on;
//! - the business server gets exactly one `call_ended` per call (`hangup`: nothing was lost);
//! - the survivors own every partition.
//!
//! And the same handoff the other way: a node joining under load takes its whole rendezvous share at
//! once, busy partitions included — their sessions and connected calls move to it, nobody notices, and
//! the calls hang up as usual with one `call_ended` each.

use showcall_proto::admin::{CallPhase, GetCallRequest};
use showcall_sdk::{CallState, CallStateReason};
use showcall_tests::admin::{admin_at, ends_of, watch_events};
use showcall_tests::cluster::{
    DEMO_APP, Etcd, NodeOptions, NodeProcess, connected_call_where, node_tag, resume_at, shares,
    user_in, wait_converged,
};
use showcall_tests::sdk_helpers::hang_up;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_hands_its_sessions_and_calls_over() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    // A call's channel opens on the call's node unless the other node drawn carries under ¾ of its
    // channels per unit of capacity (README "Placement"). Capacities far apart make the placements
    // below possible while every node is nearly empty: n1's calls shed their channels to n2 or n3, n2's
    // to n3 (and not to n1).
    let capacity = |channels: u32| NodeOptions {
        env: vec![("SHOWCALL_MEDIA_CAPACITY".into(), channels.to_string())],
        ..NodeOptions::default()
    };
    let n1 = NodeProcess::start(&etcd, "n1", &capacity(1)).await;
    let n2 = NodeProcess::start(&etcd, "n2", &capacity(10_000)).await;
    let n3 = NodeProcess::start(&etcd, "n3", &capacity(1_000_000)).await;
    wait_converged(&[&n1, &n2, &n3], options.partitions).await;
    let by_node = shares(&[&n1, &n2, &n3]).await;
    let (n2_share, n2_tag) = (by_node["n2"].clone(), node_tag(&n2));
    let count = options.partitions;

    // 1. Sessions and call actor on n2, connections on n1 and n3, channel elsewhere.
    let mut a_caller = n1
        .prepared_user(&user_in("a-caller", &n2_share, count))
        .await;
    let mut a_callee = n3
        .prepared_user(&user_in("a-callee", &n2_share, count))
        .await;
    let a_call = connected_call_where(&mut a_caller, &mut a_callee, count, |p, tag| {
        n2_share.contains(&p) && tag != n2_tag
    })
    .await;
    // 2. Connections on n2 (one session there, one on n3), channel elsewhere.
    let mut b_caller = n2
        .prepared_user(&user_in("b-caller", &n2_share, count))
        .await;
    let mut b_callee = n2
        .prepared_user(&user_in("b-callee", &by_node["n3"], count))
        .await;
    let b_call =
        connected_call_where(&mut b_caller, &mut b_callee, count, |_, tag| tag != n2_tag).await;
    // 3. Everything elsewhere except the channel: its media runs on n2.
    let mut c_caller = n1
        .prepared_user(&user_in("c-caller", &by_node["n1"], count))
        .await;
    let mut c_callee = n3
        .prepared_user(&user_in("c-callee", &by_node["n3"], count))
        .await;
    let c_call = connected_call_where(&mut c_caller, &mut c_callee, count, |p, tag| {
        !n2_share.contains(&p) && tag == n2_tag
    })
    .await;

    let mut admin = admin_at(&n1.grpc_url).await;
    let mut events = watch_events(&mut admin, DEMO_APP, None).await;

    let (status, took) = n2.terminate().await;
    assert!(status.success(), "n2 exited with {status}");
    println!("n2 handed over and exited {took:?} after SIGTERM");
    wait_converged(&[&n1, &n3], count).await;

    // 1. Nothing happened, as far as anyone can tell: still connected, and it hangs up as usual.
    let call = admin
        .get_call(GetCallRequest {
            app_id: DEMO_APP.into(),
            call_id: a_call.clone(),
        })
        .await
        .expect("the call runs on")
        .into_inner();
    assert_eq!(call.phase(), CallPhase::Connected, "{call:?}");
    hang_up(&mut a_caller, &mut a_callee).await;

    // 2. Both clients were told to reconnect, do so elsewhere, and find their call.
    assert_eq!(resume_at(&mut b_caller, &n1).await.as_ref(), Some(&b_call));
    assert_eq!(resume_at(&mut b_callee, &n3).await.as_ref(), Some(&b_call));
    hang_up(&mut b_caller, &mut b_callee).await;

    // 3. Its channel moved off n2: both parties are told where (still connected), join it again, and
    //    the call hangs up as usual.
    let mut moved_to = Vec::new();
    for party in [&mut c_caller, &mut c_callee] {
        let (why, info) = party
            .wait_state_text(CallState::Connected, CallStateReason::MediaMoved)
            .await;
        assert_eq!(
            why,
            "the call's media moved to another node: join the call channel again"
        );
        moved_to.push(info.from_room_id);
    }
    assert_eq!(moved_to[0], moved_to[1]);
    assert!(
        !moved_to[0].ends_with(&format!("@{n2_tag}")),
        "{} is off n2",
        moved_to[0]
    );
    for party in [&c_caller, &c_callee] {
        party
            .api
            .join_call_channel()
            .await
            .expect("the party joins the moved channel");
    }
    hang_up(&mut c_caller, &mut c_callee).await;

    // The billing records: one per call, each a plain hangup.
    let ended = ends_of(
        &mut events,
        &[a_call.clone(), b_call.clone(), c_call.clone()],
    )
    .await;
    assert_eq!(ended[&a_call], ["hangup"]);
    assert_eq!(ended[&b_call], ["hangup"]);
    assert_eq!(ended[&c_call], ["hangup"]);
    let left = shares(&[&n1, &n3]).await;
    assert_eq!(left.values().map(Vec::len).sum::<usize>(), count as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_takes_its_share_of_busy_partitions_with_their_sessions_and_calls() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let count = options.partitions;
    let n1 = NodeProcess::start(&etcd, "n1", &options).await;
    let n2 = NodeProcess::start(&etcd, "n2", &options).await;
    wait_converged(&[&n1, &n2], count).await;
    // Where n3 will take over: its rendezvous share among the three.
    let three: std::collections::BTreeSet<showcall_protocol::NodeId> = ["n1", "n2", "n3"]
        .into_iter()
        .map(|n| showcall_protocol::NodeId(n.into()))
        .collect();
    let n3_share: Vec<u32> = (0..count)
        .filter(|p| {
            showcall_cluster::rendezvous::target(*p, &three).map(|n| n.0.as_str()) == Some("n3")
        })
        .collect();
    // Sessions and connected calls whose actors sit on partitions that will move.
    let mut pairs = Vec::new();
    for i in 0..3 {
        let mut caller = n1
            .prepared_user(&user_in(&format!("moving-caller-{i}"), &n3_share, count))
            .await;
        let mut callee = n2
            .prepared_user(&user_in(&format!("moving-callee-{i}"), &n3_share, count))
            .await;
        let share = n3_share.clone();
        let call =
            connected_call_where(&mut caller, &mut callee, count, |p, _| share.contains(&p)).await;
        pairs.push((caller, callee, call));
    }
    let mut admin = admin_at(&n1.grpc_url).await;
    let mut events = watch_events(&mut admin, DEMO_APP, None).await;

    let n3 = NodeProcess::start(&etcd, "n3", &options).await;
    // n3 serves its whole share, the busy partitions included.
    showcall_tests::cluster::eventually(
        "n3 serves its rendezvous share",
        std::time::Duration::from_secs(30),
        async || {
            let mut served = n3.info().await.map(|i| i.partitions).unwrap_or_default();
            served.sort_unstable();
            if served == n3_share {
                Ok(())
            } else {
                Err(served.len())
            }
        },
    )
    .await;
    let actors = n3.info().await.expect("n3 answers").active_actors;
    for (caller, callee, call) in &pairs {
        for actor in [
            format!("user/{DEMO_APP}/{}", caller.id),
            format!("user/{DEMO_APP}/{}", callee.id),
            format!("call/-/{call}"),
        ] {
            assert!(actors.contains(&actor), "{actor} runs on n3: {actors:?}");
        }
    }
    // The giving nodes say so on /metrics: handoffs that moved, the sessions and calls they carried.
    let (mut moved, mut users, mut calls) = (0.0, 0.0, 0.0);
    for node in [&n1, &n2] {
        let page = showcall_tests::prometheus::scrape(node.http_addr).await;
        moved += page.get("showcall_handoffs_total{outcome=\"moved\"}");
        users += page.get("showcall_handed_over_total{kind=\"user\"}");
        calls += page.get("showcall_handed_over_total{kind=\"call\"}");
    }
    assert!(moved >= 1.0, "handoffs counted: {moved}");
    assert!(
        users >= 6.0 && calls >= 3.0,
        "{users} sessions, {calls} calls"
    );
    // Nobody noticed: the calls are connected and hang up as usual, once.
    for (caller, callee, call) in &mut pairs {
        assert_eq!(
            showcall_tests::cluster::call_endings(caller, call),
            0,
            "{call} goes on"
        );
        hang_up(caller, callee).await;
    }
    let calls: Vec<String> = pairs.iter().map(|(_, _, call)| call.clone()).collect();
    let ended = ends_of(&mut events, &calls).await;
    for (_, _, call) in &pairs {
        assert_eq!(ended[call], ["hangup"], "{call}");
    }
}
