//! RFC 4571 framing, sans IO: how ICE-TCP carries datagrams (STUN, DTLS, SRTP) over a byte stream —
//! each one behind a 2-byte big-endian length. [`Deframer`] turns the bytes a connection read into
//! whole datagrams, however the reads cut them; [`frame`] puts one datagram on the wire.
//!
//! RFC 4571 allows frames up to 65 535 bytes; this router takes at most [`MAX_FRAME`], the largest
//! datagram its UDP loop reads, so a TCP peer can send nothing a UDP peer could not. A longer length is
//! a peer that does not speak WebRTC (or lies): [`Deframer::next_frame`] refuses it and the connection
//! is closed, since a stream cannot be resynchronised once a length is wrong.

/// Largest datagram taken from (or sent on) a connection: what the UDP loop reads (WebRTC keeps its
/// packets under the path MTU, ≈ 1 200 bytes in str0m and browsers).
pub const MAX_FRAME: usize = 2048;
/// The length prefix.
const HEADER: usize = 2;

/// A frame announced a length over [`MAX_FRAME`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLarge(pub usize);

/// Reassembles frames from the reads of one connection.
#[derive(Debug, Default)]
pub struct Deframer {
    /// Bytes read and not yet returned as frames; consumed from `start`.
    buffer: Vec<u8>,
    start: usize,
}

impl Deframer {
    /// Adds what one read returned.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            // Keep the buffer from growing: what was returned goes before new bytes come in.
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole frame, if one is there. An oversize length is an error for good: the bytes after
    /// it cannot be trusted to start a frame.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameTooLarge> {
        let pending = &self.buffer[self.start..];
        let Some(header) = pending.get(..HEADER) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
        if len > MAX_FRAME {
            return Err(FrameTooLarge(len));
        }
        let Some(frame) = pending.get(HEADER..HEADER + len) else {
            return Ok(None);
        };
        self.start += HEADER + len;
        Ok(Some(frame))
    }

    /// Bytes held for a frame not yet complete (at most a header and [`MAX_FRAME`]).
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.start
    }
}

/// `datagram` with its length prefix; `None` when it is longer than [`MAX_FRAME`] (not sent).
pub fn frame(datagram: &[u8]) -> Option<Vec<u8>> {
    if datagram.len() > MAX_FRAME {
        return None;
    }
    let mut framed = Vec::with_capacity(HEADER + datagram.len());
    // MAX_FRAME < 65 536, so the length fits the prefix.
    framed.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
    framed.extend_from_slice(datagram);
    Some(framed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(deframer: &mut Deframer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(f) = deframer.next_frame().expect("no oversize frame") {
            out.push(f.to_vec());
        }
        out
    }

    #[test]
    fn a_frame_split_over_reads_comes_out_whole() {
        let wire = frame(b"hello stun").expect("small");
        let mut d = Deframer::default();
        // The header itself split, then the body in two.
        d.push(&wire[..1]);
        assert!(frames(&mut d).is_empty());
        d.push(&wire[1..5]);
        assert!(frames(&mut d).is_empty());
        d.push(&wire[5..]);
        assert_eq!(frames(&mut d), vec![b"hello stun".to_vec()]);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn two_frames_in_one_read_come_out_in_order() {
        let mut wire = frame(b"first").expect("small");
        wire.extend(frame(b"second").expect("small"));
        // And the start of a third.
        let third = frame(b"third").expect("small");
        wire.extend_from_slice(&third[..3]);
        let mut d = Deframer::default();
        d.push(&wire);
        assert_eq!(frames(&mut d), vec![b"first".to_vec(), b"second".to_vec()]);
        d.push(&third[3..]);
        assert_eq!(frames(&mut d), vec![b"third".to_vec()]);
    }

    #[test]
    fn an_empty_frame_is_a_frame() {
        let mut d = Deframer::default();
        d.push(&[0, 0, 0, 1, 7]);
        assert_eq!(frames(&mut d), vec![Vec::new(), vec![7]]);
    }

    #[test]
    fn an_oversize_length_is_refused_before_its_body_arrives() {
        let mut d = Deframer::default();
        let len = (MAX_FRAME + 1) as u16;
        d.push(&len.to_be_bytes());
        assert_eq!(d.next_frame(), Err(FrameTooLarge(MAX_FRAME + 1)));
        // It stays refused: the stream cannot be trusted after it.
        d.push(&[0; 8]);
        assert!(d.next_frame().is_err());
    }

    #[test]
    fn the_largest_frame_passes_and_a_larger_one_is_not_framed() {
        let big = vec![9u8; MAX_FRAME];
        let mut d = Deframer::default();
        d.push(&frame(&big).expect("at the limit"));
        assert_eq!(frames(&mut d), vec![big]);
        assert_eq!(frame(&[0; MAX_FRAME + 1]), None);
    }

    #[test]
    fn garbage_is_either_a_frame_or_refused_and_never_buffered_past_the_limit() {
        // A stream of arbitrary bytes (an HTTP request, say) reads as lengths: whatever it yields,
        // nothing is held beyond one frame.
        let mut d = Deframer::default();
        d.push(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        // "GE" = 0x4745 = 18245 > MAX_FRAME.
        assert_eq!(d.next_frame(), Err(FrameTooLarge(0x4745)));
        assert!(d.pending() <= MAX_FRAME + HEADER);
    }
}
