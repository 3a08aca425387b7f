//! Rules a client's SDP must follow that str0m does not refuse but panics on: checked before str0m sees
//! an offer or an answer, so a malformed one is a typed refusal instead of a panic in the worker.

use std::collections::{BTreeMap, HashMap};

/// The first payload type the SDP gives two meanings. A payload type's meaning in a media section is its
/// `a=rtpmap` and `a=fmtp` lines together (either may be absent: a static type needs no rtpmap, a codec's
/// defaults need no fmtp); it has two when a section says two different things about it, or two sections
/// say different things. Every session the router makes bundles its media sections, and within a BUNDLE
/// group a payload type stands for one codec configuration (RFC 8843 §9.1).
///
/// str0m 0.25 asserts that instead of refusing: when two sections map one number to two of its codec
/// configurations (VP9 with `profile-id=2` in one and VP9 without an fmtp, i.e. profile 0, in the
/// other), its `accept_offer` panics ("Pt locked multiple times"). Found by the media fuzz target:
/// `fuzz/corpus/media_sdp/regression-pt-*.sdp`.
pub fn payload_type_with_two_meanings(sdp: &str) -> Option<u8> {
    // The meaning each payload type has had so far, in the sections already read.
    let mut meant: HashMap<u8, Meaning> = HashMap::new();
    // The current section's (ordered, so the same SDP always names the same payload type).
    let mut section: BTreeMap<u8, Meaning> = BTreeMap::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("m=") {
            if let Some(pt) = merge(&mut meant, std::mem::take(&mut section)) {
                return Some(pt);
            }
            continue;
        }
        let Some((name, rest)) = line.strip_prefix("a=").and_then(|a| a.split_once(':')) else {
            continue;
        };
        let (pt, value) = rest.split_once(' ').unwrap_or((rest, ""));
        let Ok(pt) = pt.parse::<u8>() else {
            continue;
        };
        if name != "rtpmap" && name != "fmtp" {
            continue;
        }
        let meaning = section.entry(pt).or_default();
        let slot = if name == "rtpmap" {
            &mut meaning.rtpmap
        } else {
            &mut meaning.fmtp
        };
        match slot {
            Some(before) if *before != value => return Some(pt),
            _ => *slot = Some(value),
        }
    }
    merge(&mut meant, section)
}

/// What one media section says a payload type is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Meaning<'a> {
    rtpmap: Option<&'a str>,
    fmtp: Option<&'a str>,
}

/// Adds a section's meanings to those of the sections before it; the first payload type they disagree on.
fn merge<'a>(
    meant: &mut HashMap<u8, Meaning<'a>>,
    section: BTreeMap<u8, Meaning<'a>>,
) -> Option<u8> {
    for (pt, meaning) in section {
        match meant.insert(pt, meaning) {
            Some(before) if before != meaning => return Some(pt),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_meaning_per_payload_type_passes_even_when_repeated() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                   a=fmtp:111 minptime=10\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 111\r\n\
                   a=rtpmap:96 VP8/90000\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10\r\n";
        assert_eq!(payload_type_with_two_meanings(sdp), None);
    }

    #[test]
    fn a_payload_type_with_two_codecs_or_two_formats_is_named() {
        let two_codecs = "m=audio 9 RTP/SAVPF 100\na=rtpmap:100 opus/48000/2\n\
                          m=video 9 RTP/SAVPF 100\na=rtpmap:100 VP8/90000\n";
        assert_eq!(payload_type_with_two_meanings(two_codecs), Some(100));
        let two_formats = "m=video 9 RTP/SAVPF 123\na=rtpmap:123 H264/90000\n\
                           a=fmtp:123 profile-level-id=42e01f\na=fmtp:123 profile-level-id=4d001f\n";
        assert_eq!(payload_type_with_two_meanings(two_formats), Some(123));
        // The same codec with its format in one section and its defaults in the other.
        let format_and_defaults = "m=audio 9 RTP/SAVPF 111\na=rtpmap:100 VP9/90000\n\
                                   m=video 9 RTP/SAVPF 100\na=rtpmap:100 VP9/90000\n\
                                   a=fmtp:100 profile-id=2\n";
        assert_eq!(
            payload_type_with_two_meanings(format_and_defaults),
            Some(100)
        );
    }

    #[test]
    fn what_browsers_and_str0m_send_passes() {
        for sdp in [
            include_str!("../../../fuzz/seeds/chrome-offer.sdp"),
            include_str!("../../../fuzz/seeds/chrome-recvonly-offer.sdp"),
            include_str!("../../../fuzz/seeds/chrome-answer.sdp"),
            include_str!("../../../fuzz/seeds/str0m-router-offer.sdp"),
            include_str!("../../../fuzz/seeds/str0m-answer-recvonly.sdp"),
        ] {
            assert_eq!(payload_type_with_two_meanings(sdp), None);
        }
    }

    #[test]
    fn what_is_not_a_payload_type_attribute_is_left_to_str0m() {
        for sdp in [
            "a=rtpmap:",
            "a=rtpmap:x VP8/90000",
            "a=fmtp:999 x",
            "a=rtpmap",
            "m=audio",
        ] {
            assert_eq!(payload_type_with_two_meanings(sdp), None, "{sdp:?}");
        }
    }
}
