//! What every peer of the SDK does the same way when it joins with media: apply the node's SDP answer to
//! its pending offer, leave the channel again when the answer cannot be used, and wait on its counters.

use str0m::Rtc;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use tokio::sync::watch;

use crate::{SdkError, SignalClient};

/// Applies `answer` to the offer `pending` (taken: an answer is applied once).
pub(crate) fn apply_answer(
    rtc: &mut Rtc,
    pending: &mut Option<SdpPendingOffer>,
    answer: &str,
) -> Result<(), SdkError> {
    let pending = pending
        .take()
        .ok_or_else(|| SdkError::Protocol("no offer awaits an answer".to_owned()))?;
    if answer.is_empty() {
        return Err(SdkError::Protocol(
            "no sdp answer (does the node route media?)".to_owned(),
        ));
    }
    let answer = SdpAnswer::from_sdp_string(answer)
        .map_err(|e| SdkError::Protocol(format!("bad sdp answer: {e}")))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| SdkError::Protocol(format!("sdp answer refused: {e}")))
}

/// A join whose media could not start: the member leaves the channel again (so the node does not keep a
/// member without media) and the caller gets `error`.
pub(crate) async fn abandon_join<T>(
    signal: &SignalClient,
    channel: &str,
    error: SdkError,
) -> Result<T, SdkError> {
    if let Err(leave) = signal.leave_channel(channel).await {
        tracing::debug!(%channel, error = %leave, "leaving after a bad answer failed");
    }
    Err(error)
}

/// What a negotiated peer's task runs on: the socket as tokio's (reads) and a clone for sends, which
/// go straight to the kernel — tokio's `try_send_to` refuses a fresh socket until its reactor has seen it
/// writable, which dropped the first ICE check. Refused before negotiation or outside a tokio runtime.
pub(crate) fn task_sockets(
    negotiated: bool,
    socket: std::net::UdpSocket,
) -> Result<(tokio::net::UdpSocket, std::net::UdpSocket), SdkError> {
    if !negotiated {
        return Err(SdkError::Protocol("media not negotiated".to_owned()));
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(SdkError::Transport(
            "a media session needs a tokio runtime".to_owned(),
        ));
    }
    let sender = socket
        .try_clone()
        .map_err(|e| SdkError::Transport(format!("udp socket: {e}")))?;
    let socket = tokio::net::UdpSocket::from_std(socket)
        .map_err(|e| SdkError::Transport(format!("udp socket: {e}")))?;
    Ok((socket, sender))
}

/// Waits until `done` holds for the counters behind `stats`; `Err(Disconnected)` when the session ends
/// first.
pub(crate) async fn wait_for<T: Clone>(
    stats: &watch::Receiver<T>,
    done: impl FnMut(&T) -> bool,
) -> Result<T, SdkError> {
    let mut rx = stats.clone();
    rx.wait_for(done)
        .await
        .map(|s| s.clone())
        .map_err(|_| SdkError::Disconnected)
}
