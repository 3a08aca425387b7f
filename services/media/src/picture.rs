//! VP8's own frame numbers, kept continuous for a receiver whatever its line is switched between.
//!
//! A VP8 payload descriptor (RFC 7741 §4.2) may carry a PictureID (7 or 15 bits, one more per frame)
//! and a TL0PICIDX (8 bits, one more per frame of the base temporal layer). A receiver uses them to find
//! a frame's references and to tell a lost frame from a late one. Every stream numbers its own — each
//! simulcast layer, each publisher — so forwarded unchanged, a switch of layer would show the receiver a
//! jump of thousands of pictures. They are rewritten the way sequence numbers are ([`crate::rewrite`]):
//! shifted by offsets fixed for an epoch, each epoch starting right after the last picture the receiver
//! saw. The descriptor's bytes are patched as str0m writes the packet (`RtpWrite::vp8_patch`): the
//! payload, shared by every receiver, is not copied here.
//!
//! The first epoch keeps the publisher's numbers (nothing is patched). A field the descriptor does not
//! carry is left out, and a PictureID keeps its width: a 7-bit one wraps at 128. Pure: no IO.

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// 15-bit PictureIDs wrap here.
const WIDE: u16 = 0x8000;
/// 7-bit ones here.
const NARROW: u16 = 0x80;

/// One receiver line's VP8 numbering.
#[derive(Clone, Copy, Debug, Default)]
pub struct PictureIds {
    /// Added to the publisher's PictureIDs in this epoch (mod the field's width); set by the epoch's
    /// first packet that carries one.
    picture_offset: Option<u16>,
    /// Added to the publisher's TL0PICIDX in this epoch (mod 256).
    tl0_offset: Option<u8>,
    /// The latest PictureID and TL0PICIDX written, which the next epoch continues.
    last_picture: Option<u16>,
    last_tl0: Option<u8>,
}

impl PictureIds {
    /// A new epoch starts (another source, or the same after a pause): its numbers follow the last
    /// ones written.
    pub fn new_epoch(&mut self) {
        self.picture_offset = None;
        self.tl0_offset = None;
    }

    /// The patch that puts a VP8 payload's numbers in the receiver's sequence, if it changes any.
    pub fn rewrite(&mut self, payload: &[u8]) -> Option<Vp8Patch> {
        let descriptor = Vp8Descriptor::parse(payload).ok()?;
        let (picture, tl0) = self.renumber(&descriptor, picture_id_is_wide(payload));
        if picture.is_none() && tl0.is_none() {
            return None;
        }
        let mut patch = descriptor.patch();
        if let Some(picture) = picture {
            patch = patch.picture_id(picture);
        }
        if let Some(tl0) = tl0 {
            patch = patch.tl0_pic_idx(tl0);
        }
        // The values fit their fields by construction (reduced mod their widths).
        patch.build().ok()
    }

    /// The receiver's PictureID and TL0PICIDX for a descriptor's, each only where it differs.
    fn renumber(&mut self, descriptor: &Vp8Descriptor, wide: bool) -> (Option<u16>, Option<u8>) {
        let mut picture = None;
        if let Some(id) = descriptor.picture_id() {
            let modulus = if wide { WIDE } else { NARROW };
            let last = self.last_picture;
            let offset = *self.picture_offset.get_or_insert_with(|| match last {
                Some(last) => last.wrapping_add(1).wrapping_sub(id) % WIDE,
                None => 0,
            });
            let out = id.wrapping_add(offset) % modulus;
            if last.is_none_or(|l| is_newer(out, l, modulus)) {
                self.last_picture = Some(out);
            }
            picture = (out != id).then_some(out);
        }
        let mut tl0_out = None;
        if let Some(tl0) = descriptor.tl0_pic_idx() {
            let last = self.last_tl0;
            let offset = *self.tl0_offset.get_or_insert_with(|| match last {
                Some(last) => last.wrapping_add(1).wrapping_sub(tl0),
                None => 0,
            });
            let out = tl0.wrapping_add(offset);
            if last.is_none_or(|l| is_newer(out.into(), l.into(), 0x100)) {
                self.last_tl0 = Some(out);
            }
            tl0_out = (out != tl0).then_some(out);
        }
        (picture, tl0_out)
    }
}

/// Whether the descriptor's PictureID is the 15-bit form (its M bit). Called only on a descriptor
/// that parsed with a PictureID: X set (byte 0), I set (byte 1), the ID from byte 2.
fn picture_id_is_wide(payload: &[u8]) -> bool {
    payload.get(2).is_some_and(|b| b & 0x80 != 0)
}

/// Whether `a` comes after `b` in a numbering that wraps at `modulus`.
fn is_newer(a: u16, b: u16, modulus: u16) -> bool {
    let ahead = a.wrapping_sub(b) % modulus;
    ahead != 0 && ahead < modulus / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload starting a partition, with a 15-bit PictureID and a TL0PICIDX (and TID).
    fn wide(picture: u16, tl0: u8) -> Vec<u8> {
        vec![
            0x90,
            0xe0,
            0x80 | (picture >> 8) as u8,
            picture as u8,
            tl0,
            0x00,
            0x00,
        ]
    }

    /// One with a 7-bit PictureID only.
    fn narrow(picture: u8) -> Vec<u8> {
        vec![0x90, 0x80, picture & 0x7f, 0x00]
    }

    /// The numbers a receiver sees for `payload`: the rewritten ones where they change, else its own.
    fn seen(ids: &mut PictureIds, payload: &[u8]) -> (Option<u16>, Option<u8>) {
        let patched = { *ids }.rewrite(payload).is_some();
        let d = Vp8Descriptor::parse(payload).unwrap();
        let (picture, tl0) = ids.renumber(&d, picture_id_is_wide(payload));
        assert_eq!(
            patched,
            picture.is_some() || tl0.is_some(),
            "a patch exactly when something changes"
        );
        (picture.or(d.picture_id()), tl0.or(d.tl0_pic_idx()))
    }

    #[test]
    fn the_first_epoch_is_left_alone() {
        let mut ids = PictureIds::default();
        ids.new_epoch();
        assert_eq!(seen(&mut ids, &wide(1000, 7)), (Some(1000), Some(7)));
        assert!(ids.rewrite(&wide(1001, 8)).is_none());
        assert!(ids.rewrite(&[0x10, 0x00]).is_none(), "no descriptor fields");
    }

    #[test]
    fn a_switch_continues_the_receivers_numbers() {
        let mut ids = PictureIds::default();
        seen(&mut ids, &wide(1000, 7));
        seen(&mut ids, &wide(1001, 8));
        // Another layer, numbered its own way.
        ids.new_epoch();
        let p = wide(20_000, 200);
        assert_eq!(seen(&mut ids, &p), (Some(1002), Some(9)));
        let p = wide(20_001, 201);
        assert_eq!(seen(&mut ids, &p), (Some(1003), Some(10)));
        // Back, past the wrap of both fields.
        ids.new_epoch();
        let p = wide(WIDE - 1, 255);
        assert_eq!(seen(&mut ids, &p), (Some(1004), Some(11)));
        let p = wide(0, 0);
        assert_eq!(seen(&mut ids, &p), (Some(1005), Some(12)));
    }

    #[test]
    fn a_narrow_picture_id_wraps_at_its_width() {
        let mut ids = PictureIds::default();
        seen(&mut ids, &narrow(126));
        ids.new_epoch();
        let p = narrow(3);
        assert_eq!(seen(&mut ids, &p).0, Some(127));
        let p = narrow(4);
        assert_eq!(seen(&mut ids, &p).0, Some(0));
    }
}
