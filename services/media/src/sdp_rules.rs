//! Rules a client's SDP must follow that str0m does not refuse but panics on: checked before str0m sees
//! an offer or an answer, so a malformed one is a typed refusal instead of a panic in the worker.

use std::collections::HashMap;

/// The first payload type the SDP gives two meanings: two `a=rtpmap` (or two `a=fmtp`) lines for the
/// same number that say different things, in one media section or in two. Every session the router makes
/// bundles its media sections, and within a BUNDLE group a payload type stands for one codec
/// configuration (RFC 8843 §9.1). str0m 0.25 asserts that instead of refusing: when two sections map the
/// same number to different codec configurations, its `accept_offer` panics ("Pt locked multiple
/// times"), found by the media fuzz target (`fuzz/corpus/media_sdp/regression-pt-two-meanings.sdp`).
pub fn payload_type_with_two_meanings(sdp: &str) -> Option<u8> {
    // What each payload type was said to be, by attribute: ("rtpmap" | "fmtp", pt) → value.
    let mut said: HashMap<(&str, u8), &str> = HashMap::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        let Some(attribute) = line.strip_prefix("a=") else {
            continue;
        };
        let Some((name, rest)) = attribute.split_once(':') else {
            continue;
        };
        if name != "rtpmap" && name != "fmtp" {
            continue;
        }
        let (pt, value) = rest.split_once(' ').unwrap_or((rest, ""));
        let Ok(pt) = pt.parse::<u8>() else {
            continue;
        };
        match said.insert((name, pt), value) {
            Some(before) if before != value => return Some(pt),
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
