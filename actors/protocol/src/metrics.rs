//! The node's metrics: every name, description and bucket layout in one place.
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
//! `calls` derives the call metrics from the business events.
//!
//! Labels never carry user, call or channel ids: only a handful of fixed values each.

mod calls;

pub use calls::{
    CallPhase, CallProgress, Observation, call_forgotten, call_restored, on_event, progress_phase,
};

use std::time::Duration;

use showcall_machines::call::EndCause;

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
/// Gauge: frames waiting in signaling connections' outboxes (the connections' inboxes), all connections
/// together: pushed by the actors, not yet taken by the connection's task. A client that stops reading
/// holds up to `max_outbox_frames` here until it is disconnected.
pub const SIGNALING_OUTBOX_FRAMES: &str = "showcall_signaling_outbox_frames";
/// Counter: signaling connections closed because their outbox overflowed (a client that stopped reading;
/// close code 4008).
pub const SIGNALING_SLOW_CONSUMER_DISCONNECTS_TOTAL: &str =
    "showcall_signaling_slow_consumer_disconnects_total";
/// Counter: logins answered `login_elsewhere` — sent to the node serving their session
/// (`Login.follow_home`).
pub const SIGNALING_LOGINS_SENT_ELSEWHERE_TOTAL: &str =
    "showcall_signaling_logins_sent_elsewhere_total";
/// Counter, label `reason` ([`CONNECTION_REFUSALS`]): signaling connections refused before the WebSocket
/// upgrade because the node, or the client's address, was at its connection cap.
pub const SIGNALING_CONNECTIONS_REFUSED_TOTAL: &str =
    "showcall_signaling_connections_refused_total";
/// Counter: partition handoffs this node started (leaving, or a joining node's share), by `outcome`
/// (see [`HANDOFF_OUTCOMES`]); through [`handoff`].
pub const HANDOFFS_TOTAL: &str = "showcall_handoffs_total";
/// Counter: actors (user sessions and calls, label `kind`) this node handed to another node.
pub const HANDED_OVER_TOTAL: &str = "showcall_handed_over_total";

/// `reason` of a refused connection: the node holds `max_connections` / the client's address holds
/// `max_connections_per_ip`.
pub const CONNECTION_REFUSALS: &[&str] = &["node_full", "address_full"];

/// `outcome` of a handoff: its actors run on the target now / not now (a call still connecting, an
/// actor that did not answer) / the target did not take them.
pub const HANDOFF_OUTCOMES: &[&str] = &["moved", "not_now", "failed"];

// ----- Sampled (rendered by the node at scrape time) -----

/// Gauge: users with a session on this node (online, or offline within their grace period).
pub const USERS_ONLINE: &str = "showcall_users_online";
/// Gauge: of those, users whose actor rests (idle: only their state is kept).
pub const USERS_RESTING: &str = "showcall_users_resting";
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
/// Counter: RTP packets the media router wrote to receivers (a publisher's packet once per receiver).
pub const MEDIA_RTP_FORWARDED_TOTAL: &str = "showcall_media_rtp_forwarded_total";
/// Counter: NACKs receivers sent the media router (it answers each from the stream's send history).
pub const MEDIA_NACKS_TOTAL: &str = "showcall_media_nacks_total";
/// Counter: receivers started at a publisher's kept keyframe instead of waiting for a new one.
pub const MEDIA_KEYFRAMES_FROM_CACHE_TOTAL: &str = "showcall_media_keyframes_from_cache_total";
/// Gauge, label `layer` (`high`, `medium`, `low`): receivers forwarded each simulcast layer now (one per
/// publisher a receiver gets video from; a publisher without simulcast sends `high`).
pub const MEDIA_LAYER_RECEIVERS: &str = "showcall_media_layer_receivers";
/// Counter: receivers switched from one simulcast layer to another.
pub const MEDIA_LAYER_SWITCHES_TOTAL: &str = "showcall_media_layer_switches_total";
/// Counter: send system calls of the media router (`packets_total{direction="out"}` ÷ this = batching).
pub const MEDIA_SEND_SYSCALLS_TOTAL: &str = "showcall_media_send_syscalls_total";
/// Counter: datagrams the kernel refused (full socket buffer) and the media router dropped.
pub const MEDIA_DROPPED_TOTAL: &str = "showcall_media_dropped_total";
/// Counter: packets of a channel spread over media workers that a worker could not take (queue full).
pub const MEDIA_RELAY_DROPPED_TOTAL: &str = "showcall_media_relay_dropped_total";
/// Counter, label `direction`: the node-to-node relay of live rooms (origin → edges). `sent`: packets an
/// origin sent to its edges (one per packet per edge, however many viewers); `resent`: packets resent on
/// an edge's NACK; `received`: packets an edge received; `lost`: packets an edge gave up on; `dropped`:
/// packets not delivered (a full socket or queue).
pub const MEDIA_NODE_RELAY_PACKETS_TOTAL: &str = "showcall_media_node_relay_packets_total";
/// Counter: node-to-node relay datagrams refused (too short, another version, not authentic under the
/// relay's key, of no known relay, from the wrong address, or replayed).
pub const MEDIA_NODE_RELAY_REJECTED_TOTAL: &str = "showcall_media_node_relay_rejected_total";
/// Gauge: edges this node sends live rooms to, summed over its rooms.
pub const MEDIA_NODE_RELAY_EDGES: &str = "showcall_media_node_relay_edges";
/// Counter, label `event` (`stalled`, `resumed`): an edge's relay of a room stopped hearing its origin
/// (the origin node died or the path between them broke), or heard it again
/// (`showcall_protocol::media_edge`).
pub const MEDIA_EDGE_RELAY_TOTAL: &str = "showcall_media_edge_relay_total";
/// Counter, label `event` ([`EDGE_ORIGIN_EVENTS`]): an edge room's origin died and the edge kept its
/// viewers (`lost`); the room reopened and the edge found its new origin, or the room reopened on
/// the edge itself (`found`); it did not reopen within the grace period and the edge closed its
/// viewers' sessions (`given_up`). Recorded through [`edge_origin`].
pub const MEDIA_EDGE_ORIGIN_TOTAL: &str = "showcall_media_edge_origin_total";
/// The values of [`MEDIA_EDGE_ORIGIN_TOTAL`]'s `event` label.
pub const EDGE_ORIGIN_EVENTS: &[&str] = &["lost", "found", "given_up"];
/// Gauge, label `path` (`udp`, `tcp`, `relay`): media sessions now by the path their latest datagram came
/// by — straight over UDP, over ICE-TCP, or over UDP through a TURN relay.
pub const MEDIA_SESSIONS: &str = "showcall_media_sessions";
/// Gauge: ICE-TCP connections open to the media router (clients reaching it over TCP, RFC 6544).
pub const MEDIA_TCP_CONNECTIONS: &str = "showcall_media_tcp_connections";
/// Counter, label `direction` (`in`, `out`): datagrams carried over ICE-TCP connections.
pub const MEDIA_TCP_FRAMES_TOTAL: &str = "showcall_media_tcp_frames_total";
/// Counter: datagrams for an ICE-TCP connection dropped (its queue full, or it had closed).
pub const MEDIA_TCP_DROPPED_TOTAL: &str = "showcall_media_tcp_dropped_total";
/// Counter: ICE-TCP connections refused at once (the worker held its most).
pub const MEDIA_TCP_REFUSED_TOTAL: &str = "showcall_media_tcp_refused_total";
/// Counter: ICE-TCP connections closed because no session took anything from them for a while.
pub const MEDIA_TCP_CLOSED_IDLE_TOTAL: &str = "showcall_media_tcp_closed_idle_total";
/// Counter: ICE restarts the media router accepted (a member's network changed; its session moved to
/// a new path without leaving its channel).
pub const MEDIA_ICE_RESTARTS_TOTAL: &str = "showcall_media_ice_restarts_total";
/// Histogram: receivers' send-side bandwidth estimates (bits/s of RTP payload; GoogCC over each
/// receiver's TWCC feedback), one sample per estimate the media router made. Sampled from the router's
/// counters at scrape time, with the router's bucket bounds (`showcall_media::ESTIMATE_BUCKETS_BPS`).
pub const MEDIA_BANDWIDTH_ESTIMATE_BPS: &str = "showcall_media_bandwidth_estimate_bps";
/// Counter: times a receiver's video was paused because its estimated bandwidth carried no layer (its
/// audio went on).
pub const MEDIA_VIDEO_PAUSES_TOTAL: &str = "showcall_media_video_pauses_total";
/// Counter, label `worker` (its index): UDP datagrams a media worker sent.
pub const MEDIA_WORKER_PACKETS_OUT_TOTAL: &str = "showcall_media_worker_packets_out_total";
/// Counter, label `worker`: send system calls of a media worker (packets out ÷ this = its batching).
pub const MEDIA_WORKER_SEND_SYSCALLS_TOTAL: &str = "showcall_media_worker_send_syscalls_total";
/// Counter, label `worker`: CPU time of a media worker's thread, in milliseconds (10 ms resolution).
pub const MEDIA_WORKER_CPU_MILLISECONDS_TOTAL: &str =
    "showcall_media_worker_cpu_milliseconds_total";

/// Help texts, by name: what `# HELP` says.
pub const HELP: &[(&str, &str)] = &[
    (
        CALL_SETUP_SECONDS,
        "Call created to connected (media flowing both ways), including the time to answer.",
    ),
    (
        HANDOFFS_TOTAL,
        "Partition handoffs started by this node (leaving, or giving a joining node its share), by outcome.",
    ),
    (
        HANDED_OVER_TOTAL,
        "User sessions and calls this node handed to another node with their state, by kind.",
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
        SIGNALING_OUTBOX_FRAMES,
        "Frames waiting in signaling connections' outboxes for their clients to read.",
    ),
    (
        SIGNALING_SLOW_CONSUMER_DISCONNECTS_TOTAL,
        "Signaling connections closed because their client stopped reading (outbox full).",
    ),
    (
        SIGNALING_LOGINS_SENT_ELSEWHERE_TOTAL,
        "Logins answered login_elsewhere: sent to the node serving their session.",
    ),
    (
        SIGNALING_CONNECTIONS_REFUSED_TOTAL,
        "Signaling connections refused at the node's or the client address's cap, by reason.",
    ),
    (
        USERS_ONLINE,
        "Users with a session on this node (including those within their grace period).",
    ),
    (
        USERS_RESTING,
        "Of the users online, those whose actor rests (idle: only their state is kept).",
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
    (
        MEDIA_RTP_FORWARDED_TOTAL,
        "RTP packets the media router wrote to receivers (a publisher's packet once per receiver).",
    ),
    (
        MEDIA_NACKS_TOTAL,
        "NACKs receivers sent the media router (answered from each stream's send history).",
    ),
    (
        MEDIA_KEYFRAMES_FROM_CACHE_TOTAL,
        "Receivers started at a publisher's kept keyframe instead of waiting for a new one.",
    ),
    (
        MEDIA_SEND_SYSCALLS_TOTAL,
        "Send system calls of the media router (datagrams out per call = the batching factor).",
    ),
    (
        MEDIA_DROPPED_TOTAL,
        "Datagrams the kernel refused (full socket buffer) and the media router dropped.",
    ),
    (
        MEDIA_RELAY_DROPPED_TOTAL,
        "Packets of a channel spread over media workers that a worker could not take (its queue full).",
    ),
    (
        MEDIA_EDGE_ORIGIN_TOTAL,
        "Edge rooms whose origin died (viewers kept), that found the room's new origin, or gave it up after the grace period.",
    ),
    (
        MEDIA_NODE_RELAY_PACKETS_TOTAL,
        "Node-to-node relay of live rooms: packets sent to edges, resent on NACK, received, given up, dropped.",
    ),
    (
        MEDIA_NODE_RELAY_REJECTED_TOTAL,
        "Node-to-node relay datagrams refused (malformed, not authentic, unknown relay, replayed).",
    ),
    (
        MEDIA_NODE_RELAY_EDGES,
        "Edges this node sends live rooms to, summed over its rooms.",
    ),
    (
        MEDIA_EDGE_RELAY_TOTAL,
        "Rooms whose relay from their origin stalled (origin gone or unreachable) or resumed, on this edge.",
    ),
    (
        MEDIA_LAYER_RECEIVERS,
        "Receivers forwarded each simulcast layer now (one per publisher they get video from).",
    ),
    (
        MEDIA_LAYER_SWITCHES_TOTAL,
        "Receivers switched from one simulcast layer to another.",
    ),
    (
        MEDIA_TCP_CONNECTIONS,
        "ICE-TCP connections open to the media router (clients reaching it over TCP).",
    ),
    (
        MEDIA_TCP_FRAMES_TOTAL,
        "Datagrams carried over ICE-TCP connections, by direction.",
    ),
    (
        MEDIA_TCP_DROPPED_TOTAL,
        "Datagrams for an ICE-TCP connection dropped (its queue full, or it had closed).",
    ),
    (
        MEDIA_TCP_REFUSED_TOTAL,
        "ICE-TCP connections refused at once (the worker held its most).",
    ),
    (
        MEDIA_TCP_CLOSED_IDLE_TOTAL,
        "ICE-TCP connections closed because no session took anything from them for a while.",
    ),
    (
        MEDIA_ICE_RESTARTS_TOTAL,
        "ICE restarts the media router accepted (a member's session moved to a new network path).",
    ),
    (
        MEDIA_BANDWIDTH_ESTIMATE_BPS,
        "Receivers' send-side bandwidth estimates in bits/s (one sample per estimate).",
    ),
    (
        MEDIA_VIDEO_PAUSES_TOTAL,
        "Receivers whose video was paused because their estimated bandwidth carried no layer.",
    ),
    (
        MEDIA_WORKER_PACKETS_OUT_TOTAL,
        "UDP datagrams a media worker sent, by worker.",
    ),
    (
        MEDIA_WORKER_SEND_SYSCALLS_TOTAL,
        "Send system calls of a media worker (packets out per call = its batching factor), by worker.",
    ),
    (
        MEDIA_WORKER_CPU_MILLISECONDS_TOTAL,
        "CPU time of a media worker's thread in milliseconds (10 ms resolution), by worker.",
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
    "refused",
];

/// The `reason` label of a call's end.
pub fn end_reason(cause: &EndCause) -> &'static str {
    cause.name()
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
    for name in [
        CALLS_ENDED_TOTAL,
        WEBHOOK_FAILURES_TOTAL,
        HANDOFFS_TOTAL,
        HANDED_OVER_TOTAL,
        SIGNALING_SLOW_CONSUMER_DISCONNECTS_TOTAL,
        SIGNALING_LOGINS_SENT_ELSEWHERE_TOTAL,
        SIGNALING_CONNECTIONS_REFUSED_TOTAL,
        MEDIA_EDGE_RELAY_TOTAL,
        MEDIA_EDGE_ORIGIN_TOTAL,
    ] {
        metrics::describe_counter!(name, help(name));
    }
    for event in ["stalled", "resumed"] {
        metrics::counter!(MEDIA_EDGE_RELAY_TOTAL, "event" => event).increment(0);
    }
    for event in EDGE_ORIGIN_EVENTS {
        metrics::counter!(MEDIA_EDGE_ORIGIN_TOTAL, "event" => *event).increment(0);
    }
    metrics::counter!(SIGNALING_SLOW_CONSUMER_DISCONNECTS_TOTAL).increment(0);
    metrics::counter!(SIGNALING_LOGINS_SENT_ELSEWHERE_TOTAL).increment(0);
    for reason in CONNECTION_REFUSALS {
        metrics::counter!(SIGNALING_CONNECTIONS_REFUSED_TOTAL, "reason" => *reason).increment(0);
    }
    for outcome in HANDOFF_OUTCOMES {
        metrics::counter!(HANDOFFS_TOTAL, "outcome" => *outcome).increment(0);
    }
    for kind in ["user", "call"] {
        metrics::counter!(HANDED_OVER_TOTAL, "kind" => kind).increment(0);
    }
    metrics::describe_gauge!(SIGNALING_CONNECTIONS, help(SIGNALING_CONNECTIONS));
    metrics::describe_gauge!(SIGNALING_OUTBOX_FRAMES, help(SIGNALING_OUTBOX_FRAMES));
    for reason in END_REASONS {
        metrics::counter!(CALLS_ENDED_TOTAL, "reason" => *reason).increment(0);
    }
    metrics::counter!(WEBHOOK_FAILURES_TOTAL).increment(0);
    // Registered without a sample: rendered with zero counts. (etcd's are not: a single node has none.)
    let _ = metrics::histogram!(CALL_SETUP_SECONDS);
    let _ = metrics::histogram!(CALL_RINGING_SECONDS);
    metrics::gauge!(SIGNALING_CONNECTIONS).increment(0.0);
    metrics::gauge!(SIGNALING_OUTBOX_FRAMES).increment(0.0);
}

/// Moves the count of frames waiting in outboxes by `delta` (+1 pushed, −1 taken or dropped).
pub(crate) fn outbox_frames(delta: f64) {
    metrics::gauge!(SIGNALING_OUTBOX_FRAMES).increment(delta);
}

/// Counts a connection closed as a slow consumer.
pub fn slow_consumer_disconnect() {
    metrics::counter!(SIGNALING_SLOW_CONSUMER_DISCONNECTS_TOTAL).increment(1);
}

/// Counts a login sent to the node serving its session.
pub fn login_sent_elsewhere() {
    metrics::counter!(SIGNALING_LOGINS_SENT_ELSEWHERE_TOTAL).increment(1);
}

/// Counts a refused connection; `reason` is one of [`CONNECTION_REFUSALS`].
pub fn connection_refused(reason: &'static str) {
    metrics::counter!(SIGNALING_CONNECTIONS_REFUSED_TOTAL, "reason" => reason).increment(1);
}

/// An edge room's origin event (one of [`EDGE_ORIGIN_EVENTS`]).
pub fn edge_origin(event: &'static str) {
    metrics::counter!(MEDIA_EDGE_ORIGIN_TOTAL, "event" => event).increment(1);
}

/// Counts one partition handoff and, when it moved, the sessions and calls it carried.
pub fn handoff(outcome: &'static str, users: usize, calls: usize) {
    metrics::counter!(HANDOFFS_TOTAL, "outcome" => outcome).increment(1);
    metrics::counter!(HANDED_OVER_TOTAL, "kind" => "user").increment(users as u64);
    metrics::counter!(HANDED_OVER_TOTAL, "kind" => "call").increment(calls as u64);
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

#[cfg(test)]
mod tests {
    use showcall_machines::UserId;

    use super::*;

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
            EndCause::Refused {
                reason: String::new(),
            },
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
