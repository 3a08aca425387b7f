//! Keyframe requests on a node-to-node relay ([`crate::relay_node`]), aggregated: however many edges
//! (at the origin) or viewers (at an edge) ask for a publisher's layer within [`WINDOW`], one request
//! goes on. Pure: time is passed in.
//!
//! The one that goes on is repeated by the publisher's worker until a keyframe arrives
//! ([`crate::peer::KEYFRAME_RETRY`]), so dropping the others loses nothing; a keyframe that is lost on
//! the way is asked for again by the next request after the window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::simulcast::{Layer, LayerSet};

/// Requests for one publisher's layer within this time after the last one that went on are absorbed
/// (the publisher's worker retries on this period too).
pub const WINDOW: Duration = crate::peer::KEYFRAME_RETRY;

/// When each (publisher, layer) was last asked for.
#[derive(Debug, Default)]
pub struct KeyframeAggregator {
    asked: HashMap<(u64, Layer), Instant>,
}

impl KeyframeAggregator {
    /// A request for `layers` of `publisher`: the layers to ask for now (the others were asked within
    /// the window).
    pub fn ask(&mut self, publisher: u64, layers: LayerSet, now: Instant) -> LayerSet {
        let mut now_asked = LayerSet::NONE;
        for layer in layers.iter() {
            let last = self.asked.get(&(publisher, layer));
            if last.is_none_or(|t| now.saturating_duration_since(*t) >= WINDOW) {
                self.asked.insert((publisher, layer), now);
                now_asked = now_asked.with(layer);
            }
        }
        now_asked
    }

    /// A publisher is gone: its entries go too (the map holds only present publishers' layers).
    pub fn forget(&mut self, publisher: u64) {
        self.asked.retain(|(p, _), _| *p != publisher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_requests_in_a_window_make_one() {
        let t0 = Instant::now();
        let mut keyframes = KeyframeAggregator::default();
        let all = LayerSet::first(3);
        assert_eq!(keyframes.ask(1, all, t0), all);
        for edge in 0..50 {
            let at = t0 + Duration::from_millis(edge);
            assert_eq!(keyframes.ask(1, all, at), LayerSet::NONE);
        }
        // Another publisher is its own.
        assert_eq!(
            keyframes.ask(2, LayerSet::NONE.with(0), t0),
            LayerSet::NONE.with(0)
        );
        // After the window: again.
        assert_eq!(
            keyframes.ask(1, LayerSet::NONE.with(1), t0 + WINDOW),
            LayerSet::NONE.with(1)
        );
    }

    #[test]
    fn layers_are_aggregated_each_on_its_own() {
        let t0 = Instant::now();
        let mut keyframes = KeyframeAggregator::default();
        assert_eq!(
            keyframes.ask(1, LayerSet::NONE.with(2), t0),
            LayerSet::NONE.with(2)
        );
        let later = t0 + WINDOW / 2;
        assert_eq!(
            keyframes.ask(1, LayerSet::first(3), later),
            LayerSet::first(2)
        );
        keyframes.forget(1);
        assert_eq!(
            keyframes.ask(1, LayerSet::first(3), later),
            LayerSet::first(3)
        );
    }
}
