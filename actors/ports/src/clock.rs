//! The node's clock, read by actors and handed to the machines as `now`.
//!
//! It is Unix time in milliseconds advanced by tokio's clock, so timers (tokio) and deadlines (Unix ms in
//! tokens and machines) stay coherent — also under `tokio::time::pause()` in tests, where it advances only
//! as the paused clock does.

use std::time::{SystemTime, UNIX_EPOCH};

use showcall_machines::Millis;
use tokio::time::Instant;

/// See the module docs.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_unix_ms: Millis,
    base: Instant,
}

impl Clock {
    /// Starts the clock at the system's Unix time.
    pub fn system() -> Self {
        let base_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            // A system clock before 1970 is a broken machine; start from zero rather than panic.
            .unwrap_or(0);
        Self {
            base_unix_ms,
            base: Instant::now(),
        }
    }

    /// Unix time in milliseconds.
    pub fn now_ms(&self) -> Millis {
        self.base_unix_ms + self.base.elapsed().as_millis() as Millis
    }

    /// Unix time in seconds (token times).
    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}
