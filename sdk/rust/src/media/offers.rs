//! Answering the node's renegotiation offers (`ChannelEvent.media_offer`) for one channel's media, shared
//! by every kind of session the SDK runs ([`MediaSession`](super::MediaSession),
//! [`RtpProbe`](super::RtpProbe)): each session only says how it applies an offer.

use std::future::Future;

use tokio::sync::mpsc;

use crate::proto::{channel_event, event};
use crate::{SdkError, WeakSignalClient};

/// Answers the node's offers for `channel` until `closed` resolves (the session is gone), the signaling
/// client is gone, or the event stream ends. `apply` hands an offer to the session and returns its
/// answer; `None` means the session is gone.
pub(crate) async fn answer_offers<A, F>(
    signal: WeakSignalClient,
    channel: String,
    mut events: mpsc::UnboundedReceiver<crate::Event>,
    closed: impl Future<Output = ()>,
    mut apply: A,
) where
    A: FnMut(String) -> F,
    F: Future<Output = Option<Result<String, SdkError>>>,
{
    tokio::pin!(closed);
    loop {
        let event = tokio::select! {
            () = &mut closed => return,
            event = events.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let Some(event::Kind::ChannelEvent(ce)) = event.kind else {
            continue;
        };
        let Some(channel_event::Kind::MediaOffer(offer)) = ce.kind else {
            continue;
        };
        if ce.channel != channel {
            continue;
        }
        let answer = match apply(offer.sdp_offer).await {
            Some(Ok(answer)) => answer,
            Some(Err(e)) => {
                tracing::warn!(%channel, error = %e, "media offer from the node not applicable");
                continue;
            }
            None => return,
        };
        let Some(signal) = signal.upgrade() else {
            return;
        };
        if let Err(e) = signal.answer_media(&channel, &answer, offer.revision).await {
            tracing::warn!(%channel, error = %e, "media answer refused");
        }
    }
}
