//! How the benchmarks measure and report: progress bars while they run, latency histograms, and the
//! percentiles their result JSON holds.

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar of `len` steps labelled `what` (on stderr: stdout is the result JSON).
pub(super) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A latency histogram, in microseconds.
pub(super) fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds")
}

/// A histogram's percentiles and maximum in milliseconds, and its sample count, as the result JSON
/// has them.
pub(super) fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({ "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "max_ms": h.max() as f64 / 1000.0, "samples": h.len() })
}

/// A node's config with every listener on a free loopback port: the in-process nodes of the benchmarks.
pub(super) fn loopback_node_config() -> showcall_node::config::NodeConfig {
    let any: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    showcall_node::config::NodeConfig {
        signal_addr: any,
        grpc_addr: any,
        http_addr: any,
        media_addr: any,
        ..Default::default()
    }
}

/// The machine's load averages (1, 5, 15 min) as `/proc/loadavg` gives them: the machine is shared,
/// and what else ran says how much of a tail is the benchmark's own.
pub(super) fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
