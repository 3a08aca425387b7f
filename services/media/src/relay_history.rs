//! The origin's side of loss repair on a node-to-node relay ([`crate::relay_node`]): the last
//! [`HISTORY`] packets sent to one edge, by relay sequence number, to resend on its NACKs. Pure.
//!
//! A ring: when full, each new packet overwrites the oldest, and a NACK for a packet no longer held is
//! not answered (counted by the caller: the edge gives it up and its viewers wait for the next
//! keyframe, as a viewer of this node does past its own line's history). The payloads are shared
//! with the workers' packets (reference-counted), so the ring costs its headers plus the payloads it
//! keeps alive (≈ 1.2 MB per edge at full-size packets).

use crate::relay_wire::RelayPacket;

/// Packets kept per edge (≈ 3 s of a 3 Mbit/s publisher's video and audio).
pub const HISTORY: usize = 1024;

/// One edge's last packets.
#[derive(Debug)]
pub struct RetransmitBuffer {
    slots: Vec<Option<RelayPacket>>,
}

impl Default for RetransmitBuffer {
    fn default() -> Self {
        Self {
            slots: vec![None; HISTORY],
        }
    }
}

impl RetransmitBuffer {
    /// Keeps a packet just sent (its `relay_seq` says where).
    pub fn keep(&mut self, packet: RelayPacket) {
        let slot = (packet.relay_seq % HISTORY as u64) as usize;
        self.slots[slot] = Some(packet);
    }

    /// The packet sent as `relay_seq`, if still held.
    pub fn get(&self, relay_seq: u64) -> Option<&RelayPacket> {
        self.slots[(relay_seq % HISTORY as u64) as usize]
            .as_ref()
            .filter(|p| p.relay_seq == relay_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Kind;
    use str0m::format::{Codec, CodecSpec, FormatParams, PayloadParams};
    use str0m::media::{Frequency, Pt};

    fn packet(relay_seq: u64) -> RelayPacket {
        let spec = CodecSpec {
            codec: Codec::Opus,
            clock_rate: Frequency::FORTY_EIGHT_KHZ,
            channels: Some(2),
            format: FormatParams::default(),
        };
        RelayPacket {
            relay_seq,
            publisher: 1,
            ssrc: 1,
            kind: Kind::Audio,
            params: PayloadParams::new(Pt::from(111), None, spec),
            seq: relay_seq,
            time: 0,
            marker: false,
            starts: false,
            retransmission: false,
            layer: 0,
            payload: vec![0; 4].into(),
            ext: Default::default(),
        }
    }

    #[test]
    fn the_last_packets_are_held_and_older_ones_are_overwritten() {
        let mut history = RetransmitBuffer::default();
        for seq in 0..(HISTORY as u64 + 10) {
            history.keep(packet(seq));
        }
        assert!(history.get(9).is_none(), "overwritten");
        assert_eq!(history.get(10).map(|p| p.relay_seq), Some(10));
        assert_eq!(
            history.get(HISTORY as u64 + 9).map(|p| p.relay_seq),
            Some(HISTORY as u64 + 9)
        );
        assert!(history.get(HISTORY as u64 + 10).is_none(), "not sent yet");
    }
}
