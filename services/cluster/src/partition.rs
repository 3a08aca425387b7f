//! Partitions: the unit of ownership. An actor key maps to one of a fixed number of partitions by a
//! hash that every node computes alike — xxh3, specified and stable across builds and platforms (std's
//! `DefaultHasher` is not: nodes of different versions could disagree during a rolling upgrade).

use showcall_protocol::ActorKey;
use xxhash_rust::xxh3::xxh3_64;

/// A partition number, `0..partitions`.
pub type PartitionId = u32;

/// The partition of an actor key.
pub fn partition_of(key: &ActorKey, partitions: u32) -> PartitionId {
    let hash = xxh3_64(key.to_string().as_bytes());
    (hash % u64::from(partitions.max(1))) as PartitionId
}

#[cfg(test)]
mod tests {
    use super::*;
    use showcall_protocol::AppId;

    #[test]
    fn a_key_always_lands_in_the_same_partition_and_keys_spread() {
        let key = |u: &str| ActorKey::User(AppId("demo".into()), u.into());
        let p = partition_of(&key("alice"), 256);
        assert!(p < 256);
        assert_eq!(partition_of(&key("alice"), 256), p);
        let used: std::collections::HashSet<_> = (0..1000)
            .map(|i| partition_of(&key(&format!("u{i}")), 256))
            .collect();
        assert!(
            used.len() > 200,
            "1000 keys use most of 256 partitions: {}",
            used.len()
        );
    }
}
