//! Takeover: after another node died, this node restores the connected calls of the dead node's
//! partitions that it now owns, from their records ([`crate::call_records`]).
//!
//! The dead node's partitions become free when its lease expires and are claimed by the survivors in the
//! same reconcile round that reports the loss, so this waits — on the membership's change signal, not on a
//! timer — until each of them has a live owner again, and loads the records of those this node serves.
//! A partition still unowned after `give_up_after` is left: the parties of its calls give up on them by
//! themselves (see `UserInput::CallOwnerLost`).

use std::collections::BTreeSet;
use std::time::Duration;

use showcall_runtime::Hub;

use crate::call_records::EtcdCallLedger;
use crate::membership::{Membership, NodeLoss};
use crate::partition::PartitionId;

/// Restores the calls of `loss`'s partitions that end up on this node. Returns how many were restored.
pub async fn take_over_calls(
    hub: Hub,
    membership: Membership,
    ledger: EtcdCallLedger,
    loss: NodeLoss,
    give_up_after: Duration,
) -> usize {
    let mut changes = membership.watch_changes();
    let deadline = tokio::time::Instant::now() + give_up_after;
    let mut waiting: BTreeSet<PartitionId> = loss.partitions;
    let mut restored = 0;
    loop {
        let mut mine = Vec::new();
        waiting.retain(|p| match membership.owner(*p) {
            Some(owner) if owner != loss.node => {
                if membership.serves(*p) {
                    mine.push(*p);
                }
                false
            }
            _ => true,
        });
        for partition in mine {
            match ledger.load(partition).await {
                Ok(records) => {
                    for record in records {
                        hub.restore_call(record.app, record.snapshot).await;
                        restored += 1;
                    }
                }
                Err(e) => {
                    tracing::error!(partition, error = %e, "call records could not be read: its calls are not taken over")
                }
            }
        }
        if waiting.is_empty() {
            break;
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(node = %loss.node, unowned = waiting.len(), "gave up waiting for the lost node's partitions to be owned again");
                break;
            }
        }
    }
    restored
}
