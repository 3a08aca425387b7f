//! A tiny reader for Ogg pages and packets, and for Opus in Ogg (RFC 7845).
//!
//! An Ogg page is: `OggS`, version (0), header type flags (1 = continues a packet, 2 = first page,
//! 4 = last page), granule position `i64`, stream serial `u32`, page sequence `u32`, CRC-32 `u32` (all
//! little-endian), the segment count, the lacing table (one byte per segment), then the segments. A
//! packet is a run of segments ending with one shorter than 255 bytes; it may continue on the next page.
//! Each page's CRC (polynomial 0x04c11db7, computed with the CRC field zeroed) is checked.
//!
//! [`opus_packets`] reads the first logical stream, checks its two header packets (`OpusHead`,
//! `OpusTags`) and returns the audio packets after them.

use std::sync::OnceLock;

/// One Ogg page, borrowing its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OggPage<'a> {
    pub header_type: u8,
    pub granule_position: i64,
    pub serial: u32,
    pub sequence: u32,
    /// Segment lengths (the lacing table).
    pub lacing: &'a [u8],
    /// The segments' bytes, back to back.
    pub body: &'a [u8],
}

impl OggPage<'_> {
    /// The page starts with the rest of a packet begun on the previous page.
    pub fn is_continuation(&self) -> bool {
        self.header_type & 0x01 != 0
    }
}

/// Why an Ogg (or Ogg Opus) file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OggError {
    #[error("no Ogg page at byte {0}")]
    NoPage(usize),
    #[error("unsupported Ogg version {version} at byte {at}")]
    Version { at: usize, version: u8 },
    #[error("truncated Ogg page at byte {0}")]
    Truncated(usize),
    #[error("bad Ogg page checksum at byte {0}")]
    Checksum(usize),
    #[error("page sequence gap in stream {serial:#x}: expected {expected}, got {got}")]
    Sequence {
        serial: u32,
        expected: u32,
        got: u32,
    },
    #[error("a packet ended unfinished")]
    UnfinishedPacket,
    #[error("not an Ogg Opus stream: {0}")]
    NotOpus(&'static str),
}

const PAGE_HEADER_LEN: usize = 27;

fn crc_table() -> &'static [u32; 256] {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *entry = r;
        }
        table
    })
}

/// The Ogg CRC-32 of `page` with its checksum field (bytes 22..26) taken as zero.
fn page_crc(page: &[u8]) -> u32 {
    let table = crc_table();
    page.iter().enumerate().fold(0u32, |crc, (i, &b)| {
        let b = if (22..26).contains(&i) { 0 } else { b };
        (crc << 8) ^ table[(((crc >> 24) as u8) ^ b) as usize]
    })
}

/// Splits a file into its pages (every logical stream), checking each page's CRC.
pub fn pages(bytes: &[u8]) -> Result<Vec<OggPage<'_>>, OggError> {
    let mut pages = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 4 || &rest[..4] != b"OggS" {
            return Err(OggError::NoPage(at));
        }
        if rest.len() < PAGE_HEADER_LEN {
            return Err(OggError::Truncated(at));
        }
        if rest[4] != 0 {
            return Err(OggError::Version {
                at,
                version: rest[4],
            });
        }
        let segments = usize::from(rest[26]);
        let lacing_end = PAGE_HEADER_LEN + segments;
        if rest.len() < lacing_end {
            return Err(OggError::Truncated(at));
        }
        let lacing = &rest[PAGE_HEADER_LEN..lacing_end];
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        let page_len = lacing_end + body_len;
        if rest.len() < page_len {
            return Err(OggError::Truncated(at));
        }
        let page = &rest[..page_len];
        let stored = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
        if page_crc(page) != stored {
            return Err(OggError::Checksum(at));
        }
        let mut granule = [0u8; 8];
        granule.copy_from_slice(&page[6..14]);
        pages.push(OggPage {
            header_type: page[5],
            granule_position: i64::from_le_bytes(granule),
            serial: u32::from_le_bytes([page[14], page[15], page[16], page[17]]),
            sequence: u32::from_le_bytes([page[18], page[19], page[20], page[21]]),
            lacing,
            body: &page[lacing_end..],
        });
        at += page_len;
    }
    Ok(pages)
}

/// The packets of the first logical stream in the file (other streams are skipped), in order.
pub fn packets(bytes: &[u8]) -> Result<Vec<Vec<u8>>, OggError> {
    let pages = pages(bytes)?;
    let Some(serial) = pages.first().map(|p| p.serial) else {
        return Ok(Vec::new());
    };
    let mut packets = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut expected_sequence = None;
    for page in pages.iter().filter(|p| p.serial == serial) {
        if let Some(expected) = expected_sequence
            && page.sequence != expected
        {
            return Err(OggError::Sequence {
                serial,
                expected,
                got: page.sequence,
            });
        }
        expected_sequence = Some(page.sequence.wrapping_add(1));
        // A packet left open by the previous page continues only on a continuation page.
        if !page.is_continuation() && current.is_some() {
            return Err(OggError::UnfinishedPacket);
        }
        let mut at = 0;
        for &len in page.lacing {
            let len = usize::from(len);
            current
                .get_or_insert_with(Vec::new)
                .extend_from_slice(&page.body[at..at + len]);
            at += len;
            if len < 255
                && let Some(packet) = current.take()
            {
                packets.push(packet);
            }
        }
    }
    if current.is_some() {
        return Err(OggError::UnfinishedPacket);
    }
    Ok(packets)
}

/// The `OpusHead` identification header (RFC 7845 §5.1), the fields a sender needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    pub channels: u8,
    /// Samples (at 48 kHz) the decoder drops at the start.
    pub pre_skip: u16,
    /// The original input's sample rate (informational; Opus always runs at 48 kHz).
    pub input_sample_rate: u32,
}

/// An Ogg Opus stream: its header and its audio packets (the two header packets skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusStream {
    pub head: OpusHead,
    pub packets: Vec<Vec<u8>>,
}

/// Reads an Ogg Opus file: checks `OpusHead` and `OpusTags`, returns the audio packets.
pub fn opus_packets(bytes: &[u8]) -> Result<OpusStream, OggError> {
    let mut packets = packets(bytes)?.into_iter();
    let head = packets.next().ok_or(OggError::NotOpus("no packets"))?;
    if head.len() < 19 || &head[..8] != b"OpusHead" {
        return Err(OggError::NotOpus("first packet is not OpusHead"));
    }
    if head[8] >> 4 != 0 {
        return Err(OggError::NotOpus("unsupported OpusHead version"));
    }
    let head = OpusHead {
        channels: head[9],
        pre_skip: u16::from_le_bytes([head[10], head[11]]),
        input_sample_rate: u32::from_le_bytes([head[12], head[13], head[14], head[15]]),
    };
    let tags = packets
        .next()
        .ok_or(OggError::NotOpus("no OpusTags packet"))?;
    if tags.len() < 8 || &tags[..8] != b"OpusTags" {
        return Err(OggError::NotOpus("second packet is not OpusTags"));
    }
    Ok(OpusStream {
        head,
        packets: packets.collect(),
    })
}

/// How much audio one Opus packet holds, in microseconds, from its TOC byte (RFC 6716 §3.1); `None` for
/// an empty or malformed packet.
pub fn opus_packet_duration_us(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame_us = match config {
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)],
        12..=15 => [10_000, 20_000][usize::from(config % 2)],
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    (frames > 0).then_some(frame_us * frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one page (CRC filled in) from segments.
    fn page(header_type: u8, serial: u32, sequence: u32, lacing: &[u8], body: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(b"OggS");
        p.push(0);
        p.push(header_type);
        p.extend_from_slice(&0i64.to_le_bytes());
        p.extend_from_slice(&serial.to_le_bytes());
        p.extend_from_slice(&sequence.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.push(lacing.len() as u8);
        p.extend_from_slice(lacing);
        p.extend_from_slice(body);
        let crc = page_crc(&p);
        p[22..26].copy_from_slice(&crc.to_le_bytes());
        p
    }

    #[test]
    fn crc_matches_the_reference_value() {
        // Ogg's CRC is CRC-32/POSIX (cksum) without its final inversion: check value 0x89a1897f.
        let table = crc_table();
        let crc = b"123456789".iter().fold(0u32, |crc, &b| {
            (crc << 8) ^ table[(((crc >> 24) as u8) ^ b) as usize]
        });
        assert_eq!(crc, 0x89a1_897f);
    }

    #[test]
    fn packets_span_segments_and_pages() {
        let big = vec![7u8; 300];
        let mut file = Vec::new();
        // Page 0: a 3-byte packet, then the first 255 bytes of a 300-byte packet.
        let mut body = vec![1, 2, 3];
        body.extend_from_slice(&big[..255]);
        file.extend(page(0x02, 9, 0, &[3, 255], &body));
        // Page 1 (continuation): the last 45 bytes, then an empty packet.
        file.extend(page(0x01, 9, 1, &[45, 0], &big[255..]));
        // Another stream's page is skipped.
        file.extend(page(0x02, 10, 0, &[1], &[42]));
        let packets = packets(&file).unwrap();
        assert_eq!(packets, vec![vec![1, 2, 3], big, vec![]]);
    }

    #[test]
    fn refuses_corruption() {
        let mut file = page(0x02, 9, 0, &[3], &[1, 2, 3]);
        file[28] ^= 0xff;
        assert_eq!(pages(&file).unwrap_err(), OggError::Checksum(0));
        let file = page(0x02, 9, 0, &[3], &[1, 2, 3]);
        assert_eq!(pages(&file[..29]).unwrap_err(), OggError::Truncated(0));
        assert_eq!(pages(b"RIFFxxxx").unwrap_err(), OggError::NoPage(0));
        // A packet left open at the end.
        let file = page(0x02, 9, 0, &[255], &[0; 255]);
        assert_eq!(packets(&file).unwrap_err(), OggError::UnfinishedPacket);
        // A missing page.
        let mut file = page(0x02, 9, 0, &[1], &[1]);
        file.extend(page(0, 9, 2, &[1], &[2]));
        assert!(matches!(
            packets(&file).unwrap_err(),
            OggError::Sequence {
                expected: 1,
                got: 2,
                ..
            }
        ));
        // Not Opus.
        let file = page(0x02, 9, 0, &[4], b"fLaC");
        assert!(matches!(
            opus_packets(&file).unwrap_err(),
            OggError::NotOpus(_)
        ));
    }

    #[test]
    fn opus_toc_durations() {
        assert_eq!(opus_packet_duration_us(&[0xf8]), Some(20_000)); // CELT FB 20 ms, 1 frame
        assert_eq!(opus_packet_duration_us(&[0x08]), Some(20_000)); // SILK NB 20 ms
        assert_eq!(opus_packet_duration_us(&[0xf9]), Some(40_000)); // 2 frames
        assert_eq!(opus_packet_duration_us(&[0xfb, 0x03]), Some(60_000)); // code 3, 3 frames
        assert_eq!(opus_packet_duration_us(&[0xfb]), None);
        assert_eq!(opus_packet_duration_us(&[]), None);
    }
}
