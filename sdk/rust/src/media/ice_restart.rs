//! ICE restart: how a running session moves to a new network path without leaving its channel.
//!
//! When the client's network changes (Wi-Fi → cellular, a new address or port), the node can no longer
//! reach the session's socket, and the session's ICE checks go unanswered. Joining again would make a
//! new session: new streams, receivers' decoders starting over, and for a call participant a member
//! leaving its call's channel. Instead the session **restarts ICE** over the signaling session it
//! already has (RFC 8445 §9):
//!
//! 1. the session binds a new UDP socket (a new port, on the session's IP or a new one) and makes an
//!    offer for its existing media with new ICE credentials (str0m's `SdpApi::ice_restart`);
//! 2. the offer goes to the node as `RestartIce`
//!    ([`SignalClient::restart_ice`](crate::SignalClient::restart_ice)), which answers with its new
//!    credentials;
//! 3. the session applies the answer, moves to the new socket and offers it as its host candidate;
//!    its checks reach the node on the new path, and media continues on the same streams (the same
//!    DTLS association, SSRCs, sequence numbers).
//!
//! A session made by [`MediaSession::join`](super::MediaSession::join) does this **by itself** when
//! its path is gone: nothing has come from the node for [`SILENCE_BEFORE_RESTART`], or str0m reports
//! ICE `Disconnected`; at most [`AUTO_RESTARTS`] times in a row without getting through, then it ends as
//! before. The app may also
//! say the network changed at once ([`MediaSession::restart_ice`](super::MediaSession::restart_ice)),
//! which is quicker than waiting for the checks to fail (a mobile OS tells apps when the network
//! changes). While a restart is in flight, a renegotiation offer from the node is refused, and so is
//! one that names the node's credentials from before the restart: the node drops such an offer when the
//! restart reaches it, and offers again after if it must.

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::session::Command;
use crate::{SdkError, SignalClient, WeakSignalClient};

/// How long a connected session hears nothing from the node before it restarts by itself. The node
/// answers the session's ICE checks (str0m sends one at least every 3 s, its largest retransmission
/// timeout) besides its RTCP and media, so this long in silence is two checks unanswered: the path is
/// gone. It must be well under the node's ICE-lite timeout (15 s without a check, then the node closes
/// the session and a restart finds nothing to restart); str0m's own `Disconnected` comes only after
/// ≈ 21 s of unanswered checks, too late for that.
pub(crate) const SILENCE_BEFORE_RESTART: Duration = Duration::from_secs(6);

/// Restarts a session makes by itself in a row (each after its ICE connection dropped) before it
/// gives up and ends.
pub(crate) const AUTO_RESTARTS: u32 = 3;

/// The first `a=ice-ufrag` of an SDP. After a restart, an offer from the node that names another ufrag
/// than its answer did was made before the restart reached it (the node dropped it): applying it would
/// restart ICE the other way.
pub(crate) fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("a=ice-ufrag:"))
        .map(str::trim)
}

/// One whole restart of the session behind `commands`: offer, the node's answer, the move to the new
/// socket. On a refusal before the answer is applied the session goes on as it was (on its old path).
pub(crate) async fn restart(
    commands: &mpsc::UnboundedSender<Command>,
    signal: &SignalClient,
    channel: &str,
    bind_ip: Option<IpAddr>,
) -> Result<(), SdkError> {
    let (reply, offered) = oneshot::channel();
    commands
        .send(Command::OfferIceRestart { bind_ip, reply })
        .map_err(|_| SdkError::Disconnected)?;
    let offer = offered.await.map_err(|_| SdkError::Disconnected)??;
    let answer = match signal.restart_ice(channel, &offer).await {
        Ok(answer) => answer,
        Err(e) => {
            let _ = commands.send(Command::AbandonIceRestart);
            return Err(e);
        }
    };
    let (reply, applied) = oneshot::channel();
    commands
        .send(Command::AcceptIceRestart { sdp: answer, reply })
        .map_err(|_| SdkError::Disconnected)?;
    applied.await.map_err(|_| SdkError::Disconnected)?
}

/// Restarts the session whenever its task asks (its ICE dropped), until the session or the signaling
/// client is gone. A restart that fails ends the session: it has no path left.
pub(crate) async fn restart_when_asked(
    commands: mpsc::UnboundedSender<Command>,
    signal: WeakSignalClient,
    channel: String,
    mut asked: mpsc::Receiver<()>,
) {
    while asked.recv().await.is_some() {
        let Some(client) = signal.upgrade() else {
            let _ = commands.send(Command::Fail("ice disconnected (no signaling)".to_owned()));
            return;
        };
        if let Err(e) = restart(&commands, &client, &channel, None).await {
            tracing::info!(%channel, error = %e, "ice restart after a disconnection failed");
            let _ = commands.send(Command::Fail(format!(
                "ice disconnected; restart failed: {e}"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ice_ufrag;

    #[test]
    fn reads_the_first_ufrag() {
        let sdp = "v=0\r\na=ice-ufrag:abcd\r\na=ice-pwd:x\r\nm=audio 9\r\na=ice-ufrag:efgh\r\n";
        assert_eq!(ice_ufrag(sdp), Some("abcd"));
        assert_eq!(ice_ufrag("v=0\r\n"), None);
    }
}
