//! [`EtcdCallLedger`]: connected calls kept in etcd, so the new owner of a call's partition can take the
//! call over when the node running it dies (the actors' `CallLedger` port).
//!
//! Layout: `<prefix>calls/<partition>/<call id>` → JSON [`CallRecordValue`] (app + snapshot). The keys are
//! **not** bound to a lease: they must outlive the node that wrote them. They are written when a call
//! connects and deleted when it ends, by whichever node runs the call then.
//!
//! Writes never hold up a call: they go through one queue per node, in order (a call's delete never
//! overtakes its put), each retried with backoff while etcd is unreachable. The price: a node that dies
//! within the few milliseconds between a call's connect and its record landing leaves a call nobody can
//! take over — its parties then give up on it themselves (`UserInput::CallOwnerLost`), and no billing
//! record is produced for it. A delete that cannot land before this node dies leaves a stale record; the
//! next owner restores it, its parties answer that it is not their call, and the call is "ended" once
//! more — so billing consumers should deduplicate `call.ended` by call id.

use std::time::Duration;

use etcd_client::{Client, GetOptions};
use serde::{Deserialize, Serialize};
use showcall_machines::{CallId, CallSnapshot};
use showcall_ports::CallLedger;
use showcall_protocol::ActorKey;
use showcall_protocol::AppId;
use tokio::sync::mpsc;

use crate::etcd_timing::timed;
use crate::membership::{ClusterError, Membership};
use crate::partition::{PartitionId, partition_of};

/// The value under a call's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecordValue {
    pub app: AppId,
    pub snapshot: CallSnapshot,
}

enum Write {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// See the module docs. Cheap to clone.
#[derive(Clone)]
pub struct EtcdCallLedger {
    writes: mpsc::UnboundedSender<Write>,
    client: Client,
    prefix: String,
    partitions: u32,
}

impl std::fmt::Debug for EtcdCallLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCallLedger")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Write::Put { key, .. } => write!(f, "put {key}"),
            Write::Delete { key } => write!(f, "delete {key}"),
        }
    }
}

impl EtcdCallLedger {
    /// A ledger in the cluster `membership` belongs to; its writer task runs until every clone is dropped.
    pub fn new(membership: &Membership) -> Self {
        let (writes, queue) = mpsc::unbounded_channel();
        let client = membership.client();
        tokio::spawn(write_in_order(client.clone(), queue));
        Self {
            writes,
            client,
            prefix: format!("{}calls/", membership.prefix()),
            partitions: membership.partitions(),
        }
    }

    fn key(&self, app: &AppId, call: &CallId) -> String {
        let partition = partition_of(&ActorKey::Call(app.clone(), call.clone()), self.partitions);
        format!("{}{partition}/{call}", self.prefix)
    }

    /// The connected calls whose actor belongs to `partition`.
    pub async fn load(&self, partition: PartitionId) -> Result<Vec<CallRecordValue>, ClusterError> {
        let prefix = format!("{}{partition}/", self.prefix);
        let mut client = self.client.clone();
        let found = timed(
            "get",
            client.get(prefix, Some(GetOptions::new().with_prefix())),
        )
        .await?;
        let mut records = Vec::new();
        for kv in found.kvs() {
            match serde_json::from_slice::<CallRecordValue>(kv.value()) {
                Ok(record) => records.push(record),
                Err(e) => tracing::error!(
                    key = %String::from_utf8_lossy(kv.key()),
                    error = %e,
                    "unreadable call record skipped"
                ),
            }
        }
        Ok(records)
    }
}

impl CallLedger for EtcdCallLedger {
    fn connected(&self, app: &AppId, snapshot: &CallSnapshot) {
        let value = CallRecordValue {
            app: app.clone(),
            snapshot: snapshot.clone(),
        };
        let write = Write::Put {
            key: self.key(app, &snapshot.setup.id),
            value: serde_json::to_vec(&value).expect("call records are plain serde data"),
        };
        let _ = self.writes.send(write);
    }

    fn ended(&self, app: &AppId, call: &CallId) {
        let _ = self.writes.send(Write::Delete {
            key: self.key(app, call),
        });
    }
}

/// Carries out the writes one after another, retrying each until it lands.
async fn write_in_order(mut client: Client, mut queue: mpsc::UnboundedReceiver<Write>) {
    while let Some(write) = queue.recv().await {
        let mut backoff = Duration::from_millis(50);
        loop {
            let done = match &write {
                Write::Put { key, value } => {
                    timed("put", client.put(key.as_str(), value.clone(), None))
                        .await
                        .map(|_| ())
                }
                Write::Delete { key } => timed("delete", client.delete(key.as_str(), None))
                    .await
                    .map(|_| ()),
            };
            match done {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(?write, error = %e, retry_in = ?backoff, "call record write failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
