//! A UDP relay between one media client and the node's media socket, for tests of what a lossy path does.
//!
//! The relay is one task with one UDP socket. A datagram from the node goes to the client; any other
//! datagram comes from the client (the relay learns its address from it) and goes to the node. The client
//! is pointed at the relay by rewriting the host candidate of the node's SDP answer
//! (`rewrite_host_candidate`); the node — ICE-lite — then sees the relay's address as the client's
//! (a peer-reflexive address, as behind a NAT).
//!
//! Only the node → client direction drops, and only RTP media: a datagram whose first byte is 128..=191
//! (RFC 7983: RTP/RTCP) and whose second byte is not an RTCP packet type (200..=206). STUN, DTLS and RTCP
//! always pass, so the handshakes are not what a test measures. Which RTP packets drop is
//! deterministic (`DropPolicy`), so a failing run can be replayed. The RTP header is not encrypted by
//! SRTP, so the relay also counts forwarded packets per payload type (which tells retransmissions, sent
//! with the RTX payload type, from first sends).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Which of the node → client RTP packets the relay drops. The index is the packet's position among the
/// RTP packets of that direction (0 for the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropPolicy {
    /// Forward everything.
    Nothing,
    /// Drop packet `index` when `index % n == n - 1` (every n-th).
    EveryNth(u64),
    /// Drop packet `index` when a SplitMix64 draw keyed by `seed` and `index` falls under `percent`
    /// percent: random-looking (no alignment with frame sizes), yet the same packets for the same seed.
    Seeded { seed: u64, percent: u64 },
}

impl DropPolicy {
    /// Whether the RTP packet at `index` is dropped.
    pub fn drops(self, index: u64) -> bool {
        match self {
            DropPolicy::Nothing => false,
            DropPolicy::EveryNth(n) => n > 0 && index % n == n - 1,
            DropPolicy::Seeded { seed, percent } => {
                splitmix64(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % 100 < percent
            }
        }
    }
}

/// SplitMix64's output function: a well-mixed 64-bit value from any input (no dependency for a test RNG).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What passed one way through the relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flow {
    /// Datagrams forwarded (any kind).
    pub forwarded: u64,
    /// RTP packets dropped by the policy.
    pub dropped: u64,
    /// RTP packets forwarded, by payload type.
    pub rtp_by_payload_type: BTreeMap<u8, u64>,
}

impl Flow {
    /// RTP packets forwarded with one of `payload_types`.
    pub fn rtp_with(&self, payload_types: &[u8]) -> u64 {
        payload_types
            .iter()
            .filter_map(|pt| self.rtp_by_payload_type.get(pt))
            .sum()
    }
}

/// The relay's counters, per direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayCounts {
    pub to_node: Flow,
    pub to_client: Flow,
}

/// A running relay; dropping it stops the task.
pub struct UdpRelay {
    addr: SocketAddr,
    counts: Arc<Mutex<RelayCounts>>,
    task: JoinHandle<()>,
}

impl UdpRelay {
    /// Binds 127.0.0.1:0 and relays between the first client that sends and `node`, dropping node →
    /// client RTP packets by `policy`.
    pub async fn start(node: SocketAddr, policy: DropPolicy) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("relay socket binds");
        let addr = socket.local_addr().expect("bound socket has an address");
        let counts = Arc::new(Mutex::new(RelayCounts::default()));
        let task = tokio::spawn(relay(socket, node, policy, counts.clone()));
        Self { addr, counts, task }
    }

    /// The address clients send to (put in the answer's candidate).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters now.
    pub fn counts(&self) -> RelayCounts {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a datagram is RTP media (not STUN, DTLS or RTCP), by RFC 7983's first byte and RTCP's packet
/// types in the second.
pub fn is_rtp(datagram: &[u8]) -> bool {
    matches!(datagram, [128..=191, second, ..] if !(200..=206).contains(second))
}

async fn relay(
    socket: UdpSocket,
    node: SocketAddr,
    policy: DropPolicy,
    counts: Arc<Mutex<RelayCounts>>,
) {
    let mut buf = vec![0u8; 2048];
    let mut client: Option<SocketAddr> = None;
    // Index of the next node → client RTP packet, for the policy.
    let mut rtp_index = 0u64;
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            // An ICMP echo of an earlier send to a closed port: the socket is fine.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => panic!("relay receive: {e}"),
        };
        let datagram = &buf[..n];
        let to_client = from == node;
        let to = if to_client {
            // Nothing to forward to before the client has spoken.
            let Some(client) = client else { continue };
            client
        } else {
            client = Some(from);
            node
        };
        let rtp = is_rtp(datagram);
        let dropped = to_client && rtp && {
            let index = rtp_index;
            rtp_index += 1;
            policy.drops(index)
        };
        {
            let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
            let flow = if to_client {
                &mut counts.to_client
            } else {
                &mut counts.to_node
            };
            if dropped {
                flow.dropped += 1;
            } else {
                flow.forwarded += 1;
                if rtp {
                    *flow
                        .rtp_by_payload_type
                        .entry(datagram[1] & 0x7f)
                        .or_default() += 1;
                }
            }
        }
        // Loopback UDP: a send the kernel refuses is a datagram lost, as on a real path.
        if !dropped {
            let _ = socket.send_to(datagram, to).await;
        }
    }
}

/// The address of the first UDP host candidate (`a=candidate:… udp … <ip> <port> typ host`) of an SDP.
pub fn host_candidate(sdp: &str) -> Option<SocketAddr> {
    sdp.lines().find_map(|line| {
        let fields: Vec<&str> = line.strip_prefix("a=candidate:")?.split(' ').collect();
        if fields.get(6..8)? != ["typ", "host"] || !fields[2].eq_ignore_ascii_case("udp") {
            return None;
        }
        format!("{}:{}", fields[4], fields[5]).parse().ok()
    })
}

/// `sdp` with every UDP host candidate's address replaced by `to`, so the client sends its UDP there (a
/// relay, or nowhere); TCP candidates are left as they are.
pub fn rewrite_host_candidate(sdp: &str, to: SocketAddr) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive("\r\n") {
        let body = line.trim_end_matches("\r\n");
        let ending = &line[body.len()..];
        let mut fields: Vec<String> = body.split(' ').map(str::to_owned).collect();
        let is_host = body.starts_with("a=candidate:")
            && fields.get(6..8).is_some_and(|f| f == ["typ", "host"])
            && fields.get(2).is_some_and(|t| t.eq_ignore_ascii_case("udp"));
        if is_host {
            fields[4] = to.ip().to_string();
            fields[5] = to.port().to_string();
            out.push_str(&fields.join(" "));
        } else {
            out.push_str(body);
        }
        out.push_str(ending);
    }
    out
}

/// The payload types an SDP maps to `codec` (`a=rtpmap:<pt> <codec>/…`, case-insensitive), e.g. `"rtx"`.
pub fn payload_types(sdp: &str, codec: &str) -> Vec<u8> {
    sdp.lines()
        .filter_map(|line| {
            let (pt, encoding) = line.strip_prefix("a=rtpmap:")?.split_once(' ')?;
            let name = encoding.split('/').next()?;
            name.eq_ignore_ascii_case(codec)
                .then(|| pt.parse().ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
        a=candidate:2 1 tcp 1509949695 127.0.0.1 40001 typ host tcptype passive\r\n\
        a=candidate:1 1 udp 2130706175 127.0.0.1 40000 typ host\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n";

    #[test]
    fn the_host_candidate_is_read_and_rewritten_in_place() {
        assert_eq!(
            host_candidate(ANSWER),
            Some("127.0.0.1:40000".parse().unwrap())
        );
        let relay: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let rewritten = rewrite_host_candidate(ANSWER, relay);
        assert_eq!(host_candidate(&rewritten), Some(relay));
        assert_eq!(
            rewritten,
            ANSWER.replace("127.0.0.1 40000", "127.0.0.1 5555"),
            "the UDP candidate moves, the TCP one stays"
        );
    }

    #[test]
    fn rtx_payload_types_are_found() {
        assert_eq!(payload_types(ANSWER, "rtx"), [97]);
        assert_eq!(payload_types(ANSWER, "vp8"), [96]);
    }

    #[test]
    fn only_rtp_media_counts_as_rtp() {
        assert!(is_rtp(&[0x80, 96]));
        assert!(is_rtp(&[0x80, 96 | 0x80]), "marker bit set");
        assert!(!is_rtp(&[0x80, 200]), "RTCP sender report");
        assert!(!is_rtp(&[0x81, 205]), "RTCP NACK");
        assert!(!is_rtp(&[0x00, 0x01]), "STUN");
        assert!(!is_rtp(&[22, 254]), "DTLS");
    }

    #[test]
    fn drop_policies_are_deterministic_and_near_their_rate() {
        let every = DropPolicy::EveryNth(20);
        assert_eq!((0..100).filter(|&i| every.drops(i)).count(), 5);
        assert!(every.drops(19) && !every.drops(20));
        let seeded = DropPolicy::Seeded {
            seed: 7,
            percent: 5,
        };
        let dropped: Vec<u64> = (0..10_000).filter(|&i| seeded.drops(i)).collect();
        assert!((400..=600).contains(&dropped.len()), "{}", dropped.len());
        let again: Vec<u64> = (0..10_000).filter(|&i| seeded.drops(i)).collect();
        assert_eq!(dropped, again);
        assert!(!(0..1000).any(|i| DropPolicy::Nothing.drops(i)));
    }
}
