//! `Hub`: the node's registry of local actors and its router to them.
//!
//! Every actor is found by its [`ActorKey`] through here. A key's owner comes from the [`Placement`] port;
//! on a single node that is always this node and delivery is a local mailbox send; in a cluster a key
//! owned elsewhere goes to its owner through the [`Courier`] (`crate::routing` has the routing methods).
//!
//! A call's or channel's get-or-spawn is serialised per key (`crate::spawn_gate`), so a key never gets two
//! actors and a slow start holds up no other key; users are kept by `crate::users` (an actor that rests
//! as state and runs while it has messages). Lookups take a short synchronous lock and never wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use showcall_protocol::sync::lock;

use ractor::{Actor, ActorId, ActorRef};
use showcall_machines::{
    CallId, CallSetup, CallSnapshot, ChannelKind, ChannelName, ConnId, Millis, UserConfig, UserId,
};

use showcall_actors::call_actor::CallStart;
use showcall_actors::channel_actor::ChannelActor;
use showcall_ports::clock::Clock;
use showcall_ports::event_log::{EventLog, MemoryEventLog};
use showcall_ports::{
    CallLedger, CallRecordSink, LogRecords, MediaControl, NoLedger, NoMedia, PinRefusal, Placement,
};
use showcall_protocol::envelope::{Courier, NoCourier};
use showcall_protocol::error::CommandError;
use showcall_protocol::inbox::ConnectionInbox;
use showcall_protocol::keys::{ActorKey, AppId, NodeId};
use showcall_protocol::messages::ChannelMsg;

use crate::calls::CallSlot;
use crate::users::{UserKey, UserSlot};

/// Messages waiting for their key's partition to get an owner (see `crate::flux`).
/// One parked message: replayed (`true`) once its key has an owner, or told to give up (`false`).
pub(crate) type ParkedMessage = Box<dyn FnOnce(&Hub, bool) + Send>;

/// One key's waiting messages.
pub(crate) struct ParkedQueue {
    pub(crate) since: tokio::time::Instant,
    pub(crate) messages: std::collections::VecDeque<ParkedMessage>,
}

/// Parked keys.
pub(crate) type Parked = HashMap<ActorKey, ParkedQueue>;

/// What a hub is built from.
#[derive(Debug)]
pub struct HubParts {
    pub user_config: UserConfig,
    pub placement: Arc<dyn Placement>,
    pub media: Arc<dyn MediaControl>,
    pub records: Arc<dyn CallRecordSink>,
    /// Keeps connected calls for a takeover (the cluster's call records; nothing on a single node).
    pub ledger: Arc<dyn CallLedger>,
    /// Business events for the admin API's watchers.
    pub events: Arc<dyn EventLog>,
    /// Carries envelopes to other nodes (the cluster's link; nothing on a single node).
    pub courier: Arc<dyn Courier>,
    /// Channel bans (memory on a single node; etcd in a cluster).
    pub bans: Arc<dyn showcall_ports::bans::Bans>,
    /// Which apps' calls the business server authorizes before they ring (none by default).
    pub admission: Arc<dyn showcall_ports::admission::Admission>,
    /// The media router's relay between a room's origin and its edges (none by default: this node is
    /// never an edge, and refuses to relay its rooms to one).
    pub relay: Arc<dyn showcall_ports::MediaRelay>,
}

impl HubParts {
    /// A single node with no media router, logging call records.
    pub fn single_node(node: NodeId, user_config: UserConfig) -> Self {
        Self {
            user_config,
            placement: Arc::new(showcall_ports::LocalPlacement::new(node)),
            media: Arc::new(NoMedia),
            records: Arc::new(LogRecords),
            ledger: Arc::new(NoLedger),
            events: Arc::new(MemoryEventLog::default()),
            courier: Arc::new(NoCourier),
            bans: Arc::new(showcall_ports::bans::MemoryBans::default()),
            admission: Arc::new(showcall_ports::admission::NoAdmission),
            relay: Arc::new(showcall_ports::NoRelay),
        }
    }
}

type ChannelKey = (AppId, ChannelName);

pub(crate) struct Inner {
    pub(crate) parts: HubParts,
    clock: Clock,
    /// Users with a session here: running or resting (`crate::users`).
    pub(crate) users: Mutex<HashMap<UserKey, UserSlot>>,
    /// The users' timers (`crate::timer_wheel`).
    pub(crate) timers: crate::timer_wheel::TimerWheel,
    /// Calls running here, running or resting (`crate::calls`). Call ids are unique across apps; the
    /// app is kept for placement (call keys hash with their app).
    pub(crate) calls: Mutex<HashMap<CallId, CallSlot>>,
    pub(crate) channels: Mutex<HashMap<ChannelKey, ActorRef<ChannelMsg>>>,
    /// One start at a time per key (`crate::spawn_gate`).
    spawn_gates: crate::spawn_gate::SpawnGates,
    next_conn: AtomicU64,
    /// Requests waiting for another node's answer (`crate::pending_answers`).
    pub(crate) pending: crate::pending_answers::PendingAnswers,
    /// Connections of this node whose user actor lives elsewhere, by sink id, with that node.
    pub(crate) remote_sinks: Mutex<HashMap<u64, (NodeId, ConnectionInbox)>>,
    pub(crate) next_id: AtomicU64,
    /// Messages waiting for their key's partition to get an owner (`crate::flux`).
    pub(crate) parked: Mutex<Parked>,
    /// How many messages are parked (`crate::flux`'s bound).
    pub(crate) parked_total: std::sync::atomic::AtomicUsize,
    /// Whether the task that re-checks parked keys runs.
    pub(crate) flux_task: AtomicBool,
    /// What the local actors are doing now, for the admin API.
    pub(crate) directory: showcall_ports::directory::Directory,
    /// Keys whose actors are being started here ([`Hub::start_here`]).
    starting: Mutex<std::collections::HashSet<ActorKey>>,
    /// Set when this node leaves the cluster: no actor starts here any more (`crate::handoff`).
    pub(crate) leaving: AtomicBool,
    /// Rooms across nodes: those this node is an edge of, and those it relays to edges
    /// (`crate::media_edges`).
    pub(crate) edges: crate::media_edges::MediaEdges,
}

/// See the module docs. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", self.node())
            .finish_non_exhaustive()
    }
}

/// A key whose actor is being started here: counted as busy (its partition is not released) until the
/// actor is registered or the start failed.
pub(crate) struct Starting<'a> {
    hub: &'a Hub,
    key: ActorKey,
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        lock(&self.hub.inner.starting).remove(&self.key);
    }
}

impl Hub {
    pub fn new(parts: HubParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                parts,
                clock: Clock::system(),
                users: Mutex::default(),
                timers: Default::default(),
                calls: Mutex::default(),
                channels: Mutex::default(),
                spawn_gates: Default::default(),
                // Connection numbers must differ across nodes (a user's connections on two gateways meet
                // in one user actor): a random prefix per node, then a counter.
                next_conn: AtomicU64::new((u64::from(rand::random::<u32>()) << 32) | 1),
                pending: Default::default(),
                remote_sinks: Mutex::default(),
                next_id: AtomicU64::new(1),
                parked: Mutex::default(),
                parked_total: Default::default(),
                flux_task: AtomicBool::new(false),
                directory: Default::default(),
                starting: Mutex::default(),
                leaving: AtomicBool::new(false),
                edges: Default::default(),
            }),
        }
    }

    pub fn node(&self) -> &NodeId {
        self.inner.parts.placement.this_node()
    }

    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    pub fn now_ms(&self) -> Millis {
        self.inner.clock.now_ms()
    }

    pub fn user_config(&self) -> &UserConfig {
        &self.inner.parts.user_config
    }

    pub fn media(&self) -> &Arc<dyn MediaControl> {
        &self.inner.parts.media
    }

    pub fn records(&self) -> &Arc<dyn CallRecordSink> {
        &self.inner.parts.records
    }

    pub fn ledger(&self) -> &Arc<dyn CallLedger> {
        &self.inner.parts.ledger
    }

    pub fn events(&self) -> &Arc<dyn EventLog> {
        &self.inner.parts.events
    }

    pub fn directory(&self) -> &showcall_ports::directory::Directory {
        &self.inner.directory
    }

    pub fn bans(&self) -> &Arc<dyn showcall_ports::bans::Bans> {
        &self.inner.parts.bans
    }

    /// Users with a session (online or within grace) on this node, running or resting.
    pub fn users_online(&self) -> usize {
        lock(&self.inner.users).len()
    }

    /// Channels open on this node.
    pub fn channels_open(&self) -> usize {
        lock(&self.inner.channels).len()
    }

    /// Calls whose actor lives on this node.
    pub fn calls_active(&self) -> usize {
        lock(&self.inner.calls).len()
    }

    /// Every actor active on this node, as `ActorKey` text (`user/<app>/<id>`, `call/<app>/<id>` is not
    /// app-scoped so calls read `call/-/<id>`, `channel/<app>/<name>`): what the cluster's single-activation
    /// probe samples. An actor whose partition this node does not serve now (fenced) is suspended — it gets
    /// no messages and its timers wait ([`Hub::serves`]) — and is not listed.
    pub fn active_actors(&self) -> Vec<String> {
        self.active_keys()
            .into_iter()
            .filter(|key| self.serves(key))
            .map(|key| match key {
                ActorKey::Call(_, id) => format!("call/-/{id}"),
                other => other.to_string(),
            })
            .collect()
    }

    /// Whether this node may run `key`'s actor now. Actors defer their timers while it may not.
    pub fn serves(&self, key: &ActorKey) -> bool {
        self.inner.parts.placement.serves(key)
    }

    /// Marks `key` as starting here, if this node serves it now.
    ///
    /// A partition is released in this order: the owner stops serving it, then checks that no actor of
    /// it is registered or starting ([`Hub::busy_keys`]), then gives the key up. A start goes the other
    /// way: marked first, then the partition checked. Each side reads what the other wrote under the same
    /// lock, so at least one sees the other: the release waits for the actor, or the start answers
    /// UNAVAILABLE ("try again", which finds the new owner) before the actor exists. Without this an
    /// actor could start on a node that just gave its partition up, where no message would ever find it.
    pub(crate) fn start_here(&self, key: ActorKey) -> Result<Starting<'_>, CommandError> {
        if self.is_leaving() {
            return Err(CommandError::Unavailable(format!(
                "{} is leaving the cluster; try again",
                self.node()
            )));
        }
        lock(&self.inner.starting).insert(key.clone());
        let starting = Starting { hub: self, key };
        if self.serves(&starting.key) {
            Ok(starting)
        } else {
            Err(CommandError::Unavailable(format!(
                "{} is moving between nodes; try again",
                starting.key
            )))
        }
    }

    /// The keys whose partitions must stay here: every actor active on this node, and those starting.
    pub fn busy_keys(&self) -> Vec<ActorKey> {
        let mut keys = self.active_keys();
        keys.extend(lock(&self.inner.starting).iter().cloned());
        keys
    }

    /// The keys of every actor active on this node.
    pub fn active_keys(&self) -> Vec<ActorKey> {
        let mut keys: Vec<ActorKey> = lock(&self.inner.users)
            .keys()
            .map(|(app, user)| ActorKey::User(app.clone(), user.clone()))
            .collect();
        keys.extend(
            lock(&self.inner.calls)
                .iter()
                .map(|(id, slot)| ActorKey::Call(slot.app().clone(), id.clone())),
        );
        keys.extend(
            lock(&self.inner.channels)
                .keys()
                .map(|(app, channel)| ActorKey::Channel(app.clone(), channel.clone())),
        );
        keys
    }

    /// Where actors live.
    pub fn placement(&self) -> &Arc<dyn Placement> {
        &self.inner.parts.placement
    }

    /// The node serving `user`'s session and the URL clients reach it at, when that is another node
    /// which announces one (`Placement::public_signal_url`): where a login that may follow its session
    /// is sent. `None` when this node serves it, nobody does now (its partition is between owners), or
    /// the serving node announces no URL — the login is then served here.
    pub fn home_elsewhere(&self, app: &AppId, user: &UserId) -> Option<(NodeId, String)> {
        let placement = self.placement();
        let owner = placement.owner(&ActorKey::User(app.clone(), user.clone()))?;
        if &owner == placement.this_node() {
            return None;
        }
        let url = placement.public_signal_url(&owner)?;
        Some((owner, url))
    }

    /// A fresh connection number.
    pub fn next_conn(&self) -> ConnId {
        ConnId(self.inner.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Starts a call actor here; it rings the callee itself.
    pub(crate) async fn spawn_call_here(
        &self,
        app: AppId,
        setup: CallSetup,
    ) -> Result<(), CommandError> {
        let id = setup.id.clone();
        let trace = showcall_protocol::messages::TraceContext::current();
        self.start_call_actor(app, id, CallStart::New(setup, trace))
            .await
    }

    async fn start_call_actor(
        &self,
        app: AppId,
        id: CallId,
        start: CallStart,
    ) -> Result<(), CommandError> {
        let _gate = (self.inner.spawn_gates)
            .enter(ActorKey::Call(app.clone(), id.clone()))
            .await;
        if lock(&self.inner.calls).contains_key(&id) {
            return Err(CommandError::Unavailable(format!(
                "call {id} is already running"
            )));
        }
        let starting = self.start_here(ActorKey::Call(app.clone(), id.clone()))?;
        self.spawn_call_actor(app, id, start)?;
        drop(starting);
        Ok(())
    }

    /// Takes over a connected call from its snapshot (the node that ran it died and this node now owns
    /// its partition). The restored call asks its parties and channel whether it can go on. A call that
    /// is already running here, or whose key this node does not serve, is left alone.
    pub async fn restore_call(&self, app: AppId, snapshot: CallSnapshot) {
        let id = snapshot.setup.id.clone();
        let key = ActorKey::Call(app.clone(), id.clone());
        if !self.inner.parts.placement.serves(&key) {
            tracing::warn!(%key, "not restored: this node does not serve the call's partition");
            return;
        }
        showcall_protocol::metrics::call_restored(&id);
        match self
            .start_call_actor(app, id, CallStart::Restored(snapshot))
            .await
        {
            Ok(()) => tracing::info!(%key, "call taken over from its record"),
            Err(e) => tracing::debug!(%key, error = %e, "call not restored"),
        }
    }

    /// The channel's actor here; a live channel is opened on first use, a call channel only by its call.
    pub(crate) async fn channel_or_open(
        &self,
        app: &AppId,
        channel: &ChannelName,
        kind: Option<ChannelKind>,
    ) -> Result<ActorRef<ChannelMsg>, CommandError> {
        let key = (app.clone(), channel.clone());
        if let Some(a) = lock(&self.inner.channels).get(&key) {
            return Ok(a.clone());
        }
        let kind = match kind {
            Some(kind) => kind,
            // An unknown call channel is one that never existed or whose call ended: nobody may join it.
            None if channel.is_call_channel() => return Err(CommandError::NotAParticipant),
            None => ChannelKind::Live,
        };
        // Pinned before the actor starts (outside the spawn lock: it is an etcd round trip in a
        // cluster). Two opens of one channel here both succeed: the second finds the pin is ours.
        let placement = &self.inner.parts.placement;
        match placement.pin_channel(app, channel).await {
            Ok(()) => {}
            Err(PinRefusal::Elsewhere(node)) if &node == placement.this_node() => {}
            Err(PinRefusal::Elsewhere(node)) => {
                return Err(CommandError::Unavailable(format!(
                    "channel {channel} is opening on {node}; try again"
                )));
            }
            Err(PinRefusal::Unavailable(why)) => return Err(CommandError::Unavailable(why)),
        }
        let _gate = (self.inner.spawn_gates)
            .enter(ActorKey::Channel(app.clone(), channel.clone()))
            .await;
        if let Some(a) = lock(&self.inner.channels).get(&key) {
            return Ok(a.clone());
        }
        let kind_is_live = matches!(kind, ChannelKind::Live);
        let spawned = Actor::spawn(
            None,
            ChannelActor,
            (
                self.context(),
                app.clone(),
                channel.clone(),
                kind,
                // A call channel's spans continue the trace of the call that opens it.
                showcall_protocol::messages::TraceContext::current(),
            ),
        )
        .await;
        let (actor, _) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                placement.unpin_channel(app, channel);
                return Err(CommandError::Unavailable(format!(
                    "cannot start channel actor: {e}"
                )));
            }
        };
        lock(&self.inner.channels).insert(key, actor.clone());
        if kind_is_live {
            self.reopened_here(app, channel, &actor).await;
        }
        Ok(actor)
    }

    pub fn channel(&self, app: &AppId, channel: &ChannelName) -> Option<ActorRef<ChannelMsg>> {
        lock(&self.inner.channels)
            .get(&(app.clone(), channel.clone()))
            .cloned()
    }

    pub(crate) fn forget_channel(&self, app: &AppId, channel: &ChannelName, id: ActorId) {
        let mut channels = lock(&self.inner.channels);
        let key = (app.clone(), channel.clone());
        if channels.get(&key).is_some_and(|a| a.get_id() == id) {
            channels.remove(&key);
            self.inner.directory.remove_channel(app, channel);
            self.inner.parts.placement.unpin_channel(app, channel);
        }
    }
}

impl Hub {
    /// This hub as an actor's context.
    pub(crate) fn context(&self) -> showcall_actors::Context {
        std::sync::Arc::new(self.clone())
    }

    /// Which apps' calls are authorized, and how.
    pub fn admission(&self) -> &Arc<dyn showcall_ports::admission::Admission> {
        &self.inner.parts.admission
    }

    /// Reports an event of `app` (stamped with the node's clock, Unix ms like the call records).
    pub fn emit(&self, app: &AppId, kind: showcall_protocol::events::EventKind) {
        showcall_protocol::metrics::on_event(&kind);
        self.events()
            .append(showcall_protocol::events::BusinessEvent {
                app: app.clone(),
                at: self.now_ms(),
                kind,
            });
    }

    /// How many of this node's calls are in each phase (every phase listed, zeros included).
    pub fn calls_by_phase(&self) -> Vec<(showcall_protocol::metrics::CallPhase, usize)> {
        use showcall_protocol::metrics::{CallPhase, progress_phase};
        let ids: Vec<CallId> = self
            .active_keys()
            .into_iter()
            .filter_map(|key| match key {
                ActorKey::Call(_, id) => Some(id),
                _ => None,
            })
            .collect();
        CallPhase::ALL
            .iter()
            .map(|phase| {
                let n = ids
                    .iter()
                    .filter(|id| progress_phase(id) == Some(*phase))
                    .count();
                (*phase, n)
            })
            .collect()
    }
}
