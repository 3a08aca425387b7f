//! `call-connect`: how long from a viewer's `call()` until both sides are `connected` with media
//! flowing (reason `recvRemoteFirstFrame`: the router forwarded a first frame each way).
//!
//! Viewer/host pairs of Rust SDK clients (`SignalClient` + `CallApi` + `MediaSession`) against a node in
//! this process. The viewer calls; the host ([`answer_calls`]) accepts at once and joins the call
//! channel with media; the viewer joins with media on `connecting`, as the SDK's docs say. The latency is
//! `call()` invoked → the later of the two sides' `connected` callbacks. The phases show where it goes:
//! until the host rings, until the viewer learns of the accept (`connecting`), until both media sessions
//! are up (ICE + DTLS), until connected (a first frame forwarded each way). Each call is then hung up
//! and both sides wait for `prepared` before the next, which is not timed. `concurrent` pairs run at
//! once, each placing its share of the calls one after another.

use std::collections::HashMap;
use std::time::Instant;

use indicatif::ProgressBar;
use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole, MediaOptions, MediaSession};
use tokio::sync::mpsc;

use super::report::{histogram, percentiles, progress};
use super::sdk_user::{CallUser, answer_calls, guarded};
use super::tokens::token_factory;

/// One call's milestones, µs after `call()`.
struct Timing {
    ringing: u64,
    connecting: u64,
    media_up: u64,
    connected: u64,
}

fn micros(from: Instant, to: Instant) -> u64 {
    (to.saturating_duration_since(from).as_micros() as u64).max(1)
}

/// One pair placing `calls` calls in a row.
async fn pair(
    url: String,
    viewer_token: String,
    host_token: String,
    host_id: String,
    calls: usize,
    bar: ProgressBar,
) -> anyhow::Result<Vec<Timing>> {
    let host = CallUser::prepared(&url, &host_token).await?;
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    let answering = answer_calls(host, reports_tx);
    let mut viewer = CallUser::prepared(&url, &viewer_token).await?;
    let mut timings = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t0 = Instant::now();
        let created = viewer
            .api
            .call(&host_id, CallType::Video, HashMap::new())
            .await?;
        let connecting = viewer.wait_state(CallState::Connecting, None).await?;
        let (media, _) = MediaSession::join(
            &viewer.signal,
            &created.channel,
            ChannelRole::Broadcaster,
            MediaOptions::default(),
        )
        .await?;
        let connected = viewer
            .wait_state(
                CallState::Connected,
                Some(CallStateReason::RecvRemoteFirstFrame),
            )
            .await?;
        let viewer_media_up = media.stats().connected_at.unwrap_or(connected.at);
        viewer.api.hangup(&host_id, "bench").await?;
        viewer.wait_state(CallState::Prepared, None).await?;
        media.close();
        let host_side = guarded("host's call report", reports.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the answering host stopped"))?;
        timings.push(Timing {
            ringing: micros(t0, host_side.ringing),
            connecting: micros(t0, connecting.at),
            media_up: micros(t0, viewer_media_up.max(host_side.media_up)),
            connected: micros(t0, connected.at.max(host_side.connected)),
        });
        bar.inc(1);
    }
    answering.abort();
    Ok(timings)
}

pub(super) async fn run(calls: usize, concurrent: usize) -> anyhow::Result<()> {
    let config = super::report::loopback_node_config();
    let node = showcall_node::start(config.clone()).await?;
    let token = token_factory(&config);
    let concurrent = concurrent.clamp(1, calls.max(1));

    let bar = progress(calls as u64, "calls");
    let mut pairs = tokio::task::JoinSet::new();
    for p in 0..concurrent {
        // Spread the calls: the first `calls % concurrent` pairs place one more.
        let share = calls / concurrent + usize::from(p < calls % concurrent);
        let host_id = format!("host-{p}");
        pairs.spawn(pair(
            node.signal_url(),
            token(&format!("viewer-{p}"))?,
            token(&host_id)?,
            host_id,
            share,
            bar.clone(),
        ));
    }
    let (mut ringing, mut connecting) = (histogram(), histogram());
    let (mut media_up, mut connected) = (histogram(), histogram());
    while let Some(done) = pairs.join_next().await {
        for t in done?? {
            ringing.record(t.ringing)?;
            connecting.record(t.connecting)?;
            media_up.record(t.media_up)?;
            connected.record(t.connected)?;
        }
    }
    bar.finish();
    let result = serde_json::json!({
        "bench": "call-connect",
        "calls": calls,
        "concurrent": concurrent,
        "call_to_both_connected": percentiles(&connected),
        "phases": {
            "call_to_host_ringing": percentiles(&ringing),
            "call_to_viewer_connecting": percentiles(&connecting),
            "call_to_both_media_up": percentiles(&media_up),
        },
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    node.shutdown().await;
    Ok(())
}
