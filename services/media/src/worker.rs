//! One media worker's IO loop: its UDP socket, its command queue, what other workers hand it, and its
//! clock, around the sans-IO [`Engine`]. Each turn: take one input (and whatever else of other workers'
//! packets is already waiting), end the engine's turn, send what it produced in one batched flush.

use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::egress::Egress;
use crate::engine::Engine;
use crate::protocol::Command;
use crate::relay::{Control, Forwarded};

/// Largest datagram read (WebRTC keeps packets under the path MTU).
const RECV_BUFFER: usize = 2048;
/// Packets handed over by other workers that one turn takes at most.
const RELAY_BATCH: usize = 256;
/// Upper bound on how long the loop sleeps when no session has a sooner timeout.
const IDLE_TICK: Duration = Duration::from_millis(500);

/// The queues a worker reads.
pub(crate) struct Inputs {
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub relay_packets: mpsc::Receiver<Forwarded>,
    pub relay_control: mpsc::UnboundedReceiver<Control>,
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
                    engine.datagram(source, &buf[..n]);
                }
                Err(e) => tracing::warn!(error = %e, "media socket receive failed"),
            },
            Some(control) = inputs.relay_control.recv() => {
                engine.set_time(Instant::now());
                engine.control(control);
            }
            Some(packet) = inputs.relay_packets.recv() => {
                engine.set_time(Instant::now());
                engine.relayed(packet);
                // What else is waiting goes out in the same turn.
                for _ in 0..RELAY_BATCH {
                    let Ok(packet) = inputs.relay_packets.try_recv() else {
                        break;
                    };
                    engine.relayed(packet);
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
    }
    tracing::info!("media worker stopped");
}
