//! The node's metrics: every name, description and bucket layout in one place, and the call metrics
//! derived from the business events.
//!
//! Two kinds of metric, by where the value comes from:
//! - **Recorded** through the [`metrics`] facade where something happens: call setup and ringing latency,
//!   calls ended by reason, etcd request latency, webhook failures, open signaling connections. One line
//!   at each site, no handle threaded through. The facade's recorder is process-wide (installed once by
//!   the node), so several in-process nodes (tests) share these series.
//! - **Sampled** by the node when `/metrics` is scraped, from its own parts: users online, calls by
//!   state, channels open, partitions owned, the media router's counters. Sampling cannot drift from the
//!   truth (no increment is ever missed on an error path) and is exact per node even when several nodes
//!   share a process. The names and help texts live here too; the node renders them.
//!
//! Call metrics come from the business events ([`Hub::emit`](crate::Hub::emit)): the one place where every
//! call's progress is already reported, on the node that runs the call's actor. So in a cluster the call
//! gauges are per node (sum them in Prometheus) and a call is counted by the node owning its actor, not
//! by its parties' nodes. [`CallProgress`] keeps each running call's state and creation time (pure; the
//! facade calls are in [`on_event`]). A call is counted from its `CallCreated` until its `CallEnded`
//! (which comes before its actor leaves the hub), so a scrape between the two never shows a call
//! twice or in the wrong state. A call taken over from a dead node never had `CallCreated` here: the hub
//! marks it connected when it restores it ([`call_restored`]; only connected calls are taken over) and
//! it adds no latency sample.
//!
//! Latencies are measured on the monotonic clock when each event is reported (not from the events'
//! millisecond timestamps: ringing on one node takes well under a millisecond).
//!
//! Labels never carry user, call or channel ids: only a handful of fixed values each.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use showcall_machines::CallId;
use showcall_machines::call::EndCause;

use crate::events::EventKind;

// ----- Recorded (facade) -----

/// Histogram: a call's creation to both parties connected (media flowing both ways), in seconds. Includes
/// the time the callee takes to answer: seconds to tens of seconds.
pub const CALL_SETUP_SECONDS: &str = "showcall_call_setup_seconds";
/// Histogram: a call's creation to the callee's client ringing, in seconds: the signaling path's latency.
pub const CALL_RINGING_SECONDS: &str = "showcall_call_ringing_seconds";
/// Counter, label `reason` ([`end_reason`]): calls that ended on this node.
pub const CALLS_ENDED_TOTAL: &str = "showcall_calls_ended_total";
/// Histogram, label `op` ([`ETCD_OPS`]): etcd request latency, in seconds.
pub const ETCD_REQUEST_SECONDS: &str = "showcall_etcd_request_seconds";
/// Counter: webhook deliveries that failed (incremented by the webhook sender through
/// [`webhook_failed`]).
pub const WEBHOOK_FAILURES_TOTAL: &str = "showcall_webhook_failures_total";
/// Gauge: WebSocket signaling connections open (logged in or not).
pub const SIGNALING_CONNECTIONS: &str = "showcall_signaling_connections";

// ----- Sampled (rendered by the node at scrape time) -----

/// Gauge: users with a session on this node (online, or offline within their grace period).
pub const USERS_ONLINE: &str = "showcall_users_online";
/// Gauge, label `state` ([`CallPhase::label`]): calls whose actor runs on this node.
pub const CALLS: &str = "showcall_calls";
/// Gauge: channels (live rooms and call channels) open on this node.
pub const CHANNELS_OPEN: &str = "showcall_channels_open";
/// Gauge: placement partitions this node owns and serves (cluster only).
pub const PARTITIONS_OWNED: &str = "showcall_partitions_owned";
/// Counter, label `direction` (`in`, `out`): UDP datagrams through the media router (RTP, RTCP, and the
/// STUN/DTLS that carries them).
pub const MEDIA_PACKETS_TOTAL: &str = "showcall_media_packets_total";
/// Counter, label `direction` (`in`, `out`): bytes of those datagrams (UDP payload).
pub const MEDIA_BYTES_TOTAL: &str = "showcall_media_bytes_total";
/// Counter: RTP packets lost on their way to the router (estimated from RTCP receiver reports).
pub const MEDIA_PACKETS_LOST_TOTAL: &str = "showcall_media_packets_lost_total";

/// Help texts, by name: what `# HELP` says.
pub const HELP: &[(&str, &str)] = &[
    (
        CALL_SETUP_SECONDS,
        "Call created to connected (media flowing both ways), including the time to answer.",
    ),
    (
        CALL_RINGING_SECONDS,
        "Call created to the callee's client ringing.",
    ),
    (
        CALLS_ENDED_TOTAL,
        "Calls ended on this node, by end reason.",
    ),
    (ETCD_REQUEST_SECONDS, "etcd request latency, by operation."),
    (WEBHOOK_FAILURES_TOTAL, "Webhook deliveries that failed."),
    (
        SIGNALING_CONNECTIONS,
        "WebSocket signaling connections open.",
    ),
    (
        USERS_ONLINE,
        "Users with a session on this node (including those within their grace period).",
    ),
    (CALLS, "Calls whose actor runs on this node, by state."),
    (
        CHANNELS_OPEN,
        "Channels (live rooms and call channels) open on this node.",
    ),
    (
        PARTITIONS_OWNED,
        "Placement partitions this node owns and serves (cluster only).",
    ),
    (
        MEDIA_PACKETS_TOTAL,
        "UDP datagrams through the media router (RTP, RTCP, STUN, DTLS), by direction.",
    ),
    (
        MEDIA_BYTES_TOTAL,
        "Bytes of UDP datagrams through the media router, by direction.",
    ),
    (
        MEDIA_PACKETS_LOST_TOTAL,
        "RTP packets lost on their way to the router (estimated from its RTCP receiver reports).",
    ),
];

/// The help text of `name` (empty when unknown).
pub fn help(name: &str) -> &'static str {
    HELP.iter().find(|(n, _)| *n == name).map_or("", |(_, h)| h)
}

/// Buckets of [`CALL_SETUP_SECONDS`]: a person answers in seconds, a call times out after tens of seconds.
pub const SETUP_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];
/// Buckets of [`CALL_RINGING_SECONDS`]: signaling to the callee takes milliseconds; seconds mean trouble.
pub const RINGING_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of [`ETCD_REQUEST_SECONDS`]: a healthy etcd answers in a millisecond or two; a lease TTL is
/// seconds.
pub const ETCD_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `op` values of [`ETCD_REQUEST_SECONDS`].
pub const ETCD_OPS: &[&str] = &[
    "get",
    "put",
    "delete",
    "txn",
    "lease_grant",
    "lease_revoke",
    "lease_keep_alive",
];

/// The `reason` values of [`CALLS_ENDED_TOTAL`], one per [`EndCause`].
pub const END_REASONS: &[&str] = &[
    "cancelled",
    "rejected",
    "busy",
    "offline",
    "glare",
    "hangup",
    "timeout",
    "session_ended",
    "terminated",
    "node_lost",
];

/// The `reason` label of a call's end.
pub fn end_reason(cause: &EndCause) -> &'static str {
    match cause {
        EndCause::Cancelled => "cancelled",
        EndCause::Rejected { .. } => "rejected",
        EndCause::Busy => "busy",
        EndCause::Offline => "offline",
        EndCause::Glare => "glare",
        EndCause::Hangup { .. } => "hangup",
        EndCause::Timeout => "timeout",
        EndCause::SessionEnded { .. } => "session_ended",
        EndCause::Terminated { .. } => "terminated",
        EndCause::NodeLost => "node_lost",
    }
}

/// Describes the recorded metrics to the installed recorder and creates every fixed-label series at 0,
/// so dashboards and `rate()` see them before the first event. Call once the recorder is installed.
pub fn describe() {
    for name in [
        CALL_SETUP_SECONDS,
        CALL_RINGING_SECONDS,
        ETCD_REQUEST_SECONDS,
    ] {
        metrics::describe_histogram!(name, metrics::Unit::Seconds, help(name));
    }
    for name in [CALLS_ENDED_TOTAL, WEBHOOK_FAILURES_TOTAL] {
        metrics::describe_counter!(name, help(name));
    }
    metrics::describe_gauge!(SIGNALING_CONNECTIONS, help(SIGNALING_CONNECTIONS));
    for reason in END_REASONS {
        metrics::counter!(CALLS_ENDED_TOTAL, "reason" => *reason).increment(0);
    }
    metrics::counter!(WEBHOOK_FAILURES_TOTAL).increment(0);
    // Registered without a sample: rendered with zero counts. (etcd's are not: a single node has none.)
    let _ = metrics::histogram!(CALL_SETUP_SECONDS);
    let _ = metrics::histogram!(CALL_RINGING_SECONDS);
    metrics::gauge!(SIGNALING_CONNECTIONS).increment(0.0);
}

/// Counts one failed webhook delivery.
pub fn webhook_failed() {
    metrics::counter!(WEBHOOK_FAILURES_TOTAL).increment(1);
}

/// Records one etcd request's latency; `op` is one of [`ETCD_OPS`].
pub fn etcd_request(op: &'static str, took: Duration) {
    metrics::histogram!(ETCD_REQUEST_SECONDS, "op" => op).record(took.as_secs_f64());
}

/// Counts an open signaling connection for as long as it lives.
#[derive(Debug)]
#[must_use = "the connection is counted until this is dropped"]
pub struct SignalingConnection(());

impl SignalingConnection {
    pub fn open() -> Self {
        metrics::gauge!(SIGNALING_CONNECTIONS).increment(1.0);
        Self(())
    }
}

impl Drop for SignalingConnection {
    fn drop(&mut self) {
        metrics::gauge!(SIGNALING_CONNECTIONS).decrement(1.0);
    }
}

// ----- Calls -----

/// The state of a running call, as the `state` label of [`CALLS`] shows it (the caller's view).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallPhase {
    /// Created; the callee's client is not ringing yet.
    Calling,
    /// The callee's client rings.
    Ringing,
    /// Accepted; media is not flowing both ways yet.
    Connecting,
    Connected,
}

impl CallPhase {
    pub const ALL: [CallPhase; 4] = [
        CallPhase::Calling,
        CallPhase::Ringing,
        CallPhase::Connecting,
        CallPhase::Connected,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CallPhase::Calling => "calling",
            CallPhase::Ringing => "ringing",
            CallPhase::Connecting => "connecting",
            CallPhase::Connected => "connected",
        }
    }
}

/// What one business event means for the call metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The callee's client rang this long after the call was created.
    Ringing(Duration),
    /// The call connected this long after it was created.
    Setup(Duration),
    /// A call ended, for this reason.
    Ended(&'static str),
}

#[derive(Clone, Copy, Debug)]
struct Tracked {
    /// `None` once ended (until its actor is gone from the hub).
    phase: Option<CallPhase>,
    /// `None` for a call restored from its record: its setup happened on another node.
    created_at: Option<Instant>,
}

/// Every running call's phase and creation time, fed with business events (see the module docs).
#[derive(Debug, Default)]
pub struct CallProgress {
    calls: HashMap<CallId, Tracked>,
}

impl CallProgress {
    /// Takes one event (stamped `at`) into account; says what to record.
    pub fn observe(&mut self, kind: &EventKind, at: Instant) -> Option<Observation> {
        let since = |t: &Tracked| {
            t.created_at
                .map(|created| at.saturating_duration_since(created))
        };
        match kind {
            EventKind::CallCreated { call, .. } => {
                self.calls.insert(
                    call.clone(),
                    Tracked {
                        phase: Some(CallPhase::Calling),
                        created_at: Some(at),
                    },
                );
                None
            }
            EventKind::CallRinging { call } => {
                let t = self.calls.get_mut(call)?;
                t.phase = Some(CallPhase::Ringing);
                since(t).map(Observation::Ringing)
            }
            EventKind::CallAccepted { call } => {
                self.calls.get_mut(call)?.phase = Some(CallPhase::Connecting);
                None
            }
            EventKind::CallConnected { call } => {
                let t = self.calls.get_mut(call)?;
                t.phase = Some(CallPhase::Connected);
                since(t).map(Observation::Setup)
            }
            EventKind::CallEnded { record } => {
                if let Some(t) = self.calls.get_mut(&record.id) {
                    t.phase = None;
                }
                Some(Observation::Ended(end_reason(&record.cause)))
            }
            _ => None,
        }
    }

    /// A connected call restored from its record on this node (no latency samples: it was set up
    /// elsewhere). A call already known here keeps its state.
    pub fn restored(&mut self, call: &CallId) {
        self.calls.entry(call.clone()).or_insert(Tracked {
            phase: Some(CallPhase::Connected),
            created_at: None,
        });
    }

    /// Drops a call whose actor left the hub (ended, or stopped without ending, e.g. evicted).
    pub fn forget(&mut self, call: &CallId) {
        self.calls.remove(call);
    }

    /// The phase of a running call; `None` for a call not created (or restored) here, or ended.
    pub fn phase(&self, call: &CallId) -> Option<CallPhase> {
        self.calls.get(call).and_then(|t| t.phase)
    }
}

/// The process's calls. Call ids are unique across nodes, so in-process nodes can share it; each node
/// counts only the calls whose actor it runs ([`calls_by_phase`]).
static PROGRESS: LazyLock<Mutex<CallProgress>> = LazyLock::new(Mutex::default);

fn progress() -> std::sync::MutexGuard<'static, CallProgress> {
    // The map stays consistent even if a holder panicked: every update is a single insert or remove.
    PROGRESS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records what a business event means for the call metrics (called by [`Hub::emit`](crate::Hub::emit)).
pub(crate) fn on_event(kind: &EventKind) {
    let Some(observation) = progress().observe(kind, Instant::now()) else {
        return;
    };
    match observation {
        Observation::Ringing(took) => {
            metrics::histogram!(CALL_RINGING_SECONDS).record(took.as_secs_f64())
        }
        Observation::Setup(took) => {
            metrics::histogram!(CALL_SETUP_SECONDS).record(took.as_secs_f64())
        }
        Observation::Ended(reason) => {
            metrics::counter!(CALLS_ENDED_TOTAL, "reason" => reason).increment(1)
        }
    }
}

/// Forgets a call whose actor left the hub (called by the hub).
pub(crate) fn call_forgotten(call: &CallId) {
    progress().forget(call);
}

/// Counts a call taken over from its record as connected (called by the hub before it starts it).
pub(crate) fn call_restored(call: &CallId) {
    progress().restored(call);
}

/// How many of `hub`'s calls are in each phase (every phase listed, zeros included).
pub fn calls_by_phase(hub: &crate::Hub) -> Vec<(CallPhase, usize)> {
    let ids: Vec<CallId> = hub
        .active_keys()
        .into_iter()
        .filter_map(|key| match key {
            crate::ActorKey::Call(_, id) => Some(id),
            _ => None,
        })
        .collect();
    let progress = progress();
    CallPhase::ALL
        .iter()
        .map(|phase| {
            let n = ids
                .iter()
                .filter(|id| progress.phase(id) == Some(*phase))
                .count();
            (*phase, n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use showcall_machines::{CallRecord, CallType, ChannelName, UserId};

    use super::*;

    /// `ms` milliseconds after a fixed start.
    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    fn created(call: &str) -> EventKind {
        EventKind::CallCreated {
            call: CallId::from(call),
            caller: UserId::from("viewer"),
            callee: UserId::from("host"),
            call_type: CallType::Video,
            channel: ChannelName::from("call-1"),
        }
    }

    fn ended(call: &str, cause: EndCause) -> EventKind {
        EventKind::CallEnded {
            record: CallRecord {
                id: CallId::from(call),
                channel: ChannelName::from("call-1"),
                caller: UserId::from("viewer"),
                callee: UserId::from("host"),
                call_type: CallType::Video,
                created_at: 0,
                accepted_at: None,
                connected_at: None,
                ended_at: 0,
                connected_ms: 0,
                cause,
            },
        }
    }

    #[test]
    fn a_call_walks_through_the_phases_and_reports_its_latencies() {
        let mut p = CallProgress::default();
        let t0 = Instant::now();
        let id = CallId::from("c1");
        assert_eq!(p.phase(&id), None, "not created yet: not counted");
        assert_eq!(p.observe(&created("c1"), at(t0, 1_000)), None);
        assert_eq!(p.phase(&id), Some(CallPhase::Calling));
        let rang = p.observe(&EventKind::CallRinging { call: id.clone() }, at(t0, 1_007));
        assert_eq!(rang, Some(Observation::Ringing(Duration::from_millis(7))));
        assert_eq!(p.phase(&id), Some(CallPhase::Ringing));
        assert_eq!(
            p.observe(&EventKind::CallAccepted { call: id.clone() }, at(t0, 3_000)),
            None
        );
        assert_eq!(p.phase(&id), Some(CallPhase::Connecting));
        let connected = p.observe(
            &EventKind::CallConnected { call: id.clone() },
            at(t0, 3_500),
        );
        assert_eq!(
            connected,
            Some(Observation::Setup(Duration::from_millis(2_500)))
        );
        assert_eq!(p.phase(&id), Some(CallPhase::Connected));
        let hangup = EndCause::Hangup {
            by: UserId::from("viewer"),
            reason: String::new(),
        };
        assert_eq!(
            p.observe(&ended("c1", hangup), at(t0, 9_000)),
            Some(Observation::Ended("hangup"))
        );
        assert_eq!(
            p.phase(&id),
            None,
            "ended: no longer counted, even while its actor is still in the hub"
        );
        p.forget(&id);
        assert!(p.calls.is_empty(), "gone from the hub: no longer tracked");
    }

    #[test]
    fn a_call_taken_over_from_another_node_counts_as_connected_without_latencies() {
        let mut p = CallProgress::default();
        let t0 = Instant::now();
        let id = CallId::from("restored");
        p.restored(&id);
        assert_eq!(p.phase(&id), Some(CallPhase::Connected));
        assert_eq!(
            p.observe(&EventKind::CallConnected { call: id.clone() }, at(t0, 5)),
            None,
            "no creation time here: no setup sample"
        );
        assert_eq!(
            p.observe(&ended("restored", EndCause::NodeLost), at(t0, 9)),
            Some(Observation::Ended("node_lost")),
            "its end still counts"
        );
    }

    #[test]
    fn an_event_reported_out_of_order_gives_zero_not_a_panic() {
        let mut p = CallProgress::default();
        let t0 = Instant::now();
        p.observe(&created("c2"), at(t0, 2_000));
        let rang = p.observe(
            &EventKind::CallRinging {
                call: CallId::from("c2"),
            },
            at(t0, 1_990),
        );
        assert_eq!(rang, Some(Observation::Ringing(Duration::ZERO)));
    }

    #[test]
    fn forgetting_a_call_that_stopped_without_ending_drops_it() {
        let mut p = CallProgress::default();
        let t0 = Instant::now();
        p.observe(&created("c3"), at(t0, 0));
        p.forget(&CallId::from("c3"));
        assert!(p.calls.is_empty());
    }

    #[test]
    fn every_end_cause_has_a_listed_reason_and_every_metric_has_help() {
        let causes = [
            EndCause::Cancelled,
            EndCause::Rejected {
                reason: String::new(),
            },
            EndCause::Busy,
            EndCause::Offline,
            EndCause::Glare,
            EndCause::Hangup {
                by: UserId::from("u"),
                reason: String::new(),
            },
            EndCause::Timeout,
            EndCause::SessionEnded {
                user: UserId::from("u"),
                how: showcall_machines::call::SessionEnd::Gone,
            },
            EndCause::Terminated {
                reason: String::new(),
            },
            EndCause::NodeLost,
        ];
        for cause in &causes {
            assert!(END_REASONS.contains(&end_reason(cause)), "{cause:?}");
        }
        assert_eq!(causes.len(), END_REASONS.len());
        for (name, help) in HELP {
            assert!(name.starts_with("showcall_") && !help.is_empty(), "{name}");
        }
    }
}
