//! The router without sockets: two hubs ("a" and "b") whose envelopes travel through an in-memory
//! courier — encoded and read back as the node wire does, in order per destination — and a placement
//! that puts each key on a chosen node. Calls cross nodes as in a cluster; a key between owners parks
//! its messages until it has one, or gives up after `FLUX_WAIT`; on tokio's paused clock.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use showcall_machines::user::CallCommand;
use showcall_machines::user::UserInput;
use showcall_machines::{CallId, CallState, CallType, ChannelName, StateReason, UserConfig};
use showcall_ports::placement::{PinFuture, PinRefusal, Placement};
use showcall_protocol::envelope::{Body, Courier, Envelope};
use showcall_protocol::messages::UserMsg;
use showcall_protocol::{
    ActorKey, AppId, CommandError, NodeId, UserCommand, connection_inbox, wire,
};
use showcall_runtime::{FLUX_WAIT, Hub, HubParts, MAX_PARKED_PER_KEY, MAX_QUEUED_PER_USER};
use support::{Client, connected, hang_up};
use tokio::sync::mpsc;

fn node(name: &str) -> NodeId {
    NodeId(name.into())
}

/// What both nodes agree on: users whose id starts with "a" live on a, the others on b; every call on
/// b; a call channel where its name's tag says; a live room where it was pinned first.
#[derive(Debug, Default)]
struct Cluster {
    pins: Mutex<HashMap<(AppId, ChannelName), NodeId>>,
    /// Keys whose partition is between owners now.
    moving: Mutex<HashSet<ActorKey>>,
    /// A node's view that lags the cluster's: the owner it still sees for a key.
    stale: Mutex<HashMap<(NodeId, ActorKey), NodeId>>,
    /// Nodes that left the cluster (their couriers' sends fail) before the others heard they died.
    gone: Mutex<HashSet<NodeId>>,
    /// Nodes that take envelopes and never carry them out (stuck).
    deaf: Mutex<HashSet<NodeId>>,
    /// Every node announces wire 1.0 (a cluster of the release before 1.1, as far as senders can tell).
    announce_1_0: std::sync::atomic::AtomicBool,
    /// Envelopes with one push for a connection (`Sink`), and with several (`Sinks`, wire 1.1).
    pushes_alone: AtomicU64,
    pushes_together: AtomicU64,
    /// Envelopes with several of a call's updates for one user (wire 1.1).
    updates_together: AtomicU64,
    /// Envelopes a courier refused because they named another sender than its node (the link's rule).
    forged: AtomicU64,
    hubs: OnceLock<HashMap<NodeId, Hub>>,
    envelopes: AtomicU64,
    /// Calls split between the nodes by their id (else every call lives on b).
    calls_split: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct TestPlacement {
    this: NodeId,
    cluster: Arc<Cluster>,
}

impl Placement for TestPlacement {
    fn this_node(&self) -> &NodeId {
        &self.this
    }

    fn owner(&self, key: &ActorKey) -> Option<NodeId> {
        if self.cluster.moving.lock().unwrap().contains(key) {
            return None;
        }
        let stale = self.cluster.stale.lock().unwrap();
        if let Some(owner) = stale.get(&(self.this.clone(), key.clone())) {
            return Some(owner.clone());
        }
        match key {
            ActorKey::User(_, user) if user.as_str().starts_with('a') => Some(node("a")),
            ActorKey::Call(_, call) if self.cluster.calls_split.load(Ordering::Relaxed) => {
                match call.as_str().as_bytes()[0] % 2 {
                    0 => Some(node("a")),
                    _ => Some(node("b")),
                }
            }
            ActorKey::User(..) | ActorKey::Call(..) => Some(node("b")),
            ActorKey::Channel(app, channel) => match channel.as_str().split_once('@') {
                Some((_, tag)) => Some(node(tag)),
                None => {
                    let pins = self.cluster.pins.lock().unwrap();
                    pins.get(&(app.clone(), channel.clone())).cloned()
                }
            },
        }
    }

    fn nodes(&self) -> Vec<NodeId> {
        self.cluster
            .hubs
            .get()
            .map(|hubs| hubs.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn pin_channel(&self, app: &AppId, channel: &ChannelName) -> PinFuture {
        let mut pins = self.cluster.pins.lock().unwrap();
        let holder = pins
            .entry((app.clone(), channel.clone()))
            .or_insert_with(|| self.this.clone())
            .clone();
        let pinned = if holder == self.this {
            Ok(())
        } else {
            Err(PinRefusal::Elsewhere(holder))
        };
        Box::pin(async move { pinned })
    }

    fn call_channel_tag(&self) -> Option<String> {
        Some(self.this.0.clone())
    }
}

/// Carries envelopes from its node to another hub as the node link does: as wire bytes, read back with
/// the wire's rule, delivered in order per destination; an envelope naming another sender than this
/// node is dropped, as the receiving link drops it (a member speaks only for itself).
#[derive(Debug)]
struct LoopCourier {
    me: NodeId,
    cluster: Arc<Cluster>,
    lanes: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Vec<u8>>>>,
}

impl Courier for LoopCourier {
    fn send(&self, to: &NodeId, envelope: Envelope) -> bool {
        if self.cluster.gone.lock().unwrap().contains(to) {
            return false;
        }
        if self.cluster.deaf.lock().unwrap().contains(to) {
            return true;
        }
        let Some(hub) = self.cluster.hubs.get().and_then(|h| h.get(to)).cloned() else {
            return false;
        };
        if envelope.from != self.me {
            self.cluster.forged.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        self.cluster.envelopes.fetch_add(1, Ordering::Relaxed);
        match &envelope.body {
            Body::Sink { .. } => self.cluster.pushes_alone.fetch_add(1, Ordering::Relaxed),
            Body::Sinks { .. } => self.cluster.pushes_together.fetch_add(1, Ordering::Relaxed),
            Body::User {
                msg: UserMsg::Input(traced),
                ..
            } if matches!(traced.payload, UserInput::CallUpdates { .. }) => self
                .cluster
                .updates_together
                .fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let mut lanes = self.lanes.lock().unwrap();
        let lane = lanes.entry(to.clone()).or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
            tokio::spawn(async move {
                while let Some(bytes) = rx.recv().await {
                    let envelope = wire::read(wire::WIRE_MAJOR, &bytes).expect("the wire reads");
                    hub.deliver(envelope).await;
                }
            });
            tx
        });
        lane.send(envelope.encode()).is_ok()
    }

    fn reads_minor(&self, _: &NodeId) -> u32 {
        if self.cluster.announce_1_0.load(Ordering::Relaxed) {
            0
        } else {
            wire::WIRE_MINOR
        }
    }
}

fn two_nodes() -> (Hub, Hub, Arc<Cluster>) {
    let (mut hubs, cluster) = cluster_of(&["a", "b"]);
    let b = hubs.pop().expect("two");
    let a = hubs.pop().expect("two");
    (a, b, cluster)
}

/// Hubs named `names`, in that order.
fn cluster_of(names: &[&str]) -> (Vec<Hub>, Arc<Cluster>) {
    let cluster = Arc::new(Cluster::default());
    let hub = |name: &str| {
        let mut parts = HubParts::single_node(node(name), UserConfig::default());
        parts.placement = Arc::new(TestPlacement {
            this: node(name),
            cluster: cluster.clone(),
        });
        parts.courier = Arc::new(LoopCourier {
            me: node(name),
            cluster: cluster.clone(),
            lanes: Mutex::default(),
        });
        Hub::new(parts)
    };
    let hubs: Vec<Hub> = names.iter().map(|name| hub(name)).collect();
    let by_node = hubs.iter().map(|h| (h.node().clone(), h.clone())).collect();
    cluster.hubs.set(by_node).expect("set once");
    (hubs, cluster)
}

#[tokio::test(start_paused = true)]
async fn a_call_between_users_on_two_nodes_connects_and_ends_through_envelopes() {
    let (a, b, cluster) = two_nodes();
    // Both connect to node a; bob's actor lives on b (his session is remote), the call on b, its
    // channel on a (the caller's node tags it).
    let mut alice = Client::prepared(&a, "alice").await;
    let mut bob = Client::prepared(&a, "bob").await;
    assert!(
        !a.has_user(&support::app(), &"bob".into()),
        "bob's actor is not on a"
    );
    assert!(
        b.has_user(&support::app(), &"bob".into()),
        "bob's actor is on b"
    );

    let (call, channel) = connected(&mut alice, &mut bob).await;
    assert!(channel.as_str().ends_with("@a"), "{channel}");
    assert!(b.has_call(&call), "the call runs on b");
    hang_up(&mut alice, &mut bob, &call).await;
    alice
        .state(CallState::Prepared, StateReason::LocalHangup)
        .await;
    assert!(
        cluster.envelopes.load(Ordering::Relaxed) > 10,
        "the call crossed nodes"
    );
}

#[tokio::test(start_paused = true)]
async fn a_ring_for_a_user_between_owners_waits_for_the_owner_and_then_rings() {
    let (a, _b, cluster) = two_nodes();
    let mut alice = Client::prepared(&a, "alice").await;
    let mut bob = Client::prepared(&a, "bob").await;
    let bob_key = ActorKey::User(support::app(), "bob".into());
    cluster.moving.lock().unwrap().insert(bob_key.clone());

    let (call, _) = alice.call("bob").await;
    // Half of `FLUX_WAIT` later the partition has an owner again: the parked ring goes on.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    cluster.moving.lock().unwrap().remove(&bob_key);
    let rang = bob
        .state(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    assert_eq!(rang, call);
    assert!(
        !alice
            .seen
            .iter()
            .any(|e| format!("{e:?}").contains("RemoteOffline")),
        "the caller never heard `offline`: {:?}",
        alice.seen
    );
}

#[tokio::test(start_paused = true)]
async fn a_ring_for_a_user_still_between_owners_after_the_wait_is_offline_for_the_caller() {
    let (a, _b, cluster) = two_nodes();
    let mut alice = Client::prepared(&a, "alice").await;
    let _bob = Client::prepared(&a, "bob").await;
    let bob_key = ActorKey::User(support::app(), "bob".into());
    cluster.moving.lock().unwrap().insert(bob_key);

    let placed_at = a.now_ms();
    alice.call("bob").await;
    alice
        .state(CallState::Prepared, StateReason::RemoteOffline)
        .await;
    let waited = a.now_ms() - placed_at;
    let wait = FLUX_WAIT.as_millis() as u64;
    assert!(
        (wait..wait + 1_000).contains(&waited),
        "given up after the flux wait ({wait} ms), not at once: {waited} ms"
    );
}

#[tokio::test(start_paused = true)]
async fn a_ring_sent_to_a_node_that_no_longer_owns_the_callee_is_passed_on_and_rings() {
    let (hubs, cluster) = cluster_of(&["a", "b", "c"]);
    let (a, b) = (&hubs[0], &hubs[1]);
    let mut alice = Client::prepared(a, "alice").await;
    let mut anna = Client::prepared(a, "anna").await;
    // The call runs on b, whose view still says anna lives on c: its ring goes to c, which passes it
    // on to a, anna's owner — as c, the node whose link carries it.
    let anna_key = ActorKey::User(support::app(), "anna".into());
    cluster
        .stale
        .lock()
        .unwrap()
        .insert((b.node().clone(), anna_key), node("c"));

    let (call, _) = alice.call("anna").await;
    let rang = anna
        .state(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    assert_eq!(rang, call);
    assert_eq!(
        cluster.forged.load(Ordering::Relaxed),
        0,
        "no envelope named another sender"
    );
}

#[tokio::test(start_paused = true)]
async fn a_command_for_a_call_on_a_node_gone_from_the_cluster_fails_at_once() {
    let (a, _b, cluster) = two_nodes();
    let mut alice = Client::prepared(&a, "alice").await;
    let mut bob = Client::prepared(&a, "bob").await;
    let (call, _) = connected(&mut alice, &mut bob).await;
    // The call runs on b, which leaves the cluster before a hears that it died.
    cluster.gone.lock().unwrap().insert(node("b"));

    let asked_at = a.now_ms();
    let answer = alice
        .session
        .command(UserCommand::CallCommand {
            call_id: call,
            command: CallCommand::Hangup {
                reason: "bye".into(),
            },
        })
        .await;
    let Err(CommandError::Unavailable(why)) = answer else {
        panic!("a hangup no node can take is UNAVAILABLE: {answer:?}");
    };
    assert!(why.contains("not in the cluster"), "{why}");
    assert_eq!(
        a.now_ms(),
        asked_at,
        "answered at once, not at the command timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_runs_on_the_node_of_its_callers_user_actor() {
    let (a, b, cluster) = two_nodes();
    cluster.calls_split.store(true, Ordering::Relaxed);
    let mut alice = Client::prepared(&a, "alice").await;
    let mut bob = Client::prepared(&b, "bob").await;
    // alice's actor is on a: her calls get ids of a's partitions, so they start without crossing.
    for _ in 0..5 {
        let (call, _) = connected(&mut alice, &mut bob).await;
        assert!(a.has_call(&call), "the call runs on a");
        assert!(!b.has_call(&call), "and not on b");
        hang_up(&mut alice, &mut bob, &call).await;
        alice
            .state(CallState::Prepared, StateReason::LocalHangup)
            .await;
    }
}

#[tokio::test(start_paused = true)]
async fn questions_to_a_node_that_never_answers_are_given_up_not_kept() {
    let (a, _b, cluster) = two_nodes();
    cluster.deaf.lock().unwrap().insert(node("b"));
    // bob and bea would live on b: their logins through a wait for answers that never come.
    for user in ["bob", "bea"] {
        let (inbox, _events) = connection_inbox(8);
        let expires = a.now_ms() + support::HOUR_MS;
        let login = a
            .login(support::app(), user.into(), a.next_conn(), expires, inbox)
            .await;
        let Err(CommandError::Unavailable(why)) = login.as_ref().map(|_| ()) else {
            panic!("a login no node answers is UNAVAILABLE");
        };
        assert!(why.contains("did not answer in time"), "{why}");
    }
    assert_eq!(
        a.answers_awaited(),
        1,
        "bob's question was given up when bea's was asked; only hers is left"
    );
}

#[tokio::test(start_paused = true)]
async fn a_ring_that_finds_no_room_to_wait_for_the_callees_owner_is_offline_at_once() {
    let (a, b, cluster) = two_nodes();
    let mut alice = Client::prepared(&a, "alice").await;
    let _bob = Client::prepared(&a, "bob").await;
    let bob_key = ActorKey::User(support::app(), "bob".into());
    cluster.moving.lock().unwrap().insert(bob_key);
    // b, where the call will run, already holds as many messages for bob as it may.
    for n in 0..MAX_PARKED_PER_KEY {
        let call_id = CallId(format!("earlier-{n}"));
        b.send_user(
            &support::app(),
            &"bob".into(),
            UserInput::CallAdopted { call_id },
        );
    }

    let placed_at = a.now_ms();
    alice.call("bob").await;
    alice
        .state(CallState::Prepared, StateReason::RemoteOffline)
        .await;
    assert!(
        a.now_ms() - placed_at < FLUX_WAIT.as_millis() as u64,
        "refused at once, not after the wait: {} ms",
        a.now_ms() - placed_at
    );
}

#[tokio::test(start_paused = true)]
async fn a_user_flooded_while_her_run_waits_refuses_what_finds_no_room() {
    let (a, _b, cluster) = two_nodes();
    let alice = Client::prepared(&a, "alice").await;
    // Her call starts on b, which takes the start and never answers: her run waits (up to the
    // command timeout) and messages for her queue meanwhile.
    cluster.deaf.lock().unwrap().insert(node("b"));
    let session = alice.session.clone();
    let calling = tokio::spawn(async move {
        session
            .command(UserCommand::Call {
                callee: "bob".into(),
                call_type: CallType::Video,
                extension: BTreeMap::new(),
                timeout_ms: None,
                trace: Default::default(),
            })
            .await
    });
    while a.answers_awaited() == 0 {
        tokio::task::yield_now().await;
    }
    for n in 0..MAX_QUEUED_PER_USER {
        let call_id = CallId(format!("earlier-{n}"));
        a.send_user(
            &support::app(),
            &"alice".into(),
            UserInput::CallAdopted { call_id },
        );
    }
    let refused = alice
        .session
        .command(UserCommand::Prepare(Default::default()))
        .await;
    let Err(CommandError::Unavailable(why)) = refused else {
        panic!("a command with no room left is UNAVAILABLE: {refused:?}");
    };
    assert!(why.contains("wait for alice"), "{why}");
    let placed = calling.await.expect("the call command ends");
    assert!(placed.is_err(), "b never answered: {placed:?}");
}

/// alice calls bob, who rejects it; both hear it.
async fn rejected(alice: &mut Client, bob: &mut Client) {
    let (call, _) = alice.call("bob").await;
    bob.state(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    bob.call_command(
        &call,
        CallCommand::Reject {
            reason: String::new(),
        },
    )
    .await;
    alice
        .state(CallState::Prepared, StateReason::RemoteRejected)
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_steps_pushes_reach_a_connection_on_another_node_in_one_envelope_when_it_reads_them() {
    let (a, _b, cluster) = two_nodes();
    // bob's connection is on a, his actor on b: what his actor pushes crosses to a.
    let mut alice = Client::prepared(&a, "alice").await;
    let mut bob = Client::prepared(&a, "bob").await;
    rejected(&mut alice, &mut bob).await;
    let together = cluster.pushes_together.load(Ordering::Relaxed);
    assert!(together > 0, "a step's pushes went together");
    let updates_together = cluster.updates_together.load(Ordering::Relaxed);
    assert!(
        updates_together > 0,
        "a call step's updates for bob went together"
    );

    // The same with every peer announcing wire 1.0: nothing it cannot read is sent, nothing is lost.
    cluster.announce_1_0.store(true, Ordering::Relaxed);
    let alone = cluster.pushes_alone.load(Ordering::Relaxed);
    rejected(&mut alice, &mut bob).await;
    assert_eq!(
        cluster.pushes_together.load(Ordering::Relaxed),
        together,
        "no `Sinks` to a node that reads 1.0"
    );
    assert_eq!(
        cluster.updates_together.load(Ordering::Relaxed),
        updates_together,
        "no `CallUpdates` to a node that reads 1.0"
    );
    assert!(cluster.pushes_alone.load(Ordering::Relaxed) > alone);
}
