//! What one receiver line carries: which publisher feeds it, and where that publisher's packets go in it.
//!
//! A receiver has one line per kind, so a line carries one publisher at a time: the one it started with,
//! until that publisher leaves, pauses or its stream restarts; then the next publisher of that kind whose
//! packet arrives takes it over. Every change of source, and every resume, starts a new epoch of the
//! line's [`Rewriter`] (and of its VP8 numbering, [`PictureIds`]); a video line starts one only at a
//! keyframe, since nothing before a keyframe can be decoded (the packets in between are not sent at
//! all). A simulcast publisher's layers are streams of their own: the engine hands the line only the
//! layer its receiver gets ([`crate::simulcast`]), and a switch of layer is a change of source here.
//! Pure: the engine says what arrived and whether the line's current publisher still feeds it.

use std::time::Instant;

use str0m::media::Pt;
use str0m::rtp::Vp8Patch;

use crate::picture::PictureIds;
use crate::protocol::Kind;
use crate::rewrite::{Rewriter, Source};

/// One receiver line's state.
#[derive(Debug)]
pub struct Feed {
    kind: Kind,
    rewriter: Rewriter,
    /// VP8 PictureID and TL0PICIDX, renumbered with each epoch like the sequence numbers.
    pictures: PictureIds,
    /// The next packet that may start an epoch starts one (video: a keyframe's first packet).
    restart: bool,
    /// Payload types of the current source mapped to the receiver's (None: the receiver has no match).
    pt_map: Vec<(Pt, Option<Pt>)>,
}

/// Why a packet is not sent on a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// Another publisher feeds the line.
    Busy,
    /// The line waits for a keyframe.
    WaitingForKeyframe,
    /// Older than the line's epoch (reordered across a switch).
    Stale,
}

impl Feed {
    pub fn new(kind: Kind, clock_rate: u32) -> Self {
        Self {
            kind,
            rewriter: Rewriter::new(clock_rate),
            pictures: PictureIds::default(),
            restart: true,
            pt_map: Vec::new(),
        }
    }

    /// The publisher stream feeding the line.
    pub fn source(&self) -> Option<Source> {
        self.rewriter.source()
    }

    /// The line starts again at the next packet that can start it (a resume, or a keyframe request the
    /// router serves by waiting for the publisher's next keyframe).
    pub fn restart(&mut self) {
        self.restart = true;
    }

    /// Where a publisher's packet goes on this line: its sequence number and RTP time there, or why it
    /// is held back. `current_feeds` says whether the line's current publisher still feeds it (present,
    /// publishing this kind, not paused); `starts_keyframe` whether the packet begins a keyframe.
    pub fn admit(
        &mut self,
        source: Source,
        seq: u64,
        time: u32,
        starts_keyframe: bool,
        current_feeds: bool,
        now: Instant,
    ) -> Result<(u64, u32), Held> {
        match self.source() {
            Some(current) if current == source => {}
            Some(current) if current.session == source.session || !current_feeds => {
                // The publisher's stream restarted, or its previous publisher is gone.
                self.restart = true;
                self.pt_map.clear();
            }
            Some(_) => return Err(Held::Busy),
            None => self.restart = true,
        }
        if self.restart {
            if self.kind == Kind::Video && !starts_keyframe {
                return Err(Held::WaitingForKeyframe);
            }
            self.rewriter.start_epoch(source, seq, time, now);
            self.pictures.new_epoch();
            self.restart = false;
        }
        self.rewriter
            .rewrite(source, seq, time, now)
            .ok_or(Held::Stale)
    }

    /// Starts the line at a kept keyframe of `source` (first packet `seq`, `time`) and then waits for the
    /// publisher's next one: the caller writes the kept packets through [`Feed::rewrite_kept`].
    pub fn start_at_kept_keyframe(&mut self, source: Source, seq: u64, time: u32, now: Instant) {
        if self.source().is_some_and(|s| s != source) {
            self.pt_map.clear();
        }
        self.rewriter.start_epoch(source, seq, time, now);
        self.pictures.new_epoch();
        self.restart = true;
    }

    /// The patch that renumbers a VP8 payload placed on this line (None: it goes as it is).
    pub fn vp8_patch(&mut self, payload: &[u8]) -> Option<Vp8Patch> {
        self.pictures.rewrite(payload)
    }

    /// Where a packet of the kept keyframe the line just started at goes.
    pub fn rewrite_kept(
        &mut self,
        source: Source,
        seq: u64,
        time: u32,
        now: Instant,
    ) -> Option<(u64, u32)> {
        self.rewriter.rewrite(source, seq, time, now)
    }

    /// The receiver's payload type for the current source's `pt`, if known; `resolve` finds it otherwise.
    pub fn map_pt(&mut self, pt: Pt, resolve: impl FnOnce() -> Option<Pt>) -> Option<Pt> {
        if let Some((_, out)) = self.pt_map.iter().find(|(p, _)| *p == pt) {
            return *out;
        }
        let out = resolve();
        self.pt_map.push((pt, out));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Source = Source {
        session: 1,
        ssrc: 10,
    };
    const GUEST: Source = Source {
        session: 2,
        ssrc: 20,
    };

    #[test]
    fn video_starts_at_a_keyframe_and_continues_without_gaps() {
        let now = Instant::now();
        let mut feed = Feed::new(Kind::Video, 90_000);
        assert_eq!(
            feed.admit(HOST, 500, 0, false, true, now),
            Err(Held::WaitingForKeyframe)
        );
        assert_eq!(feed.admit(HOST, 501, 3000, true, true, now), Ok((1, 3000)));
        assert_eq!(feed.admit(HOST, 502, 3000, false, true, now), Ok((2, 3000)));
        // Resumed after a pause: skipped until the next keyframe, then numbered on.
        feed.restart();
        assert_eq!(
            feed.admit(HOST, 900, 9000, false, true, now),
            Err(Held::WaitingForKeyframe)
        );
        assert_eq!(
            feed.admit(HOST, 901, 12_000, true, true, now),
            Ok((3, 12_000))
        );
    }

    #[test]
    fn a_line_belongs_to_one_publisher_until_it_stops_feeding() {
        let now = Instant::now();
        let mut feed = Feed::new(Kind::Audio, 48_000);
        assert_eq!(feed.admit(HOST, 7, 0, false, true, now), Ok((1, 0)));
        assert_eq!(feed.admit(GUEST, 70, 5, false, true, now), Err(Held::Busy));
        // The host left: the guest takes the line over, numbered on.
        assert_eq!(feed.admit(GUEST, 71, 5, false, false, now).unwrap().0, 2);
        assert_eq!(feed.source(), Some(GUEST));
    }

    #[test]
    fn a_kept_keyframe_starts_the_line_then_it_waits_for_a_live_one() {
        let now = Instant::now();
        let mut feed = Feed::new(Kind::Video, 90_000);
        feed.start_at_kept_keyframe(HOST, 100, 9000, now);
        assert_eq!(feed.rewrite_kept(HOST, 100, 9000, now), Some((1, 9000)));
        assert_eq!(feed.rewrite_kept(HOST, 101, 9000, now), Some((2, 9000)));
        assert_eq!(
            feed.admit(HOST, 130, 18_000, false, true, now),
            Err(Held::WaitingForKeyframe)
        );
        assert_eq!(
            feed.admit(HOST, 140, 27_000, true, true, now),
            Ok((3, 27_000))
        );
    }

    #[test]
    fn payload_types_are_resolved_once_per_source() {
        let mut feed = Feed::new(Kind::Video, 90_000);
        let mut asked = 0;
        for _ in 0..3 {
            let out = feed.map_pt(Pt::from(96), || {
                asked += 1;
                Some(Pt::from(100))
            });
            assert_eq!(out, Some(Pt::from(100)));
        }
        assert_eq!(asked, 1);
    }
}
