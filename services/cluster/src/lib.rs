//! Cluster placement through etcd: which node owns which actor.
//!
//! - [`partition`]: an actor key's partition (a stable hash, equal on every node and every build).
//! - [`rendezvous`]: the node a partition should live on, given the live nodes (highest random weight),
//!   and the claims and releases that move this node towards that target.
//! - [`view`]: [`ClusterView`], the nodes and partition owners as last seen in etcd.
//! - [`membership`]: [`Membership`], the task that registers this node under a lease, keeps it alive,
//!   watches the cluster, claims and releases partitions, and fences itself when it cannot renew.
//! - [`placement`]: [`EtcdPlacement`], the actors' `Placement` port on top of it.
//! - [`channel_pins`]: channels pinned to the least loaded media node when they open.
//! - [`call_records`]: [`EtcdCallLedger`], connected calls kept for a takeover when their node dies.
//! - [`event_log`]: [`EtcdEventLog`], the business events of every node in one order (etcd revisions).
//! - [`takeover`]: restoring a dead node's connected calls on their partitions' new owners.
//! - [`webhook_leader`]: [`EtcdWebhookLeader`], the one node that delivers webhooks, and their checkpoints.
//! - `etcd_timing`: every etcd request timed for the `showcall_etcd_request_seconds` histogram.
//! - [`link`]: envelopes between nodes over tonic ([`LinkCourier`] sends, [`NodeLinkService`] receives).
//! - [`wire_rehearsal`]: a node writing its frames as the next minor wire version would (upgrade tests).
//!
//! etcd layout (`<prefix>` defaults to `/showcall/v1/`; the membership reads and watches only the node,
//! partition and channel keys, `view::Layout::view_range`):
//! - `<prefix>nodes/<node id>` → JSON [`NodeInfo`], bound to the node's lease;
//! - `<prefix>partitions/<n>` → the owning node's id, bound to the owner's lease, created only by a
//!   transaction that checks the key does not exist (so a partition has at most one owner);
//! - `<prefix>channels/<app>/<channel>` → the media node an open channel runs on, bound to that node's
//!   lease, created only if absent;
//! - `<prefix>timeline/<node>/<n>` → a batch of business events (JSON array), bound to a rotating
//!   retention lease;
//! - `<prefix>events/<node>/<n>` → the same, where releases before `timeline/` keep them, and where
//!   every node writes while one of those is in the cluster (a rolling upgrade; see [`event_log`]);
//! - `<prefix>calls/<partition>/<call id>` → a connected call's record (no lease: it outlives its node);
//! - `<prefix>webhooks/leader` → the node delivering webhooks, bound to its lease, created only if absent;
//! - `<prefix>webhooks/checkpoints/<app>` → the cursor of the app's last finished webhook (no lease).
#![forbid(unsafe_code)]

pub mod bans;
pub mod call_records;
pub mod channel_pins;
mod etcd_timing;
pub mod event_log;
pub mod link;
pub mod membership;
pub mod partition;
pub mod placement;
pub mod rendezvous;
pub mod takeover;
pub mod view;
pub mod webhook_leader;
pub mod wire_rehearsal;

pub use bans::EtcdBans;
pub use call_records::EtcdCallLedger;
pub use event_log::EtcdEventLog;
pub use link::{
    LINK_QUEUE_ENVELOPES, LinkCourier, LinkCredentials, LinkTransport, NodeLinkService, serve_link,
};
pub use membership::{ClusterConfig, ClusterError, HandoffHook, LeaveReport, Membership, NodeLoss};
pub use partition::{PartitionId, partition_of};
pub use placement::EtcdPlacement;
pub use takeover::take_over_calls;
pub use view::{ClusterView, MediaInfo, MediaLoad, NodeInfo};
pub use webhook_leader::EtcdWebhookLeader;
