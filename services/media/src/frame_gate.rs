//! A pause takes effect between video frames, never inside one.
//!
//! Holding a publisher back (its host in a private call) happens at an instant that knows nothing of
//! its frames: a keyframe of ten packets may be four packets through. Stopping there leaves every
//! receiver with a frame's head and no tail. It cannot be shown, and a receiver built on str0m holds
//! everything after it waiting for the missing tail until its recovery deadline (≈ 300 ms): at the
//! resume, the picture comes that much late. So each place that holds a publisher back — the
//! origin's worker, the origin's relay, an edge's relay and its workers — lets the packets of a video
//! frame already begun through to its last one (the marker), and holds the next frame.
//!
//! Pure: each packet's stream, RTP time and marker in, pass or hold out.

use std::collections::HashMap;

use crate::protocol::Kind;

/// Streams (SSRCs) of one publisher tracked at most: a publisher sends one video stream per simulcast
/// layer. A stream past these is held at once when paused.
const MAX_STREAMS: usize = 8;

/// One stream's frame under way: the RTP time of the frame some of whose packets went on and whose
/// last one (the marker) has not. The rule "what began goes on to its end, nothing after it" serves a
/// pause ([`FrameGate`]) and a layer stopped at a step down (`crate::simulcast::LayerSelector`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFrame(Option<u32>);

impl OpenFrame {
    /// Whether a packet of RTP time `time` belongs to the frame under way.
    pub fn continued_by(self, time: u32) -> bool {
        self.0 == Some(time)
    }

    /// A packet went on: its frame is under way, unless it was the frame's last.
    pub fn went_on(&mut self, time: u32, marker: bool) {
        self.0 = (!marker).then_some(time);
    }

    /// No frame of the stream is under way (its last packet went on, or it can no longer be finished).
    pub fn close(&mut self) {
        self.0 = None;
    }
}

/// One publisher's video frames under way, by stream.
#[derive(Debug, Default)]
pub struct FrameGate {
    /// SSRC → its frame let through and not yet ended (an entry only while one is).
    open: HashMap<u32, OpenFrame>,
}

impl FrameGate {
    /// Whether a packet goes on: always when the publisher is not `paused`; when it is, only a video
    /// packet that continues a frame whose earlier packets went on.
    pub fn pass(&mut self, paused: bool, kind: Kind, ssrc: u32, time: u32, marker: bool) -> bool {
        if kind != Kind::Video {
            // Each audio packet is a frame of its own.
            return !paused;
        }
        let continues = self.open.get(&ssrc).is_some_and(|f| f.continued_by(time));
        let passes = !paused || continues;
        if passes && !marker {
            if self.open.len() < MAX_STREAMS || self.open.contains_key(&ssrc) {
                self.open.entry(ssrc).or_default().went_on(time, marker);
            }
        } else {
            // Its last packet went on, or the frame under way can no longer be finished (the next
            // one began while paused): nothing of this stream goes on until the resume.
            self.open.remove(&ssrc);
        }
        passes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_begun_before_the_pause_goes_on_to_its_last_packet_and_the_next_is_held() {
        let mut gate = FrameGate::default();
        assert!(gate.pass(false, Kind::Video, 7, 900, false));
        // Paused after the frame's first packet: its other packets go on, up to its marker.
        assert!(gate.pass(true, Kind::Video, 7, 900, false));
        assert!(gate.pass(true, Kind::Video, 7, 900, true));
        // The next frame, and any straggler of the finished one, are held.
        assert!(!gate.pass(true, Kind::Video, 7, 1800, false));
        assert!(!gate.pass(true, Kind::Video, 7, 1800, true));
        assert!(!gate.pass(true, Kind::Video, 7, 900, true));
        // Resumed: everything goes on.
        assert!(gate.pass(false, Kind::Video, 7, 2700, false));
    }

    #[test]
    fn a_frame_whose_tail_never_comes_is_given_up_at_the_next_frame() {
        let mut gate = FrameGate::default();
        assert!(gate.pass(false, Kind::Video, 7, 900, false));
        // Its tail was lost: the next frame begins, paused, and from then on nothing goes on.
        assert!(!gate.pass(true, Kind::Video, 7, 1800, false));
        assert!(!gate.pass(true, Kind::Video, 7, 900, true));
    }

    #[test]
    fn streams_are_gated_each_on_its_own_and_audio_stops_at_once() {
        let mut gate = FrameGate::default();
        assert!(gate.pass(false, Kind::Video, 1, 900, false));
        assert!(gate.pass(false, Kind::Video, 2, 900, true));
        assert!(gate.pass(false, Kind::Audio, 3, 480, false));
        assert!(
            gate.pass(true, Kind::Video, 1, 900, true),
            "layer 1's frame was under way"
        );
        assert!(
            !gate.pass(true, Kind::Video, 2, 900, false),
            "layer 2's was finished"
        );
        assert!(!gate.pass(true, Kind::Audio, 3, 480, false));
    }
}
