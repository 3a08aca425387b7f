//! The node relay's IO loop ([`crate::relay_node`]): its UDP socket, its command queue, what the
//! workers hand it, and its clock, around the sans-IO [`RelayNode`]. Each turn: take one input (and
//! whatever else of the workers' packets is already waiting), then send what the node produced,
//! without waiting on the socket.

use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::relay::{Control, Forwarded};
use crate::relay_node::{RelayCommand, RelayNode, TICK};

/// Largest datagram read (a full-size RTP payload plus the relay's headers).
const RECV_BUFFER: usize = 2048;
/// Packets from the workers one turn takes at most.
const PACKET_BATCH: usize = 256;

/// The relay's inputs.
pub(crate) struct RelayInputs {
    pub commands: mpsc::UnboundedReceiver<RelayCommand>,
    pub packets: mpsc::Receiver<Forwarded>,
    pub control: mpsc::UnboundedReceiver<Control>,
}

/// The relay's IO loop: its socket, its queues and its clock around [`RelayNode`], until told to stop.
/// Commands and control messages go before packets and datagrams waiting at the same time, so a
/// publisher is known (and a pause applied) before its packets that follow are handled.
pub(crate) async fn run(mut node: RelayNode, socket: UdpSocket, mut inputs: RelayInputs) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            command = inputs.commands.recv() => match command {
                Some(c) => if !node.command(c, Instant::now()) {
                    break;
                },
                None => break,
            },
            Some(control) = inputs.control.recv() => node.control(control, Instant::now()),
            Some(packet) = inputs.packets.recv() => {
                node.forwarded(packet);
                for _ in 0..PACKET_BATCH {
                    let Ok(packet) = inputs.packets.try_recv() else {
                        break;
                    };
                    node.forwarded(packet);
                }
            }
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => node.datagram(source, &mut buf[..n], Instant::now()),
                Err(e) => tracing::warn!(error = %e, "relay socket receive failed"),
            },
            _ = tick.tick() => node.tick(Instant::now()),
        }
        let mut unsent = 0;
        for (destination, datagram) in node.take_transmits() {
            // Never waits: a full send buffer drops the datagram (the edge NACKs what it misses).
            if socket.try_send_to(&datagram, destination).is_err() {
                unsent += 1;
            }
        }
        node.count_unsent(unsent);
    }
    tracing::info!("media relay stopped");
}
