//! What a token allows its holder to do.

use serde::{Deserialize, Serialize};

use crate::claims::WILDCARD_CHANNEL;

/// The permissions carried by a token.
///
/// Everything defaults to "not allowed": a grant must be given explicitly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// May log in to signaling (open a session, place and answer calls).
    #[serde(default)]
    pub signal: bool,
    /// The channel the holder may join: one channel name, or `"*"` for every channel. `None` = no channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// May publish: join a channel as broadcaster, publish media in calls.
    #[serde(default)]
    pub publish: bool,
    /// May subscribe: join a channel as audience.
    #[serde(default)]
    pub subscribe: bool,
}

impl Grants {
    /// Whether the channel grant covers the channel `name` (exactly, or through the `*` wildcard).
    ///
    /// This says nothing about publishing or subscribing in it; check [`Grants::publish`] and
    /// [`Grants::subscribe`] as well.
    pub fn allows_channel(&self, name: &str) -> bool {
        match self.channel.as_deref() {
            Some(WILDCARD_CHANNEL) => true,
            Some(granted) => granted == name,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_channel(channel: Option<&str>) -> Grants {
        Grants {
            channel: channel.map(str::to_owned),
            ..Grants::default()
        }
    }

    #[test]
    fn exact_channel_grant_allows_only_that_channel() {
        let g = with_channel(Some("room-1"));
        assert!(g.allows_channel("room-1"));
        assert!(!g.allows_channel("room-2"));
        assert!(
            !g.allows_channel("*"),
            "a literal `*` channel is not a wildcard request"
        );
    }

    #[test]
    fn wildcard_channel_grant_allows_every_channel() {
        let g = with_channel(Some("*"));
        assert!(g.allows_channel("room-1"));
        assert!(g.allows_channel("anything"));
    }

    #[test]
    fn no_channel_grant_allows_nothing() {
        assert!(!with_channel(None).allows_channel("room-1"));
    }

    #[test]
    fn missing_fields_deserialize_as_not_allowed() {
        let g: Grants = serde_json::from_str("{}").unwrap();
        assert_eq!(g, Grants::default());
    }
}
