//! What a live room's audience member sees on the wire: one RTP stream per kind whose sequence numbers run
//! on by exactly one, packet after packet — across the host's pause for a 1v1 call (the router stops and
//! restarts forwarding) and across the host leaving the room and coming back (the router renegotiates the
//! member's lines inactive, then active). A decoder would otherwise see a gap (and ask for a keyframe, or
//! conceal a loss that never happened) or a new stream.
//!
//! The member is an [`RtpProbe`]: a receive-only peer that records every RTP packet after SRTP, with no
//! depacketizer in between. On loopback nothing is lost or reordered, so any step other than +1 (mod 2^16)
//! is the router's doing.

use std::collections::{BTreeMap, HashMap};

use showcall_sdk::media::MediaSession;
use showcall_sdk::{ChannelRole, PrepareConfig, ProbeOptions, RtpProbe, TrackKind};
use showcall_tests::TestNode;
use showcall_tests::sdk_helpers::{MediaCall, video_call_with_media};
use showcall_tests::sdk_helpers::{SdkUser, hang_up, more_video};

const LIVE: &str = "host_live";

/// Every packet of the test is kept (a few thousand at most), so a failure shows the exact step.
const KEEP: usize = 1 << 16;

async fn go_live(host: &SdkUser) -> MediaSession {
    host.join_media(LIVE, ChannelRole::Broadcaster).await
}

async fn probe(node: &TestNode, id: &str) -> (SdkUser, RtpProbe) {
    let fan = SdkUser::login(node, id).await;
    let (probe, _) = RtpProbe::join(
        &fan.signal,
        LIVE,
        ProbeOptions {
            keep_packets: KEEP,
            ..ProbeOptions::default()
        },
    )
    .await
    .expect("the probe joins as audience");
    (fan, probe)
}

/// Waits for `more` video packets beyond those the probe received so far.
async fn more_packets(probe: &RtpProbe, more: u64) {
    let now = probe.stats().video_packets;
    probe
        .wait_packets(TrackKind::Video, now + more)
        .await
        .expect("video packets keep arriving");
}

/// Each kind arrived on one SSRC, and each packet's sequence number is the previous one's + 1 (mod 2^16)
/// — checked on every record, the first step that is not shown with its neighbours.
fn assert_one_continuous_stream_per_kind(probe: &RtpProbe, across: &str) {
    let packets = probe.packets();
    assert!(
        (packets.len() as u64) < KEEP as u64,
        "every packet was kept ({} records)",
        packets.len()
    );
    for kind in [TrackKind::Audio, TrackKind::Video] {
        let mut by_ssrc: BTreeMap<u32, u64> = BTreeMap::new();
        for p in packets.iter().filter(|p| p.kind == kind) {
            *by_ssrc.entry(p.ssrc).or_default() += 1;
        }
        assert_eq!(
            by_ssrc.len(),
            1,
            "{kind:?} arrives on one SSRC across {across} (SSRC → packets: {by_ssrc:?})"
        );
        let mut last: HashMap<u32, (usize, u16)> = HashMap::new();
        for (i, p) in packets.iter().enumerate().filter(|(_, p)| p.kind == kind) {
            if let Some(&(j, prev)) = last.get(&p.ssrc) {
                assert_eq!(
                    p.seq,
                    prev.wrapping_add(1),
                    "{kind:?} SSRC {} steps from {prev} to {} across {across}: {:#?}",
                    p.ssrc,
                    p.seq,
                    &packets[j..=i]
                );
            }
            last.insert(p.ssrc, (i, p.seq));
        }
    }
    // The summaries, which cover every packet from the first, agree.
    for s in probe.streams() {
        assert!(s.continuous(), "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_run_on_across_the_hosts_pause_for_a_call() {
    let node = TestNode::start().await;
    let mut host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let _host_live = go_live(&host).await;
    let (mut fan, probe) = probe(&node, "fan").await;
    probe
        .wait_packets(TrackKind::Video, 60)
        .await
        .expect("live video packets arrive");
    probe
        .wait_packets(TrackKind::Audio, 20)
        .await
        .expect("live audio packets arrive");

    // A viewer calls, the host accepts: the host's live media is held back while the call runs.
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    // Connected once media flows both ways: the server saw each side's first frame reach the other.
    let MediaCall {
        created: _,
        caller_media: viewer_call,
        callee_media: _host_call,
    } = video_call_with_media(&mut viewer, &mut host).await;
    fan.wait_paused(LIVE, "host").await;

    // While the call's video flows, nothing of the host reaches the probe (packets in flight at the
    // pause have landed after the first 30 call frames).
    more_video(&viewer_call, 30).await;
    let during = probe.stats();
    more_video(&viewer_call, 45).await;
    let still = probe.stats();
    assert_eq!(
        (still.video_packets, still.audio_packets),
        (during.video_packets, during.audio_packets),
        "the host is paused: no packet reaches the audience"
    );

    // The call ends: the host is live again, and the probe's streams pick up where they stopped.
    hang_up(&mut viewer, &mut host).await;
    fan.wait_resumed(LIVE, "host").await;
    more_packets(&probe, 60).await;
    probe
        .wait_packets(TrackKind::Audio, still.audio_packets + 20)
        .await
        .expect("live audio again after the call");

    assert_one_continuous_stream_per_kind(&probe, "a pause and resume");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_run_on_when_the_host_leaves_and_comes_back() {
    let node = TestNode::start().await;
    let host = SdkUser::login(&node, "host").await;
    let host_media = go_live(&host).await;
    let (_fan, probe) = probe(&node, "fan").await;
    probe
        .wait_packets(TrackKind::Video, 60)
        .await
        .expect("live video packets arrive");
    probe
        .wait_packets(TrackKind::Audio, 20)
        .await
        .expect("live audio packets arrive");

    // The host leaves: the node renegotiates the probe's lines inactive (the probe answers by itself).
    host.signal.leave_channel(LIVE).await.expect("host leaves");
    host_media.close();
    let ended = probe
        .wait_for(|s| !s.receiving_audio && !s.receiving_video)
        .await
        .expect("the probe outlives the host's tracks");
    assert!(ended.connected, "ICE and DTLS stay up: {ended:?}");
    assert_eq!(ended.renegotiations, 1, "{ended:?}");

    // The host comes back with a new session (new SSRCs on its side): the lines turn active again and
    // packets flow on.
    let _host_media = go_live(&host).await;
    let back = probe
        .wait_for(|s| s.receiving_audio && s.receiving_video)
        .await
        .expect("the host's tracks come back");
    assert_eq!(back.renegotiations, 2, "{back:?}");
    probe
        .wait_packets(TrackKind::Video, ended.video_packets + 60)
        .await
        .expect("video flows again");
    probe
        .wait_packets(TrackKind::Audio, ended.audio_packets + 20)
        .await
        .expect("audio flows again");

    assert_one_continuous_stream_per_kind(&probe, "the host leaving and coming back");
}
