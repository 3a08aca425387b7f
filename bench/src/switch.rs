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
//!
//! With `--nodes N` (N ≥ 2) the room spans N in-process nodes on one etcd: the host connects to the
//! first, audience member *i* to node *i* mod N, whose router carries its session (the `client_node`
//! edge rule) and is fed by the room's origin over the node-to-node relay; the viewer who calls
//! connects to the last. The times are reported for the members on the origin and for those on edges
//! (which node carries a member is read from its SDP answer's host candidate).
//!
//! The audience offers no transport-wide congestion control (`MediaOptions::transport_cc` off), as
//! `fanout`'s probes: on one box their TWCC feedback is late whenever the CPU is starved, the router
//! reads that as congestion and pauses their video for bandwidth, and the switch would measure that
//! (`bandwidth` measures the adaptation).

use std::collections::HashMap;
use std::time::Instant;

use hdrhistogram::Histogram;

use showcall_sdk::proto::{channel_event, event};
use showcall_sdk::{
    CallState, CallStateReason, CallType, ChannelRole, Event, MediaOptions, MediaSession,
    ReceivedFrame, SignalClient, TrackKind,
};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc;

use super::cluster::{node_config, start_etcd, until_converged};
use super::report::{histogram, percentiles, progress};
use super::sdk_user::{CallUser, answer_calls, guarded, host_candidate_port, login};
use super::tokens::token_factory;

const LIVE: &str = "host_live";
const HOST: &str = "host";

/// One audience member: its signaling (and every event it gets), its receive-only media.
struct Member {
    _signal: SignalClient,
    events: mpsc::UnboundedReceiver<Event>,
    media: MediaSession,
    /// Whether its session is on the room's origin (the host's node), not on an edge.
    on_origin: bool,
}

/// The times of one group of members (on the origin, or on edges).
struct Times {
    resumed: Histogram<u64>,
    first_frame: Histogram<u64>,
    first_keyframe: Histogram<u64>,
}

impl Times {
    fn new() -> Self {
        Self {
            resumed: histogram(),
            first_frame: histogram(),
            first_keyframe: histogram(),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "hangup_to_resumed_event": percentiles(&self.resumed),
            "hangup_to_first_video_frame": percentiles(&self.first_frame),
            "hangup_to_first_keyframe": percentiles(&self.first_keyframe),
        })
    }
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

pub(super) async fn run(rounds: usize, audience: usize, nodes: usize) -> anyhow::Result<()> {
    let mut config = super::report::loopback_node_config();
    let (etcd, handles) = if nodes > 1 {
        let etcd = start_etcd().await?;
        let mut handles = Vec::new();
        for i in 0..nodes {
            let c = node_config(&format!("switch-n{i}"), Some(&etcd.url))?;
            handles.push(showcall_node::start(c).await?);
        }
        until_converged(&handles.iter().collect::<Vec<_>>()).await?;
        config = node_config("token-only", Some(&etcd.url))?;
        (Some(etcd), handles)
    } else {
        (None, vec![showcall_node::start(config.clone()).await?])
    };
    let urls: Vec<String> = handles.iter().map(|n| n.signal_url()).collect();
    let token = token_factory(&config);

    let host = CallUser::prepared(&urls[0], &token(HOST)?).await?;
    let (live, host_joined) = MediaSession::join(
        &host.signal,
        LIVE,
        ChannelRole::Broadcaster,
        MediaOptions::default(),
    )
    .await?;
    let origin_port = host_candidate_port(&host_joined.sdp_answer);
    let mut members = Vec::with_capacity(audience);
    for i in 0..audience {
        let signal = login(&urls[i % urls.len()], &token(&format!("fan-{i}"))?).await?;
        let events = signal.subscribe_events();
        let (media, joined) = MediaSession::join(
            &signal,
            LIVE,
            ChannelRole::Audience,
            MediaOptions {
                transport_cc: false,
                ..MediaOptions::default()
            },
        )
        .await?;
        members.push(Member {
            _signal: signal,
            events,
            media,
            on_origin: host_candidate_port(&joined.sdp_answer) == origin_port,
        });
    }
    for m in &members {
        guarded("live video", m.media.wait_video_frames(1)).await??;
    }
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let answering = answer_calls(host, reports_tx);
    let last = urls.last().expect("at least one node");
    let mut viewer = CallUser::prepared(last, &token("viewer")?).await?;

    let (mut on_origin, mut on_edges) = (Times::new(), Times::new());
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
        for (r, m) in results.into_iter().zip(&members) {
            let [r, f, k] = r?;
            let times = if m.on_origin {
                &mut on_origin
            } else {
                &mut on_edges
            };
            times.resumed.record(r)?;
            times.first_frame.record(f)?;
            times.first_keyframe.record(k)?;
        }
        viewer.wait_state(CallState::Prepared, None).await?;
        media.close();
        guarded("host's call report", reports.recv()).await?;
        bar.inc(1);
    }
    bar.finish();
    answering.abort();
    drop(live);
    let mut result = serde_json::json!({
        "bench": "switch",
        "rounds": rounds,
        "audience": audience,
        "nodes": nodes,
    });
    if nodes > 1 {
        result["members_on_origin"] = on_origin.json();
        result["members_on_edges"] = on_edges.json();
        result["members_on_edges"]["members"] =
            members.iter().filter(|m| !m.on_origin).count().into();
    } else {
        for (k, v) in on_origin.json().as_object().expect("an object") {
            result[k] = v.clone();
        }
    }
    println!("{}", serde_json::to_string_pretty(&result)?);
    for node in handles {
        node.shutdown().await;
    }
    drop(etcd);
    Ok(())
}
