//! What tests of per-viewer bandwidth adaptation share: a viewer joined behind a [`ShapedRelay`](crate::shaped_relay::ShapedRelay) (its
//! path from the node is a narrow link the test narrows and widens), and which simulcast layer a
//! received frame is from.
//!
//! A frame's layer is read from the frame itself: the router forwards the host's VP8 frames unchanged
//! (it rewrites RTP headers, never payloads), so each received frame is found in exactly one of the
//! sample's three clips; a keyframe also carries its picture size (RFC 6386 §9.1).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use showcall_sdk::media::{MediaOptions, MediaPeer, MediaSession, MediaSource};
use showcall_sdk::{ChannelRole, ReceivedFrame, TrackKind};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::browser::{Browsers, Page};
use crate::netns::IsolatedHost;
use crate::sdk_helpers::SdkUser;
use crate::shaped_relay::{Shape, ShapedRelay};
use crate::udp_relay::{host_candidate, rewrite_host_candidate};
use crate::{DEADLINE, TestNode};

/// The sample's layers as a simulcast host sends them, best first.
pub const SIZES: [(u16, u16); 3] = [(320, 240), (160, 120), (80, 60)];

/// The clips a simulcast host publishes as its three layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clips {
    /// The SDK's sample: 320x240, 160x120 and 80x60, about 210, 100 and 40 kbit/s of video.
    Sample,
    /// A stream of the size the bandwidth issue speaks of (a 1.5 Mbit/s stream a 300 kbit/s viewer
    /// cannot carry): 640x480, 320x240 and 160x120 at about 1,480, 450 and 150 kbit/s of video. The files
    /// are in `tests/fixtures/media` (how they were made: its README).
    Hd,
}

const HD_TOP: &[u8] = include_bytes!("../fixtures/media/hd-vp8-640x480.ivf");
const HD_MEDIUM: &[u8] = include_bytes!("../fixtures/media/hd-vp8-320x240.ivf");
const HD_LOW: &[u8] = include_bytes!("../fixtures/media/hd-vp8-160x120.ivf");

impl Clips {
    /// The layers' picture sizes, best first.
    pub fn sizes(self) -> [(u16, u16); 3] {
        match self {
            Clips::Sample => SIZES,
            Clips::Hd => [(640, 480), (320, 240), (160, 120)],
        }
    }

    /// The three layers' clips, best first (the sample's audio with each).
    pub fn sources(self) -> [Arc<MediaSource>; 3] {
        match self {
            Clips::Sample => {
                let [medium, low] =
                    MediaSource::sample_lower_layers().expect("the sample's layers");
                [MediaSource::sample().expect("the sample"), medium, low]
            }
            Clips::Hd => [HD_TOP, HD_MEDIUM, HD_LOW].map(|ivf| {
                let opus = showcall_sdk::media::source::SAMPLE_OPUS_OGG;
                Arc::new(MediaSource::from_files(ivf, opus).expect("an hd clip"))
            }),
        }
    }
}

/// A host logged in and live on `channel`, publishing the sample as three simulcast layers.
pub async fn host_live_with_layers(node: &TestNode, channel: &str) -> (SdkUser, MediaSession) {
    host_live_with(node, channel, Clips::Sample).await
}

/// A host logged in and live on `channel`, publishing `clips` as three simulcast layers.
pub async fn host_live_with(
    node: &TestNode,
    channel: &str,
    clips: Clips,
) -> (SdkUser, MediaSession) {
    let host = SdkUser::login(node, "host").await;
    let options = MediaOptions {
        simulcast: true,
        ..MediaOptions::default()
    };
    let mut peer = MediaPeer::new(options).expect("the host's media peer");
    let [top, medium, low] = clips.sources();
    peer.set_source(top);
    peer.set_lower_layers(medium, low);
    let (live, _) = MediaSession::join_peer(&host.signal, channel, ChannelRole::Broadcaster, peer)
        .await
        .expect("the host goes live with three layers");
    (host, live)
}

/// Joins `channel` as audience with its node → viewer path through a shaped relay. The session runs
/// over UDP only (an ICE-TCP path straight to the node would bypass the relay); it hears no channel
/// events of its own (read them from `user.signal`).
pub async fn join_behind(
    user: &SdkUser,
    channel: &str,
    shape: Shape,
) -> (MediaSession, ShapedRelay) {
    let mut peer = MediaPeer::new(MediaOptions {
        tcp: false,
        ..MediaOptions::default()
    })
    .expect("media peer");
    let offer = peer.create_offer(false).expect("receive-only offer");
    let joined = user
        .signal
        .join_channel_with_offer(channel, ChannelRole::Audience, &offer)
        .await
        .expect("the viewer joins");
    let node = host_candidate(&joined.sdp_answer).expect("the answer has a host candidate");
    let relay = ShapedRelay::start(node, shape).await;
    peer.accept_answer(&rewrite_host_candidate(&joined.sdp_answer, relay.addr()))
        .expect("the rewritten answer applies");
    (peer.start().expect("the viewer starts"), relay)
}

/// A Chromium viewer watching a simulcast host through a shaped link: what the browser test of bandwidth
/// adaptation and the `bandwidth_chromium` benchmark share. Chromium and its chromedriver run in a
/// network namespace that reaches the node's signaling and pages (on the link's address) and the relay
/// (on the same address), not the node's media socket (on 127.0.0.1 of this namespace); the page takes
/// the relay for the node's media address ([`Page::point_media_at`]). The host publishes three layers
/// ([`Clips`]) from this namespace, straight to the node. Everything here lives as long as this does.
pub struct ChromiumBehindLink {
    pub viewer: Page,
    pub browsers: Browsers,
    pub relay: ShapedRelay,
    pub host: (SdkUser, MediaSession),
    pub node: TestNode,
    pub network: IsolatedHost,
}

impl ChromiumBehindLink {
    /// The host live on `channel` (as user `host`), the page (`fan-1`) watching it through an open
    /// link and decoding; screenshots go to `artifacts/<artifacts_dir>/`.
    pub async fn start(artifacts_dir: &str, channel: &str) -> Self {
        Self::start_with(artifacts_dir, channel, Clips::Sample).await
    }

    /// [`start`](Self::start), the host publishing `clips`.
    pub async fn start_with(artifacts_dir: &str, channel: &str, clips: Clips) -> Self {
        let network = IsolatedHost::create();
        let outside = network.outside_ip;
        // Media over UDP only: an ICE-TCP path would bypass the relay.
        let node = TestNode::start_with(|config| {
            config.signal_addr = SocketAddr::from((outside, 0));
            config.media_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            config.media_workers = 1;
            config.media_tcp = false;
        })
        .await;
        let media = node.handle.media_addr;
        let relay = ShapedRelay::start_on(IpAddr::V4(outside), media, Shape::open()).await;
        let host = host_live_with(&node, channel, clips).await;
        let browsers = Browsers::start_isolated(artifacts_dir, &network, Vec::new()).await;
        let base = format!("http://{}", node.handle.signal_addr);
        let viewer = browsers
            .open("viewer", &format!("{base}/live.html?uid=fan-1&host=host"))
            .await;
        viewer.point_media_at(media, relay.addr()).await;
        viewer.click("watch").await;
        viewer.wait_state("live-state", "live").await;
        viewer.wait_frames_above("live", 0).await;
        ChromiumBehindLink {
            viewer,
            browsers,
            relay,
            host,
            node,
            network,
        }
    }

    /// Closes the page and the browsers, then stops the node.
    pub async fn close(self) {
        let ChromiumBehindLink {
            viewer,
            browsers,
            node,
            ..
        } = self;
        viewer.close().await;
        drop(browsers);
        node.handle.shutdown().await;
    }
}

/// Which layer each frame of the host's clips belongs to (by its bytes).
pub fn layer_of_frames() -> HashMap<Arc<[u8]>, usize> {
    let mut layers = HashMap::new();
    for (layer, source) in Clips::Sample.sources().iter().enumerate() {
        for frame in source.video_frames() {
            layers.insert(frame.data.clone(), layer);
        }
    }
    layers
}

/// A VP8 keyframe's picture size: its 3-byte tag, the start code, then 14-bit width and height.
pub fn keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let height = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((width, height))
}

/// The next frame of `kind` (each wait bounded by the harness deadline).
pub async fn next_frame(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
    kind: TrackKind,
) -> ReceivedFrame {
    loop {
        match tokio::time::timeout(DEADLINE, frames.recv()).await {
            Ok(Ok(frame)) if frame.kind == kind => return frame,
            Ok(Ok(_)) => {}
            Ok(Err(RecvError::Lagged(n))) => panic!("the test fell {n} frames behind"),
            Ok(Err(RecvError::Closed)) => panic!("the viewer's session ended"),
            Err(_) => panic!("no {kind:?} frame within {DEADLINE:?}"),
        }
    }
}

/// Video frames until a keyframe whose picture size `wanted` accepts (included), within `within`.
pub async fn video_until_keyframe(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
    within: std::time::Duration,
    wanted: impl Fn((u16, u16)) -> bool,
) -> Vec<ReceivedFrame> {
    let run = async {
        let mut seen = Vec::new();
        loop {
            let frame = next_frame(frames, TrackKind::Video).await;
            let done = frame.keyframe && keyframe_size(&frame.data).is_some_and(&wanted);
            seen.push(frame);
            if done {
                return seen;
            }
        }
    };
    tokio::time::timeout(within, run)
        .await
        .unwrap_or_else(|_| panic!("no such keyframe within {within:?}"))
}

/// The next `n` video frames.
pub async fn video_frames(
    frames: &mut broadcast::Receiver<ReceivedFrame>,
    n: usize,
) -> Vec<ReceivedFrame> {
    let mut seen = Vec::with_capacity(n);
    while seen.len() < n {
        seen.push(next_frame(frames, TrackKind::Video).await);
    }
    seen
}

/// The layer of every frame, in order.
pub fn layers(frames: &[ReceivedFrame], of: &HashMap<Arc<[u8]>, usize>) -> Vec<usize> {
    frames
        .iter()
        .map(|f| {
            *of.get(&f.data)
                .unwrap_or_else(|| panic!("a frame of none of the host's clips: {f:?}"))
        })
        .collect()
}
