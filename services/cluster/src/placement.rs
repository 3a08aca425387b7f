//! [`EtcdPlacement`]: the actors' `Placement` port answered from the cluster view.

use showcall_actors::ports::Placement;
use showcall_actors::{ActorKey, NodeId};

use crate::membership::Membership;
use crate::partition::partition_of;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct EtcdPlacement {
    membership: Membership,
}

impl EtcdPlacement {
    pub fn new(membership: Membership) -> Self {
        Self { membership }
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }
}

impl Placement for EtcdPlacement {
    fn this_node(&self) -> &NodeId {
        self.membership.me()
    }

    fn owner(&self, key: &ActorKey) -> Option<NodeId> {
        self.membership
            .owner(partition_of(key, self.membership.partitions()))
    }

    fn serves(&self, key: &ActorKey) -> bool {
        self.membership
            .serves(partition_of(key, self.membership.partitions()))
    }
}
