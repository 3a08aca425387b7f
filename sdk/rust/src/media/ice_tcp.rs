//! ICE-TCP, the active side (RFC 6544): how a session reaches a node whose UDP it cannot reach.
//!
//! Every session offers, beside its UDP host candidate, an **active** TCP host candidate
//! ([`active_candidate`]: the bind IP and port 9, as RFC 6544 says an active candidate names no port of
//! its own). str0m pairs it with the node's **passive** TCP candidate and runs its checks on that pair as
//! on the UDP one; the session nominates whichever succeeds with the higher priority — UDP when it
//! works, TCP when only TCP does. So the fallback needs nothing from the app; a client that knows its
//! UDP is blocked can leave UDP out ([`MediaOptions::udp`](super::MediaOptions::udp)).
//!
//! str0m is sans IO, so the connections are ours ([`TcpPaths`]): the first datagram str0m sends over TCP
//! to an address dials it, and every datagram goes on that connection framed as RFC 4571 says (a 2-byte
//! big-endian length, then the datagram). Only addresses the remote offered as passive TCP candidates
//! are dialed ([`TcpPaths::allow`]): an active candidate of the remote (a peer that is itself an SDK
//! client) listens nowhere. One connection per address at a time; while one is being dialed, datagrams
//! wait in its queue. Each queue holds [`OUTGOING_QUEUE`] datagrams; a datagram that does not fit is
//! dropped, as a full UDP socket buffer drops (media is loss-tolerant; STUN and DTLS retransmit).
//! A connection that fails or closes is forgotten; the next datagram str0m sends dials again.
//!
//! **Once the session has connected over UDP, TCP stands down** ([`TcpPaths::stand_down`]): its
//! connections close and nothing is dialed any more (str0m's checks on the TCP pair are dropped, and
//! that pair fails). Otherwise every client whose UDP works would keep a TCP connection to the node
//! open for the whole session, only for str0m's checks of a path it never uses — a file and a socket
//! per viewer on the node, and its ICE-TCP connection cap spent on clients that do not need it. A
//! session that loses its UDP path later ends (ICE disconnected) as before; it does not move to TCP
//! mid-session.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use str0m::Candidate;
use str0m::net::{Protocol, TcpType};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::SdkError;

/// The port an active TCP candidate names (RFC 6544 §4.5: 9, the discard port).
const ACTIVE_PORT: u16 = 9;
/// Datagrams queued for one connection before more are dropped.
pub(crate) const OUTGOING_QUEUE: usize = 256;
/// Datagrams read from the connections and not yet taken by the session.
const INBOUND_QUEUE: usize = 1024;
/// How long a dial may take before the connection is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The address of the session's active TCP candidate (what str0m sends TCP datagrams "from").
pub(crate) fn active_addr(ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, ACTIVE_PORT)
}

/// The active TCP host candidate for a session bound to `ip`.
pub(crate) fn active_candidate(ip: IpAddr) -> Result<Candidate, SdkError> {
    Candidate::builder()
        .tcp()
        .host(active_addr(ip))
        .tcptype(TcpType::Active)
        .build()
        .map_err(|e| SdkError::Transport(format!("tcp candidate {ip}: {e}")))
}

/// The addresses of the passive TCP candidates in an SDP (the ones an active side connects to).
pub(crate) fn passive_candidates(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|line| line.trim().strip_prefix("a="))
        .filter(|attr| attr.starts_with("candidate:"))
        .filter_map(|attr| Candidate::from_sdp_string(attr).ok())
        .filter(|c| c.proto() == Protocol::Tcp && c.tcptype() == Some(TcpType::Passive))
        .map(|c| c.addr())
        .collect()
}

/// `datagram` behind its RFC 4571 length; `None` when it does not fit one (16 bits).
fn frame(datagram: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(datagram.len()).ok()?;
    let mut framed = Vec::with_capacity(2 + datagram.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(datagram);
    Some(framed)
}

/// What the connections tell the session.
enum PathEvent {
    Datagram { from: SocketAddr, data: Vec<u8> },
    Closed { to: SocketAddr, id: u64 },
}

/// One connection (being dialed or open).
struct Link {
    id: u64,
    outgoing: mpsc::Sender<Vec<u8>>,
}

/// A session's ICE-TCP connections (see the module docs).
pub(crate) struct TcpPaths {
    links: HashMap<SocketAddr, Link>,
    /// The remote's passive TCP candidates: the only addresses dialed.
    allowed: HashSet<SocketAddr>,
    events_tx: mpsc::Sender<PathEvent>,
    events: mpsc::Receiver<PathEvent>,
    next_id: u64,
    /// Datagrams dropped: no connection allowed, or its queue full, or TCP stood down.
    dropped: u64,
    /// The session connected over UDP: no TCP connection is kept or dialed.
    stood_down: bool,
}

impl Default for TcpPaths {
    fn default() -> Self {
        let (events_tx, events) = mpsc::channel(INBOUND_QUEUE);
        Self {
            links: HashMap::new(),
            allowed: HashSet::new(),
            events_tx,
            events,
            next_id: 0,
            dropped: 0,
            stood_down: false,
        }
    }
}

impl TcpPaths {
    /// Lets the session dial the passive TCP candidates named in the remote's SDP.
    pub(crate) fn allow(&mut self, remote_sdp: &str) {
        self.allowed.extend(passive_candidates(remote_sdp));
    }

    /// The session connected over UDP: closes every connection and dials no more (see the module
    /// docs).
    pub(crate) fn stand_down(&mut self) {
        self.stood_down = true;
        // Dropping a link's queue ends its connection task, which closes the socket.
        self.links.clear();
    }

    /// Sends a datagram str0m sends over TCP to `to`: on its connection, dialed first if there is none.
    /// Must be called within a tokio runtime.
    pub(crate) fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        if self.stood_down {
            self.dropped += 1;
            return;
        }
        let Some(framed) = frame(datagram) else {
            self.dropped += 1;
            return;
        };
        if !self.allowed.contains(&to) {
            self.dropped += 1;
            return;
        }
        let link = self.links.entry(to).or_insert_with(|| {
            let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
            let id = self.next_id;
            self.next_id += 1;
            tokio::spawn(connection(to, id, queue, self.events_tx.clone()));
            Link { id, outgoing }
        });
        if link.outgoing.try_send(framed).is_err() {
            self.dropped += 1;
        }
    }

    /// The next datagram any connection read, with the address it came from (the remote candidate).
    /// Cancel-safe; never ends while the session holds `self`.
    pub(crate) async fn recv(&mut self) -> (SocketAddr, Vec<u8>) {
        loop {
            // `self` holds a sender, so the channel never closes.
            let Some(event) = self.events.recv().await else {
                return std::future::pending().await;
            };
            match event {
                PathEvent::Datagram { from, data } => return (from, data),
                PathEvent::Closed { to, id } => {
                    if self.links.get(&to).is_some_and(|l| l.id == id) {
                        self.links.remove(&to);
                    }
                }
            }
        }
    }

    /// Datagrams dropped so far.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// One connection: dials `to`, writes what is queued, reads frames, until either side ends it (the
/// session dropping its queue ends it too).
async fn connection(
    to: SocketAddr,
    id: u64,
    mut queue: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<PathEvent>,
) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%to, error = %e, "ice-tcp connect failed");
            None
        }
        Err(_) => {
            tracing::debug!(%to, "ice-tcp connect timed out");
            None
        }
    };
    if let Some(stream) = stream {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let reading = read_frames(BufReader::new(reader), to, &events);
        let writing = write_frames(BufWriter::new(writer), &mut queue);
        let ended = tokio::select! {
            ended = reading => ended,
            ended = writing => ended,
        };
        if let Err(e) = ended {
            tracing::debug!(%to, error = %e, "ice-tcp connection ended");
        }
    }
    let _ = events.send(PathEvent::Closed { to, id }).await;
}

/// Reads RFC 4571 frames and hands each datagram to the session.
async fn read_frames(
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    from: SocketAddr,
    events: &mpsc::Sender<PathEvent>,
) -> std::io::Result<()> {
    loop {
        let len = usize::from(reader.read_u16().await?);
        let mut data = vec![0u8; len];
        reader.read_exact(&mut data).await?;
        if events
            .send(PathEvent::Datagram { from, data })
            .await
            .is_err()
        {
            // The session is gone.
            return Ok(());
        }
    }
}

/// Writes queued frames, a burst at a time, until the session drops the queue.
async fn write_frames(
    mut writer: BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    queue: &mut mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    while let Some(framed) = queue.recv().await {
        writer.write_all(&framed).await?;
        while let Ok(more) = queue.try_recv() {
            writer.write_all(&more).await?;
        }
        writer.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\n\
        a=candidate:1 1 udp 2130706175 10.0.0.1 5000 typ host\r\n\
        a=candidate:2 1 tcp 1509949695 10.0.0.1 5000 typ host tcptype passive\r\n\
        a=candidate:3 1 tcp 1509949695 10.0.0.2 9 typ host tcptype active\r\n";

    #[test]
    fn only_passive_tcp_candidates_are_dialable() {
        assert_eq!(
            passive_candidates(ANSWER),
            vec![SocketAddr::from(([10, 0, 0, 1], 5000))]
        );
    }

    #[test]
    fn frames_carry_a_big_endian_length() {
        assert_eq!(frame(b"abc"), Some(vec![0, 3, b'a', b'b', b'c']));
        assert_eq!(frame(&vec![0; usize::from(u16::MAX) + 1]), None);
    }

    #[tokio::test]
    async fn datagrams_to_an_address_not_offered_as_passive_are_dropped() {
        let mut paths = TcpPaths::default();
        paths.allow(ANSWER);
        paths.send(SocketAddr::from(([10, 0, 0, 2], 9)), b"stun");
        assert_eq!(paths.dropped(), 1);
        assert!(paths.links.is_empty(), "nothing dialed");
    }

    #[tokio::test]
    async fn once_stood_down_the_connection_closes_and_nothing_is_dialed_again() {
        let node = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = node.local_addr().expect("its address");
        let mut paths = TcpPaths::default();
        paths.allow(&format!(
            "a=candidate:2 1 tcp 1509949695 {} {} typ host tcptype passive\r\n",
            addr.ip(),
            addr.port()
        ));
        paths.send(addr, b"stun");
        let (mut conn, _) = node.accept().await.expect("dialed");
        let mut framed = [0u8; 6];
        conn.read_exact(&mut framed).await.expect("a frame");
        assert_eq!(&framed, b"\0\x04stun");

        paths.stand_down();
        // The node sees the connection close.
        let mut rest = Vec::new();
        let read = conn.read_to_end(&mut rest).await.expect("closed cleanly");
        assert_eq!(read, 0);
        // More datagrams are dropped, and no connection is dialed for them.
        paths.send(addr, b"stun");
        assert_eq!(paths.dropped(), 1);
        assert!(paths.links.is_empty(), "nothing dialed");
    }
}
