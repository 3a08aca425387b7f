//! Connection caps: how many signaling connections the node holds in all, and from one client address.
//!
//! Every connection takes a [`Slot`] before its WebSocket upgrade and gives it back when it ends
//! (dropping the slot), so a node's connections — and the memory each one may hold (a frame being read,
//! its outbox) — are bounded by construction. A request over a cap is refused before the upgrade with
//! an HTTP status and a text body ([`Refusal`]): 503 when the node is full (try later, or another
//! node), 429 when the client's address holds its share (one client, or one NAT, cannot take the node).
//!
//! IPv4-mapped IPv6 addresses count as their IPv4 address. Behind a proxy every client has the proxy's
//! address: set the per-address cap to 0 (no cap) there.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::StatusCode;

/// The caps and what is taken of them.
#[derive(Debug)]
pub(crate) struct ConnectionSlots {
    /// Most connections the node holds.
    max_total: usize,
    /// Most connections one client address holds; 0 = no per-address cap.
    max_per_address: usize,
    taken: Mutex<Taken>,
}

#[derive(Debug, Default)]
struct Taken {
    total: usize,
    /// Only addresses holding at least one slot are keys, so the map is as big as the connections.
    by_address: HashMap<IpAddr, usize>,
}

/// One connection's place; given back when dropped.
#[derive(Debug)]
#[must_use = "the slot is given back when dropped"]
pub(crate) struct Slot {
    slots: Arc<ConnectionSlots>,
    address: IpAddr,
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("this node holds its limit of {limit} signaling connections; try again later")]
    NodeFull { limit: usize },
    #[error("this address holds its limit of {limit} signaling connections")]
    AddressFull { limit: usize },
}

impl Refusal {
    /// The HTTP status the upgrade request is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Refusal::NodeFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::AddressFull { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The `reason` label of the refusal metric.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Refusal::NodeFull { .. } => "node_full",
            Refusal::AddressFull { .. } => "address_full",
        }
    }
}

impl ConnectionSlots {
    pub(crate) fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            taken: Mutex::default(),
        })
    }

    /// A slot for a connection from `address`, or why not.
    pub(crate) fn take(self: &Arc<Self>, address: IpAddr) -> Result<Slot, Refusal> {
        let address = address.to_canonical();
        let mut taken = self.lock();
        if taken.total >= self.max_total {
            return Err(Refusal::NodeFull {
                limit: self.max_total,
            });
        }
        let held = taken.by_address.get(&address).copied().unwrap_or(0);
        if self.max_per_address > 0 && held >= self.max_per_address {
            return Err(Refusal::AddressFull {
                limit: self.max_per_address,
            });
        }
        taken.total += 1;
        taken.by_address.insert(address, held + 1);
        Ok(Slot {
            slots: self.clone(),
            address,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Taken> {
        // The counts are updated in single statements that cannot panic: a poisoned lock still holds
        // consistent counts.
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.slots.lock();
        taken.total -= 1;
        if let Some(held) = taken.by_address.get_mut(&self.address) {
            *held -= 1;
            if *held == 0 {
                taken.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));

    #[test]
    fn an_address_over_its_share_is_refused_while_others_are_admitted() {
        let slots = ConnectionSlots::new(10, 2);
        let _a1 = slots.take(A).unwrap();
        let a2 = slots.take(A).unwrap();
        assert_eq!(
            slots.take(A).unwrap_err(),
            Refusal::AddressFull { limit: 2 }
        );
        let _b1 = slots.take(B).unwrap();
        // A slot given back is free again.
        drop(a2);
        let _a3 = slots.take(A).unwrap();
    }

    #[test]
    fn a_full_node_refuses_every_address() {
        let slots = ConnectionSlots::new(2, 2);
        let _a = slots.take(A).unwrap();
        let b = slots.take(B).unwrap();
        let refused = slots.take(C).unwrap_err();
        assert_eq!(refused, Refusal::NodeFull { limit: 2 });
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(b);
        let _c = slots.take(C).unwrap();
    }

    #[test]
    fn no_per_address_cap_when_it_is_zero() {
        let slots = ConnectionSlots::new(3, 0);
        let held: Vec<Slot> = (0..3).map(|_| slots.take(A).unwrap()).collect();
        assert_eq!(slots.take(A).unwrap_err(), Refusal::NodeFull { limit: 3 });
        drop(held);
        assert!(slots.lock().by_address.is_empty(), "nothing left behind");
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        let slots = ConnectionSlots::new(10, 1);
        let _a = slots.take(A).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(
            slots.take(mapped).unwrap_err(),
            Refusal::AddressFull { limit: 1 }
        );
        let _v6 = slots.take(IpAddr::V6(Ipv6Addr::LOCALHOST)).unwrap();
    }
}
