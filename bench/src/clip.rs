//! The clip the fan-out broadcaster sends: the SDK's shipped sample with every VP8 frame made `scale`
//! times its size (its bytes repeated), so one publisher reaches the bitrate of a real live room.
//!
//! The sample is 320x240 VP8 at ≈ 210 kbit/s plus ≈ 33 kbit/s of Opus; a live room's camera is ≈ 1.5
//! Mbit/s, and a router's cost follows packets, not pixels: a frame `scale` times larger is `scale`
//! times the RTP packets to protect and send per receiver. Nothing on the path decodes VP8 (the router
//! forwards frames, the bench client only reads the keyframe bit of the first byte, which is kept), so
//! repeated bytes are as good as real ones here. Audio stays as it is.

use std::sync::Arc;

use anyhow::Context as _;
use showcall_sdk::MediaSource;
use showcall_sdk::media::source::{
    AUDIO_PACKETS_PER_SECOND, SAMPLE_OPUS_OGG, SAMPLE_VP8_IVF, VIDEO_FPS,
};

/// The sample with every video frame `scale` (≥ 1) times its size.
pub(super) fn scaled(scale: usize) -> anyhow::Result<Arc<MediaSource>> {
    let scale = scale.max(1);
    let ivf = showcall_sdk::media::ivf::parse(SAMPLE_VP8_IVF).context("sample IVF")?;
    // Keep the 32-byte file header as it is; rewrite every frame (12-byte header + data).
    let mut out = SAMPLE_VP8_IVF[..32].to_vec();
    for frame in &ivf.frames {
        let data = frame.data.repeat(scale);
        out.extend_from_slice(&u32::try_from(data.len())?.to_le_bytes());
        out.extend_from_slice(&frame.timestamp.to_le_bytes());
        out.extend_from_slice(&data);
    }
    Ok(Arc::new(
        MediaSource::from_files(&out, SAMPLE_OPUS_OGG).context("scaled clip")?,
    ))
}

/// Payload bitrates of a clip sent in real time (VP8 frames at `VIDEO_FPS`, Opus packets at
/// `AUDIO_PACKETS_PER_SECOND`), kbit/s, before RTP/SRTP overhead: (video, audio).
pub(super) fn kbit_per_second(source: &MediaSource) -> (f64, f64) {
    let mean = |sizes: &mut dyn Iterator<Item = usize>, n: usize| {
        sizes.sum::<usize>() as f64 / n.max(1) as f64
    };
    let video = mean(
        &mut source.video_frames().iter().map(|f| f.data.len()),
        source.video_frames().len(),
    );
    let audio = mean(
        &mut source.audio_packets().iter().map(|p| p.len()),
        source.audio_packets().len(),
    );
    (
        video * 8.0 * f64::from(VIDEO_FPS) / 1000.0,
        audio * 8.0 * f64::from(AUDIO_PACKETS_PER_SECOND) / 1000.0,
    )
}
