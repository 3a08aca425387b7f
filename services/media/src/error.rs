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
    #[error("the media router is not running")]
    Stopped,
}
