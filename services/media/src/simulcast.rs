//! Simulcast: a publisher sends its video as up to [`MAX_LAYERS`] encodings of one picture at once (RTP
//! streams told apart by their rid, RFC 8851/8853), and each receiver is forwarded one of them.
//!
//! - **Ranking.** A publisher's layers are ranked by the order its offer lists their rids (`a=rid`),
//!   first = best: both SDKs offer `h`, `m`, `l` (full, half and quarter size). Layer 0 is the top.
//!   A rid past [`MAX_LAYERS`] is not forwarded. A publisher without simulcast has one layer, 0.
//! - **Which layers flow** ([`PublisherLayers`]): an encoder drops layers on its own (a camera picture
//!   too small for three, a congested uplink), and nothing in the SDP says so; a layer counts as
//!   available while its packets keep coming ([`LAYER_QUIET`]). Its latest keyframe is kept per layer
//!   ([`crate::keyframe`]), so a receiver starts at once on whichever layer it is given.
//! - **Which layer a receiver gets** ([`LayerSelector`], pure): the best available layer not above the
//!   receiver's cap (its maximum, [`target`]); when that is not the layer it is on, the switch waits
//!   for the target layer's next keyframe (asked for at once), and the layer it is on goes on until
//!   then, so the picture never stops — except after a step down for congestion
//!   ([`LayerSelector::freeze`]): the layer it is on then stops at the end of its frame under way and
//!   the picture freezes until the lower layer's keyframe, since more of a layer the path cannot carry
//!   would queue in front of that keyframe (in str0m's pacer, which sends at the fallen estimate, and
//!   in the path's own queue) and make it, and every frame after it, that much later. A receiver's
//!   line stays one stream for it whatever it is switched between: sequence numbers and RTP time are
//!   rewritten ([`crate::rewrite`]), VP8 picture ids and TL0PICIDX too ([`crate::picture`]).
//!
//! The cap is what a viewer asks for (a small window needs no full-size picture), lowered per receiver
//! by its bandwidth (the machine takes a cap, the available layers and keyframe arrivals, and says what
//! to forward; where the cap comes from is not its business). Each receiver session runs str0m's
//! send-side estimate (TWCC); [`crate::bandwidth`] turns the estimate and each layer's measured bitrate
//! (counted in [`PublisherLayers`] beside `last_packet`) into an allowance; the cap handed to
//! [`LayerSelector::decide`] is the lower-quality of that and the viewer's own (`Peer::max_layer`); and
//! an estimate below the lowest layer pauses the receiver's video (audio goes on) with an event to its
//! SDK, until the estimate allows the lowest layer again (the engine: `Engine::allocate`).

use std::time::{Duration, Instant};

use str0m::format::PayloadParams;

use crate::bandwidth::LayerRates;
use crate::frame_gate::OpenFrame;
use crate::keyframe::{KeptPacket, PublisherKeyframes};
use crate::rate::RateMeter;

/// A layer's rank among its publisher's: 0 is the best.
pub type Layer = u8;

/// Layers forwarded per publisher (`VideoLayer` in the signaling protocol has one value per layer).
pub const MAX_LAYERS: usize = 3;

/// A layer with no packet for this long is taken as stopped by its encoder. Every layer sends a frame
/// at least every few hundred milliseconds while it runs (a quarter-size layer at 7.5 fps: 133 ms).
pub const LAYER_QUIET: Duration = Duration::from_millis(500);

/// A set of layers (bit `n` = layer `n`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerSet(u8);

impl LayerSet {
    pub const NONE: LayerSet = LayerSet(0);

    /// Layers `0..count` (at most [`MAX_LAYERS`]).
    pub fn first(count: usize) -> LayerSet {
        let count = count.min(MAX_LAYERS);
        LayerSet(((1u16 << count) - 1) as u8)
    }

    pub fn with(self, layer: Layer) -> LayerSet {
        LayerSet(self.0 | Self::bit(layer))
    }

    pub fn without(self, layer: Layer) -> LayerSet {
        LayerSet(self.0 & !Self::bit(layer))
    }

    pub fn union(self, other: LayerSet) -> LayerSet {
        LayerSet(self.0 | other.0)
    }

    pub fn intersection(self, other: LayerSet) -> LayerSet {
        LayerSet(self.0 & other.0)
    }

    pub fn contains(self, layer: Layer) -> bool {
        self.0 & Self::bit(layer) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The layers, best first.
    pub fn iter(self) -> impl Iterator<Item = Layer> {
        (0..MAX_LAYERS as Layer).filter(move |l| self.contains(*l))
    }

    /// The set as one byte (bit `n` = layer `n`), for the node-to-node relay's wire.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set a byte names; bits past [`MAX_LAYERS`] are ignored.
    pub fn from_bits(bits: u8) -> LayerSet {
        LayerSet(bits).intersection(LayerSet::first(MAX_LAYERS))
    }

    fn bit(layer: Layer) -> u8 {
        if usize::from(layer) < MAX_LAYERS {
            1 << layer
        } else {
            0
        }
    }
}

/// The layer a receiver capped at `cap` should get: the best available one not above the cap; when
/// only better ones flow, the worst of those (the nearest to the cap: some picture beats none). `None`
/// when no layer flows.
pub fn target(cap: Layer, available: LayerSet) -> Option<Layer> {
    available
        .iter()
        .find(|l| *l >= cap)
        .or_else(|| available.iter().last())
}

/// What to do with one of a publisher's video packets for one receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It is on the layer the receiver gets.
    Forward,
    /// It starts a keyframe of the layer the receiver should get: forward it and switch there
    /// ([`LayerSelector::switch`], once the line took it).
    SwitchTo(Layer),
    /// Another layer's, or the receiver's target layer before its keyframe.
    Drop,
}

/// One receiver's layer of one publisher (see the module docs). Pure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerSelector {
    /// The layer forwarded to the receiver; `None` before the first keyframe.
    current: Option<Layer>,
    /// The layer a keyframe was last asked for on the receiver's behalf (the publisher's side repeats
    /// the request until one comes, so it is asked once per target).
    asked: Option<Layer>,
    /// The receiver stepped down for congestion ([`LayerSelector::freeze`]): the layer it is on stops
    /// at the end of the frame under way, until the target's keyframe switches it.
    frozen: bool,
    /// The current layer's frame forwarded whose last packet (the marker) was not yet.
    open_frame: OpenFrame,
    /// While frozen, no keyframe of the target is asked for or taken before this (the path drains).
    drain_until: Option<Instant>,
}

/// Where one video packet stands in its layer's stream of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerPacket {
    pub layer: Layer,
    /// It begins a keyframe.
    pub starts_keyframe: bool,
    /// Its RTP time (one per frame).
    pub time: u32,
    /// It is its frame's last packet.
    pub marker: bool,
}

impl LayerSelector {
    /// The layer forwarded now.
    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    /// What to do with a `packet` for a receiver capped at `cap`, while `available` layers flow, at
    /// `now`.
    pub fn decide(
        &mut self,
        cap: Layer,
        packet: LayerPacket,
        available: LayerSet,
        now: Instant,
    ) -> Decision {
        let layer = packet.layer;
        // The packet's own layer flows, whatever the bookkeeping says.
        let target = target(cap, available.with(layer));
        if self.current == Some(layer) {
            if self.frozen && target != Some(layer) && !self.open_frame.continued_by(packet.time) {
                // Frozen: the frame under way went out whole; nothing after it, keyframe or not.
                self.open_frame.close();
                return Decision::Drop;
            }
            self.frozen &= target != Some(layer);
            self.open_frame.went_on(packet.time, packet.marker);
            return Decision::Forward;
        }
        if target == Some(layer) && packet.starts_keyframe && !self.draining(now) {
            Decision::SwitchTo(layer)
        } else {
            Decision::Drop
        }
    }

    /// The receiver's path carries less than it is sent and it is to step down (its allowance fell,
    /// [`crate::bandwidth`]): the layer it is on stops at the end of the frame under way, and the
    /// picture freezes until the lower layer's keyframe switches it — a keyframe asked for and taken
    /// no sooner than `drained` (when the path's queue should have drained: the engine gives the
    /// round trip its feedback measured). Going on would put more of a layer the path cannot carry
    /// in the pacer's queue and the path's, in front of that keyframe; and a keyframe's burst sent
    /// into a full queue is cut by its drops, then completed only by resends, each a queue's round
    /// trip late. Nothing to freeze before the first keyframe.
    pub fn freeze(&mut self, drained: Instant) {
        self.frozen = self.current.is_some();
        self.drain_until = self.frozen.then_some(drained);
    }

    /// Whether the target's keyframe is held back at `now` (frozen, the path still draining).
    fn draining(&self, now: Instant) -> bool {
        self.frozen && self.drain_until.is_some_and(|t| now < t)
    }

    /// Whether the layer the receiver is on is frozen, waiting for another's keyframe.
    #[cfg(test)]
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// The receiver's video stops (its bandwidth carries no layer: [`crate::bandwidth`]): when it
    /// starts again, it is at a keyframe of its target, asked for then.
    pub fn stop(&mut self) {
        *self = Self::default();
    }

    /// The receiver's line took the keyframe that [`Decision::SwitchTo`] `layer` offered; true when it
    /// left another layer for it (a switch, not a start).
    pub fn switch(&mut self, layer: Layer) -> bool {
        self.frozen = false;
        self.open_frame.close();
        self.drain_until = None;
        self.current.replace(layer).is_some_and(|l| l != layer)
    }

    /// The layer whose keyframe the receiver waits for, if it should be on another one than it is.
    pub fn wanted(&self, cap: Layer, available: LayerSet) -> Option<Layer> {
        let target = target(cap, available)?;
        (self.current != Some(target)).then_some(target)
    }

    /// [`wanted`](Self::wanted), once per target: the layer to ask the publisher a keyframe of now
    /// (not while a frozen receiver's path drains: [`freeze`](Self::freeze)).
    pub fn keyframe_request(
        &mut self,
        cap: Layer,
        available: LayerSet,
        now: Instant,
    ) -> Option<Layer> {
        if self.draining(now) {
            return None;
        }
        let wanted = self.wanted(cap, available);
        if wanted == self.asked {
            return None;
        }
        self.asked = wanted;
        wanted
    }
}

/// What the router keeps of a publisher's video, layer by layer: when each last sent a packet (which
/// ones flow), each one's bitrate (for receivers' bandwidth allocation, [`crate::bandwidth`]), and
/// each one's latest keyframe.
#[derive(Debug, Default)]
pub struct PublisherLayers {
    keyframes: [PublisherKeyframes; MAX_LAYERS],
    last_packet: [Option<Instant>; MAX_LAYERS],
    rates: [RateMeter; MAX_LAYERS],
}

impl PublisherLayers {
    /// Looks at one of the publisher's video packets, of `layer` (in arrival order).
    pub fn observe(
        &mut self,
        layer: Layer,
        ssrc: u32,
        params: PayloadParams,
        packet: KeptPacket,
        starts: bool,
        now: Instant,
    ) {
        let Some(i) = index(layer) else {
            return;
        };
        self.last_packet[i] = Some(now);
        self.rates[i].add(packet.payload.len(), now);
        self.keyframes[i].observe(ssrc, params, packet, starts, now);
    }

    /// The layers that flow at `now`.
    pub fn available(&self, now: Instant) -> LayerSet {
        (0..MAX_LAYERS as Layer).fold(LayerSet::NONE, |set, l| {
            let recent = self.last_packet[usize::from(l)]
                .is_some_and(|t| now.saturating_duration_since(t) < LAYER_QUIET);
            if recent { set.with(l) } else { set }
        })
    }

    /// The bitrate of each layer that flows at `now` (RTP payload, bits/s); `None` for the others and
    /// for a layer measured for less than a bucket of [`crate::rate::RateMeter`].
    pub fn rates(&self, now: Instant) -> LayerRates {
        let available = self.available(now);
        std::array::from_fn(|i| {
            let flows = available.contains(i as Layer);
            flows.then(|| self.rates[i].bits_per_second(now)).flatten()
        })
    }

    /// `layer`'s latest keyframe with its SSRC and payload meaning, if fresh.
    pub fn fresh_keyframe(
        &self,
        layer: Layer,
        now: Instant,
    ) -> Option<(Vec<KeptPacket>, u32, PayloadParams)> {
        self.keyframes[index(layer)?].fresh(now)
    }
}

fn index(layer: Layer) -> Option<usize> {
    let i = usize::from(layer);
    (i < MAX_LAYERS).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HML: LayerSet = LayerSet(0b111);

    fn t0() -> Instant {
        use std::sync::OnceLock;
        static T0: OnceLock<Instant> = OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    /// A one-packet frame of `layer`.
    fn whole(layer: Layer, starts_keyframe: bool) -> LayerPacket {
        LayerPacket {
            layer,
            starts_keyframe,
            time: 0,
            marker: true,
        }
    }

    #[test]
    fn the_target_is_the_best_flowing_layer_under_the_cap() {
        assert_eq!(target(0, HML), Some(0));
        assert_eq!(target(1, HML), Some(1));
        assert_eq!(target(2, HML), Some(2));
        // The top layer stopped (a small camera picture): the next best.
        assert_eq!(target(0, LayerSet(0b110)), Some(1));
        // Capped at the low layer, but only better ones flow: the nearest to the cap.
        assert_eq!(target(2, LayerSet(0b011)), Some(1));
        assert_eq!(target(0, LayerSet::NONE), None);
        // A publisher without simulcast: its one layer whatever the cap.
        assert_eq!(target(2, LayerSet::first(1)), Some(0));
    }

    #[test]
    fn a_receiver_starts_at_a_keyframe_of_its_target() {
        let mut s = LayerSelector::default();
        assert_eq!(s.decide(0, whole(0, false), HML, t0()), Decision::Drop);
        assert_eq!(
            s.decide(0, whole(1, true), HML, t0()),
            Decision::Drop,
            "not its layer"
        );
        assert_eq!(
            s.decide(0, whole(0, true), HML, t0()),
            Decision::SwitchTo(0)
        );
        assert_eq!(s.wanted(0, HML), Some(0));
    }

    #[test]
    fn a_lower_cap_switches_at_the_lower_layers_keyframe_and_not_before() {
        let mut s = LayerSelector::default();
        assert!(!s.switch(0), "the start is not a switch");
        // Capped at the low layer: the top goes on until the low layer's keyframe.
        assert_eq!(s.wanted(2, HML), Some(2));
        assert_eq!(s.decide(2, whole(0, false), HML, t0()), Decision::Forward);
        assert_eq!(s.decide(2, whole(2, false), HML, t0()), Decision::Drop);
        assert_eq!(s.decide(2, whole(1, true), HML, t0()), Decision::Drop);
        assert_eq!(
            s.decide(2, whole(2, true), HML, t0()),
            Decision::SwitchTo(2)
        );
        assert!(s.switch(2));
        assert_eq!(s.current(), Some(2));
        assert_eq!(s.wanted(2, HML), None);
        assert_eq!(s.decide(2, whole(0, true), HML, t0()), Decision::Drop);
        assert_eq!(s.decide(2, whole(2, false), HML, t0()), Decision::Forward);
        // The cap lifted: back up at the top's keyframe.
        assert_eq!(s.wanted(0, HML), Some(0));
        assert_eq!(
            s.decide(0, whole(0, true), HML, t0()),
            Decision::SwitchTo(0)
        );
    }

    #[test]
    fn a_frozen_layer_ends_its_frame_under_way_and_sends_nothing_until_the_switch() {
        let mut s = LayerSelector::default();
        s.switch(0);
        let top = |time, marker| LayerPacket {
            layer: 0,
            starts_keyframe: false,
            time,
            marker,
        };
        assert_eq!(s.decide(0, top(900, false), HML, t0()), Decision::Forward);
        // Congested, capped at the medium layer: the frame under way goes on to its last packet.
        s.freeze(t0());
        assert!(s.is_frozen());
        assert_eq!(s.decide(1, top(900, false), HML, t0()), Decision::Forward);
        assert_eq!(s.decide(1, top(900, true), HML, t0()), Decision::Forward);
        // Then nothing of the top layer, not even its keyframe, while the medium one's is awaited.
        assert_eq!(s.decide(1, top(1800, false), HML, t0()), Decision::Drop);
        assert_eq!(s.decide(1, top(1800, true), HML, t0()), Decision::Drop);
        assert_eq!(s.decide(1, whole(0, true), HML, t0()), Decision::Drop);
        assert_eq!(s.decide(1, whole(1, false), HML, t0()), Decision::Drop);
        assert_eq!(
            s.decide(1, whole(1, true), HML, t0()),
            Decision::SwitchTo(1)
        );
        assert!(s.switch(1));
        assert!(!s.is_frozen());
        assert_eq!(s.decide(1, whole(1, false), HML, t0()), Decision::Forward);
    }

    #[test]
    fn a_frozen_layer_that_is_the_target_again_goes_on() {
        let mut s = LayerSelector::default();
        s.switch(1);
        s.freeze(t0());
        assert_eq!(s.decide(2, whole(1, false), HML, t0()), Decision::Drop);
        // The lower layer stopped flowing before its keyframe came: the layer it is on is the
        // target again, and it goes on rather than stay frozen.
        let without_low = LayerSet(0b011);
        assert_eq!(
            s.decide(2, whole(1, false), without_low, t0()),
            Decision::Forward
        );
        assert!(!s.is_frozen());
    }

    #[test]
    fn a_frozen_receiver_takes_the_lower_layers_keyframe_only_once_its_path_drained() {
        let mut s = LayerSelector::default();
        s.switch(0);
        let drained = t0() + Duration::from_millis(200);
        s.freeze(drained);
        // Nothing asked, and a keyframe of the target that comes anyway is not taken, until then.
        assert_eq!(s.keyframe_request(1, HML, t0()), None);
        assert_eq!(s.decide(1, whole(1, true), HML, t0()), Decision::Drop);
        assert_eq!(s.decide(1, whole(0, false), HML, t0()), Decision::Drop);
        assert_eq!(s.keyframe_request(1, HML, drained), Some(1));
        assert_eq!(
            s.decide(1, whole(1, true), HML, drained),
            Decision::SwitchTo(1)
        );
        assert!(s.switch(1));
        // A later switch up is not held back by an old drain.
        assert_eq!(
            s.decide(0, whole(0, true), HML, t0()),
            Decision::SwitchTo(0)
        );
    }

    #[test]
    fn nothing_freezes_before_the_first_keyframe() {
        let mut s = LayerSelector::default();
        s.freeze(t0());
        assert!(!s.is_frozen());
        assert_eq!(
            s.decide(0, whole(0, true), HML, t0()),
            Decision::SwitchTo(0)
        );
    }

    #[test]
    fn a_keyframe_is_asked_once_per_target() {
        let mut s = LayerSelector::default();
        assert_eq!(s.keyframe_request(0, HML, t0()), Some(0));
        assert_eq!(s.keyframe_request(0, HML, t0()), None, "asked already");
        s.switch(0);
        assert_eq!(s.keyframe_request(0, HML, t0()), None, "on it");
        assert_eq!(s.keyframe_request(1, HML, t0()), Some(1));
        assert_eq!(s.keyframe_request(1, HML, t0()), None);
        s.switch(1);
        assert_eq!(
            s.keyframe_request(0, HML, t0()),
            Some(0),
            "back up: asked again"
        );
    }

    #[test]
    fn a_stopped_layer_hands_over_to_the_next_one_flowing() {
        let mut s = LayerSelector::default();
        s.switch(0);
        // The encoder dropped the top layer: the medium one is wanted, taken at its keyframe.
        let without_top = LayerSet(0b110);
        assert_eq!(s.wanted(0, without_top), Some(1));
        assert_eq!(
            s.decide(0, whole(1, true), without_top, t0()),
            Decision::SwitchTo(1)
        );
    }

    #[test]
    fn layer_sets_ignore_layers_past_the_last() {
        assert_eq!(LayerSet::first(5), HML);
        assert_eq!(LayerSet::NONE.with(7), LayerSet::NONE);
        assert_eq!(HML.without(1).iter().collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn layers_flow_while_their_packets_keep_coming() {
        let t0 = Instant::now();
        let mut layers = PublisherLayers::default();
        let packet = KeptPacket {
            seq: 1,
            time: 0,
            marker: true,
            payload: std::sync::Arc::from(vec![0u8; 4]),
        };
        let params = PayloadParams::new(
            96.into(),
            None,
            str0m::format::CodecSpec {
                codec: str0m::format::Codec::Vp8,
                clock_rate: str0m::media::Frequency::NINETY_KHZ,
                channels: None,
                format: str0m::format::FormatParams::default(),
            },
        );
        layers.observe(0, 10, params, packet.clone(), false, t0);
        layers.observe(2, 30, params, packet, false, t0 + LAYER_QUIET / 2);
        assert_eq!(layers.available(t0), LayerSet(0b101));
        assert_eq!(layers.available(t0 + LAYER_QUIET), LayerSet(0b100));
        assert_eq!(layers.available(t0 + 2 * LAYER_QUIET), LayerSet::NONE);
    }
}
