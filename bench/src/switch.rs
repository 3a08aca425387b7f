//! `switch`: the live room's side of showroom → 1v1 → showroom: from the viewer's hangup until each
//! audience member sees the host again.
//!
//! A host is live (broadcaster with media, the shipped sample) and `audience` members receive it, all
//! Rust SDK clients against a node in this process. Each round a viewer calls the host; the host
//! ([`answer_calls`]) accepts and joins the call channel with media, so its live publication is paused;
//! the viewer joins with media too; once both are `connected` the viewer hangs up. From the instant
//! `hangup()` is invoked, per member: the `BroadcasterResumed` channel event (signaling), the first host
//! video frame (the router forwards again), and the first keyframe (the first frame a decoder can show;
//! the router asks the host for one at the resume, and the host's sender restarts at its next keyframe).

use std::collections::HashMap;
use std::time::Instant;

use showcall_sdk::proto::{channel_event, event};
use showcall_sdk::{
    CallState, CallStateReason, CallType, ChannelRole, Event, MediaOptions, MediaSession,
    ReceivedFrame, SignalClient, TrackKind,
};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

use super::report::{histogram, percentiles, progress};
use super::sdk_user::{CallUser, answer_calls, guarded, login};
use super::tokens::token_factory;

const LIVE: &str = "host_live";
const HOST: &str = "host";

/// One audience member: its signaling (and every event it gets), its receive-only media.
struct Member {
    _signal: SignalClient,
    events: mpsc::UnboundedReceiver<Event>,
    media: MediaSession,
}

fn is_resumed(e: &Event) -> bool {
    matches!(&e.kind, Some(event::Kind::ChannelEvent(c))
        if c.channel == LIVE
            && matches!(&c.kind, Some(channel_event::Kind::BroadcasterResumed(u)) if u == HOST))
}

/// µs from `t0` to: the resumed event, the first host video frame, the first keyframe.
async fn back_live(
    events: &mut mpsc::UnboundedReceiver<Event>,
    mut frames: broadcast::Receiver<ReceivedFrame>,
    t0: Instant,
) -> anyhow::Result<[u64; 3]> {
    let micros = |at: Instant| (at.saturating_duration_since(t0).as_micros() as u64).max(1);
    let resumed = async {
        loop {
            let e = events
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("signaling closed"))?;
            if is_resumed(&e) {
                return anyhow::Ok(Instant::now());
            }
        }
    };
    let video = async {
        let mut first = None;
        loop {
            let f = match frames.recv().await {
                Ok(f) => f,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => anyhow::bail!("media session ended"),
            };
            if f.kind != TrackKind::Video || f.received_at < t0 {
                continue;
            }
            let first = *first.get_or_insert(f.received_at);
            if f.keyframe {
                return anyhow::Ok((first, f.received_at));
            }
        }
    };
    let (resumed, video) = tokio::join!(resumed, video);
    let (first, keyframe) = video?;
    Ok([micros(resumed?), micros(first), micros(keyframe)])
}

pub(super) async fn run(rounds: usize, audience: usize) -> anyhow::Result<()> {
    let config = super::report::loopback_node_config();
    let node = showcall_node::start(config.clone()).await?;
    let url = node.signal_url();
    let token = token_factory(&config);

    let host = CallUser::prepared(&url, &token(HOST)?).await?;
    let (live, _) = MediaSession::join(
        &host.signal,
        LIVE,
        ChannelRole::Broadcaster,
        MediaOptions::default(),
    )
    .await?;
    let mut members = Vec::with_capacity(audience);
    for i in 0..audience {
        let signal = login(&url, &token(&format!("fan-{i}"))?).await?;
        let events = signal.subscribe_events();
        let (media, _) = MediaSession::join(
            &signal,
            LIVE,
            ChannelRole::Audience,
            MediaOptions::default(),
        )
        .await?;
        members.push(Member {
            _signal: signal,
            events,
            media,
        });
    }
    for m in &members {
        guarded("live video", m.media.wait_video_frames(1)).await??;
    }
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let answering = answer_calls(host, reports_tx);
    let mut viewer = CallUser::prepared(&url, &token("viewer")?).await?;

    let (mut resumed, mut first_frame, mut first_keyframe) =
        (histogram(), histogram(), histogram());
    let bar = progress(rounds as u64, "rounds");
    for _ in 0..rounds {
        let created = viewer
            .api
            .call(HOST, CallType::Video, HashMap::new())
            .await?;
        viewer.wait_state(CallState::Connecting, None).await?;
        let (media, _) = MediaSession::join(
            &viewer.signal,
            &created.channel,
            ChannelRole::Broadcaster,
            MediaOptions::default(),
        )
        .await?;
        viewer
            .wait_state(
                CallState::Connected,
                Some(CallStateReason::RecvRemoteFirstFrame),
            )
            .await?;
        // The host is paused since it accepted: subscribe now, forget older events, hang up.
        let frames: Vec<_> = members.iter().map(|m| m.media.subscribe_frames()).collect();
        for m in &mut members {
            while m.events.try_recv().is_ok() {}
        }
        let t0 = Instant::now();
        viewer.api.hangup(HOST, "bench").await?;
        // All members at once, so each instant is taken when it happens.
        let waits = members
            .iter_mut()
            .zip(frames)
            .map(|(m, f)| back_live(&mut m.events, f, t0));
        let results = guarded("audience back live", futures_util::future::join_all(waits)).await?;
        for r in results {
            let [r, f, k] = r?;
            resumed.record(r)?;
            first_frame.record(f)?;
            first_keyframe.record(k)?;
        }
        viewer.wait_state(CallState::Prepared, None).await?;
        media.close();
        guarded("host's call report", reports.recv()).await?;
        bar.inc(1);
    }
    bar.finish();
    answering.abort();
    drop(live);
    let result = serde_json::json!({
        "bench": "switch",
        "rounds": rounds,
        "audience": audience,
        "hangup_to_resumed_event": percentiles(&resumed),
        "hangup_to_first_video_frame": percentiles(&first_frame),
        "hangup_to_first_keyframe": percentiles(&first_keyframe),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    node.shutdown().await;
    Ok(())
}
