//! An [`RtpProbe`] connected directly to a publishing [`MediaPeer`] — no node: the probe's receive-only
//! offer is answered by the peer, which then sends the shipped VP8/Opus over real UDP on 127.0.0.1. Proves
//! the probe negotiates, connects (ICE + DTLS + SRTP in str0m's RTP mode) and records every packet on
//! the wire: both kinds, in sequence, within its bound.
//!
//! Waits are bounded by a generous guard (a deadlock guard, not a speed assertion).

use std::time::Duration;

use showcall_sdk::{MediaOptions, MediaPeer, ProbeOptions, ProbePeer, TrackKind};

const GUARD: Duration = Duration::from_secs(20);

async fn guarded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: nothing within {GUARD:?}"),
    }
}

#[tokio::test]
async fn a_probe_records_every_packet_of_both_kinds_in_sequence_within_its_bound() {
    let keep = 64;
    let mut probe = ProbePeer::new(ProbeOptions {
        keep_packets: keep,
        ..ProbeOptions::default()
    })
    .unwrap();
    let mut sender = MediaPeer::new(MediaOptions::default()).unwrap();
    let offer = probe.create_offer().unwrap();
    let answer = sender.accept_offer(&offer).unwrap();
    probe.accept_answer(&answer).unwrap();
    let probe = probe.start().unwrap();
    let sender = sender.start().unwrap();

    let stats = guarded("probe connected", probe.wait_connected())
        .await
        .unwrap();
    assert!(stats.receiving_audio && stats.receiving_video, "{stats:?}");
    guarded("video packets", probe.wait_packets(TrackKind::Video, 200))
        .await
        .unwrap();
    guarded("audio packets", probe.wait_packets(TrackKind::Audio, 50))
        .await
        .unwrap();
    assert_eq!(
        sender.stats().video_frames_in + sender.stats().audio_frames_in,
        0,
        "the probe sends no media"
    );

    // One stream per kind, each continuous from its first packet, and every packet counted.
    let streams = probe.streams();
    let stats = probe.stats();
    for kind in [TrackKind::Audio, TrackKind::Video] {
        let of_kind: Vec<_> = streams.iter().filter(|s| s.kind == kind).collect();
        assert_eq!(of_kind.len(), 1, "one {kind:?} stream: {streams:?}");
        assert!(of_kind[0].continuous(), "{:?}", of_kind[0]);
        assert!(of_kind[0].packets <= stats.packets(kind));
    }

    // Only the last `keep` records are kept, in arrival order, each next one the previous + 1 per SSRC.
    let packets = probe.packets();
    assert_eq!(packets.len(), keep);
    assert!(packets.windows(2).all(|w| w[0].arrived <= w[1].arrived));
    let video: Vec<_> = packets
        .iter()
        .filter(|p| p.kind == TrackKind::Video)
        .collect();
    assert!(
        video
            .windows(2)
            .all(|w| w[1].seq == w[0].seq.wrapping_add(1))
    );
    assert!(video.iter().all(|p| p.payload_len > 0));
    assert!(
        video.iter().any(|p| p.marker),
        "frames end with a marker bit"
    );

    probe.close();
    guarded("probe closed", probe.closed()).await;
    assert!(probe.stats().closed);
}
