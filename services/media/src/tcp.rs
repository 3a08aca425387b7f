//! ICE-TCP (RFC 6544), the fallback for clients whose UDP does not get through (firewalls that let only
//! TCP out): each worker listens on a TCP port beside its UDP one, and every session's SDP answer carries
//! a second host candidate, `tcp … tcptype passive`, naming it. A client connects (the active side) and
//! speaks RFC 4571 ([`crate::rfc4571`]) on the connection; str0m, sans IO, takes and gives datagrams
//! tagged `Protocol::Tcp` as it does UDP ones, so the engine treats a connection's peer address as it
//! treats a UDP source.
//!
//! The pieces, all on the worker's own thread and runtime:
//! - [`listen`]: the accept loop. At most [`MAX_CONNECTIONS`] connections per worker; one more is closed
//!   at once (and counted), so a flood of connections costs a file descriptor for an instant, not a task.
//! - one task per connection ([`serve`]): reads, deframes, hands each datagram to the worker loop over one
//!   bounded queue ([`INBOUND_QUEUE`]; when it is full the connection waits, and TCP pushes back on the
//!   client); writes what the worker queued for it. A frame over [`crate::rfc4571::MAX_FRAME`] closes the
//!   connection: garbage changes nothing but that connection.
//! - [`TcpLinks`], the worker loop's side: the open connections by peer address. A datagram str0m sends
//!   over TCP goes to its destination's connection through a queue of [`OUTGOING_QUEUE`] frames; when it
//!   is full (a client reading slower than media comes) the datagram is dropped and counted, as a full
//!   UDP socket buffer drops — media is loss-tolerant, and NACK/PLI recover. A connection no session took
//!   a datagram from for [`IDLE_TIMEOUT`] is closed: one that never sent a STUN request with a session's
//!   credentials, or whose session has ended (ICE consent checks come every few seconds while it lives).
//! - A connection that closes just goes: its session lives on, and ICE consent notices the lost path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

use crate::rfc4571::{self, Deframer};

/// Open connections one worker takes; more are closed as they come.
pub const MAX_CONNECTIONS: usize = 1024;
/// Frames queued for one connection before more are dropped (≈ 0.3 MB; over a second of a viewer's
/// video and audio).
pub const OUTGOING_QUEUE: usize = 256;
/// Frames from all of a worker's connections waiting for its loop.
pub const INBOUND_QUEUE: usize = 1024;
/// How long a connection lives without a datagram a session took (the first one: a STUN request with
/// a session's ufrag and password). Longer than a client's ICE consent interval (≈ 5 s), so a live
/// session's connection never hits it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the worker looks for idle connections.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How long the accept loop pauses after a failed accept (e.g. the process is out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Bytes read at a time from one connection.
const READ_BUFFER: usize = 4096;

/// What the connections tell their worker's loop.
#[derive(Debug)]
pub(crate) enum TcpEvent {
    /// A connection was accepted; `outgoing` takes its frames (already framed).
    Opened {
        id: u64,
        peer: SocketAddr,
        outgoing: mpsc::Sender<Vec<u8>>,
    },
    /// A datagram arrived on the connection from `peer`.
    Datagram { peer: SocketAddr, data: Vec<u8> },
    /// The connection ended (closed by the peer, an error, bad framing, or its worker let it go).
    Closed { id: u64, peer: SocketAddr },
}

/// What a connection event means to the engine.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathInput {
    /// A datagram from the connection with this peer.
    Datagram(SocketAddr, Vec<u8>),
    /// The connection with this peer is gone.
    Closed(SocketAddr),
}

/// Counters since the last [`TcpLinks::take_counts`] (but `open`: the connections open now).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpCounts {
    pub open: usize,
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped: u64,
    pub refused: u64,
    pub closed_idle: u64,
}

/// One open connection, as the worker loop sees it.
#[derive(Debug)]
struct Link {
    /// Tells connections apart that had the same peer address one after the other.
    id: u64,
    outgoing: mpsc::Sender<Vec<u8>>,
    /// When a session last took a datagram from it (or it opened).
    last_taken: Instant,
}

/// The worker loop's view of its ICE-TCP connections.
#[derive(Debug)]
pub(crate) struct TcpLinks {
    links: HashMap<SocketAddr, Link>,
    next_sweep: Instant,
    counts: TcpCounts,
    /// Connections the accept loop refused (it runs beside the worker loop).
    refused: Arc<AtomicU64>,
}

impl TcpLinks {
    pub(crate) fn new(now: Instant, refused: Arc<AtomicU64>) -> Self {
        Self {
            links: HashMap::new(),
            next_sweep: now + SWEEP_EVERY,
            counts: TcpCounts::default(),
            refused,
        }
    }

    /// A connection opened or closed, or a datagram came: what the engine is to hear of it.
    pub(crate) fn event(&mut self, event: TcpEvent, now: Instant) -> Option<PathInput> {
        match event {
            TcpEvent::Opened { id, peer, outgoing } => {
                self.links.insert(
                    peer,
                    Link {
                        id,
                        outgoing,
                        last_taken: now,
                    },
                );
                None
            }
            TcpEvent::Datagram { peer, data } => {
                self.counts.frames_in += 1;
                Some(PathInput::Datagram(peer, data))
            }
            TcpEvent::Closed { id, peer } => {
                // A stale close (an earlier connection from the same address) changes nothing.
                if self.links.get(&peer).is_some_and(|l| l.id == id) {
                    self.links.remove(&peer);
                    return Some(PathInput::Closed(peer));
                }
                None
            }
        }
    }

    /// A session took a datagram from `peer`: its connection is in use.
    pub(crate) fn taken(&mut self, peer: SocketAddr, now: Instant) {
        if let Some(link) = self.links.get_mut(&peer) {
            link.last_taken = now;
        }
    }

    /// Queues a datagram str0m sends over TCP on the connection to `destination`; dropped (and counted)
    /// when there is none or its queue is full.
    pub(crate) fn send(&mut self, destination: SocketAddr, datagram: &[u8]) {
        let queued = match (self.links.get(&destination), rfc4571::frame(datagram)) {
            (Some(link), Some(framed)) => link.outgoing.try_send(framed).is_ok(),
            _ => false,
        };
        if queued {
            self.counts.frames_out += 1;
        } else {
            self.counts.dropped += 1;
        }
    }

    /// Lets go of connections no session took anything from for [`IDLE_TIMEOUT`] (their tasks see
    /// their queue close and close the connection); returns their peers. Cheap when called every turn:
    /// it looks once a [`SWEEP_EVERY`].
    pub(crate) fn sweep(&mut self, now: Instant) -> Vec<SocketAddr> {
        if now < self.next_sweep {
            return Vec::new();
        }
        self.next_sweep = now + SWEEP_EVERY;
        let idle: Vec<SocketAddr> = self
            .links
            .iter()
            .filter(|(_, link)| now.duration_since(link.last_taken) >= IDLE_TIMEOUT)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &idle {
            self.links.remove(peer);
        }
        self.counts.closed_idle += idle.len() as u64;
        idle
    }

    /// The counters since the last call, and the connections open now.
    pub(crate) fn take_counts(&mut self) -> TcpCounts {
        let mut counts = std::mem::take(&mut self.counts);
        counts.open = self.links.len();
        counts.refused = self.refused.swap(0, Ordering::Relaxed);
        counts
    }
}

/// Accepts connections on `listener` until the worker's loop is gone (`events` closed).
pub(crate) async fn listen(
    listener: TcpListener,
    events: mpsc::Sender<TcpEvent>,
    refused: Arc<AtomicU64>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = events.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: the listener itself is fine; try again after a
                // pause, or the loop would spin on the same error at full speed (and log each turn).
                tracing::warn!(error = %e, "media tcp accept failed; accepting again shortly");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_RETRY) => continue,
                    () = events.closed() => return,
                }
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        // Media frames are small and latency-bound.
        let _ = stream.set_nodelay(true);
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let id = next_id;
        next_id += 1;
        if events
            .send(TcpEvent::Opened { id, peer, outgoing })
            .await
            .is_err()
        {
            return;
        }
        let events = events.clone();
        tokio::spawn(async move {
            serve(stream, peer, outgoing_rx, &events).await;
            let _ = events.send(TcpEvent::Closed { id, peer }).await;
            drop(permit);
        });
    }
}

/// One connection: datagrams read go to the worker, frames the worker queued are written, until either
/// side ends it.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    events: &mpsc::Sender<TcpEvent>,
) {
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let mut deframer = Deframer::default();
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "media tcp read failed");
                        return;
                    }
                };
                deframer.push(&buf[..n]);
                loop {
                    let data = match deframer.next_frame() {
                        Ok(Some(frame)) => frame.to_vec(),
                        Ok(None) => break,
                        Err(too_large) => {
                            tracing::debug!(%peer, len = too_large.0, "media tcp frame too large; closed");
                            return;
                        }
                    };
                    if events.send(TcpEvent::Datagram { peer, data }).await.is_err() {
                        return;
                    }
                }
            }
            framed = outgoing.recv() => {
                // `None`: the worker let the connection go (idle, or the worker stopped).
                let Some(framed) = framed else {
                    return;
                };
                if write_queued(&mut writer, framed, &mut outgoing).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Writes `first` and whatever else is queued behind it, then flushes: one write call for a burst.
async fn write_queued(
    writer: &mut BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    first: Vec<u8>,
    outgoing: &mut mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<()> {
    writer.write_all(&first).await?;
    while let Ok(more) = outgoing.try_recv() {
        writer.write_all(&more).await?;
    }
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn open(links: &mut TcpLinks, id: u64, port: u16, now: Instant) -> mpsc::Receiver<Vec<u8>> {
        let (outgoing, rx) = mpsc::channel(OUTGOING_QUEUE);
        links.event(
            TcpEvent::Opened {
                id,
                peer: peer(port),
                outgoing,
            },
            now,
        );
        rx
    }

    #[test]
    fn datagrams_go_framed_to_their_connection() {
        let now = Instant::now();
        let mut links = TcpLinks::new(now, Arc::default());
        let mut rx = open(&mut links, 0, 1000, now);
        links.send(peer(1000), b"dtls");
        assert_eq!(rx.try_recv().ok(), Some(vec![0, 4, b'd', b't', b'l', b's']));
        // No connection for this address: dropped and counted.
        links.send(peer(1001), b"lost");
        let counts = links.take_counts();
        assert_eq!((counts.frames_out, counts.dropped, counts.open), (1, 1, 1));
    }

    #[test]
    fn a_full_queue_drops_what_does_not_fit() {
        let now = Instant::now();
        let mut links = TcpLinks::new(now, Arc::default());
        let _rx = open(&mut links, 0, 1000, now);
        for _ in 0..OUTGOING_QUEUE + 3 {
            links.send(peer(1000), b"rtp");
        }
        let counts = links.take_counts();
        assert_eq!(counts.frames_out, OUTGOING_QUEUE as u64);
        assert_eq!(counts.dropped, 3);
    }

    #[test]
    fn connections_no_session_uses_are_let_go_and_used_ones_kept() {
        let now = Instant::now();
        let mut links = TcpLinks::new(now, Arc::default());
        let mut idle = open(&mut links, 0, 1000, now);
        let mut used = open(&mut links, 1, 1001, now);
        let later = now + IDLE_TIMEOUT - Duration::from_secs(1);
        links.taken(peer(1001), later);
        assert_eq!(links.sweep(now + IDLE_TIMEOUT), vec![peer(1000)]);
        // The idle one's queue is closed: its task ends and closes the connection.
        assert!(matches!(
            idle.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
        assert!(matches!(
            used.try_recv(),
            Err(mpsc::error::TryRecvError::Empty)
        ));
        let counts = links.take_counts();
        assert_eq!((counts.open, counts.closed_idle), (1, 1));
    }

    #[test]
    fn a_stale_close_does_not_end_a_newer_connection_from_the_same_address() {
        let now = Instant::now();
        let mut links = TcpLinks::new(now, Arc::default());
        let _old = open(&mut links, 0, 1000, now);
        let _new = open(&mut links, 1, 1000, now);
        let stale = links.event(
            TcpEvent::Closed {
                id: 0,
                peer: peer(1000),
            },
            now,
        );
        assert_eq!(stale, None);
        assert_eq!(links.take_counts().open, 1);
        let closed = links.event(
            TcpEvent::Closed {
                id: 1,
                peer: peer(1000),
            },
            now,
        );
        assert_eq!(closed, Some(PathInput::Closed(peer(1000))));
        assert_eq!(links.take_counts().open, 0);
    }
}
