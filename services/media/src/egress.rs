//! The router's outgoing datagrams: queued during a turn of the loop, sent together at its end.
//!
//! The engine hands every datagram its sessions produce to [`Egress::queue`] and calls
//! [`Egress::flush`] once the turn's sessions are drained. UDP semantics hold throughout: a datagram the
//! kernel refuses (full socket buffer) is dropped and counted, as the network would drop it.

use std::net::{SocketAddr, UdpSocket};

/// What a flush did (for the router's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Datagrams the kernel took.
    pub datagrams: u64,
    /// Their bytes (UDP payload).
    pub bytes: u64,
    /// Send system calls made.
    pub syscalls: u64,
    /// Datagrams dropped (the kernel refused them).
    pub dropped: u64,
}

/// Datagrams waiting to be sent, and the socket they go out on.
pub struct Egress {
    socket: UdpSocket,
    queued: Vec<(SocketAddr, Vec<u8>)>,
}

impl Egress {
    /// Sends on `socket` (non-blocking).
    pub fn new(socket: UdpSocket) -> Self {
        Self {
            socket,
            queued: Vec::new(),
        }
    }

    /// Queues one datagram for the next flush.
    pub fn queue(&mut self, destination: SocketAddr, contents: Vec<u8>) {
        self.queued.push((destination, contents));
    }

    /// Sends everything queued.
    pub fn flush(&mut self) -> Flushed {
        let mut flushed = Flushed::default();
        for (destination, contents) in self.queued.drain(..) {
            flushed.syscalls += 1;
            match self.socket.send_to(&contents, destination) {
                Ok(_) => {
                    flushed.datagrams += 1;
                    flushed.bytes += contents.len() as u64;
                }
                Err(_) => flushed.dropped += 1,
            }
        }
        flushed
    }
}
