//! Where calls go when they end (the record sink) and while they are connected (the ledger a takeover
//! restores them from).

use std::fmt::Debug;

use showcall_machines::{CallId, CallRecord, CallSnapshot};
use showcall_protocol::AppId;

/// Where finished calls' records go (the business server's billing feed, with the admin issue).
pub trait CallRecordSink: Send + Sync + Debug + 'static {
    fn record(&self, app: &AppId, record: &CallRecord);
}

/// Logs each record.
#[derive(Debug, Default)]
pub struct LogRecords;

impl CallRecordSink for LogRecords {
    fn record(&self, app: &AppId, record: &CallRecord) {
        tracing::info!(
            %app,
            call_id = %record.id,
            caller = %record.caller,
            callee = %record.callee,
            connected_ms = record.connected_ms,
            cause = ?record.cause,
            "call ended"
        );
    }
}

/// Where connected calls are kept while they last, so that the new owner of a call's partition can take
/// the call over when the node running it dies (the cluster keeps them in etcd). Writes are ordered per
/// node and never block the call.
pub trait CallLedger: Send + Sync + Debug + 'static {
    /// The call connected (or was restored): keep its snapshot.
    fn connected(&self, app: &AppId, snapshot: &CallSnapshot);
    /// The call ended: forget it.
    fn ended(&self, app: &AppId, call: &CallId);
}

/// A single node keeps nothing: a call's actor can only die with the whole node.
#[derive(Debug, Default)]
pub struct NoLedger;

impl CallLedger for NoLedger {
    fn connected(&self, _: &AppId, _: &CallSnapshot) {}

    fn ended(&self, _: &AppId, _: &CallId) {}
}
