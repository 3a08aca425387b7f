//! One media worker's IO loop: its UDP socket, its ICE-TCP connections ([`crate::tcp`]), its command
//! queue, what other workers hand it, and its clock, around the sans-IO [`Engine`]. Each turn: take one
//! input (and whatever else of other workers' packets, or of TCP datagrams, is already waiting), end the
//! engine's turn, send what it produced: UDP in one batched flush, TCP to each connection's queue.

use std::time::{Duration, Instant};

use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::egress::Egress;
use crate::engine::Engine;
use crate::protocol::Command;
use crate::relay::{Control, Forwarded};
use crate::tcp::{PathInput, TcpEvent, TcpLinks};

/// Largest datagram read (WebRTC keeps packets under the path MTU).
const RECV_BUFFER: usize = 2048;
/// Packets handed over by other workers (or datagrams from TCP connections) that one turn takes at most.
const RELAY_BATCH: usize = 256;
/// Upper bound on how long the loop sleeps when no session has a sooner timeout.
const IDLE_TICK: Duration = Duration::from_millis(500);

/// The queues a worker reads.
pub(crate) struct Inputs {
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub relay_packets: mpsc::Receiver<Forwarded>,
    pub relay_control: mpsc::UnboundedReceiver<Control>,
    /// What the worker's ICE-TCP connections say (closed at once when the worker has no TCP port).
    pub tcp_events: mpsc::Receiver<TcpEvent>,
    /// The worker loop's side of those connections.
    pub tcp_links: TcpLinks,
}

/// Runs `engine` on `socket` (with `sender`, a clone of it, for batched sends) until told to stop.
pub(crate) async fn run(
    mut engine: Engine,
    socket: UdpSocket,
    sender: std::net::UdpSocket,
    mut inputs: Inputs,
) {
    let mut egress = Egress::new(sender);
    let mut buf = vec![0u8; RECV_BUFFER];
    let links = &mut inputs.tcp_links;
    loop {
        let idle = Instant::now() + IDLE_TICK;
        let deadline = engine.next_deadline().map_or(idle, |t| t.min(idle));
        let mut received = None;
        tokio::select! {
            command = inputs.commands.recv() => {
                engine.set_time(Instant::now());
                match command {
                    Some(c) => if !engine.command(c) {
                        break;
                    },
                    None => break,
                }
            }
            datagram = socket.recv_from(&mut buf) => match datagram {
                Ok((n, source)) => {
                    engine.set_time(Instant::now());
                    received = Some(n);
                    engine.datagram(Protocol::Udp, source, &buf[..n]);
                }
                Err(e) => tracing::warn!(error = %e, "media socket receive failed"),
            },
            Some(control) = inputs.relay_control.recv() => {
                engine.set_time(Instant::now());
                // Commands waiting were given before this was sent (the node's relay answers the
                // handle's commands: a channel closed, then its publishers announced again for its next
                // session), so they go first.
                if !take_commands(&mut engine, &mut inputs.commands) {
                    break;
                }
                engine.control(control);
            }
            Some(packet) = inputs.relay_packets.recv() => {
                engine.set_time(Instant::now());
                // What was said before the packet was sent applies to it (a publisher announced, a
                // pause lifted): the two queues are separate, so the control one is looked at first.
                while let Ok(control) = inputs.relay_control.try_recv() {
                    engine.control(control);
                }
                engine.relayed(packet);
                // What else is waiting goes out in the same turn.
                for _ in 0..RELAY_BATCH {
                    let Ok(packet) = inputs.relay_packets.try_recv() else {
                        break;
                    };
                    engine.relayed(packet);
                }
            }
            Some(event) = inputs.tcp_events.recv() => {
                let now = Instant::now();
                engine.set_time(now);
                tcp_event(&mut engine, links, event, now);
                for _ in 0..RELAY_BATCH {
                    let Ok(event) = inputs.tcp_events.try_recv() else {
                        break;
                    };
                    tcp_event(&mut engine, links, event, now);
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => engine.set_time(Instant::now()),
        }
        engine.end_turn();
        for (destination, contents) in engine.take_transmits() {
            egress.queue(destination, contents);
        }
        let flushed = egress.flush();
        engine.count_io(received, flushed);
        for (destination, contents) in engine.take_tcp_transmits() {
            links.send(destination, &contents);
        }
        for idle in links.sweep(Instant::now()) {
            engine.path_closed(Protocol::Tcp, idle);
        }
        engine.count_tcp(links.take_counts());
    }
    tracing::info!("media worker stopped");
}

/// Carries out the commands waiting now; false when the engine is to stop.
fn take_commands(engine: &mut Engine, commands: &mut mpsc::UnboundedReceiver<Command>) -> bool {
    while let Ok(command) = commands.try_recv() {
        if !engine.command(command) {
            return false;
        }
    }
    true
}

/// One event of the TCP connections: a datagram goes to the engine (a connection a session took it
/// from stays open); a connection gone stops routing to its session.
fn tcp_event(engine: &mut Engine, links: &mut TcpLinks, event: TcpEvent, now: Instant) {
    match links.event(event, now) {
        Some(PathInput::Datagram(peer, data)) if engine.datagram(Protocol::Tcp, peer, &data) => {
            links.taken(peer, now);
        }
        Some(PathInput::Closed(peer)) => engine.path_closed(Protocol::Tcp, peer),
        // A datagram no session took, or nothing for the engine.
        Some(PathInput::Datagram(..)) | None => {}
    }
}
