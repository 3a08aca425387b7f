//! Times etcd requests for the `showcall_etcd_request_seconds` histogram.
//!
//! Every request to etcd goes through [`timed`] with its operation (`get`, `put`, `delete`, `txn`,
//! `lease_grant`, `lease_revoke`); the keep-alive records its request-to-answer time itself
//! (`lease_keep_alive`), as it is a stream, not a request. Watches are streams and are not timed. A
//! failed request is timed too: a timeout is latency an operator wants to see.

use std::future::IntoFuture;
use std::time::Instant;

/// Awaits `request` and records how long it took under `op`.
pub(crate) async fn timed<F: IntoFuture>(op: &'static str, request: F) -> F::Output {
    let started = Instant::now();
    let output = request.await;
    showcall_protocol::metrics::etcd_request(op, started.elapsed());
    output
}
