//! Why a media request was refused.

/// A refused media request; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("invalid sdp offer: {0}")]
    InvalidOffer(String),
    #[error("this member may not publish: offer receive-only media")]
    PublishNotAllowed,
    #[error("the offer was not accepted: {0}")]
    Negotiation(String),
    #[error("invalid sdp answer: {0}")]
    InvalidAnswer(String),
    #[error("this membership has no media session")]
    NoSession,
    #[error("no media offer is waiting for an answer")]
    NoPendingOffer,
    #[error("revision {answered} is not the pending offer's ({pending})")]
    StaleRevision { answered: u64, pending: u64 },
    #[error("not an ICE restart: {0}")]
    NotIceRestart(String),
    #[error("no video layer {0}: layers are 0 (the best) to {max}", max = crate::simulcast::MAX_LAYERS - 1)]
    UnknownLayer(u8),
    #[error("this media router has no relay socket (MediaConfig::relay)")]
    NoRelay,
    #[error("a relay key is 16 bytes, not {0}")]
    BadRelayKey(usize),
    #[error("this relay key was already used: make a new one for each relay")]
    RelayKeyReused,
    #[error("this channel already relays the other way on this node: {0}")]
    RelayConflict(String),
    #[error("the media router is not running")]
    Stopped,
}
