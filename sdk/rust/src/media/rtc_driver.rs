//! The rule every SDK peer's task follows with str0m: after each input or mutation, poll the `Rtc`
//! until it asks for a time — sending its datagrams, handing its events to the peer — and close by
//! letting str0m queue its goodbye (RTCP BYE, DTLS close_notify) and sending that.

use std::net::{SocketAddr, UdpSocket};
use std::time::Instant;

use str0m::net::Protocol;
use str0m::{Event, Output, Rtc};

/// Why a peer's task ends.
pub(crate) enum Stop {
    Closed,
    Failed(String),
}

/// A task driving one `Rtc`: what it provides, and the drain it gets.
pub(crate) trait RtcDriver {
    fn rtc(&mut self) -> &mut Rtc;
    /// The socket datagrams go out on (non-blocking: a datagram the kernel will not take is lost, as UDP).
    fn sender(&self) -> &UdpSocket;
    /// Sends a UDP datagram str0m sends from `from` (the host candidate's socket, unless the peer
    /// routes a relayed candidate's elsewhere).
    fn send_udp(&mut self, from: SocketAddr, to: SocketAddr, datagram: &[u8]) {
        let _ = from;
        send_datagram(self.sender(), to, datagram);
    }
    /// Sends a datagram str0m sends over ICE-TCP (a peer without TCP candidates never gets one).
    fn send_tcp(&mut self, to: SocketAddr, datagram: &[u8]) {
        tracing::trace!(%to, len = datagram.len(), "tcp datagram without tcp paths dropped");
    }
    /// str0m's next timeout.
    fn set_deadline(&mut self, at: Instant);
    fn on_event(&mut self, event: Event, now: Instant) -> Result<(), Stop>;

    /// Starts str0m's close and sends what it queues.
    fn close(&mut self) -> Stop {
        if self.rtc().is_alive()
            && let Err(stop) = self.mutate(Instant::now(), |rtc| rtc.close())
        {
            return stop;
        }
        Stop::Closed
    }

    /// One mutation, then the drain. A str0m error ends the session.
    fn mutate(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Rtc) -> Result<(), str0m::RtcError>,
    ) -> Result<(), Stop> {
        if let Err(e) = f(self.rtc()) {
            return Err(Stop::Failed(format!("webrtc: {e}")));
        }
        self.drain(now)
    }

    /// Polls `poll_output` to its `Timeout`.
    fn drain(&mut self, now: Instant) -> Result<(), Stop> {
        loop {
            if !self.rtc().is_alive() {
                return Err(Stop::Closed);
            }
            let output = self
                .rtc()
                .poll_output()
                .map_err(|e| Stop::Failed(format!("webrtc: {e}")))?;
            match output {
                Output::Timeout(at) => {
                    self.set_deadline(at);
                    return Ok(());
                }
                Output::Transmit(t) => match t.proto {
                    Protocol::Udp => self.send_udp(t.source, t.destination, &t.contents),
                    Protocol::Tcp => self.send_tcp(t.destination, &t.contents),
                    // No such candidate is offered.
                    Protocol::SslTcp | Protocol::Tls => {}
                },
                Output::Event(event) => self.on_event(event, now)?,
            }
        }
    }
}

/// Sends one datagram on a non-blocking socket; one the kernel will not take is lost, as UDP.
pub(crate) fn send_datagram(sender: &UdpSocket, to: SocketAddr, datagram: &[u8]) {
    if let Err(e) = sender.send_to(datagram, to) {
        tracing::trace!(%to, error = %e, "datagram dropped");
    }
}
