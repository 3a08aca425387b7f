//! The node's `tracing` subscriber: logs to stderr, and — when `otlp_endpoint` is set — a call's trace
//! exported over OTLP/gRPC (what each call's trace holds: `showcall_protocol::trace`).
//!
//! Decisions (the issue is silent on them):
//! - Two layers with their own filters. Logs keep `RUST_LOG` (default `info`). The OTLP layer takes
//!   every span of the trace target (`showcall::trace`, DEBUG spans: at the default log level they are
//!   built only when exported) and, as span events, warnings and errors raised inside them.
//! - With no endpoint there is no OTLP layer and no exporter at all: the trace spans are disabled
//!   callsites.
//! - Resource: `service.name = showcall`, and the node's id as `node.id` and `service.instance.id`, so
//!   a trace viewer shows which node ran each span.
//! - Spans leave in batches from the SDK's own thread; the standard `OTEL_BSP_SCHEDULE_DELAY`,
//!   `OTEL_BSP_MAX_QUEUE_SIZE`, ... tune it. A full queue drops spans, never blocks a call.
//! - [`Telemetry::shutdown`] flushes what is still queued; call it after the node stopped, with the
//!   tokio runtime still running (the gRPC exporter's connection lives on it).

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use showcall_protocol::trace::TARGET;
use tracing::Level;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// The installed subscriber's exporter, if any. See the module docs.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global subscriber: logs only (no `otlp_endpoint`), or logs and OTLP traces. With an
    /// endpoint, call it inside the tokio runtime (the exporter's gRPC channel is spawned on it); the
    /// collector is connected lazily, so a collector that is down does not stop the node.
    pub fn init(otlp_endpoint: Option<&str>, node_id: &str) -> anyhow::Result<Self> {
        // Colours only on a terminal: a log file or journald would keep the escape codes as text.
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(log_filter(std::env::var("RUST_LOG").ok().as_deref()));
        let provider = otlp_endpoint
            .map(|endpoint| provider(endpoint, node_id))
            .transpose()?;
        let traces = provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("showcall"))
                .with_filter(filter_fn(|meta| {
                    meta.target() == TARGET || (meta.is_event() && *meta.level() <= Level::WARN)
                }))
        });
        tracing_subscriber::registry()
            .with(logs)
            .with(traces)
            .try_init()
            .context("installing the tracing subscriber")?;
        if let Some(endpoint) = otlp_endpoint {
            tracing::info!(%endpoint, "exporting traces over OTLP");
        }
        Ok(Self { provider })
    }

    /// Sends the spans still queued and stops the exporter. Blocks until the collector answered (or the
    /// exporter's timeout passed): call it off the runtime's worker threads.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("traces not flushed at shutdown: {e}");
        }
    }
}

/// What is logged: `RUST_LOG` (default `info`), with the actor framework's own spans at `warn` unless
/// `RUST_LOG` names `ractor`. ractor opens an `info` span per actor (its internal id, `Actor{id="0.42"}`),
/// one per call: recording it cost ≈ 10 % of a node's CPU per call setup (`ringing --rate 1000`, node
/// alone: 3.41 against 3.04 CPU seconds per 10,000 setups, three runs each on a busy box) and told an
/// operator nothing the log lines' own fields do not.
fn log_filter(rust_log: Option<&str>) -> EnvFilter {
    let spec = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let spec = if spec.contains("ractor") {
        spec.to_owned()
    } else {
        format!("{spec},ractor=warn")
    };
    EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("RUST_LOG {spec:?} is not a valid filter ({e}): logging at info");
        EnvFilter::new("info,ractor=warn")
    })
}

fn provider(endpoint: &str, node_id: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("OTLP exporter for {endpoint}"))?;
    let resource = Resource::builder()
        .with_service_name("showcall")
        .with_attributes([
            KeyValue::new("node.id", node_id.to_owned()),
            KeyValue::new("service.instance.id", node_id.to_owned()),
        ])
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn the_actor_frameworks_spans_are_off_unless_rust_log_names_them() {
        for (rust_log, want) in [
            (None, "ractor=warn"),
            (Some(""), "ractor=warn"),
            (Some("debug"), "ractor=warn"),
            (Some("info,ractor=debug"), "ractor=debug"),
        ] {
            let filter = log_filter(rust_log).to_string();
            assert!(filter.contains(want), "{rust_log:?} → {filter}");
        }
        assert!(
            !log_filter(Some("info,ractor=debug"))
                .to_string()
                .contains("ractor=warn")
        );
    }
}
