//! Which path a session's media runs on — straight over UDP, over an ICE-TCP connection, or over UDP
//! through a TURN relay — for operators (`showcall_media_sessions{path}`): relayed viewers cost the TURN
//! server's bandwidth twice, and how many there are says how much UDP the audience's networks let through.
//!
//! To the router a relayed member is a UDP peer like any other, at the relay's address. What tells it
//! apart is the member's offer: its relayed candidates (`a=candidate:… typ relay`) name the addresses the
//! relay sends from. A session counts by the path its latest datagram came by (a member may check several
//! and nominate one; the one media keeps arriving on is the one in use).

use std::net::SocketAddr;

use str0m::net::Protocol;
use str0m::{Candidate, CandidateKind};

/// How a session's media reaches the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionPath {
    Udp,
    Tcp,
    /// UDP from one of the member's relayed candidates: through a TURN server.
    Relay,
}

impl SessionPath {
    /// Index in [`crate::protocol::RouterStats::sessions_by_path`].
    pub fn index(self) -> usize {
        match self {
            SessionPath::Udp => 0,
            SessionPath::Tcp => 1,
            SessionPath::Relay => 2,
        }
    }

    /// The path of a datagram from `source` over `proto`, for a member whose offers named `relays`.
    pub fn of(proto: Protocol, source: SocketAddr, relays: &[SocketAddr]) -> Self {
        match proto {
            Protocol::Udp if relays.contains(&source) => SessionPath::Relay,
            Protocol::Udp => SessionPath::Udp,
            _ => SessionPath::Tcp,
        }
    }
}

/// At most this many relayed candidates are kept per session (offers are bounded by the signaling frame
/// size; a browser offers one or two per TURN server).
const MAX_RELAYS: usize = 8;

/// The addresses of an offer's relayed candidates.
pub fn relay_candidates(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|line| line.trim().strip_prefix("a="))
        .filter(|attr| attr.starts_with("candidate:"))
        .filter_map(|attr| Candidate::from_sdp_string(attr).ok())
        .filter(|c| c.kind() == CandidateKind::Relayed)
        .map(|c| c.addr())
        .take(MAX_RELAYS)
        .collect()
}

/// `known` with the relayed candidates of a later offer (an ICE restart) added: a relay the member kept
/// stays one.
pub fn add_relays(known: &mut Vec<SocketAddr>, sdp: &str) {
    for addr in relay_candidates(sdp) {
        if known.len() < MAX_RELAYS && !known.contains(&addr) {
            known.push(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\n\
        a=candidate:1 1 udp 2122260223 192.168.1.5 54321 typ host\r\n\
        a=candidate:2 1 udp 41885439 203.0.113.7 49170 typ relay raddr 192.168.1.5 rport 54321\r\n\
        a=candidate:3 1 tcp 1518280447 192.168.1.5 9 typ host tcptype active\r\n";

    #[test]
    fn an_offers_relayed_candidates_name_the_relay_addresses() {
        assert_eq!(
            relay_candidates(OFFER),
            vec!["203.0.113.7:49170".parse::<SocketAddr>().unwrap()]
        );
        assert!(relay_candidates("v=0\r\na=candidate:garbage\r\n").is_empty());
    }

    #[test]
    fn a_session_is_relayed_when_its_datagrams_come_from_a_relay_address() {
        let relays = relay_candidates(OFFER);
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            SessionPath::of(Protocol::Udp, at("203.0.113.7:49170"), &relays),
            SessionPath::Relay
        );
        assert_eq!(
            SessionPath::of(Protocol::Udp, at("198.51.100.2:50000"), &relays),
            SessionPath::Udp
        );
        assert_eq!(
            SessionPath::of(Protocol::Tcp, at("198.51.100.2:50000"), &relays),
            SessionPath::Tcp
        );
    }

    #[test]
    fn a_restart_offer_adds_its_relays_once() {
        let mut known = relay_candidates(OFFER);
        add_relays(&mut known, OFFER);
        assert_eq!(known.len(), 1);
    }
}
