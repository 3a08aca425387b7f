//! The node's own log in a test's captured output, so a failure shows what the node decided, not only
//! what the client saw. nextest (and libtest) print a test's output only when it fails, so a passing
//! test costs the formatting and nothing on screen.
//!
//! `RUST_LOG` replaces the test's default filter when it is set.

use tracing_subscriber::EnvFilter;

/// Sends this process's tracing events at `default_filter` (e.g. `"info,showcall_media=debug"`) to the
/// test's output. A second call in the same process keeps the first subscriber.
pub fn log_to_test_output(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // `try_init` fails only when a subscriber is already set: that one goes on logging.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
