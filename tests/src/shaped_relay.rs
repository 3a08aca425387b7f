//! A UDP relay that makes the node → client direction a narrow link, in user space (this machine has no
//! netem): a bottleneck of a given rate with a bounded queue in front of it (tail drop, as a router's
//! buffer drops what does not fit) and an optional one-way delay after it. The rate can be changed or
//! lifted while media flows (`ShapedRelay::set_rate`), which is what tests of bandwidth adaptation
//! need: a viewer's path narrows, then widens again.
//!
//! It relays between one client and the node's media socket like `udp_relay` (the client is
//! pointed at it by rewriting the answer's host candidate: `udp_relay::rewrite_host_candidate`).
//! Every datagram from the node is shaped — RTP, RTCP, STUN and DTLS alike, as on a real link; the
//! client → node direction (its feedback) passes at once. Rates count UDP payload bytes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The link's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The bottleneck's rate in bits per second (UDP payload); `None`: no limit (the queue drains at once).
    pub rate_bps: Option<u64>,
    /// How long a full queue takes to drain at the rate: the queue holds at most that many bytes, and a
    /// datagram that does not fit is dropped.
    pub queue: Duration,
    /// Added to every datagram's trip after the bottleneck.
    pub delay: Duration,
}

impl Shape {
    /// A link of `rate_bps` with a 200 ms queue (a typical access link's buffer) and no added delay.
    pub fn limited(rate_bps: u64) -> Self {
        Self {
            rate_bps: Some(rate_bps),
            queue: Duration::from_millis(200),
            delay: Duration::ZERO,
        }
    }

    /// No limit.
    pub fn open() -> Self {
        Self {
            rate_bps: None,
            queue: Duration::from_millis(200),
            delay: Duration::ZERO,
        }
    }

    /// Bytes the queue holds at most (at least one large datagram).
    fn queue_bytes(&self) -> usize {
        match self.rate_bps {
            Some(rate) => ((rate as f64 / 8.0 * self.queue.as_secs_f64()) as usize).max(1500),
            None => usize::MAX,
        }
    }
}

/// What the relay did with the node's datagrams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShapedCounts {
    /// Datagrams from the node delivered to the client, and their bytes.
    pub delivered: u64,
    pub delivered_bytes: u64,
    /// Datagrams from the node dropped because the queue was full.
    pub dropped: u64,
    /// Datagrams from the client forwarded to the node.
    pub to_node: u64,
}

/// A running shaped relay; dropping it stops the task.
pub struct ShapedRelay {
    addr: SocketAddr,
    shape: watch::Sender<Shape>,
    counts: Arc<Mutex<ShapedCounts>>,
    task: JoinHandle<()>,
}

impl ShapedRelay {
    /// Binds 127.0.0.1:0 and relays between the first client that sends and `node`, shaping what the
    /// node sends as `shape` says.
    pub async fn start(node: SocketAddr, shape: Shape) -> Self {
        Self::start_on(std::net::Ipv4Addr::LOCALHOST.into(), node, shape).await
    }

    /// Like [`ShapedRelay::start`], on an ephemeral port of `ip` (an address a client in another
    /// network namespace can reach, where the node's own media address is out of its reach).
    pub async fn start_on(ip: std::net::IpAddr, node: SocketAddr, shape: Shape) -> Self {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .expect("relay socket binds");
        let addr = socket.local_addr().expect("bound socket has an address");
        let counts = Arc::new(Mutex::new(ShapedCounts::default()));
        let (shape_tx, shape_rx) = watch::channel(shape);
        let task = tokio::spawn(relay(socket, node, shape_rx, counts.clone()));
        Self {
            addr,
            shape: shape_tx,
            counts,
            task,
        }
    }

    /// The address clients send to (put in the answer's candidate).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the link's rate from now on (`None`: lifts the limit); the queue and delay stay.
    pub fn set_rate(&self, rate_bps: Option<u64>) {
        self.shape.send_modify(|s| s.rate_bps = rate_bps);
    }

    /// The counters now.
    pub fn counts(&self) -> ShapedCounts {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ShapedRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How late the bottleneck may start a datagram after the previous one ended and still count from
/// that end (the relay task's wake-up latency).
const SLACK: Duration = Duration::from_millis(5);

/// The node → client link: the queue in front of the bottleneck, and what is past it on its way.
struct Link {
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// When the bottleneck is free to send the next datagram.
    free_at: Instant,
    /// Datagrams past the bottleneck with the instant they reach the client.
    in_flight: VecDeque<(Instant, Vec<u8>)>,
}

impl Link {
    /// A datagram from the node arrives at the queue: kept if it fits.
    fn arrive(&mut self, datagram: &[u8], shape: &Shape) -> bool {
        if self.queued_bytes + datagram.len() > shape.queue_bytes() {
            return false;
        }
        self.queued_bytes += datagram.len();
        self.queue.push_back(datagram.to_vec());
        true
    }

    /// Moves what the bottleneck has sent by `now` past it. Back-to-back datagrams start where the
    /// previous one ended (no drift from the task's wake-up latency); a link idle for longer than
    /// [`SLACK`] starts the next one at `now` (no burst for the time it was idle).
    fn advance(&mut self, now: Instant, shape: &Shape) {
        if shape.rate_bps.is_none() {
            // Lifted: nothing waits for the bottleneck any more.
            self.free_at = self.free_at.min(now);
        }
        while let Some(front) = self.queue.front() {
            if self.free_at > now {
                break;
            }
            let start = match now.checked_sub(SLACK) {
                Some(earliest) => self.free_at.max(earliest),
                None => self.free_at,
            };
            let serialise = match shape.rate_bps {
                Some(rate) => Duration::from_secs_f64(front.len() as f64 * 8.0 / rate as f64),
                None => Duration::ZERO,
            };
            let Some(datagram) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= datagram.len();
            self.free_at = start + serialise;
            self.in_flight
                .push_back((self.free_at + shape.delay, datagram));
        }
    }

    /// When something next happens: the bottleneck frees up with a datagram waiting, or one in flight
    /// arrives.
    fn next_event(&self) -> Option<Instant> {
        let bottleneck = (!self.queue.is_empty()).then_some(self.free_at);
        let arrival = self.in_flight.front().map(|(at, _)| *at);
        match (bottleneck, arrival) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

async fn relay(
    socket: UdpSocket,
    node: SocketAddr,
    mut shape: watch::Receiver<Shape>,
    counts: Arc<Mutex<ShapedCounts>>,
) {
    let mut buf = vec![0u8; 2048];
    let mut client: Option<SocketAddr> = None;
    let mut link = Link {
        queue: VecDeque::new(),
        queued_bytes: 0,
        free_at: Instant::now(),
        in_flight: VecDeque::new(),
    };
    loop {
        let now = Instant::now();
        let current = *shape.borrow();
        link.advance(now, &current);
        while let Some((at, _)) = link.in_flight.front() {
            if *at > now {
                break;
            }
            let Some((_, datagram)) = link.in_flight.pop_front() else {
                break;
            };
            if let Some(client) = client {
                // Loopback UDP: a send the kernel refuses is a datagram lost, as on a real path.
                let _ = socket.send_to(&datagram, client).await;
                let mut c = counts.lock().unwrap_or_else(PoisonError::into_inner);
                c.delivered += 1;
                c.delivered_bytes += datagram.len() as u64;
            }
        }
        let wake = link.next_event().unwrap_or(now + Duration::from_secs(3600));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, from) = match received {
                    Ok(received) => received,
                    // An ICMP echo of an earlier send to a closed port: the socket is fine.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => panic!("relay receive: {e}"),
                };
                if from == node {
                    if client.is_none() {
                        continue;
                    }
                    if !link.arrive(&buf[..n], &current) {
                        counts.lock().unwrap_or_else(PoisonError::into_inner).dropped += 1;
                    }
                } else {
                    client = Some(from);
                    let _ = socket.send_to(&buf[..n], node).await;
                    counts.lock().unwrap_or_else(PoisonError::into_inner).to_node += 1;
                }
            }
            changed = shape.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bottleneck_sends_at_its_rate_and_drops_what_the_queue_cannot_hold() {
        let shape = Shape {
            rate_bps: Some(80_000),
            queue: Duration::from_millis(500),
            delay: Duration::from_millis(20),
        };
        // 80 kbit/s: 10,000 bytes a second, a 5,000-byte queue.
        let t0 = Instant::now();
        let mut link = Link {
            queue: VecDeque::new(),
            queued_bytes: 0,
            free_at: t0,
            in_flight: VecDeque::new(),
        };
        let kept = (0..10)
            .filter(|_| link.arrive(&[0u8; 1000], &shape))
            .count();
        assert_eq!(kept, 5, "five fit the queue");
        link.advance(t0, &shape);
        // The first went into the bottleneck at once; it takes 100 ms to send, then 20 ms to travel.
        assert_eq!(link.in_flight.len(), 1);
        assert_eq!(link.in_flight[0].0, t0 + Duration::from_millis(120));
        for ms in [100, 200, 300] {
            link.advance(t0 + Duration::from_millis(ms), &shape);
        }
        assert_eq!(link.in_flight.len(), 4, "one every 100 ms");
        assert_eq!(link.in_flight[3].0, t0 + Duration::from_millis(420));
        // Lifted: the rest goes at once.
        link.advance(t0 + Duration::from_millis(350), &Shape::open());
        assert_eq!(link.in_flight.len(), 5);
        assert!(link.queue.is_empty());
    }
}
