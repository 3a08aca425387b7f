//! [`Membership`]: this node's place in the cluster, kept in etcd.
//!
//! On start the node grants a lease (TTL `lease_ttl`, default 2 s), writes its [`NodeInfo`] under it, reads
//! the cluster, and then runs two tasks:
//! - **keep-alive**: renews the lease every TTL/4 and records when the last *acknowledged* renewal was sent.
//!   etcd cannot expire the lease earlier than TTL after it received that renewal, which is after it was
//!   sent; so the node may act as an owner until `sent + TTL - margin`. Past that it is **fenced**: it
//!   serves no partition and claims nothing until a renewal is acknowledged again. If etcd says the lease is
//!   gone, the node registers again under a new lease (its partitions were freed with the old one).
//! - **watch and reconcile**: follows the `nodes/` and `partitions/` keys (and the channel pins: the key
//!   range of [`Layout::view_range`], nothing that changes per call — but for the `events/` batches
//!   written while a node of an older release is in the cluster, which the view ignores and the
//!   snapshot does not read) from the snapshot's revision on,
//!   and after every change (and every TTL/2, to retry) moves towards the rendezvous target
//!   ([`crate::rendezvous::plan`]): claims free partitions it should own with a transaction that only
//!   succeeds if the key does not exist, and hands partitions another live node should own over to it
//!   (`hand_over`): it stops serving the partition, moves the partition's actors with their state through
//!   the node's [`HandoffHook`] (`showcall_protocol::handoff`), then passes the key to the target under the
//!   target's lease with a transaction that only succeeds if the key is still its own — or deletes it when
//!   the target's lease is unknown. A partition whose actors cannot move now stays, and is tried again.
//!   A partition owned by a dead node frees itself when that node's lease expires (the dead node, if
//!   merely cut off, fenced itself before that).
//! - **leave** ([`Membership::leave`], on SIGTERM): publishes `leaving` in its node info (nobody targets
//!   it any more) and hands every partition it owns over the same way, within a time limit.
//!
//! etcd unreachable: every node fences within TTL − margin; nothing can be claimed, so nobody takes over.
//! Routing keeps the last view (cached); when etcd is back, leases that survived are renewed (etcd extends
//! leases on leader change), and nodes that lost theirs re-register and the cluster converges again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use showcall_protocol::NodeId;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::etcd_timing::timed;
use crate::partition::PartitionId;
use crate::rendezvous::{Step, plan};
use crate::view::{ClusterView, Layout, MediaLoad, NodeInfo};

/// How to join the cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// etcd client URLs, e.g. `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// Key prefix, ending in `/` (several clusters can share one etcd).
    pub prefix: String,
    /// Number of partitions; MUST be equal on every node of the cluster.
    pub partitions: u32,
    /// Lease time-to-live: how long a dead node's partitions stay owned. Whole seconds (etcd's unit),
    /// at least 2 (etcd's minimum with default timings).
    pub lease_ttl: Duration,
    /// What this node publishes about itself.
    pub info: NodeInfo,
}

/// Why joining the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("invalid cluster configuration: {0}")]
    Config(String),
    #[error("node {0} is already registered (another live node uses this id)")]
    DuplicateNode(String),
}

/// The lease this node holds.
#[derive(Clone, Copy, Debug)]
struct Lease {
    id: i64,
    /// When the last renewal that etcd acknowledged was sent (or the grant was asked for).
    renewed_sent_at: Instant,
}

struct Shared {
    me: NodeId,
    partitions: u32,
    layout: Layout,
    ttl: Duration,
    info: NodeInfo,
    view: RwLock<ClusterView>,
    lease: Mutex<Lease>,
    /// Bumped on every change of view or fencing, for waiters.
    changes: watch::Sender<u64>,
    /// Set when etcd says the lease is gone: the reconcile task registers again.
    lease_lost: Notify,
    /// Told when this node's own lease expired (before it registers again).
    own_losses: Mutex<Vec<mpsc::UnboundedSender<()>>>,
    /// Who hears of other nodes' deaths.
    losses: Mutex<Vec<mpsc::UnboundedSender<NodeLoss>>>,
    /// The partitions that have actors running here (set by the node once its hub exists).
    busy: Mutex<Option<BusyPartitions>>,
    /// How many channels are open here (published in the node info; set by the node).
    load: Mutex<Option<Arc<dyn Fn() -> u32 + Send + Sync>>>,
    /// This node's media router's load now (published in the node info's `media`; set by the node
    /// when its router can be an edge).
    media_load: Mutex<Option<Arc<dyn Fn() -> MediaLoad + Send + Sync>>>,
    /// Moves a busy partition's actors to its next owner (set by the node once its hub exists).
    handoff: Mutex<Option<HandoffHook>>,
    /// Set when this node leaves: published in its node info (no partition targets it any more).
    leaving: std::sync::atomic::AtomicBool,
}

/// Hands the actors of a partition this node just stopped serving to `target`; `true` once they run
/// there (see `showcall_protocol::handoff`). `force`: end calls that are not connected instead of
/// waiting for them. `false`: nothing moved; the partition stays here for now.
pub type HandoffHook = Arc<
    dyn Fn(PartitionId, NodeId, bool) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>>
        + Send
        + Sync,
>;

/// What leaving the cluster did ([`Membership::leave`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaveReport {
    /// Partitions handed over (with their actors, when they had any).
    pub handed_over: usize,
    /// Partitions still owned when the time was up (or no other node was left to take them): they
    /// free themselves when the lease is revoked, and their actors are lost as in a crash.
    pub left_behind: usize,
}

/// Which partitions have actors running on this node.
pub type BusyPartitions = Arc<dyn Fn() -> BTreeSet<PartitionId> + Send + Sync>;

/// Another node left the cluster (its lease expired or was revoked), with the partitions it owned then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLoss {
    pub node: NodeId,
    pub partitions: BTreeSet<PartitionId>,
    /// The channels pinned to it (`<app>/<channel>`): their actors and media are gone.
    pub channels: BTreeSet<String>,
}

/// This node's membership (see the module docs). Cheap to clone; dropping every clone does not stop the
/// tasks — [`Membership::stop`] does (a killed node simply stops renewing).
#[derive(Clone)]
pub struct Membership {
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    client: Client,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("me", &self.shared.me)
            .field("fenced", &self.is_fenced())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// This node's info as it should be published now (`load` = channels open; `media`: its router's
    /// load).
    fn info_now(&self, load: u32, media: MediaLoad) -> NodeInfo {
        NodeInfo {
            load,
            media: self.info.media.clone().map(|info| crate::view::MediaInfo {
                sessions: media.sessions,
                egress_bps: media.egress_bps,
                ..info
            }),
            leaving: self.leaving.load(std::sync::atomic::Ordering::Acquire),
            lease: lock(&self.lease).id,
            ..self.info.clone()
        }
    }

    /// The margin kept before the earliest moment etcd could expire the lease.
    fn margin(&self) -> Duration {
        (self.ttl / 4).max(Duration::from_millis(200))
    }

    fn fenced_at(&self, now: Instant) -> bool {
        let lease = *lock(&self.lease);
        now >= lease.renewed_sent_at + self.ttl - self.margin()
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    fn view(&self) -> std::sync::RwLockReadGuard<'_, ClusterView> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    fn view_mut(&self) -> std::sync::RwLockWriteGuard<'_, ClusterView> {
        self.view.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Membership {
    /// Registers this node and starts its tasks. Fails when etcd cannot be reached or another live node
    /// already uses this node id.
    pub async fn start(config: ClusterConfig) -> Result<Membership, ClusterError> {
        if config.endpoints.is_empty() {
            return Err(ClusterError::Config("no etcd endpoints".into()));
        }
        if config.partitions == 0 {
            return Err(ClusterError::Config("partitions must be at least 1".into()));
        }
        let ttl_secs = config.lease_ttl.as_secs_f64().ceil() as i64;
        if ttl_secs < 2 {
            return Err(ClusterError::Config("lease_ttl must be at least 2s".into()));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(3));
        let mut client = Client::connect(&config.endpoints, Some(options)).await?;
        let (changes, _) = watch::channel(0);
        let layout = Layout {
            prefix: config.prefix.clone(),
        };
        // This release's event log (`crate::event_log`) reads both layouts, whoever builds the info.
        let info = NodeInfo {
            timeline: true,
            wire_minor: showcall_protocol::wire::WIRE_MINOR,
            ..config.info
        };
        let asked = Instant::now();
        let lease_id = register(&mut client, &layout, &info, ttl_secs).await?;
        let shared = Arc::new(Shared {
            me: info.id.clone(),
            partitions: config.partitions,
            layout,
            ttl: Duration::from_secs(ttl_secs as u64),
            info,
            view: RwLock::new(ClusterView::default()),
            lease: Mutex::new(Lease {
                id: lease_id,
                renewed_sent_at: asked,
            }),
            changes,
            lease_lost: Notify::new(),
            own_losses: Mutex::default(),
            losses: Mutex::default(),
            busy: Mutex::default(),
            load: Mutex::default(),
            media_load: Mutex::default(),
            handoff: Mutex::default(),
            leaving: std::sync::atomic::AtomicBool::new(false),
        });
        let revision = snapshot(&mut client, &shared).await?;
        let keeper = tokio::spawn(keep_alive(client.clone(), shared.clone()));
        let publisher = tokio::spawn(publish_load(client.clone(), shared.clone()));
        let reconciler = tokio::spawn(watch_and_reconcile(
            client.clone(),
            shared.clone(),
            revision,
        ));
        tracing::info!(node = %shared.me, lease = lease_id, ttl_s = ttl_secs, "joined the cluster");
        Ok(Membership {
            shared,
            tasks: Arc::new(Mutex::new(vec![keeper, reconciler, publisher])),
            client,
        })
    }

    /// This node.
    pub fn me(&self) -> &NodeId {
        &self.shared.me
    }

    pub fn partitions(&self) -> u32 {
        self.shared.partitions
    }

    /// The cluster's key prefix in etcd.
    pub fn prefix(&self) -> &str {
        &self.shared.layout.prefix
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.shared.layout
    }

    /// This node's current lease.
    pub(crate) fn lease_id(&self) -> i64 {
        lock(&self.shared.lease).id
    }

    /// Adds to a node's load as this node last saw it (its next published load replaces it).
    pub(crate) fn note_load(&self, node: &NodeId, more: u32) {
        if let Some(info) = self.shared.view_mut().nodes.get_mut(node) {
            info.load = info.load.saturating_add(more);
        }
    }

    /// Records a channel pin (or its removal) in the view before the watch echoes it.
    pub(crate) fn note_channel(&self, channel: &str, node: Option<NodeId>) {
        let mut view = self.shared.view_mut();
        match node {
            Some(node) => view.channels.insert(channel.to_owned(), node),
            None => view.channels.remove(channel),
        };
    }

    /// A handle on the etcd client (cheap to clone).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Whether this node may not act as an owner now (its lease may be about to expire).
    pub fn is_fenced(&self) -> bool {
        self.shared.fenced_at(Instant::now())
    }

    /// The partitions this node serves now: those it owns, unless fenced.
    pub fn served(&self) -> Vec<PartitionId> {
        if self.is_fenced() {
            return Vec::new();
        }
        self.shared.view().owned_by(&self.shared.me)
    }

    /// Whether this node serves `partition` now.
    pub fn serves(&self, partition: PartitionId) -> bool {
        !self.is_fenced() && self.shared.view().owners.get(&partition) == Some(&self.shared.me)
    }

    /// The owner of `partition` as last seen (`None` while it is free).
    pub fn owner(&self, partition: PartitionId) -> Option<NodeId> {
        self.shared.view().owners.get(&partition).cloned()
    }

    /// The cluster as last seen.
    pub fn view(&self) -> ClusterView {
        self.shared.view().clone()
    }

    /// Reads the view in place (no copy).
    pub fn read_view<T>(&self, read: impl FnOnce(&ClusterView) -> T) -> T {
        read(&self.shared.view())
    }

    /// Tells membership which partitions have actors running here: such a partition is handed over with
    /// its actors ([`Membership::set_handoff`]), or — without a handoff hook — kept until they are gone.
    pub fn set_busy(&self, busy: BusyPartitions) {
        *lock(&self.shared.busy) = Some(busy);
    }

    /// Tells membership how many channels are open here: republished in this node's info (at most once a
    /// second, when it changed) so other nodes place new channels by load.
    pub fn set_load(&self, load: Arc<dyn Fn() -> u32 + Send + Sync>) {
        *lock(&self.shared.load) = Some(load);
    }

    /// Tells membership how loaded this node's media router is: republished with the channels' load
    /// (when it changed enough, [`MediaLoad::worth_publishing`]) so rooms' origins choose edges with room.
    pub fn set_media_load(&self, load: Arc<dyn Fn() -> MediaLoad + Send + Sync>) {
        *lock(&self.shared.media_load) = Some(load);
    }

    /// The live nodes as candidates for viewers' media sessions (`showcall_protocol::media_edge`).
    pub fn media_nodes(&self) -> Vec<showcall_protocol::media_edge::MediaNode> {
        self.read_view(|view| view.nodes.values().map(NodeInfo::media_node).collect())
    }

    /// Tells membership how to move a busy partition's actors: a partition another node should own is
    /// then handed over with its actors (a joining node gets its share under load) instead of staying
    /// here until they are gone.
    pub fn set_handoff(&self, handoff: HandoffHook) {
        *lock(&self.shared.handoff) = Some(handoff);
    }

    /// Leaves the cluster gracefully, within `limit`: publishes that this node is leaving (no partition
    /// targets it, no channel opens on it), then hands every partition it owns to its next owner — with
    /// its actors — one after the other. Calls that have not connected are waited for during the first
    /// half of `limit`, then ended. Call [`Membership::stop`] afterwards to revoke the lease.
    pub async fn leave(&self, limit: Duration) -> LeaveReport {
        let shared = &self.shared;
        self.announce_leaving(limit / 5).await;
        let mut client = self.client.clone();
        let started = Instant::now();
        let mut report = LeaveReport::default();
        loop {
            let (owned, others) = {
                let view = shared.view();
                let mut others = view.live();
                others.remove(&shared.me);
                (view.owned_by(&shared.me), others)
            };
            if owned.is_empty() || others.is_empty() || started.elapsed() >= limit {
                report.left_behind = owned.len();
                break;
            }
            if shared.fenced_at(Instant::now()) {
                // Nothing can be handed over without etcd; the lease decides.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let force = started.elapsed() >= limit / 2;
            let mut waiting = false;
            for p in owned {
                let Some(target) = crate::rendezvous::target(p, &others).cloned() else {
                    continue;
                };
                if hand_over(&mut client, shared, p, &target, force).await {
                    report.handed_over += 1;
                } else {
                    waiting = true;
                }
            }
            if waiting {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tracing::info!(
            handed_over = report.handed_over,
            left_behind = report.left_behind,
            took_ms = started.elapsed().as_millis() as u64,
            "left the cluster's partitions"
        );
        report
    }

    /// Publishes that this node is leaving — no partition targets it, no channel opens on it — and
    /// waits (at most `limit`) until this node's own view shows it, so what it places from now on goes
    /// elsewhere. [`Membership::leave`] does this first; calling it before is harmless.
    pub async fn announce_leaving(&self, limit: Duration) {
        let shared = &self.shared;
        if shared
            .leaving
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let mut client = self.client.clone();
        let lease = lock(&shared.lease).id;
        let load = lock(&shared.load).as_ref().map_or(0, |load| load());
        let media = lock(&shared.media_load)
            .as_ref()
            .map_or_else(MediaLoad::default, |load| load());
        let value =
            serde_json::to_vec(&shared.info_now(load, media)).expect("node info serializes");
        let put = PutOptions::new().with_lease(lease);
        if let Err(e) = timed(
            "put",
            client.put(shared.layout.node(&shared.me), value, Some(put)),
        )
        .await
        {
            tracing::warn!(error = %e, "could not publish that this node leaves");
            return;
        }
        let mut changes = shared.changes.subscribe();
        let seen = |shared: &Shared| {
            shared
                .view()
                .nodes
                .get(&shared.me)
                .is_some_and(|info| info.leaving)
        };
        let _ = tokio::time::timeout(limit, async {
            while !seen(shared) {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Every later loss of another node, with the partitions it owned: its actors are gone.
    pub fn node_losses(&self) -> mpsc::UnboundedReceiver<NodeLoss> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.shared.losses).push(tx);
        rx
    }

    /// Every later expiry of this node's own lease (it was cut off or paused past the TTL): the cluster
    /// counted it as dead and its partitions and calls were taken over, so its local actors are void.
    pub fn own_lease_losses(&self) -> mpsc::UnboundedReceiver<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.shared.own_losses).push(tx);
        rx
    }

    /// A receiver that changes whenever the view or the fencing may have changed.
    pub fn watch_changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Stops renewing without revoking, as a crashed node would: its lease (and partitions) expire after
    /// the TTL. For benchmarks and tests of takeover.
    pub fn abandon(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    /// Leaves the cluster cleanly: stops the tasks and revokes the lease, which frees this node's
    /// partitions at once (survivors claim them without waiting for the TTL).
    pub async fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        let lease = lock(&self.shared.lease).id;
        let mut client = self.client.clone();
        if let Err(e) = timed("lease_revoke", client.lease_revoke(lease)).await {
            tracing::warn!(error = %e, "could not revoke the lease; partitions free at its expiry");
        }
    }
}

/// Grants a lease and writes the node key under it, refusing a node id that a live node holds.
async fn register(
    client: &mut Client,
    layout: &Layout,
    info: &NodeInfo,
    ttl_secs: i64,
) -> Result<i64, ClusterError> {
    let lease = timed("lease_grant", client.lease_grant(ttl_secs, None))
        .await?
        .id();
    let key = layout.node(&info.id);
    let info = NodeInfo {
        lease,
        ..info.clone()
    };
    let value = serde_json::to_vec(&info).expect("node info serializes");
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key,
            value,
            Some(PutOptions::new().with_lease(lease)),
        )]);
    if !timed("txn", client.txn(txn)).await?.succeeded() {
        let _ = timed("lease_revoke", client.lease_revoke(lease)).await;
        return Err(ClusterError::DuplicateNode(info.id.0.clone()));
    }
    Ok(lease)
}

/// Reads the view's keys ([`Layout::view_ranges_without_older_events`]: two gets, the second at the
/// first's revision) into the view; returns the revision to watch from.
async fn snapshot(client: &mut Client, shared: &Shared) -> Result<i64, ClusterError> {
    let [(from, to), (from_2, to_2)] = shared.layout.view_ranges_without_older_events();
    let first = timed(
        "get",
        client.get(from, Some(GetOptions::new().with_range(to))),
    )
    .await?;
    let revision = first.header().map_or(0, |h| h.revision());
    let second = timed(
        "get",
        client.get(
            from_2,
            Some(GetOptions::new().with_range(to_2).with_revision(revision)),
        ),
    )
    .await?;
    let mut view = ClusterView::default();
    for kv in first.kvs().iter().chain(second.kvs()) {
        if let Ok(key) = kv.key_str() {
            view.put(&shared.layout, key, kv.value());
        }
    }
    *shared.view_mut() = view;
    shared.bump();
    Ok(revision)
}

/// Renews the lease every TTL/4 (see the module docs).
async fn keep_alive(mut client: Client, shared: Arc<Shared>) {
    let every = shared.ttl / 4;
    // The lease last reported lost, so that it is reported once: a second report would leave a stored
    // permit on `lease_lost` and the node would register again, dropping its actors, right after it
    // had registered again.
    let mut reported_lost = None;
    loop {
        let lease = lock(&shared.lease).id;
        let (mut keeper, mut responses) = match client.lease_keep_alive(lease).await {
            Ok(pair) => pair,
            Err(etcd_client::Error::LeaseKeepAliveError(reason))
                if reported_lost != Some(lease) =>
            {
                // etcd says the lease no longer exists (its first answer had TTL 0): it expired while
                // this node could not renew it — frozen, or cut off past the TTL — after the stream it
                // was renewed on broke. Renewing the same id can never work again: register anew, as
                // when an open stream reports the expiry. (Seen in the soak: a node frozen 5 s looped
                // here forever, fenced, with its clients still connected.)
                tracing::warn!(node = %shared.me, %reason, "lease gone: registering again");
                reported_lost = Some(lease);
                shared.lease_lost.notify_one();
                shared.bump();
                tokio::time::sleep(every).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease keep-alive stream failed; retrying");
                shared.bump();
                tokio::time::sleep(every).await;
                continue;
            }
        };
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if lock(&shared.lease).id != lease {
                break; // registered again under a new lease
            }
            let sent = Instant::now();
            if keeper.keep_alive().await.is_err() {
                break;
            }
            match tokio::time::timeout(every, responses.message()).await {
                Ok(Ok(Some(response))) if response.ttl() > 0 => {
                    showcall_protocol::metrics::etcd_request("lease_keep_alive", sent.elapsed());
                    let was_fenced = shared.fenced_at(sent);
                    lock(&shared.lease).renewed_sent_at = sent;
                    if was_fenced {
                        tracing::info!(node = %shared.me, "lease renewed: serving again");
                        shared.bump();
                    }
                }
                Ok(Ok(Some(_))) => {
                    if reported_lost != Some(lease) {
                        tracing::warn!(node = %shared.me, "lease expired: registering again");
                        reported_lost = Some(lease);
                        shared.lease_lost.notify_one();
                    }
                    break;
                }
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => {
                    // No answer within the interval: etcd is slow or gone; the fence deadline decides.
                    shared.bump();
                }
            }
        }
        shared.bump();
    }
}

/// Republishes this node's info with its current load whenever the load changed (checked every second).
async fn publish_load(mut client: Client, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut published = (0, MediaLoad::default());
    loop {
        tick.tick().await;
        let Some(load) = lock(&shared.load).clone() else {
            continue;
        };
        let media = lock(&shared.media_load)
            .clone()
            .map_or_else(MediaLoad::default, |load| load());
        let now = (load(), media);
        let changed = now.0 != published.0 || now.1.worth_publishing(&published.1);
        if !changed || shared.fenced_at(Instant::now()) {
            continue;
        }
        let info = shared.info_now(now.0, now.1);
        let lease = lock(&shared.lease).id;
        let value = serde_json::to_vec(&info).expect("node info serializes");
        let put = timed(
            "put",
            client.put(
                shared.layout.node(&shared.me),
                value,
                Some(PutOptions::new().with_lease(lease)),
            ),
        )
        .await;
        match put {
            Ok(_) => published = now,
            Err(e) => tracing::debug!(error = %e, "load not published; next second"),
        }
    }
}

/// Follows the cluster's keys and moves towards the target assignment (see the module docs).
async fn watch_and_reconcile(mut client: Client, shared: Arc<Shared>, mut revision: i64) {
    let retry = shared.ttl / 2;
    let (from, to) = shared.layout.view_range();
    loop {
        let options = WatchOptions::new()
            .with_range(to.clone())
            .with_start_revision(revision + 1);
        let mut stream = match client.watch(from.clone(), Some(options)).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "etcd watch failed; retrying");
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        reconcile(&mut client, &shared).await;
        let mut tick = tokio::time::interval(retry);
        loop {
            tokio::select! {
                message = stream.message() => match message {
                    Ok(Some(response)) => {
                        if response.compact_revision() > 0 {
                            // Events were compacted away: read everything again.
                            break;
                        }
                        let mut gone = Vec::new();
                        // Only a node coming, going or changing in more than its load, and a
                        // partition changing hands, call for a reconcile (`ClusterView::put`).
                        let mut structural = false;
                        {
                            let mut view = shared.view_mut();
                            // Owners as they were before this batch: a lease expiry deletes a node's key
                            // and its partitions' keys together. (Copied only when a node went.)
                            let node_went = response.events().iter().any(|event| {
                                event.event_type() == EventType::Delete
                                    && event.kv().and_then(|kv| kv.key_str().ok()).is_some_and(
                                        |key| matches!(shared.layout.kind(key), crate::view::KeyKind::Node(_)),
                                    )
                            });
                            let before = if node_went { view.clone() } else { ClusterView::default() };
                            for event in response.events() {
                                if event.event_type() == EventType::Delete
                                    && let Some(kv) = event.kv()
                                    && let Ok(key) = kv.key_str()
                                    && let crate::view::KeyKind::Node(node) = shared.layout.kind(key)
                                    && node != shared.me
                                {
                                    let partitions = before.owned_by(&node).into_iter().collect();
                                    let channels = before.channels_on(&node);
                                    gone.push(NodeLoss { node, partitions, channels });
                                }
                            }
                            for event in response.events() {
                                let Some(kv) = event.kv() else { continue };
                                let Ok(key) = kv.key_str() else { continue };
                                revision = revision.max(kv.mod_revision());
                                structural |= match event.event_type() {
                                    EventType::Put => view.put(&shared.layout, key, kv.value()),
                                    EventType::Delete => view.delete(&shared.layout, key),
                                };
                            }
                        }
                        if let Some(header) = response.header() {
                            revision = revision.max(header.revision());
                        }
                        for loss in gone {
                            tracing::warn!(node = %loss.node, partitions = loss.partitions.len(), "node lost");
                            lock(&shared.losses).retain(|tx| tx.send(loss.clone()).is_ok());
                        }
                        if structural {
                            shared.bump();
                            reconcile(&mut client, &shared).await;
                        }
                    }
                    Ok(None) | Err(_) => break,
                },
                () = shared.lease_lost.notified() => {
                    // The partitions went with the lease, whatever the (possibly stale) view says: this
                    // node must not take itself for their owner once it is unfenced again.
                    {
                        let mut view = shared.view_mut();
                        view.owners.retain(|_, owner| *owner != shared.me);
                        view.channels.retain(|_, node| *node != shared.me);
                    }
                    lock(&shared.own_losses).retain(|tx| tx.send(()).is_ok());
                    reregister(&mut client, &shared).await;
                    reconcile(&mut client, &shared).await;
                }
                _ = tick.tick() => reconcile(&mut client, &shared).await,
            }
        }
        // The watch ended (etcd restarted, compaction): take a fresh snapshot and watch again.
        loop {
            match snapshot(&mut client, &shared).await {
                Ok(r) => {
                    revision = r;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "etcd snapshot failed; retrying");
                    tokio::time::sleep(retry).await;
                }
            }
        }
    }
}

/// Registers again under a new lease after the old one expired.
async fn reregister(client: &mut Client, shared: &Shared) {
    let ttl_secs = shared.ttl.as_secs() as i64;
    loop {
        let asked = Instant::now();
        match register(
            client,
            &shared.layout,
            &shared.info_now(0, MediaLoad::default()),
            ttl_secs,
        )
        .await
        {
            Ok(id) => {
                *lock(&shared.lease) = Lease {
                    id,
                    renewed_sent_at: asked,
                };
                tracing::info!(node = %shared.me, lease = id, "registered again");
                shared.bump();
                return;
            }
            Err(e) => {
                // A duplicate here is our own old key, still waiting for its lease to go.
                tracing::warn!(error = %e, "registering again failed; retrying");
                tokio::time::sleep(shared.ttl / 4).await;
            }
        }
    }
}

/// Claims and releases partitions towards the target; does nothing while fenced.
async fn reconcile(client: &mut Client, shared: &Shared) {
    // A leaving node claims nothing, and `leave` alone hands its partitions over.
    if shared.fenced_at(Instant::now()) || shared.leaving.load(std::sync::atomic::Ordering::Acquire)
    {
        return;
    }
    let steps = {
        let view = shared.view();
        plan(&shared.me, shared.partitions, &view.live(), &view.owners)
    };
    if steps.is_empty() {
        return;
    }
    let lease = lock(&shared.lease).id;
    let me = shared.me.0.clone();
    let busy_now = || {
        lock(&shared.busy)
            .as_ref()
            .map(|busy| busy())
            .unwrap_or_default()
    };
    let busy = if steps.iter().any(|s| matches!(s, Step::Release(_))) {
        busy_now()
    } else {
        BTreeSet::new()
    };
    // Claims go in batches (one transaction, one fsync, for many partitions: forming a cluster is
    // fast); a batch another node got a partition of first falls back to one transaction per partition,
    // so each claim stays independent.
    let claims: Vec<PartitionId> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Claim(p) => Some(*p),
            Step::Release(_) => None,
        })
        .collect();
    for batch in claims.chunks(CLAIM_BATCH) {
        if let Err(e) = claim(client, shared, lease, &me, batch).await {
            tracing::warn!(error = %e, "partition claims failed; will retry");
            return;
        }
    }
    let handoff = lock(&shared.handoff).is_some();
    let live = shared.view().live();
    for step in steps {
        let Step::Release(p) = step else { continue };
        // A partition with actors running here moves with them when the node can hand them over;
        // otherwise it stays until they are gone (the reconcile tick looks again).
        if busy.contains(&p) && !handoff {
            continue;
        }
        let Some(target) = crate::rendezvous::target(p, &live).cloned() else {
            continue;
        };
        hand_over(client, shared, p, &target, false).await;
    }
}

/// Moves partition `p` from this node to `target`: stops serving it, hands its actors over when it has
/// any, then gives its key up, so the target can claim it. Stop serving first, give the key up last:
/// there is no moment where both serve it, and messages meanwhile wait for the new owner. `false` when
/// the actors could not move now: the partition is served here again.
async fn hand_over(
    client: &mut Client,
    shared: &Shared,
    p: PartitionId,
    target: &NodeId,
    force: bool,
) -> bool {
    let busy_now = || {
        lock(&shared.busy)
            .as_ref()
            .map(|busy| busy())
            .unwrap_or_default()
    };
    shared.view_mut().owners.remove(&p);
    shared.bump();
    if busy_now().contains(&p) {
        let hook = lock(&shared.handoff).clone();
        let moved = match hook {
            Some(hook) => hook(p, target.clone(), force).await,
            None => false,
        };
        if !moved {
            shared.view_mut().owners.insert(p, shared.me.clone());
            shared.bump();
            return false;
        }
    }
    let key = shared.layout.partition(p);
    let me = shared.me.0.clone();
    // The key goes straight to the target, under its lease: there is no moment where the partition is
    // free for another node to claim — its actors are on the target now. (A node restarted under the
    // same id would otherwise claim it back at once while the actors wait, suspended, on the target.)
    let target_lease = shared.view().nodes.get(target).map_or(0, |info| info.lease);
    if target_lease != 0 {
        let txn = Txn::new()
            .when([Compare::value(key.clone(), CompareOp::Equal, me.clone())])
            .and_then([TxnOp::put(
                key.clone(),
                target.0.clone(),
                Some(PutOptions::new().with_lease(target_lease)),
            )]);
        match timed("txn", client.txn(txn)).await {
            Ok(_) => return true,
            // Its lease is gone (it died or registered again): free the key for whoever is next.
            Err(e) => {
                tracing::warn!(partition = p, %target, error = %e, "partition not passed on; released")
            }
        }
    }
    for attempt in 1..=3 {
        let txn = Txn::new()
            .when([Compare::value(key.clone(), CompareOp::Equal, me.clone())])
            .and_then([TxnOp::delete(key.clone(), None)]);
        match timed("txn", client.txn(txn)).await {
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(partition = p, attempt, error = %e, "partition release failed")
            }
        }
    }
    // Not served here any more, whatever etcd says; the key goes with the lease at the latest.
    true
}

/// Partitions claimed per transaction (etcd allows 128 operations per transaction by default).
const CLAIM_BATCH: usize = 64;

/// Claims `batch` in one transaction, or one by one if another node holds any of them.
async fn claim(
    client: &mut Client,
    shared: &Shared,
    lease: i64,
    me: &str,
    batch: &[PartitionId],
) -> Result<(), etcd_client::Error> {
    let absent = |p: &PartitionId| {
        Compare::create_revision(shared.layout.partition(*p), CompareOp::Equal, 0)
    };
    let put = |p: &PartitionId| {
        TxnOp::put(
            shared.layout.partition(*p),
            me.to_owned(),
            Some(PutOptions::new().with_lease(lease)),
        )
    };
    if batch.len() > 1 {
        let all = Txn::new()
            .when(batch.iter().map(absent).collect::<Vec<_>>())
            .and_then(batch.iter().map(put).collect::<Vec<_>>());
        if timed("txn", client.txn(all)).await?.succeeded() {
            return Ok(());
        }
        tracing::debug!(
            partitions = batch.len(),
            "batch claim lost a race; claiming one by one"
        );
    }
    for p in batch {
        let one = Txn::new().when([absent(p)]).and_then([put(p)]);
        timed("txn", client.txn(one)).await?;
    }
    Ok(())
}
