//! [`RateMeter`]: the bitrate of a stream of packets over the last [`WINDOW`], for the bandwidth
//! allocation ([`crate::bandwidth`]), which compares each simulcast layer's bitrate (and the audio a
//! receiver gets) with a receiver's estimated bandwidth. Pure: time is passed in.
//!
//! Why a window of whole buckets rather than a moving average: a layer's bitrate is bursty (a
//! keyframe is many times a delta frame, about once a second), and what matters is whether it fits a
//! link on average over a keyframe interval or two; a window of [`WINDOW`] holds one or two of them
//! and forgets a layer that stopped within the window, while a bucket costs one add per packet.

use std::time::{Duration, Instant};

/// One bucket's span.
const BUCKET: Duration = Duration::from_millis(250);
/// Buckets in the window.
const BUCKETS: usize = 8;
/// The span a rate is measured over (the whole buckets before the current one).
pub const WINDOW: Duration = Duration::from_millis(250 * BUCKETS as u64);

/// Bytes counted per bucket over a sliding window (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct RateMeter {
    /// The instant bucket 0 started at (the first packet's).
    epoch: Option<Instant>,
    /// (bucket number since `epoch`, bytes in it), at index `number % BUCKETS`.
    buckets: [(u64, u64); BUCKETS],
}

impl RateMeter {
    /// Counts `bytes` sent or received at `now`.
    pub fn add(&mut self, bytes: usize, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        let number = bucket_number(epoch, now);
        let slot = &mut self.buckets[(number % BUCKETS as u64) as usize];
        if slot.0 != number {
            *slot = (number, 0);
        }
        slot.1 += bytes as u64;
    }

    /// Bits per second over the whole buckets of the window before `now` (the current bucket is still
    /// filling). A meter younger than the window is averaged over the whole buckets it has; `None`
    /// before its first whole bucket.
    pub fn bits_per_second(&self, now: Instant) -> Option<u64> {
        let epoch = self.epoch?;
        let current = bucket_number(epoch, now);
        if current == 0 {
            return None;
        }
        let oldest = current.saturating_sub((WINDOW.as_millis() / BUCKET.as_millis()) as u64);
        let whole = current - oldest;
        let bytes: u64 = self
            .buckets
            .iter()
            .filter(|(n, _)| *n >= oldest && *n < current)
            .map(|(_, b)| *b)
            .sum();
        let span_ms = whole * BUCKET.as_millis() as u64;
        Some(bytes * 8 * 1000 / span_ms)
    }
}

fn bucket_number(epoch: Instant, now: Instant) -> u64 {
    (now.saturating_duration_since(epoch).as_millis() / BUCKET.as_millis()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_measures_its_bitrate() {
        let t0 = Instant::now();
        let mut meter = RateMeter::default();
        assert_eq!(meter.bits_per_second(t0), None);
        // 1,000 bytes every 10 ms: 800 kbit/s, for 3 s.
        for i in 0..300 {
            meter.add(1000, t0 + Duration::from_millis(10 * i));
        }
        assert_eq!(
            meter.bits_per_second(t0 + Duration::from_secs(3)),
            Some(800_000)
        );
    }

    #[test]
    fn a_young_meter_averages_over_what_it_has() {
        let t0 = Instant::now();
        let mut meter = RateMeter::default();
        for i in 0..50 {
            meter.add(1000, t0 + Duration::from_millis(10 * i));
        }
        assert_eq!(
            meter.bits_per_second(t0 + BUCKET / 2),
            None,
            "no whole bucket"
        );
        // Two whole buckets of 25 packets each.
        assert_eq!(meter.bits_per_second(t0 + 2 * BUCKET), Some(800_000));
    }

    #[test]
    fn a_stream_that_stops_fades_out_of_the_window() {
        let t0 = Instant::now();
        let mut meter = RateMeter::default();
        for i in 0..200 {
            meter.add(1000, t0 + Duration::from_millis(10 * i));
        }
        let stopped = t0 + Duration::from_secs(2);
        assert_eq!(meter.bits_per_second(stopped + WINDOW / 2), Some(400_000));
        assert_eq!(meter.bits_per_second(stopped + WINDOW), Some(0));
        // A bucket reused after a silence starts from zero.
        meter.add(500, stopped + 3 * WINDOW);
        assert_eq!(
            meter.bits_per_second(stopped + 3 * WINDOW + BUCKET),
            Some(500 * 8 * 1000 / 2000)
        );
    }
}
