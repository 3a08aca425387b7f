//! Two media sessions connected directly to each other — no node: one side's offer is the other's
//! input, in-process, and media flows over real UDP on 127.0.0.1 through str0m on both sides. Proves
//! the client negotiates, connects (ICE + DTLS + SRTP), sends the shipped VP8/Opus byte-exact and counts
//! what it receives.
//!
//! Waits are bounded by a generous guard (a deadlock guard, not a speed assertion).

use std::collections::HashSet;
use std::time::Duration;

use showcall_sdk::media::ogg::opus_packet_duration_us;
use showcall_sdk::{
    MediaOptions, MediaPeer, MediaSession, MediaSource, MediaStats, ReceivedFrame, SdkError,
    TrackKind,
};
use tokio::sync::broadcast;

const GUARD: Duration = Duration::from_secs(20);

async fn guarded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(GUARD, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: nothing within {GUARD:?}"),
    }
}

/// `offerer` offers (publishing or not), `answerer` answers; both started.
fn connect(
    offerer: MediaOptions,
    publish: bool,
    answerer: MediaOptions,
) -> (MediaSession, MediaSession) {
    let mut a = MediaPeer::new(offerer).unwrap();
    let mut b = MediaPeer::new(answerer).unwrap();
    let offer = a.create_offer(publish).unwrap();
    let answer = b.accept_offer(&offer).unwrap();
    a.accept_answer(&answer).unwrap();
    (a.start().unwrap(), b.start().unwrap())
}

async fn next_frame(rx: &mut broadcast::Receiver<ReceivedFrame>, kind: TrackKind) -> ReceivedFrame {
    loop {
        match guarded("a frame", rx.recv()).await {
            Ok(f) if f.kind == kind => return f,
            Ok(_) => {}
            Err(e) => panic!("frame stream: {e}"),
        }
    }
}

#[tokio::test]
async fn both_ways_frames_arrive_byte_exact() {
    let (a, b) = connect(MediaOptions::default(), true, MediaOptions::default());
    let mut b_frames = b.subscribe_frames();
    let source = MediaSource::sample().unwrap();
    let clip_video: HashSet<&[u8]> = source.video_frames().iter().map(|f| &*f.data).collect();
    let clip_audio: HashSet<&[u8]> = source.audio_packets().iter().map(|p| &**p).collect();

    guarded("a connected", a.wait_connected()).await.unwrap();
    guarded("b connected", b.wait_connected()).await.unwrap();

    // The first video frame b sees is a keyframe (the clip starts with one), and every frame is one of
    // the clip's frames, byte for byte, with increasing RTP time.
    let first = next_frame(&mut b_frames, TrackKind::Video).await;
    assert!(first.keyframe, "video starts with a keyframe");
    assert_eq!(
        &first.data[3..6],
        &[0x9d, 0x01, 0x2a],
        "VP8 keyframe start code"
    );
    let mut last_video = first.rtp_time;
    for _ in 0..40 {
        let f = next_frame(&mut b_frames, TrackKind::Video).await;
        assert!(
            clip_video.contains(&*f.data),
            "a video frame not from the clip"
        );
        assert!(f.rtp_time > last_video, "video RTP time increases");
        last_video = f.rtp_time;
    }
    let mut last_audio = None;
    for _ in 0..40 {
        let f = next_frame(&mut b_frames, TrackKind::Audio).await;
        assert!(
            clip_audio.contains(&*f.data),
            "an audio packet not from the clip"
        );
        assert_eq!(opus_packet_duration_us(&f.data), Some(20_000));
        if let Some(last) = last_audio {
            assert!(f.rtp_time > last, "audio RTP time increases");
        }
        last_audio = Some(f.rtp_time);
    }

    // The counters agree, both ways (the answerer mirrored SendRecv, so it sends too).
    let sb = guarded(
        "b frames",
        b.wait_for(|s| s.video_frames_in >= 41 && s.audio_frames_in >= 40),
    )
    .await
    .unwrap();
    assert!(sb.video_keyframes_in >= 1);
    assert!(sb.first_video_in.is_some() && sb.first_audio_in.is_some());
    let sa = guarded(
        "a frames",
        a.wait_for(|s| s.video_frames_in >= 30 && s.audio_frames_in >= 30),
    )
    .await
    .unwrap();
    assert!(sa.video_keyframes_in >= 1);
    let sa = a.stats();
    assert!(sa.connected && !sa.closed && sa.sending);
    assert!(sa.video_frames_out >= 41 && sa.audio_frames_out >= 40);
    assert!(sa.video_keyframes_out >= 1);
    assert!(
        sa.connected_at.unwrap() <= sb.first_video_in.unwrap(),
        "frames flow only once connected"
    );
}

#[tokio::test]
async fn a_receive_only_offer_gets_media_and_sends_none() {
    // The offerer plays an audience member (RecvOnly); the answerer publishes (SendOnly).
    let (viewer, host) = connect(MediaOptions::default(), false, MediaOptions::default());
    guarded("viewer frames", viewer.wait_video_frames(20))
        .await
        .unwrap();
    guarded("viewer audio", viewer.wait_audio_frames(20))
        .await
        .unwrap();
    let v = viewer.stats();
    assert_eq!((v.video_frames_out, v.audio_frames_out), (0, 0));
    let h = host.stats();
    assert_eq!((h.video_frames_in, h.audio_frames_in), (0, 0));
    assert!(h.video_frames_out >= 20);
}

#[tokio::test]
async fn send_flags_choose_the_kinds_sent() {
    let audio_only = MediaOptions {
        send_video: false,
        ..MediaOptions::default()
    };
    let (a, b) = connect(audio_only, true, MediaOptions::default());
    guarded("audio", b.wait_audio_frames(20)).await.unwrap();
    // b sends both kinds: a receives video, so the session is up both ways — and a sent none.
    guarded("a video", a.wait_video_frames(10)).await.unwrap();
    assert_eq!(a.stats().video_frames_out, 0);
    assert_eq!(b.stats().video_frames_in, 0);
}

#[tokio::test]
async fn a_keyframe_request_restarts_the_video_at_a_keyframe() {
    let no_auto = MediaOptions {
        request_keyframes: false,
        ..MediaOptions::default()
    };
    let (a, b) = connect(MediaOptions::default(), true, no_auto);
    guarded("first frames", b.wait_video_frames(3))
        .await
        .unwrap();
    b.request_keyframe();
    guarded("pli sent", b.wait_for(|s| s.keyframe_requests_out == 1))
        .await
        .unwrap();
    guarded("pli received", a.wait_for(|s| s.keyframe_requests_in >= 1))
        .await
        .unwrap();
    // Naturally the second keyframe is the 31st frame; the request brings it forward.
    let s = guarded("second keyframe", b.wait_for(|s| s.video_keyframes_in >= 2))
        .await
        .unwrap();
    assert!(
        s.video_frames_in < 31,
        "keyframe after the request, not the clip's own: {s:?}"
    );
}

#[tokio::test]
async fn publishing_pauses_and_resumes_from_a_keyframe() {
    let (a, b) = connect(MediaOptions::default(), true, MediaOptions::default());
    guarded("frames", b.wait_video_frames(10)).await.unwrap();

    a.set_sending(false);
    let paused = guarded("paused", a.wait_for(|s| !s.sending)).await.unwrap();
    // Let what was in flight land, then nothing more is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = a.stats();
    assert_eq!(still.video_frames_out, paused.video_frames_out);
    assert_eq!(still.audio_frames_out, paused.audio_frames_out);

    let mut b_frames = b.subscribe_frames();
    a.set_sending(true);
    let first = next_frame(&mut b_frames, TrackKind::Video).await;
    assert!(first.keyframe, "resumed video starts with a keyframe");
    let resumed = guarded(
        "resumed",
        a.wait_for(|s| s.video_frames_out > paused.video_frames_out),
    )
    .await
    .unwrap();
    assert!(resumed.sending);
    assert!(resumed.video_keyframes_out > paused.video_keyframes_out);
}

#[tokio::test]
async fn closing_one_side_ends_both() {
    let (a, b) = connect(MediaOptions::default(), true, MediaOptions::default());
    guarded("frames", b.wait_video_frames(5)).await.unwrap();
    a.close();
    guarded("a closed", a.closed()).await;
    let sa = a.stats();
    assert!(sa.closed && !sa.connected);
    assert!(a.is_closed());
    // b hears the DTLS close_notify and ends too.
    guarded("b closed", b.closed()).await;
    assert!(!b.stats().connected);
    // Waiting on a closed session fails instead of hanging; a satisfied wait still answers.
    assert_eq!(
        guarded("wait", b.wait_video_frames(1_000_000)).await,
        Err(SdkError::Disconnected)
    );
    assert!(guarded("wait", b.wait_video_frames(5)).await.is_ok());
    // Late subscribers get a closed stream.
    assert!(matches!(
        b.subscribe_frames().recv().await,
        Err(broadcast::error::RecvError::Closed)
    ));
}

#[tokio::test]
async fn dropping_a_session_closes_it() {
    let (a, b) = connect(MediaOptions::default(), true, MediaOptions::default());
    let mut watch = a.watch_stats();
    guarded("frames", b.wait_video_frames(5)).await.unwrap();
    drop(a);
    guarded("b closed", b.closed()).await;
    // The dropped side's watch ends with closed stats.
    let last: MediaStats = guarded("a closed", async {
        loop {
            if watch.changed().await.is_err() {
                return watch.borrow().clone();
            }
        }
    })
    .await;
    assert!(last.closed && !last.connected);
}

#[tokio::test]
async fn bad_negotiation_is_an_error_not_a_panic() {
    let a = MediaPeer::new(MediaOptions::default()).unwrap();
    assert!(matches!(a.start(), Err(SdkError::Protocol(_))));
    let mut a = MediaPeer::new(MediaOptions::default()).unwrap();
    assert!(
        matches!(a.accept_answer("v=0"), Err(SdkError::Protocol(_))),
        "no offer yet"
    );
    a.create_offer(true).unwrap();
    assert!(matches!(a.create_offer(true), Err(SdkError::Protocol(_))));
    assert!(matches!(a.accept_answer(""), Err(SdkError::Protocol(_))));
    let mut a = MediaPeer::new(MediaOptions::default()).unwrap();
    a.create_offer(true).unwrap();
    assert!(matches!(
        a.accept_answer("not sdp at all"),
        Err(SdkError::Protocol(_))
    ));
    let mut b = MediaPeer::new(MediaOptions::default()).unwrap();
    assert!(matches!(
        b.accept_offer("garbage"),
        Err(SdkError::Protocol(_))
    ));
    // 0.0.0.0 is no usable host candidate.
    let unspecified = MediaOptions {
        bind_ip: "0.0.0.0".parse().unwrap(),
        ..MediaOptions::default()
    };
    assert!(matches!(
        MediaPeer::new(unspecified),
        Err(SdkError::Transport(_))
    ));
}
