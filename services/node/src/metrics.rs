//! `GET /metrics` on `http_addr`: the node's metrics in the Prometheus text format.
//!
//! Names, help texts and buckets are in `showcall_protocol::metrics`. The page has two parts:
//! - what the crates **recorded** through the `metrics` facade (call latencies, calls ended, etcd
//!   latency, webhook failures, signaling connections), rendered by `metrics-exporter-prometheus` from
//!   the process's recorder;
//! - what this node **samples** at scrape time from its own parts (users online, calls by state, channels
//!   open, partitions owned, the media router's counters), written here.
//!
//! Decisions:
//! - The recorder is installed once per process ([`install`]); every later node in the same process
//!   (tests start several in one process) reuses it. So recorded series are per process: two in-process
//!   nodes show the same, summed, call-latency and calls-ended series, while sampled series stay exact
//!   per node. In production a process is one node and the difference vanishes. If some other recorder
//!   was installed first (an embedding application's), the recorded series go to it and this page shows
//!   only the sampled ones.
//! - The exporter serves no listener of its own: the page is a route on the node's HTTP server next to
//!   `/healthz`, so the port, shutdown and bind address are the node's.
//! - Histograms are real Prometheus histograms (buckets chosen per metric), not summaries: quantiles are
//!   computed in Prometheus over any set of nodes.
//! - `showcall_partitions_owned` exists only on a node that joined a cluster: a single node has no
//!   partitions to own.
//! - A background thread (not a task: in-process nodes run on runtimes that come and go) runs the
//!   exporter's upkeep every few seconds so histogram samples never pile up between scrapes.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use showcall_media::{ESTIMATE_BUCKETS_BPS, MediaRouter, RouterStats};
use showcall_protocol::metrics::{self as names, CallPhase};
use showcall_runtime::Hub;

/// The text exposition format's content type.
const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How often the exporter's upkeep runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder on first use and describes the metrics; later calls return the same
/// handle (see the module docs).
pub fn install() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let recorder = [
                (names::CALL_SETUP_SECONDS, names::SETUP_BUCKETS),
                (names::CALL_RINGING_SECONDS, names::RINGING_BUCKETS),
                (names::ETCD_REQUEST_SECONDS, names::ETCD_BUCKETS),
            ]
            .into_iter()
            .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
                builder
                    .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                    // Only an empty bucket list is refused, and these are constants with values.
                    .expect("bucket lists are not empty")
            })
            .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    names::describe();
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_EVERY);
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(e) = spawned {
                        tracing::warn!(error = %e, "metrics upkeep thread did not start; scrapes still drain histograms");
                    }
                }
                Err(_) => tracing::warn!(
                    "another metrics recorder is installed: /metrics shows only the sampled series"
                ),
            }
            handle
        })
        .clone()
}

/// What `/metrics` reads from: the recorder and this node's parts.
#[derive(Clone)]
pub struct NodeMetrics {
    recorded: PrometheusHandle,
    hub: Hub,
    router: MediaRouter,
    membership: Option<showcall_cluster::Membership>,
}

impl NodeMetrics {
    pub fn new(
        recorded: PrometheusHandle,
        hub: Hub,
        router: MediaRouter,
        membership: Option<showcall_cluster::Membership>,
    ) -> Self {
        Self {
            recorded,
            hub,
            router,
            membership,
        }
    }

    /// The `/metrics` route.
    pub fn router(self) -> Router {
        Router::new()
            .route("/metrics", get(serve))
            .with_state(Arc::new(self))
    }

    /// The whole page.
    pub async fn render(&self) -> String {
        let sample = Sample {
            users_online: self.hub.users_online(),
            users_resting: self.hub.users_resting(),
            calls: self.hub.calls_by_phase(),
            channels_open: self.hub.channels_open(),
            partitions_owned: self.membership.as_ref().map(|m| m.served().len()),
            // A stopped router (shutting down) has no counters to show.
            media: self.router.worker_stats().await.ok(),
            relay: self.router.relay_stats().await.ok(),
        };
        let mut page = self.recorded.render();
        sample.write(&mut page);
        page
    }
}

async fn serve(State(metrics): State<Arc<NodeMetrics>>) -> impl IntoResponse {
    ([(CONTENT_TYPE, CONTENT_TYPE_TEXT)], metrics.render().await)
}

/// Reads one counter of a media worker.
type WorkerCounter = fn(&RouterStats) -> u64;

/// The sampled values of one scrape.
#[derive(Debug, Default)]
struct Sample {
    users_online: usize,
    users_resting: usize,
    calls: Vec<(CallPhase, usize)>,
    channels_open: usize,
    partitions_owned: Option<usize>,
    /// Each media worker's counters, in order.
    media: Option<Vec<RouterStats>>,
    /// The node-to-node relay's counters.
    relay: Option<RouterStats>,
}

impl Sample {
    /// Appends the sampled metrics in the text format.
    fn write(&self, page: &mut String) {
        family(page, names::USERS_ONLINE, "gauge", |p| {
            series(p, names::USERS_ONLINE, None, self.users_online as u64);
        });
        family(page, names::USERS_RESTING, "gauge", |p| {
            series(p, names::USERS_RESTING, None, self.users_resting as u64);
        });
        family(page, names::CALLS, "gauge", |p| {
            for (phase, n) in &self.calls {
                series(p, names::CALLS, Some(("state", phase.label())), *n as u64);
            }
        });
        family(page, names::CHANNELS_OPEN, "gauge", |p| {
            series(p, names::CHANNELS_OPEN, None, self.channels_open as u64);
        });
        if let Some(owned) = self.partitions_owned {
            family(page, names::PARTITIONS_OWNED, "gauge", |p| {
                series(p, names::PARTITIONS_OWNED, None, owned as u64);
            });
        }
        if let Some(relay) = &self.relay {
            family(
                page,
                names::MEDIA_NODE_RELAY_PACKETS_TOTAL,
                "counter",
                |p| {
                    let name = names::MEDIA_NODE_RELAY_PACKETS_TOTAL;
                    for (direction, n) in [
                        ("sent", relay.relay_packets_sent),
                        ("resent", relay.relay_packets_retransmitted),
                        ("received", relay.relay_packets_received),
                        ("lost", relay.relay_packets_lost),
                        ("dropped", relay.relay_packets_dropped),
                    ] {
                        series(p, name, Some(("direction", direction)), n);
                    }
                },
            );
            family(
                page,
                names::MEDIA_NODE_RELAY_REJECTED_TOTAL,
                "counter",
                |p| {
                    let name = names::MEDIA_NODE_RELAY_REJECTED_TOTAL;
                    series(p, name, None, relay.relay_datagrams_rejected);
                },
            );
            family(page, names::MEDIA_NODE_RELAY_EDGES, "gauge", |p| {
                let name = names::MEDIA_NODE_RELAY_EDGES;
                series(p, name, None, relay.relay_edges as u64);
            });
        }
        if let Some(workers) = &self.media {
            let mut media = RouterStats::default();
            for w in workers {
                media += *w;
            }
            family(page, names::MEDIA_PACKETS_TOTAL, "counter", |p| {
                let name = names::MEDIA_PACKETS_TOTAL;
                series(p, name, Some(("direction", "in")), media.datagrams_in);
                series(p, name, Some(("direction", "out")), media.datagrams_out);
            });
            family(page, names::MEDIA_BYTES_TOTAL, "counter", |p| {
                let name = names::MEDIA_BYTES_TOTAL;
                series(p, name, Some(("direction", "in")), media.bytes_in);
                series(p, name, Some(("direction", "out")), media.bytes_out);
            });
            family(page, names::MEDIA_PACKETS_LOST_TOTAL, "counter", |p| {
                let name = names::MEDIA_PACKETS_LOST_TOTAL;
                series(p, name, None, media.packets_lost);
            });
            let counters = [
                (names::MEDIA_RTP_FORWARDED_TOTAL, media.packets_forwarded),
                (names::MEDIA_NACKS_TOTAL, media.nacks_received),
                (
                    names::MEDIA_KEYFRAMES_FROM_CACHE_TOTAL,
                    media.keyframes_from_cache,
                ),
                (names::MEDIA_SEND_SYSCALLS_TOTAL, media.send_syscalls),
                (names::MEDIA_DROPPED_TOTAL, media.datagrams_dropped),
                (names::MEDIA_RELAY_DROPPED_TOTAL, media.relay_dropped),
            ];
            for (name, value) in counters {
                family(page, name, "counter", |p| series(p, name, None, value));
            }
            family(page, names::MEDIA_LAYER_RECEIVERS, "gauge", |p| {
                let name = names::MEDIA_LAYER_RECEIVERS;
                for (layer, n) in ["high", "medium", "low"].iter().zip(media.layer_receivers) {
                    series(p, name, Some(("layer", layer)), n as u64);
                }
            });
            family(page, names::MEDIA_LAYER_SWITCHES_TOTAL, "counter", |p| {
                let name = names::MEDIA_LAYER_SWITCHES_TOTAL;
                series(p, name, None, media.layer_switches);
            });
            family(page, names::MEDIA_VIDEO_PAUSES_TOTAL, "counter", |p| {
                let name = names::MEDIA_VIDEO_PAUSES_TOTAL;
                series(p, name, None, media.video_pauses);
            });
            family(
                page,
                names::MEDIA_BANDWIDTH_ESTIMATE_BPS,
                "histogram",
                |p| {
                    estimate_histogram(p, &media);
                },
            );
            family(page, names::MEDIA_SESSIONS, "gauge", |p| {
                let name = names::MEDIA_SESSIONS;
                for (path, n) in ["udp", "tcp", "relay"].iter().zip(media.sessions_by_path) {
                    series(p, name, Some(("path", path)), n as u64);
                }
            });
            family(page, names::MEDIA_TCP_CONNECTIONS, "gauge", |p| {
                let name = names::MEDIA_TCP_CONNECTIONS;
                series(p, name, None, media.tcp_connections as u64);
            });
            family(page, names::MEDIA_TCP_FRAMES_TOTAL, "counter", |p| {
                let name = names::MEDIA_TCP_FRAMES_TOTAL;
                series(p, name, Some(("direction", "in")), media.tcp_frames_in);
                series(p, name, Some(("direction", "out")), media.tcp_frames_out);
            });
            let tcp_counters = [
                (names::MEDIA_TCP_DROPPED_TOTAL, media.tcp_dropped),
                (names::MEDIA_TCP_REFUSED_TOTAL, media.tcp_refused),
                (names::MEDIA_TCP_CLOSED_IDLE_TOTAL, media.tcp_closed_idle),
                (names::MEDIA_ICE_RESTARTS_TOTAL, media.ice_restarts),
            ];
            for (name, value) in tcp_counters {
                family(page, name, "counter", |p| series(p, name, None, value));
            }
            let per_worker: [(&str, WorkerCounter); 3] = [
                (names::MEDIA_WORKER_PACKETS_OUT_TOTAL, |w| w.datagrams_out),
                (names::MEDIA_WORKER_SEND_SYSCALLS_TOTAL, |w| w.send_syscalls),
                (names::MEDIA_WORKER_CPU_MILLISECONDS_TOTAL, |w| w.cpu_millis),
            ];
            for (name, value) in per_worker {
                family(page, name, "counter", |p| {
                    for (i, w) in workers.iter().enumerate() {
                        series(p, name, Some(("worker", &i.to_string())), value(w));
                    }
                });
            }
        }
    }
}

/// The receivers' bandwidth estimates as a Prometheus histogram: cumulative `le` buckets, `+Inf`,
/// sum and count.
fn estimate_histogram(page: &mut String, media: &RouterStats) {
    let name = names::MEDIA_BANDWIDTH_ESTIMATE_BPS;
    let mut cumulative = 0;
    for (bound, n) in ESTIMATE_BUCKETS_BPS.iter().zip(media.estimate_buckets) {
        cumulative += n;
        let _ = writeln!(page, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(
        page,
        "{name}_bucket{{le=\"+Inf\"}} {}",
        media.estimate_count
    );
    let _ = writeln!(page, "{name}_sum {}", media.estimate_sum_bps);
    let _ = writeln!(page, "{name}_count {}", media.estimate_count);
}

/// One metric family: `# HELP`, `# TYPE`, then its series.
fn family(page: &mut String, name: &str, kind: &str, series: impl FnOnce(&mut String)) {
    if !page.is_empty() && !page.ends_with('\n') {
        page.push('\n');
    }
    // Writing to a String cannot fail.
    let _ = writeln!(page, "# HELP {name} {}", names::help(name));
    let _ = writeln!(page, "# TYPE {name} {kind}");
    series(page);
}

/// One series line. Label values here are fixed words, never user input: nothing to escape.
fn series(page: &mut String, name: &str, label: Option<(&str, &str)>, value: u64) {
    let _ = match label {
        Some((key, v)) => writeln!(page, "{name}{{{key}=\"{v}\"}} {value}"),
        None => writeln!(page, "{name} {value}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_series_are_written_in_the_text_format() {
        let sample = Sample {
            users_online: 2,
            users_resting: 1,
            calls: CallPhase::ALL
                .iter()
                .map(|p| (*p, usize::from(*p == CallPhase::Connected)))
                .collect(),
            channels_open: 3,
            partitions_owned: Some(128),
            media: Some(vec![
                RouterStats {
                    datagrams_in: 10,
                    datagrams_out: 20,
                    bytes_in: 1000,
                    bytes_out: 2000,
                    packets_lost: 1,
                    send_syscalls: 4,
                    tcp_connections: 2,
                    tcp_frames_in: 5,
                    ..RouterStats::default()
                },
                RouterStats {
                    cpu_millis: 30,
                    layer_receivers: [3, 0, 1],
                    layer_switches: 2,
                    sessions_by_path: [4, 1, 2],
                    // Estimates of 150 and 250 kbit/s and one past the last bucket.
                    estimate_buckets: {
                        let mut b = [0; ESTIMATE_BUCKETS_BPS.len() + 1];
                        b[2] = 1;
                        b[3] = 1;
                        b[ESTIMATE_BUCKETS_BPS.len()] = 1;
                        b
                    },
                    estimate_sum_bps: 20_400_000,
                    estimate_count: 3,
                    video_pauses: 1,
                    ..RouterStats::default()
                },
            ]),
            relay: Some(RouterStats {
                relay_packets_sent: 7,
                relay_packets_received: 6,
                relay_datagrams_rejected: 1,
                relay_edges: 2,
                ..RouterStats::default()
            }),
        };
        let mut page = String::from("# recorded part without a final newline");
        sample.write(&mut page);
        let lines: Vec<&str> = page.lines().collect();
        for expected in [
            "# TYPE showcall_users_online gauge",
            "showcall_users_online 2",
            "showcall_users_resting 1",
            "showcall_calls{state=\"calling\"} 0",
            "showcall_calls{state=\"connected\"} 1",
            "showcall_channels_open 3",
            "showcall_partitions_owned 128",
            "# TYPE showcall_media_packets_total counter",
            "showcall_media_packets_total{direction=\"in\"} 10",
            "showcall_media_bytes_total{direction=\"out\"} 2000",
            "showcall_media_packets_lost_total 1",
            "showcall_media_worker_send_syscalls_total{worker=\"0\"} 4",
            "showcall_media_worker_cpu_milliseconds_total{worker=\"1\"} 30",
            "# TYPE showcall_media_tcp_connections gauge",
            "showcall_media_tcp_connections 2",
            "showcall_media_tcp_frames_total{direction=\"in\"} 5",
            "showcall_media_tcp_refused_total 0",
            "# TYPE showcall_media_layer_receivers gauge",
            "showcall_media_layer_receivers{layer=\"high\"} 3",
            "showcall_media_layer_receivers{layer=\"low\"} 1",
            "showcall_media_layer_switches_total 2",
            "# TYPE showcall_media_sessions gauge",
            "showcall_media_sessions{path=\"udp\"} 4",
            "showcall_media_sessions{path=\"relay\"} 2",
            "showcall_media_video_pauses_total 1",
            "# TYPE showcall_media_bandwidth_estimate_bps histogram",
            "showcall_media_bandwidth_estimate_bps_bucket{le=\"100000\"} 0",
            "showcall_media_bandwidth_estimate_bps_bucket{le=\"200000\"} 1",
            "showcall_media_bandwidth_estimate_bps_bucket{le=\"300000\"} 2",
            "showcall_media_bandwidth_estimate_bps_bucket{le=\"10000000\"} 2",
            "showcall_media_bandwidth_estimate_bps_bucket{le=\"+Inf\"} 3",
            "showcall_media_bandwidth_estimate_bps_sum 20400000",
            "showcall_media_bandwidth_estimate_bps_count 3",
            "# TYPE showcall_media_node_relay_packets_total counter",
            "showcall_media_node_relay_packets_total{direction=\"sent\"} 7",
            "showcall_media_node_relay_packets_total{direction=\"received\"} 6",
            "showcall_media_node_relay_rejected_total 1",
            "showcall_media_node_relay_edges 2",
        ] {
            assert!(
                lines.contains(&expected),
                "{expected:?} missing in:\n{page}"
            );
        }
        assert!(lines[0].starts_with("# recorded"), "kept on its own line");
    }

    #[test]
    fn a_single_node_has_no_partition_series() {
        let mut page = String::new();
        Sample::default().write(&mut page);
        assert!(!page.contains("showcall_partitions_owned"));
        assert!(page.contains("showcall_users_online 0"));
    }
}
