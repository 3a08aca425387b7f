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
