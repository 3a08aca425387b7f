//! Minting call ids and call channel names: 128 random bits each, so they cannot be guessed and never
//! repeat in practice.

use rand::RngCore;
use showcall_machines::{CALL_CHANNEL_PREFIX, CallId, ChannelName};

/// 128 random bits as 32 lowercase hex digits, written into one string (a call mints one or more
/// per ring: formatting each byte as a string of its own cost 16 allocations more).
fn random_hex() -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let mut hex = String::with_capacity(2 * bytes.len());
    for b in bytes {
        hex.push(char::from(DIGITS[usize::from(b >> 4)]));
        hex.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    hex
}

/// A new call id.
pub fn call_id() -> CallId {
    CallId(random_hex())
}

/// How many ids [`call_id_where`] draws before it settles for any: with `n` nodes sharing the
/// partitions evenly, the chance that none of them lands here is `(1 - 1/n)^256` (≈ 10⁻⁴⁵ for 3
/// nodes, 2·10⁻⁶ for 20).
pub const CALL_ID_DRAWS: usize = 256;

/// A new call id for which `here` holds — whose partition the minting node serves, so the call's
/// actor starts where its caller's user actor runs, without a node-link round trip. Random ids
/// still: only which of them is kept is chosen. After [`CALL_ID_DRAWS`] misses (a node that serves
/// nothing now: fenced, or still joining) the last id is kept and the call starts wherever its
/// partition is.
pub fn call_id_where(here: impl Fn(&CallId) -> bool) -> CallId {
    let mut id = call_id();
    for _ in 1..CALL_ID_DRAWS {
        if here(&id) {
            break;
        }
        id = call_id();
    }
    id
}

/// A new private call channel name: `call-` + 32 hex digits, and in a cluster `@` + the tag of the media
/// node chosen for it (see `Placement::call_channel_tag`), so every node can route to it without a lookup.
pub fn call_channel(node_tag: Option<&str>) -> ChannelName {
    match node_tag {
        Some(tag) => ChannelName(format!("{CALL_CHANNEL_PREFIX}{}@{tag}", random_hex())),
        None => ChannelName(format!("{CALL_CHANNEL_PREFIX}{}", random_hex())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_id_is_drawn_until_one_lands_here() {
        // One partition of three lands here: the first such id is kept.
        let id = call_id_where(|id| id.0.as_bytes()[0] % 3 == 0);
        assert_eq!(id.0.as_bytes()[0] % 3, 0, "{id}");
        assert_eq!(id.0.len(), 32, "still 128 random bits");
    }

    #[test]
    fn an_id_is_32_lowercase_hex_digits_and_no_two_are_alike() {
        let (a, b) = (call_id(), call_id());
        for id in [&a, &b] {
            assert_eq!(id.0.len(), 32, "{id}");
            assert!(
                id.0.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
                "{id}"
            );
        }
        assert_ne!(a, b);
    }

    #[test]
    fn a_node_that_serves_nothing_still_gets_an_id() {
        let id = call_id_where(|_| false);
        assert_eq!(id.0.len(), 32);
    }
}
