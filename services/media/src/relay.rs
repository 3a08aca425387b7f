//! The hand-off between workers that carry one channel (the "relay" seam).
//!
//! A channel whose sessions are on several workers ([`crate::placement`]) has publishers on some and
//! receivers on all. Each worker hands every packet of its own publishers, once, to each other worker the
//! channel is on — the payload is shared (reference-counted), not copied — and each worker fans out to its
//! own receivers, rewriting for each as it does for local publishers. Besides packets, workers tell each
//! other which publishers they carry (so receivers' lines and keyframe caches follow publishers on other
//! workers) and ask for keyframes from publishers they do not carry.
//!
//! The seam is a pair of queues per worker: packets on a bounded one (a worker that falls behind loses
//! packets, as a congested network would, counted in `relay_dropped`; the receivers' NACKs to their own
//! worker cannot bring them back, their next keyframe does), control messages on an unbounded one (they
//! come from joins, leaves and keyframe requests, never per packet). Another node can sit behind the same
//! seam: what crosses it is a publisher's identity and its RTP packets ([`crate::relay_node`]: the node's
//! relay is one more member of the mesh, after the workers).

use std::sync::Arc;
use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::rtp::ExtensionValues;
use tokio::sync::mpsc;

use crate::frame_gate::FrameGate;
use crate::peer::PeerId;
use crate::protocol::{Kind, PeerKey};
use crate::rewrite::Source;
use crate::simulcast::{Layer, LayerSet, PublisherLayers};

/// Packets a worker may hold from other workers before it drops new ones (≈ 1 s of a 1,000-viewer
/// room's publisher at 3 Mbit/s, far more than one loop turn).
pub const PACKET_QUEUE: usize = 4096;

/// A publisher's RTP packet on its way to receivers (on this worker or handed to another).
#[derive(Clone, Debug)]
pub struct Forwarded {
    pub source: Source,
    pub kind: Kind,
    /// The publisher's payload type and what it stands for.
    pub params: PayloadParams,
    pub seq: u64,
    pub time: u32,
    pub marker: bool,
    /// Whether it begins a keyframe.
    pub starts: bool,
    /// Its simulcast layer (0 without simulcast).
    pub layer: Layer,
    pub payload: Arc<[u8]>,
    pub ext: ExtensionValues,
    /// When it arrived at the router (the wall clock paired with its RTP time).
    pub at: Instant,
}

/// What workers tell each other besides packets.
#[derive(Debug)]
pub enum Control {
    /// A publisher on the sending worker publishes `kinds` (empty: it is gone).
    Publisher {
        session: PeerId,
        key: PeerKey,
        kinds: Vec<Kind>,
    },
    /// A receiver on the sending worker needs a keyframe of `layers` from `session` (on the receiving
    /// worker).
    WantKeyframe { session: PeerId, layers: LayerSet },
    /// A publisher on another node is held back (`paused`) or forwarded again: the receiving worker
    /// holds its lines, or starts them again at its next keyframe, as for a pause of its own
    /// ([`crate::relay_node`] sends it on edges).
    Paused { key: PeerKey, paused: bool },
}

/// One worker's ends of the seam, as the others hold them.
#[derive(Clone, Debug)]
pub struct RelayInbox {
    pub packets: mpsc::Sender<Forwarded>,
    pub control: mpsc::UnboundedSender<Control>,
}

/// Every worker's inbox, by worker index.
pub type Mesh = Arc<[RelayInbox]>;

/// Session ids carry their worker in the top bits, so any worker knows where a publisher lives.
const WORKER_SHIFT: u32 = 48;

/// The first session id of worker `index`.
pub fn first_session_id(index: usize) -> PeerId {
    ((index as u64) << WORKER_SHIFT) | 1
}

/// The worker a session lives on.
pub fn worker_of(session: PeerId) -> usize {
    (session >> WORKER_SHIFT) as usize
}

/// A publisher on another worker, as this worker knows it.
#[derive(Debug)]
pub struct RemotePublisher {
    pub key: PeerKey,
    pub kinds: Vec<Kind>,
    /// Its video's layers as seen in the packets handed over: which flow, their latest keyframes.
    pub video: PublisherLayers,
    /// Its video frames under way, so a pause holds it back between frames.
    pub frames: FrameGate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_name_their_worker() {
        for w in [0, 1, 7] {
            let id = first_session_id(w);
            assert_eq!(worker_of(id), w);
            assert_eq!(worker_of(id + 1_000_000), w);
        }
    }
}
