//! Packet loss on the streams members publish to the router, as the router can honestly observe it.
//!
//! str0m tells the router, in its periodic ingress stats, how many RTP packets of a stream it received
//! so far and the fraction lost (RFC 3550 "fraction lost": lost / expected over the last receiver-report
//! interval, from gaps in the sequence numbers). It does not expose the cumulative lost count, so the
//! router estimates the packets lost since the previous stats event from the packets received since
//! then: received = expected × (1 − f), hence lost = received × f / (1 − f). The estimate is exact when
//! the loss rate is steady over a stats interval and never counts a retransmission as a loss. Loss on
//! the router's own outgoing streams is the receivers' to measure (their RTCP), not counted here.

/// Above this fraction the estimate is capped: everything lost means nothing received to scale by.
const MAX_FRACTION: f64 = 0.99;

/// Packets estimated lost on a stream between two stats events: `received` packets arrived since the
/// previous one and the last receiver report said `fraction` of the expected ones were lost.
pub fn lost_between(received: u64, fraction: f32) -> f64 {
    let f = f64::from(fraction).clamp(0.0, MAX_FRACTION);
    received as f64 * f / (1.0 - f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_loss_counts_nothing() {
        assert_eq!(lost_between(500, 0.0), 0.0);
    }

    #[test]
    fn a_tenth_lost_of_what_was_expected() {
        // 900 received of 1000 expected: 100 lost.
        assert!((lost_between(900, 0.1) - 100.0).abs() < 1e-3);
    }

    #[test]
    fn nonsense_fractions_are_clamped() {
        assert_eq!(lost_between(10, -0.5), 0.0);
        assert!(lost_between(10, 1.0).is_finite());
        assert_eq!(
            lost_between(0, 0.5),
            0.0,
            "nothing received, nothing to scale"
        );
    }
}
