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
/// Inputs ready together are taken in turn at random (so neither the workers' packets nor the socket
/// can starve the other, or the timers); but before a packet or a datagram, the commands and control
/// messages already waiting are taken, since they were said first: a publisher is known (and a pause
/// applied) before its packets that follow, and an edge knows its subscription before the origin's
/// first datagram.
pub(crate) async fn run(mut node: RelayNode, socket: UdpSocket, mut inputs: RelayInputs) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let running = tokio::select! {
            command = inputs.commands.recv() => match command {
                Some(c) => node.command(c, Instant::now()),
                None => false,
            },
            Some(control) = inputs.control.recv() => {
                let running = take_said(&mut node, &mut inputs, false);
                node.control(control, Instant::now());
                running
            }
            Some(packet) = inputs.packets.recv() => {
                let running = take_said(&mut node, &mut inputs, true);
                node.forwarded(packet);
                for _ in 0..PACKET_BATCH {
                    let Ok(packet) = inputs.packets.try_recv() else {
                        break;
                    };
                    node.forwarded(packet);
                }
                running
            }
            received = socket.recv_from(&mut buf) => {
                let running = take_said(&mut node, &mut inputs, true);
                match received {
                    Ok((n, source)) => node.datagram(source, &mut buf[..n], Instant::now()),
                    Err(e) => tracing::warn!(error = %e, "relay socket receive failed"),
                }
                running
            }
            _ = tick.tick() => {
                node.tick(Instant::now());
                true
            }
        };
        let mut unsent = 0;
        for (destination, datagram) in node.take_transmits() {
            // Never waits: a full send buffer drops the datagram (the edge NACKs what it misses).
            if socket.try_send_to(&datagram, destination).is_err() {
                unsent += 1;
            }
        }
        node.count_unsent(unsent);
        if !running {
            break;
        }
    }
    tracing::info!("media relay stopped");
}

/// Takes the commands waiting, then (with `control`) the control messages waiting; false when the
/// relay is to stop.
fn take_said(node: &mut RelayNode, inputs: &mut RelayInputs, control: bool) -> bool {
    let now = Instant::now();
    while let Ok(command) = inputs.commands.try_recv() {
        if !node.command(command, now) {
            return false;
        }
    }
    if control {
        while let Ok(message) = inputs.control.try_recv() {
            node.control(message, now);
        }
    }
    true
}
