//! `bandwidth` seen by Chromium: a viewer's link narrows; how long until the page decodes a lower
//! simulcast layer, and after it widens, the top layer again. The browser half of
//! `showcall-bench bandwidth`, whose viewer is the Rust SDK (BENCHMARKS `bandwidth`).
//!
//! Why a second viewer: the Rust SDK's receiver (str0m's frame API) holds a complete keyframe of the new
//! layer until the old layer's lost packets were asked for again and given up on, so on a link narrower
//! than the router's step down can spare, some of its rounds measure that wait rather than the router's
//! step. Chromium's decoder takes the keyframe as it is complete. What this program times is what a
//! browser viewer sees: `getStats()` inbound-rtp `frameWidth` of the last decoded frame, read every
//! [`POLL`] through WebDriver (each reading also takes a WebDriver round trip, a few milliseconds).
//!
//! The set-up is the browser test's (`browser_viewer_on_a_narrow_link_gets_a_lower_layer_and_climbs_back`,
//! both through `narrow_link::ChromiumBehindLink`):
//! a host publishes the SDK's sample as three layers (320x240, 160x120, 80x60: about 210, 90 and 40
//! kbit/s of video, with 35 kbit/s of audio), or with `--clips hd` the 1.5 Mbit/s stream
//! (640x480, 320x240, 160x120: about 1,480, 450 and 150 kbit/s, `tests/fixtures/media`); Chromium
//! runs in a network namespace whose only path to the node's media is a user-space shaped relay (a
//! bottleneck with a 200 ms queue that drops what does not fit). Each round:
//! - **floor**: the page asks for the low layer (`setVideoLayer`, the small-window control) and
//!   `floor` is the request → the first narrower decoded frame (a keyframe request and the encoder's
//!   answer, on an open link); then it asks for the top layer again and waits for it;
//! - **adapt down**: once the page decoded `--frames-before-narrowing` frames of the top layer again
//!   (default 30, a second: mid-GOP; 0: at the first, the top layer's keyframe just through and its
//!   following frames crossing), the link narrows to `--narrow-kbps` (default 200) at t0; `adapt_down` is
//!   t0 → the first decoded frame narrower than the top layer;
//! - **adapt up**: the link widens at t1; `adapt_up` is t1 → the first decoded top-layer frame again.
//!
//! Each round also prints what the page's receiver counted while adapting down (`getStats()` inbound-rtp:
//! frames received and decoded, NACKs and PLIs sent, packets lost, freezes).
//!
//! Run as root (network namespaces), with Chromium and chromedriver installed (`./scripts/test` installs
//! them): `cargo run --release -p showcall-tests --example bandwidth_chromium -- --rounds 20
//! --narrow-kbps 150`. Prints one JSON object.

use std::time::{Duration, Instant};

use showcall_tests::browser::Page;
use showcall_tests::narrow_link::{ChromiumBehindLink, Clips};

const LIVE: &str = "host_live";
/// How often the page's decoded width is read.
const POLL: Duration = Duration::from_millis(10);
/// Decoded frames at the top layer before a round starts (a second of the sample's 30 fps): the page
/// is settled there.
const SETTLED_FRAMES: u64 = 30;
/// A round's wait for a width gives up after this long (and the program fails).
const GIVE_UP: Duration = Duration::from_secs(60);

/// `bandwidth_chromium`'s flags.
#[derive(clap::Parser)]
struct Args {
    /// Rounds of floor, narrowing and widening.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// The narrowed link's rate, kbit/s.
    #[arg(long, default_value_t = 200)]
    narrow_kbps: u64,
    /// Top-layer frames the page decodes after the floor before the link narrows (0: at the first).
    #[arg(long, default_value_t = SETTLED_FRAMES)]
    frames_before_narrowing: u64,
    /// The host's layers: `sample` (the SDK's, 320x240 at ≈ 210 kbit/s on top) or `hd` (640x480 at
    /// ≈ 1.5 Mbit/s on top, the stream).
    #[arg(long, default_value = "sample", value_parser = parse_clips)]
    clips: Clips,
}

fn parse_clips(s: &str) -> Result<Clips, String> {
    match s {
        "sample" => Ok(Clips::Sample),
        "hd" => Ok(Clips::Hd),
        other => Err(format!("no clips named {other:?} (sample, hd)")),
    }
}

/// Reads the page's decoded width until `accept` takes it; the time from `from` to that reading.
async fn time_until_width(
    page: &Page,
    from: Instant,
    what: &str,
    accept: impl Fn(u64) -> bool,
) -> anyhow::Result<Duration> {
    loop {
        let (width, _, _) = page.live_video_size().await;
        if accept(width) {
            return Ok(from.elapsed());
        }
        if from.elapsed() > GIVE_UP {
            anyhow::bail!("no {what} within {GIVE_UP:?} (last width {width})");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The page's inbound video stats (`getStats()` inbound-rtp), the counters that say how its receiver
/// got through a narrowing: NACKs and PLIs sent, frames dropped, the jitter buffer's delay.
async fn receiver_counters(page: &Page) -> serde_json::Value {
    let script = "return window.demo.live.pc.getStats().then((r) => { let o = {}; r.forEach((s) => { \
                  if (s.type === 'inbound-rtp' && s.kind === 'video') o = s; }); return o; });";
    let s = page.eval(script, Vec::new()).await;
    let keys = [
        "framesReceived",
        "framesDecoded",
        "framesDropped",
        "keyFramesDecoded",
        "packetsLost",
        "nackCount",
        "pliCount",
        "freezeCount",
        "jitterBufferDelay",
        "jitterBufferEmittedCount",
    ];
    keys.iter()
        .map(|k| (k.to_string(), s[*k].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `after` − `before`, key by key (numbers only).
fn counters_delta(before: &serde_json::Value, after: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Some(a) = after.as_object() {
        for (k, v) in a {
            let d = v.as_f64().unwrap_or(0.0) - before[k].as_f64().unwrap_or(0.0);
            out.insert(k.clone(), serde_json::json!((d * 1000.0).round() / 1000.0));
        }
    }
    out.into()
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// p50, p90 and max of `samples`, in milliseconds.
fn summary(samples: &[Duration]) -> serde_json::Value {
    let mut sorted: Vec<Duration> = samples.to_vec();
    sorted.sort();
    let at = |q: f64| {
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(i).copied().map(millis)
    };
    serde_json::json!({
        "samples": sorted.len(),
        "p50_ms": at(0.5),
        "p90_ms": at(0.9),
        "max_ms": sorted.last().copied().map(millis),
        "within_1s": sorted.iter().filter(|d| **d <= Duration::from_secs(1)).count(),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let Args {
        rounds,
        narrow_kbps,
        frames_before_narrowing,
        clips,
    } = clap::Parser::parse();
    let narrow_bps = narrow_kbps * 1000;
    // The node's log (what the router decided), with the rounds' marks between its lines, when
    // `RUST_LOG` asks for it (e.g. `warn,showcall_media=debug`).
    let logging = std::env::var_os("RUST_LOG").is_some();
    if logging {
        showcall_tests::test_log::log_to_test_output("warn");
    }
    let link = ChromiumBehindLink::start_with("browser/bandwidth_chromium", LIVE, clips).await;
    let (viewer, relay) = (&link.viewer, &link.relay);

    let top = u64::from(clips.sizes()[0].0);
    let narrower = |w: u64| w > 0 && w < top;
    let (mut floor, mut down, mut up) = (Vec::new(), Vec::new(), Vec::new());
    let mut lost = 0u64;
    for round in 0..rounds {
        viewer
            .decodes_width(SETTLED_FRAMES, "the top layer, settled", |w| w == top)
            .await;

        let asked = Instant::now();
        viewer.set_video_layer("VIDEO_LAYER_LOW").await;
        floor.push(time_until_width(viewer, asked, "asked-for lower layer", narrower).await?);
        viewer.set_video_layer("VIDEO_LAYER_HIGH").await;
        viewer
            .decodes_width(
                frames_before_narrowing,
                "the top layer after the floor",
                |w| w == top,
            )
            .await;

        let dropped_before = relay.counts().dropped;
        let counters_before = receiver_counters(viewer).await;
        relay.set_rate(Some(narrow_bps));
        let t0 = Instant::now();
        if logging {
            // The wall clock, to read beside the node's log lines.
            eprintln!("{} round {round}: the link narrows", utc_time_of_day());
        }
        down.push(
            time_until_width(viewer, t0, "lower layer behind the narrow link", narrower).await?,
        );
        lost += relay.counts().dropped - dropped_before;
        let receiver = counters_delta(&counters_before, &receiver_counters(viewer).await);
        eprintln!("round {round}: the page's receiver while adapting down: {receiver}");

        relay.set_rate(None);
        let t1 = Instant::now();
        up.push(time_until_width(viewer, t1, "top layer again", |w| w == top).await?);
        eprintln!(
            "round {round}: floor {:?}, adapt down {:?}, adapt up {:?}",
            floor[round], down[round], up[round]
        );
    }

    let report = serde_json::json!({
        "bench": "bandwidth_chromium",
        "rounds": rounds,
        "narrow_kbps": narrow_kbps,
        "clips": format!("{clips:?}").to_lowercase(),
        "frames_before_narrowing": frames_before_narrowing,
        "poll_ms": millis(POLL),
        "adapt_down": summary(&down),
        "adapt_up": summary(&up),
        "floor": summary(&floor),
        "datagrams_dropped_by_the_link_while_adapting_down": lost,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    link.close().await;
    Ok(())
}

/// The time of day (UTC) as the node's log lines print it, `HH:MM:SS.ffffff`.
fn utc_time_of_day() -> String {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since_epoch.subsec_micros()
    )
}
