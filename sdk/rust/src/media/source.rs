//! [`MediaSource`]: real encoded media to send — a VP8 clip and Opus packets parsed from files — and
//! the pacing that sends it in real time, looping forever.
//!
//! The shipped sample ([`MediaSource::sample`]) is compiled into the SDK: 2 s of ffmpeg's `testsrc`
//! pattern, 320x240 VP8 at 30 fps with a keyframe every 30 frames (`media/sample-vp8.ivf`), and 2 s of a
//! 440 Hz tone as 20 ms Opus packets (`media/sample.opus`); `media/README.md` has the ffmpeg commands.
//!
//! Pacing: video frames every 1/30 s, audio packets every 20 ms, on a schedule computed from a base
//! instant (no drift). A sender that falls more than [`MAX_LAG_INTERVALS`] intervals behind (a stalled
//! runtime) restarts the schedule at the current instant instead of bursting the backlog. RTP media
//! time follows the schedule: a frame's media time is its scheduled instant since the session's epoch,
//! in the codec clock (90 kHz video, 48 kHz audio), so pauses show as timestamp gaps, as with a camera.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::ivf::{self, IvfError};
use super::ogg::{self, OggError};

/// The shipped VP8 clip (IVF).
pub const SAMPLE_VP8_IVF: &[u8] = include_bytes!("../../media/sample-vp8.ivf");
/// The shipped VP8 clip at half and quarter size (160x120, 80x60): the lower simulcast layers.
pub const SAMPLE_VP8_IVF_MEDIUM: &[u8] = include_bytes!("../../media/sample-vp8-160x120.ivf");
pub const SAMPLE_VP8_IVF_LOW: &[u8] = include_bytes!("../../media/sample-vp8-80x60.ivf");
/// The rids of the simulcast layers a publisher sends (`MediaOptions::simulcast`), best first: the node
/// ranks layers in the order an offer lists them.
pub const SIMULCAST_RIDS: [&str; 3] = ["h", "m", "l"];
/// The shipped Opus audio (Ogg Opus).
pub const SAMPLE_OPUS_OGG: &[u8] = include_bytes!("../../media/sample.opus");

/// Video frames per second the source sends.
pub const VIDEO_FPS: u32 = 30;
/// Audio packets per second the source sends (20 ms packets).
pub const AUDIO_PACKETS_PER_SECOND: u32 = 50;
/// How far (in frame intervals) a sender may fall behind before its schedule restarts at "now".
pub const MAX_LAG_INTERVALS: u32 = 4;

/// One encoded video frame of the clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub data: Arc<[u8]>,
    /// VP8 keyframe (bit 0 of the first byte is 0).
    pub keyframe: bool,
}

/// Why media files could not be used as a source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaSourceError {
    #[error("video: {0}")]
    Ivf(#[from] IvfError),
    #[error("audio: {0}")]
    Ogg(#[from] OggError),
    #[error("video is not VP8 (fourcc {0:?})")]
    NotVp8([u8; 4]),
    #[error("video has no frames")]
    NoVideo,
    #[error("video does not start with a keyframe")]
    NoLeadingKeyframe,
    #[error("audio has no packets")]
    NoAudio,
}

/// A parsed clip: VP8 frames (with keyframe flags) and Opus packets. Immutable and cheap to share
/// (`Arc`); each session keeps its own position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSource {
    video: Vec<VideoFrame>,
    audio: Vec<Arc<[u8]>>,
    width: u16,
    height: u16,
}

impl MediaSource {
    /// The sample shipped with the SDK, parsed once per process.
    pub fn sample() -> Result<Arc<MediaSource>, MediaSourceError> {
        static SAMPLE: OnceLock<Result<Arc<MediaSource>, MediaSourceError>> = OnceLock::new();
        SAMPLE
            .get_or_init(|| Self::from_files(SAMPLE_VP8_IVF, SAMPLE_OPUS_OGG).map(Arc::new))
            .clone()
    }

    /// The shipped sample's lower simulcast layers, best first: the same pictures at 160x120 and
    /// 80x60, keyframes at the same frames (the top layer is [`sample`](Self::sample)). Parsed once.
    pub fn sample_lower_layers() -> Result<[Arc<MediaSource>; 2], MediaSourceError> {
        type Layers = Result<[Arc<MediaSource>; 2], MediaSourceError>;
        static LAYERS: OnceLock<Layers> = OnceLock::new();
        LAYERS
            .get_or_init(|| {
                Ok([
                    Arc::new(Self::from_files(SAMPLE_VP8_IVF_MEDIUM, SAMPLE_OPUS_OGG)?),
                    Arc::new(Self::from_files(SAMPLE_VP8_IVF_LOW, SAMPLE_OPUS_OGG)?),
                ])
            })
            .clone()
    }

    /// Parses a VP8 IVF file and an Ogg Opus file (20 ms packets expected: they are sent 50 a second).
    /// The video must start with a keyframe.
    pub fn from_files(vp8_ivf: &[u8], ogg_opus: &[u8]) -> Result<Self, MediaSourceError> {
        let ivf = ivf::parse(vp8_ivf)?;
        if &ivf.header.fourcc != b"VP80" {
            return Err(MediaSourceError::NotVp8(ivf.header.fourcc));
        }
        let video: Vec<VideoFrame> = ivf
            .frames
            .iter()
            .map(|f| VideoFrame {
                data: Arc::from(f.data),
                keyframe: ivf::vp8_is_keyframe(f.data),
            })
            .collect();
        match video.first() {
            None => return Err(MediaSourceError::NoVideo),
            Some(first) if !first.keyframe => return Err(MediaSourceError::NoLeadingKeyframe),
            Some(_) => {}
        }
        let opus = ogg::opus_packets(ogg_opus)?;
        if opus.packets.is_empty() {
            return Err(MediaSourceError::NoAudio);
        }
        Ok(MediaSource {
            video,
            audio: opus.packets.into_iter().map(Arc::from).collect(),
            width: ivf.header.width,
            height: ivf.header.height,
        })
    }

    pub fn video_frames(&self) -> &[VideoFrame] {
        &self.video
    }

    pub fn audio_packets(&self) -> &[Arc<[u8]>] {
        &self.audio
    }

    /// Indices of the keyframes in [`video_frames`](Self::video_frames).
    pub fn keyframe_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.video
            .iter()
            .enumerate()
            .filter(|(_, f)| f.keyframe)
            .map(|(i, _)| i)
    }

    /// The video's width and height (from the IVF header).
    pub fn video_size(&self) -> (u16, u16) {
        (self.width, self.height)
    }
}

/// A real-time schedule of `rate` events a second from a base instant: event `n` is due at
/// `base + n / rate` seconds, computed exactly (no accumulated rounding).
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    rate: u32,
    base: Instant,
    n: u64,
}

impl Pacer {
    pub(crate) fn new(rate: u32, start: Instant) -> Self {
        Pacer {
            rate: rate.max(1),
            base: start,
            n: 0,
        }
    }

    fn due_at(&self, n: u64) -> Instant {
        let nanos = u128::from(n) * 1_000_000_000 / u128::from(self.rate);
        self.base + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn interval(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.rate))
    }

    /// Restarts the schedule: the next event is due at `now`.
    pub(crate) fn reset(&mut self, now: Instant) {
        self.base = now;
        self.n = 0;
    }

    /// When the next event is due.
    pub(crate) fn next_due(&self) -> Instant {
        self.due_at(self.n)
    }

    /// If an event is due at `now`, consumes it and returns its scheduled instant. A backlog of more
    /// than [`MAX_LAG_INTERVALS`] restarts the schedule at `now` (one event now, not a burst).
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Instant> {
        let due = self.next_due();
        if now < due {
            return None;
        }
        if now - due > self.interval() * MAX_LAG_INTERVALS {
            self.reset(now);
        }
        let due = self.next_due();
        self.n += 1;
        Some(due)
    }
}

/// `at - epoch` in ticks of a `clock_hz` clock (0 if `at` is before `epoch`).
pub(crate) fn media_ticks(epoch: Instant, at: Instant, clock_hz: u32) -> u64 {
    let nanos = at.saturating_duration_since(epoch).as_nanos();
    u64::try_from(nanos * u128::from(clock_hz) / 1_000_000_000).unwrap_or(u64::MAX)
}

/// A looping position in the clip's video, paced at [`VIDEO_FPS`].
#[derive(Debug, Clone)]
pub(crate) struct VideoCursor {
    source: Arc<MediaSource>,
    pos: usize,
    pacer: Pacer,
}

impl VideoCursor {
    pub(crate) fn new(source: Arc<MediaSource>, start: Instant) -> Self {
        VideoCursor {
            source,
            pos: 0,
            pacer: Pacer::new(VIDEO_FPS, start),
        }
    }

    pub(crate) fn next_due(&self) -> Instant {
        self.pacer.next_due()
    }

    /// The frame due at `now`, if any, with its scheduled instant; the clip loops.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<(Instant, VideoFrame)> {
        let due = self.pacer.poll(now)?;
        let frames = self.source.video_frames();
        let frame = frames.get(self.pos).or(frames.first())?.clone();
        self.pos = (self.pos + 1) % frames.len().max(1);
        Some((due, frame))
    }

    /// Makes the next frame sent a keyframe: the first keyframe at or after the current position,
    /// wrapping to frame 0 (always a keyframe) at the end of the clip.
    pub(crate) fn restart_at_keyframe(&mut self) {
        let frames = self.source.video_frames();
        self.pos = frames
            .iter()
            .enumerate()
            .skip(self.pos)
            .find(|(_, f)| f.keyframe)
            .map_or(0, |(i, _)| i);
    }

    /// Resumes after a pause: the schedule restarts at `now` and from a keyframe.
    pub(crate) fn resume(&mut self, now: Instant) {
        self.pacer.reset(now);
        self.restart_at_keyframe();
    }
}

/// A looping position in the clip's audio, paced at [`AUDIO_PACKETS_PER_SECOND`].
#[derive(Debug, Clone)]
pub(crate) struct AudioCursor {
    source: Arc<MediaSource>,
    pos: usize,
    pacer: Pacer,
}

impl AudioCursor {
    pub(crate) fn new(source: Arc<MediaSource>, start: Instant) -> Self {
        AudioCursor {
            source,
            pos: 0,
            pacer: Pacer::new(AUDIO_PACKETS_PER_SECOND, start),
        }
    }

    pub(crate) fn next_due(&self) -> Instant {
        self.pacer.next_due()
    }

    pub(crate) fn poll(&mut self, now: Instant) -> Option<(Instant, Arc<[u8]>)> {
        let due = self.pacer.poll(now)?;
        let packets = self.source.audio_packets();
        let packet = packets.get(self.pos).or(packets.first())?.clone();
        self.pos = (self.pos + 1) % packets.len().max(1);
        Some((due, packet))
    }

    pub(crate) fn resume(&mut self, now: Instant) {
        self.pacer.reset(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sample_parses() {
        let ivf = ivf::parse(SAMPLE_VP8_IVF).unwrap();
        assert_eq!(&ivf.header.fourcc, b"VP80");
        assert_eq!((ivf.header.width, ivf.header.height), (320, 240));
        assert_eq!((ivf.header.timebase_num, ivf.header.timebase_den), (1, 30));
        assert_eq!(ivf.frames.len(), 60, "2 s at 30 fps");
        assert_eq!(ivf.header.frame_count, 60);
        let timestamps: Vec<u64> = ivf.frames.iter().map(|f| f.timestamp).collect();
        assert_eq!(timestamps, (0..60).collect::<Vec<_>>());

        let source = MediaSource::sample().unwrap();
        assert_eq!(source.video_size(), (320, 240));
        assert_eq!(source.video_frames().len(), 60);
        assert_eq!(
            source.keyframe_indices().collect::<Vec<_>>(),
            vec![0, 30],
            "a keyframe every 30 frames"
        );
        for (i, f) in source.video_frames().iter().enumerate() {
            if f.keyframe {
                // RFC 6386 §9.1: a keyframe's tag is followed by the start code and the dimensions.
                assert_eq!(&f.data[3..6], &[0x9d, 0x01, 0x2a], "frame {i}");
                let w = u16::from_le_bytes([f.data[6], f.data[7]]) & 0x3fff;
                let h = u16::from_le_bytes([f.data[8], f.data[9]]) & 0x3fff;
                assert_eq!((w, h), (320, 240));
            }
        }

        let opus = ogg::opus_packets(SAMPLE_OPUS_OGG).unwrap();
        assert_eq!(opus.head.channels, 1);
        assert_eq!(opus.head.input_sample_rate, 48_000);
        // 2 s of audio plus the encoder's pre-skip (312 samples) round up to 101 packets of 20 ms.
        assert_eq!(opus.head.pre_skip, 312);
        assert_eq!(opus.packets.len(), 101);
        assert_eq!(source.audio_packets().len(), 101);
        for p in &opus.packets {
            assert_eq!(ogg::opus_packet_duration_us(p), Some(20_000));
        }

        assert!(
            SAMPLE_VP8_IVF.len() + SAMPLE_OPUS_OGG.len() < 200 * 1024,
            "the sample stays small"
        );
    }

    #[test]
    fn lower_layers_are_the_same_clip_smaller() {
        let top = MediaSource::sample().unwrap();
        let layers = MediaSource::sample_lower_layers().unwrap();
        let sizes: Vec<(u16, u16)> = layers.iter().map(|l| l.video_size()).collect();
        assert_eq!(sizes, vec![(160, 120), (80, 60)]);
        for layer in &layers {
            assert_eq!(layer.video_frames().len(), top.video_frames().len());
            assert_eq!(
                layer.keyframe_indices().collect::<Vec<_>>(),
                top.keyframe_indices().collect::<Vec<_>>(),
                "keyframes at the same pictures: a switch of layer finds one as soon"
            );
        }
    }

    #[test]
    fn source_refuses_unusable_files() {
        assert!(matches!(
            MediaSource::from_files(b"nope", SAMPLE_OPUS_OGG),
            Err(MediaSourceError::Ivf(IvfError::NotIvf))
        ));
        assert!(matches!(
            MediaSource::from_files(SAMPLE_VP8_IVF, b"nope"),
            Err(MediaSourceError::Ogg(OggError::NoPage(0)))
        ));
        // The IVF header alone: no frames.
        assert_eq!(
            MediaSource::from_files(&SAMPLE_VP8_IVF[..32], SAMPLE_OPUS_OGG),
            Err(MediaSourceError::NoVideo)
        );
        // Starting at the second frame (an inter frame).
        let first_len = u32::from_le_bytes(SAMPLE_VP8_IVF[32..36].try_into().unwrap()) as usize;
        let mut skipped = SAMPLE_VP8_IVF[..32].to_vec();
        skipped.extend_from_slice(&SAMPLE_VP8_IVF[32 + 12 + first_len..]);
        assert_eq!(
            MediaSource::from_files(&skipped, SAMPLE_OPUS_OGG),
            Err(MediaSourceError::NoLeadingKeyframe)
        );
    }

    #[test]
    fn pacer_keeps_an_exact_schedule() {
        let t0 = Instant::now();
        let mut p = Pacer::new(30, t0);
        assert_eq!(p.poll(t0), Some(t0));
        assert_eq!(p.poll(t0), None, "one event per interval");
        let at = |n: u64| t0 + Duration::from_nanos(n * 1_000_000_000 / 30);
        assert_eq!(p.next_due(), at(1));
        assert_eq!(p.poll(at(1) - Duration::from_nanos(1)), None);
        // A little late: the event keeps its scheduled time, and the next one is not pushed back.
        assert_eq!(p.poll(at(1) + Duration::from_millis(5)), Some(at(1)));
        assert_eq!(p.next_due(), at(2));
        // 30 events take exactly one second (no drift from rounding 1/30 s).
        let mut p = Pacer::new(30, t0);
        let mut last = None;
        for n in 0..=30 {
            last = p.poll(at(n));
            assert!(last.is_some());
        }
        assert_eq!(last, Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn pacer_catches_up_a_little_but_never_bursts_a_long_backlog() {
        let t0 = Instant::now();
        let interval = Duration::from_millis(20);
        let mut p = Pacer::new(50, t0);
        // Two intervals late: the backlog (3 events) is sent back to back.
        let now = t0 + 2 * interval;
        assert_eq!(p.poll(now), Some(t0));
        assert_eq!(p.poll(now), Some(t0 + interval));
        assert_eq!(p.poll(now), Some(t0 + 2 * interval));
        assert_eq!(p.poll(now), None);
        // A stall of a second: one event now, the schedule restarts from now.
        let now = t0 + Duration::from_secs(1);
        assert_eq!(p.poll(now), Some(now));
        assert_eq!(p.poll(now), None);
        assert_eq!(p.next_due(), now + interval);
    }

    #[test]
    fn media_ticks_follow_the_codec_clock() {
        let t0 = Instant::now();
        assert_eq!(media_ticks(t0, t0, 90_000), 0);
        assert_eq!(media_ticks(t0, t0 + Duration::from_secs(1), 90_000), 90_000);
        assert_eq!(
            media_ticks(t0, t0 + Duration::from_nanos(1_000_000_000 / 30), 90_000),
            2999,
            "1/30 s truncated to whole ticks"
        );
        assert_eq!(media_ticks(t0, t0 + Duration::from_millis(20), 48_000), 960);
        assert_eq!(media_ticks(t0 + Duration::from_secs(1), t0, 48_000), 0);
    }

    #[test]
    fn video_loops_and_restarts_at_keyframes() {
        let source = MediaSource::sample().unwrap();
        let t0 = Instant::now();
        let mut v = VideoCursor::new(source.clone(), t0);
        let step = |n: u64| t0 + Duration::from_nanos(n * 1_000_000_000 / 30);
        let mut sent = Vec::new();
        for n in 0..65 {
            let (_, frame) = v.poll(step(n)).unwrap();
            sent.push(frame);
        }
        assert_eq!(sent[0], source.video_frames()[0]);
        assert_eq!(sent[60], source.video_frames()[0], "the clip loops");
        assert_eq!(sent[64], source.video_frames()[4]);
        assert!(sent[0].keyframe && sent[30].keyframe && sent[60].keyframe);

        // Position 5 → a keyframe request jumps to frame 30.
        v.restart_at_keyframe();
        let (_, f) = v.poll(step(65)).unwrap();
        assert_eq!(f, source.video_frames()[30]);
        // Asked again right after: the next keyframe after 31 is past the end, so frame 0.
        v.restart_at_keyframe();
        let (_, f) = v.poll(step(66)).unwrap();
        assert_eq!(f, source.video_frames()[0]);
        // Right at a keyframe: it stays.
        let mut v = VideoCursor::new(source.clone(), t0);
        v.restart_at_keyframe();
        assert_eq!(v.poll(t0).unwrap().1, source.video_frames()[0]);

        // Resume after a pause: schedule from now, from a keyframe.
        let later = t0 + Duration::from_secs(10);
        v.resume(later);
        assert_eq!(v.next_due(), later);
        let (due, f) = v.poll(later).unwrap();
        assert_eq!(due, later);
        assert!(f.keyframe);
    }

    #[test]
    fn audio_loops_at_fifty_packets_a_second() {
        let source = MediaSource::sample().unwrap();
        let t0 = Instant::now();
        let mut a = AudioCursor::new(source.clone(), t0);
        let n_packets = source.audio_packets().len() as u64;
        let mut last = None;
        for n in 0..=n_packets {
            let now = t0 + Duration::from_millis(20 * n);
            let (due, p) = a.poll(now).unwrap();
            assert_eq!(due, now);
            last = Some(p);
        }
        assert_eq!(last.unwrap(), source.audio_packets()[0], "the audio loops");
        assert_eq!(
            a.next_due(),
            t0 + Duration::from_millis(20 * (n_packets + 1))
        );
    }
}
