//! A tiny reader for IVF, the container libvpx and ffmpeg write VP8 into.
//!
//! Layout (all little-endian): a 32-byte file header — `DKIF`, version `u16` (0), header length `u16`
//! (32), FourCC (`VP80`), width `u16`, height `u16`, time base denominator `u32` and numerator `u32`,
//! frame count `u32`, 4 unused bytes — then frames, each a 12-byte header (size `u32`, timestamp `u64`)
//! followed by `size` bytes of one encoded frame.
//!
//! The frame count in the header is advisory (writers that cannot seek leave it 0); the reader counts
//! the frames it finds. A truncated last frame is an error, not silently dropped.

use std::fmt;

/// The IVF file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfHeader {
    /// The codec, e.g. `*b"VP80"`.
    pub fourcc: [u8; 4],
    pub width: u16,
    pub height: u16,
    /// Frame timestamps are in units of `timebase_num / timebase_den` seconds.
    pub timebase_den: u32,
    pub timebase_num: u32,
    /// The frame count the writer recorded (may be 0).
    pub frame_count: u32,
}

/// One frame: its timestamp (in the header's time base) and its encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfFrame<'a> {
    pub timestamp: u64,
    pub data: &'a [u8],
}

/// Why an IVF file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IvfError {
    #[error("not an IVF file (no DKIF signature)")]
    NotIvf,
    #[error("unsupported IVF version {0}")]
    Version(u16),
    #[error("bad IVF header length {0}")]
    HeaderLength(u16),
    #[error("truncated IVF data at byte {0}")]
    Truncated(usize),
}

/// A parsed IVF file borrowing its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct IvfFile<'a> {
    pub header: IvfHeader,
    pub frames: Vec<IvfFrame<'a>>,
}

impl fmt::Debug for IvfFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IvfFile")
            .field("header", &self.header)
            .field("frames", &self.frames.len())
            .finish()
    }
}

const FILE_HEADER_LEN: usize = 32;
const FRAME_HEADER_LEN: usize = 12;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Parses a whole IVF file.
pub fn parse(bytes: &[u8]) -> Result<IvfFile<'_>, IvfError> {
    if bytes.len() < 4 || &bytes[..4] != b"DKIF" {
        return Err(IvfError::NotIvf);
    }
    if bytes.len() < FILE_HEADER_LEN {
        return Err(IvfError::Truncated(bytes.len()));
    }
    let version = u16_at(bytes, 4);
    if version != 0 {
        return Err(IvfError::Version(version));
    }
    let header_len = u16_at(bytes, 6);
    if usize::from(header_len) < FILE_HEADER_LEN || usize::from(header_len) > bytes.len() {
        return Err(IvfError::HeaderLength(header_len));
    }
    let mut fourcc = [0u8; 4];
    fourcc.copy_from_slice(&bytes[8..12]);
    let header = IvfHeader {
        fourcc,
        width: u16_at(bytes, 12),
        height: u16_at(bytes, 14),
        timebase_den: u32_at(bytes, 16),
        timebase_num: u32_at(bytes, 20),
        frame_count: u32_at(bytes, 24),
    };

    let mut frames = Vec::with_capacity(header.frame_count.min(100_000) as usize);
    let mut at = usize::from(header_len);
    while at < bytes.len() {
        if bytes.len() - at < FRAME_HEADER_LEN {
            return Err(IvfError::Truncated(at));
        }
        let size = u32_at(bytes, at) as usize;
        let timestamp = u64_at(bytes, at + 4);
        let start = at + FRAME_HEADER_LEN;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or(IvfError::Truncated(at))?;
        frames.push(IvfFrame {
            timestamp,
            data: &bytes[start..end],
        });
        at = end;
    }
    Ok(IvfFile { header, frames })
}

/// Whether an encoded VP8 frame is a keyframe: bit 0 of the first byte of the frame tag (the inverse
/// key-frame flag, RFC 6386 §9.1) is 0. An empty frame is not a keyframe.
pub fn vp8_is_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(frames: &[(u64, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"DKIF");
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&32u16.to_le_bytes());
        b.extend_from_slice(b"VP80");
        b.extend_from_slice(&320u16.to_le_bytes());
        b.extend_from_slice(&240u16.to_le_bytes());
        b.extend_from_slice(&30u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&(frames.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        for (ts, data) in frames {
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(&ts.to_le_bytes());
            b.extend_from_slice(data);
        }
        b
    }

    #[test]
    fn reads_header_and_frames() {
        let bytes = file(&[(0, &[0x10, 1, 2]), (1, &[0x11]), (2, &[])]);
        let ivf = parse(&bytes).unwrap();
        assert_eq!(&ivf.header.fourcc, b"VP80");
        assert_eq!((ivf.header.width, ivf.header.height), (320, 240));
        assert_eq!((ivf.header.timebase_num, ivf.header.timebase_den), (1, 30));
        assert_eq!(ivf.frames.len(), 3);
        assert_eq!(ivf.frames[0].data, &[0x10, 1, 2]);
        assert_eq!(ivf.frames[1].timestamp, 1);
        assert!(vp8_is_keyframe(ivf.frames[0].data));
        assert!(!vp8_is_keyframe(ivf.frames[1].data));
        assert!(!vp8_is_keyframe(ivf.frames[2].data));
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(parse(b"RIFF").unwrap_err(), IvfError::NotIvf);
        assert_eq!(parse(b"DKIF").unwrap_err(), IvfError::Truncated(4));
        let mut bytes = file(&[(0, &[0x10, 1, 2])]);
        bytes.pop();
        assert_eq!(parse(&bytes).unwrap_err(), IvfError::Truncated(32));
        let mut bytes = file(&[]);
        bytes[4] = 1;
        assert_eq!(parse(&bytes).unwrap_err(), IvfError::Version(1));
        // A frame size that would overflow must not panic.
        let mut bytes = file(&[(0, &[0x10])]);
        bytes[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&bytes).unwrap_err(), IvfError::Truncated(32));
    }
}
