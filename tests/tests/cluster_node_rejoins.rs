//! A node restarted with the same id rejoins a three-node cluster while users keep logging in and
//! calling (real processes, real etcd). While partitions move to it, clients may be told "try again"
//! (UNAVAILABLE) and nothing else goes wrong:
//! - a callee that is logged in and prepared always rings (never `remoteOffline` because its
//!   partition was between owners);
//! - a session that logged in answers its commands (never "session is closed" after a good login);
//! - a `call` answered UNAVAILABLE created nothing: the next `call` is not ALREADY_IN_CALL;
//! - every call then connects and hangs up normally, and the business API agrees.

use std::collections::HashMap;
use std::time::Duration;

use showcall_sdk::{CallState, CallStateReason, CallType, ErrorCode, Recorded, SdkError};
use showcall_tests::cluster::{
    DEMO_APP, Etcd, NodeOptions, NodeProcess, start_converged, wait_converged,
};
use showcall_tests::sdk_helpers::{SdkUser, is_connected};

/// How many pairs each worker runs after the rejoined node serves its share.
const PAIRS_AFTER: usize = 3;
const WORKERS: usize = 3;
/// How often a command answered UNAVAILABLE is tried again before the test gives up on the cluster.
const RETRIES: usize = 200;

/// Runs a command until it is not refused with UNAVAILABLE ("try again"). (A macro: async closures
/// borrowing the users are not `Send` for the worker tasks.)
macro_rules! retried {
    ($command:expr) => {{
        let mut tries = 0;
        loop {
            match $command.await {
                Err(SdkError::Refused {
                    code: ErrorCode::Unavailable,
                    ..
                }) if tries < RETRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => break other,
            }
        }
    }};
}

async fn login(node: &NodeProcess, id: &str) -> SdkUser {
    for _ in 0..RETRIES {
        let token = node.token(id);
        match SdkUser::try_login_at(&node.signal_url, DEMO_APP, id, &token).await {
            Ok(user) => return user,
            Err(SdkError::Refused {
                code: ErrorCode::Unavailable,
                ..
            }) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{id} could not log in: {e}"),
        }
    }
    panic!("{id}: login still UNAVAILABLE after {RETRIES} tries");
}

/// One pair's whole call, checking what each step may answer.
async fn call_through(caller_node: &NodeProcess, callee_node: &NodeProcess, tag: &str) {
    let mut caller = login(caller_node, &format!("caller-{tag}")).await;
    let mut callee = login(callee_node, &format!("callee-{tag}")).await;
    for user in [&mut caller, &mut callee] {
        retried!(user.api.prepare_for_call(Default::default()))
            .unwrap_or_else(|e| panic!("{} logged in but cannot prepare: {e}", user.id));
        user.wait_state(CallState::Prepared, CallStateReason::None)
            .await;
    }
    let created = retried!(caller.api.call(&callee.id, CallType::Video, HashMap::new()))
        .unwrap_or_else(|e| panic!("{} logged in and prepared but cannot call: {e}", caller.id));
    // The callee is logged in and prepared: it rings, whatever partition moves meanwhile.
    let first = caller
        .wait_call(|r| matches!(r, Recorded::State { .. }))
        .await;
    assert!(
        first.is_state(CallState::Calling, CallStateReason::LocalVideoCall),
        "{}: the call's first state is {first:?}",
        caller.id
    );
    let next = callee
        .wait_call(|r| matches!(r, Recorded::State { .. }))
        .await;
    assert!(
        next.is_state(CallState::Calling, CallStateReason::RemoteVideoCall),
        "{}: rang as {next:?}",
        callee.id
    );
    retried!(callee.api.accept(&caller.id)).expect("the callee accepts");
    retried!(caller.api.join_call_channel()).expect("the caller joins");
    retried!(callee.api.join_call_channel()).expect("the callee joins");
    caller.wait_call(is_connected).await;
    callee.wait_call(is_connected).await;
    retried!(caller.api.hangup(&callee.id, "bye")).expect("the caller hangs up");
    caller
        .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
        .await;
    callee
        .wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
    assert_eq!(
        showcall_tests::cluster::call_endings(&caller, &created.call_id),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_keep_calling_while_a_restarted_node_rejoins() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let [n1, n2, n3]: [NodeProcess; 3] = start_converged(&etcd, &["n1", "n2", "n3"], &options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("three ids, three nodes"));
    let (status, _) = n3.terminate().await;
    assert!(status.success(), "n3 exited with {status}");
    wait_converged(&[&n1, &n2], options.partitions).await;

    let (n1, n2) = (std::sync::Arc::new(n1), std::sync::Arc::new(n2));
    // Workers call until the rejoined node serves its share, then a few pairs more.
    let settled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let (n1, n2, settled) = (n1.clone(), n2.clone(), settled.clone());
        workers.spawn(async move {
            let mut after = 0;
            for i in 0.. {
                // Callers through n1, callees through n2; their sessions and calls land anywhere.
                let (a, b) = if i % 2 == 0 { (&n1, &n2) } else { (&n2, &n1) };
                call_through(a, b, &format!("{w}-{i}")).await;
                if settled.load(std::sync::atomic::Ordering::Acquire) {
                    after += 1;
                    if after == PAIRS_AFTER {
                        return i + 1;
                    }
                }
            }
            unreachable!("the loop returns")
        });
    }
    // The node comes back while the workers run.
    let n3 = NodeProcess::start(&etcd, "n3", &options).await;
    wait_converged(&[&n1, &n2, &n3], options.partitions).await;
    settled.store(true, std::sync::atomic::Ordering::Release);
    let mut calls = 0;
    while let Some(done) = workers.join_next().await {
        calls += done.expect("a worker's calls all went through");
    }
    println!("{calls} calls went through while n3 rejoined");
    // And after the cluster settled, calls through the rejoined node work as well.
    call_through(&n3, &n1, "after").await;
}
