//! SIGKILL of a node while calls are connected (real processes, real etcd). The calls are placed on a
//! two-node cluster; then a third node joins and takes its share of the partitions — users' sessions and
//! connected calls among them, handed over — and is killed. Clients are connected to the two survivors.
//! (A call starts on its caller's user actor's node; only a partition that moved since can leave a call
//! on a node without its parties — the case the takeover is for.)
//! - A call whose actors all live on survivors goes on (and hangs up normally afterwards).
//! - A call whose call actor died but whose parties and channel live on is taken over by the call's new
//!   owner from its record and goes on: the parties see nothing, and it hangs up normally afterwards.
//! - A call whose call actor died with a party ends for the other party with ENDED_BY_SERVER, exactly
//!   once.
//! - A call whose channel (its media) died with the node ends for both parties with ENDED_BY_SERVER, once,
//!   even though its call actor and parties live on (calls placed after n3 joined: a call's channel opens
//!   on its own node unless the other node drawn is much less loaded, and n3 has a hundred times the
//!   others' media capacity, so the calls that draw it open their channels there).
//! - A call whose party's user actor died ends for the other party, exactly once; the party's connection
//!   is closed (SERVER_SHUTDOWN) and it logs in again, on a survivor, once its partition is re-owned.
//! - New calls succeed afterwards.
//! - A business server watching the events on a survivor gets exactly one `call_ended` billing record
//!   for every one of those calls — also for the calls whose node died.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use showcall_cluster::{partition_of, rendezvous};
use showcall_proto::admin::WatchEventsRequest;
use showcall_proto::admin::event::Kind;
use showcall_protocol::{ActorKey, AppId, NodeId};
use showcall_sdk::{CallState, CallStateReason, CallType, Recorded};
use showcall_tests::cluster::{Etcd, NodeOptions, NodeProcess, call_endings, eventually};
use showcall_tests::sdk_helpers::{SdkUser, is_connected};

const APP: &str = "demo";
const LIMIT: Duration = Duration::from_secs(60);

fn is_ended(r: &Recorded) -> bool {
    matches!(
        r,
        Recorded::State {
            state: CallState::Prepared,
            ..
        }
    )
}

/// Where every actor (and partition) is served now; panics if one is served twice at once.
async fn placement(nodes: &[&NodeProcess]) -> HashMap<String, String> {
    showcall_tests::cluster::homes(nodes).await
}

struct Pair {
    caller: SdkUser,
    callee: SdkUser,
    call_id: String,
    channel: String,
}

async fn connected_pair(a: &NodeProcess, b: &NodeProcess, i: usize) -> Pair {
    connected_pair_of(a, b, &format!("c{i}"), &format!("h{i}")).await
}

async fn connected_pair_of(a: &NodeProcess, b: &NodeProcess, caller: &str, callee: &str) -> Pair {
    let mut caller = a.prepared_user(caller).await;
    let mut callee = b.prepared_user(callee).await;
    let created = caller
        .api
        .call(&callee.id, CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    callee
        .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    callee.api.accept(&caller.id).await.expect("accepted");
    caller.api.join_call_channel().await.expect("caller joins");
    callee.api.join_call_channel().await.expect("callee joins");
    caller.wait_call(is_connected).await;
    callee.wait_call(is_connected).await;
    Pair {
        caller,
        callee,
        call_id: created.call_id,
        channel: created.channel,
    }
}

/// The first of `prefix-0`, `prefix-1`, … for which `wanted` holds.
fn id_where(prefix: &str, wanted: impl Fn(&str) -> bool) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}"))
        .find(|id| wanted(id))
        .expect("some id hashes where wanted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_survive_or_end_exactly_once_when_a_node_is_killed_and_users_come_back() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let a = NodeProcess::start(&etcd, "n1", &options).await;
    let b = NodeProcess::start(&etcd, "n2", &options).await;
    showcall_tests::cluster::wait_converged(&[&a, &b], options.partitions).await;
    let (a, b) = (&a, &b);
    // The business server watches from a survivor, from before the first call.
    let mut events = showcall_tests::admin::admin_at(&a.grpc_url.clone())
        .await
        .watch_events(WatchEventsRequest {
            after_cursor: None,
            app_id: APP.into(),
        })
        .await
        .expect("watch accepted")
        .into_inner();

    // Calls between clients on n1 and n2. Three pairs in four have users whose partitions stay on n1
    // and n2 when n3 joins, so that the calls whose partition moves to n3 are taken over when it dies
    // (each call's partition moves with chance 1/3: with 24 such calls, none does once in 10⁴ runs);
    // the others' users may move to n3 and die with it.
    let count = options.partitions;
    let victim_id = "n3".to_owned();
    let live: Vec<NodeId> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| NodeId((*id).into()))
        .collect();
    let stays = |id: &str| {
        let key = ActorKey::User(AppId(APP.into()), id.into());
        let partition = partition_of(&key, count);
        rendezvous::target(partition, &live).is_some_and(|owner| owner.0 != victim_id)
    };
    let mut pairs = Vec::new();
    for i in 0..32 {
        let pair = if i % 4 == 0 {
            connected_pair(a, b, i).await
        } else {
            let caller = id_where(&format!("c{i}"), stays);
            let callee = id_where(&format!("h{i}"), stays);
            connected_pair_of(a, b, &caller, &callee).await
        };
        pairs.push(pair);
    }
    let roomy = NodeOptions {
        env: vec![("SHOWCALL_MEDIA_CAPACITY".into(), "1000000".into())],
        ..NodeOptions::default()
    };
    let victim = NodeProcess::start(&etcd, "n3", &roomy).await;
    showcall_tests::cluster::wait_converged(&[a, b, &victim], options.partitions).await;
    // Each of these calls draws n3 as the other node with chance ½ and then opens its channel there:
    // with twenty, none does once in 10⁶ runs.
    for i in 32..52 {
        let caller = id_where(&format!("c{i}"), stays);
        let callee = id_where(&format!("h{i}"), stays);
        pairs.push(connected_pair_of(a, b, &caller, &callee).await);
    }
    let home = placement(&[a, b, &victim]).await;
    let on = |key: String| home.get(&key).cloned().unwrap_or_default();

    victim.kill().await;

    let mut relogins = Vec::new();
    let mut taken_over = 0;
    let mut media_lost = 0;
    for pair in &mut pairs {
        let call_dead = on(format!("call/-/{}", pair.call_id)) == victim_id;
        let caller_dead = on(format!("user/{APP}/{}", pair.caller.id)) == victim_id;
        let callee_dead = on(format!("user/{APP}/{}", pair.callee.id)) == victim_id;
        let channel_dead = on(format!("channel/{APP}/{}", pair.channel)) == victim_id;
        println!(
            "call {} (on victim: call actor {call_dead}, caller {caller_dead}, callee {callee_dead}, channel {channel_dead})",
            pair.call_id
        );
        let parties_alive = !caller_dead && !callee_dead;
        if call_dead && parties_alive && !channel_dead {
            // Taken over: the call's new owner restores it from its record and it goes on; it hangs up
            // as usual (and the parties never heard of the loss: one end each, checked below).
            let key = format!("call/-/{}", pair.call_id);
            eventually("the call is running on a survivor", LIMIT, async || {
                let here = placement(&[a, b]).await;
                here.get(&key).cloned().ok_or("not yet restored")
            })
            .await;
            pair.callee
                .api
                .hangup(&pair.caller.id, "bye after the takeover")
                .await
                .expect("hangup of a taken-over call works");
            pair.callee
                .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
                .await;
            pair.caller
                .wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
                .await;
            taken_over += 1;
        } else if call_dead {
            // Cannot go on (its channel or a party died too): ends for every party whose session
            // survived, with the server's reason.
            for (user, dead) in [
                (&mut pair.caller, caller_dead),
                (&mut pair.callee, callee_dead),
            ] {
                if !dead {
                    user.wait_state(CallState::Prepared, CallStateReason::EndedByServer)
                        .await;
                }
            }
        } else if channel_dead && !caller_dead && !callee_dead {
            // Its media died with the node: the call cannot go on; it ends once for both parties.
            for user in [&mut pair.caller, &mut pair.callee] {
                let (why, _) = user
                    .wait_state_text(CallState::Prepared, CallStateReason::EndedByServer)
                    .await;
                assert_eq!(why, "the node carrying this call's media left");
            }
            media_lost += 1;
        } else if caller_dead && callee_dead {
            // Both sessions died with the node: nobody is left to tell (checked below: both closed).
        } else if caller_dead || callee_dead {
            // The call goes on without the lost party: it ends for the other one.
            let survivor = if caller_dead {
                &mut pair.callee
            } else {
                &mut pair.caller
            };
            survivor.wait_call(is_ended).await;
        } else {
            // Untouched: it goes on, and hangs up as usual.
            pair.caller
                .api
                .hangup(&pair.callee.id, "bye")
                .await
                .expect("hangup works");
            pair.caller
                .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
                .await;
            pair.callee
                .wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
                .await;
        }
        for (user, dead) in [
            (&mut pair.caller, caller_dead),
            (&mut pair.callee, callee_dead),
        ] {
            if dead {
                // Its session lived on the victim: the connection is closed, the user logs in again.
                user.wait_signal(|r| matches!(r, Recorded::SessionClosed { .. }))
                    .await;
                relogins.push(user.id.clone());
            } else {
                assert_eq!(
                    call_endings(user, &pair.call_id),
                    1,
                    "{} is told once that call {} ended",
                    user.id,
                    pair.call_id
                );
            }
        }
    }

    assert!(taken_over >= 1, "at least one call was taken over");
    assert!(media_lost >= 1, "at least one call lost its channel");

    // Users whose sessions died log in again on a survivor, and new calls succeed.
    for id in &relogins {
        let signal = a.log_in_again(id).await;
        assert!(signal.login_info().is_some());
    }
    let fresh = connected_pair(b, a, 100).await;
    fresh
        .caller
        .api
        .hangup(&fresh.callee.id, "bye")
        .await
        .expect("hangup");

    // Every call has its billing record, once, whichever node ran it.
    let mut records: HashMap<String, usize> = HashMap::new();
    let wanted: Vec<&String> = pairs.iter().chain([&fresh]).map(|p| &p.call_id).collect();
    while !wanted.iter().all(|id| records.contains_key(*id)) {
        let event = tokio::time::timeout(LIMIT, events.next())
            .await
            .unwrap_or_else(|_| panic!("call_ended records missing; got {records:?}"))
            .expect("the stream goes on")
            .expect("an event");
        if let Some(Kind::CallEnded(ended)) = event.kind {
            *records.entry(ended.call_id).or_default() += 1;
        }
    }
    for id in wanted {
        assert_eq!(
            records[id], 1,
            "call {id} has exactly one call_ended record"
        );
    }
}
