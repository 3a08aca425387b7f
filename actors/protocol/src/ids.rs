//! Minting call ids and call channel names: 128 random bits each, so they cannot be guessed and never
//! repeat in practice.

use rand::RngCore;
use showcall_machines::{CALL_CHANNEL_PREFIX, CallId, ChannelName};

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new call id.
pub fn call_id() -> CallId {
    CallId(random_hex())
}

/// A new private call channel name: `call-` + 32 hex digits, and in a cluster `@` + the tag of the media
/// node chosen for it (see `Placement::call_channel_tag`), so every node can route to it without a lookup.
pub fn call_channel(node_tag: Option<&str>) -> ChannelName {
    match node_tag {
        Some(tag) => ChannelName(format!("{CALL_CHANNEL_PREFIX}{}@{tag}", random_hex())),
        None => ChannelName(format!("{CALL_CHANNEL_PREFIX}{}", random_hex())),
    }
}
