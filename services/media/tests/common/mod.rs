//! Real str0m clients on real UDP sockets (127.0.0.1) against real routers, for the media crate's
//! router-level tests: a publisher sending Opus and VP8 frames, viewers receiving RTP (so a test sees
//! their sequence numbers), and each router's events pumped (its renegotiation offers answered by the
//! client they are for). Waits are on conditions, each with a hang guard; nothing sleeps to
//! synchronise.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use showcall_media::{MediaConfig, MediaEvent, MediaRouter, PeerKey};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, MediaKind, MediaTime, Mid, Pt, Rid, Simulcast, SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// How long a wait may take before the test is declared hung.
pub const HANG_GUARD: Duration = Duration::from_secs(20);
/// A publisher writes an audio or a video frame every tick, in turn.
const FRAME_TICK: Duration = Duration::from_millis(20);
/// Video frames between two keyframes (≈ 0.6 s at 25 fps: a kept keyframe stays fresh).
const GOP: u64 = 15;

/// Waits until `check` holds, looking again every few milliseconds; panics after [`HANG_GUARD`].
pub async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !check() {
        assert!(Instant::now() < deadline, "hung waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// [`until`] for a condition that must be asked asynchronously (a router's stats).
pub async fn until_async<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + HANG_GUARD;
    while !check().await {
        assert!(Instant::now() < deadline, "hung waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn key(channel: &str, user: &str) -> PeerKey {
    PeerKey {
        app: "app".into(),
        channel: channel.into(),
        user: user.into(),
    }
}

/// A router on 127.0.0.1 with `workers` workers (a channel spreading past `room_capacity` sessions
/// on one) and a relay socket.
pub fn router(
    events: mpsc::UnboundedSender<MediaEvent>,
    workers: usize,
    room_capacity: usize,
) -> MediaRouter {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    MediaRouter::start(
        MediaConfig {
            bind: loopback,
            workers,
            room_capacity,
            advertise_ip: None,
            tcp: None,
            relay: Some(loopback),
        },
        events,
    )
    .expect("router starts")
}

/// What a client saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub connected: bool,
    /// Video RTP packets: (SSRC, sequence number, starts a keyframe), in arrival order.
    pub video: Vec<(u32, u16, bool)>,
    /// Audio RTP packets' sequence numbers.
    pub audio: Vec<u16>,
    pub keyframe_requests: u64,
}

impl Seen {
    pub fn video_keyframes(&self) -> usize {
        self.video.iter().filter(|p| p.2).count()
    }
}

enum ClientCommand {
    AcceptOffer {
        sdp: String,
        reply: oneshot::Sender<String>,
    },
    /// A publisher stops (false) or starts writing frames.
    Writing(bool),
}

/// A client running on a task of its own.
#[derive(Clone)]
pub struct Client {
    pub key: PeerKey,
    pub seen: Arc<Mutex<Seen>>,
    /// Frames a publisher wrote.
    pub frames: Arc<AtomicU64>,
    commands: mpsc::UnboundedSender<ClientCommand>,
}

impl Client {
    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("not poisoned")
    }

    pub fn set_writing(&self, writing: bool) {
        let _ = self.commands.send(ClientCommand::Writing(writing));
    }

    pub fn frames_written(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}

/// The clients of a router, by user, so its offers reach them.
pub type Clients = Arc<Mutex<HashMap<String, Client>>>;

/// Pumps a router's events: offers are answered by their client; every event is logged in `log`.
pub fn pump_events(
    router: MediaRouter,
    mut events: mpsc::UnboundedReceiver<MediaEvent>,
    clients: Clients,
    log: Arc<Mutex<Vec<MediaEvent>>>,
) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            log.lock().expect("not poisoned").push(event.clone());
            if let MediaEvent::Offer {
                key,
                revision,
                sdp_offer,
            } = event
            {
                let client = clients
                    .lock()
                    .expect("not poisoned")
                    .get(&key.user)
                    .cloned();
                let Some(client) = client else {
                    continue;
                };
                let (reply, answer) = oneshot::channel();
                let _ = client.commands.send(ClientCommand::AcceptOffer {
                    sdp: sdp_offer,
                    reply,
                });
                if let Ok(answer) = answer.await {
                    let _ = router.accept_answer(key, revision, answer).await;
                }
            }
        }
    });
}

/// Joins `user` to `channel` on `router`: a publisher of Opus and VP8 (writing frames at once), or a
/// viewer receiving both at the RTP level.
pub async fn join(
    router: &MediaRouter,
    clients: &Clients,
    channel: &str,
    user: &str,
    publish: bool,
) -> Client {
    join_with(router, clients, channel, user, publish, false).await
}

/// Joins `user` as a publisher sending its video as the simulcast [`LAYERS`].
pub async fn join_simulcast(
    router: &MediaRouter,
    clients: &Clients,
    channel: &str,
    user: &str,
) -> Client {
    join_with(router, clients, channel, user, true, true).await
}

async fn join_with(
    router: &MediaRouter,
    clients: &Clients,
    channel: &str,
    user: &str,
    publish: bool,
    simulcast: bool,
) -> Client {
    let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("client socket");
    let local = socket.local_addr().expect("bound");
    let now = Instant::now();
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .set_rtp_mode(!publish)
        .build(now);
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("host candidate"));
    let direction = if publish {
        Direction::SendOnly
    } else {
        Direction::RecvOnly
    };
    let mut api = rtc.sdp_api();
    let audio = api.add_media(MediaKind::Audio, direction, None, None, None);
    let layers = simulcast.then(|| {
        let mut layers = Simulcast::new();
        for (rid, ..) in LAYERS {
            layers.add_send_layer(SimulcastLayer::new(rid));
        }
        layers
    });
    let video = api.add_media(MediaKind::Video, direction, None, None, layers);
    let (offer, pending) = api.apply().expect("an offer");
    let key = key(channel, user);
    let answer = router
        .open(key.clone(), publish, offer.to_sdp_string())
        .await
        .expect("the router answers");
    rtc.sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&answer).expect("parses"),
        )
        .expect("answer applies");
    let (commands, rx) = mpsc::unbounded_channel();
    let client = Client {
        key,
        seen: Arc::default(),
        frames: Arc::default(),
        commands,
    };
    clients
        .lock()
        .expect("not poisoned")
        .insert(user.to_owned(), client.clone());
    let task = ClientTask {
        rtc,
        socket,
        local,
        publish,
        simulcast,
        audio,
        video,
        seen: client.seen.clone(),
        frames: client.frames.clone(),
    };
    tokio::spawn(task.run(rx));
    client
}

struct ClientTask {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    publish: bool,
    /// Its video goes out as the simulcast [`LAYERS`].
    simulcast: bool,
    audio: Mid,
    video: Mid,
    seen: Arc<Mutex<Seen>>,
    frames: Arc<AtomicU64>,
}

impl ClientTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<ClientCommand>) {
        let mut buf = vec![0u8; 2048];
        let mut ticks = tokio::time::interval(FRAME_TICK);
        let started = Instant::now();
        let (mut writing, mut key_next, mut tick, mut video_frames) =
            (self.publish, true, 0u64, 0u64);
        loop {
            let Some(timeout) = self.drain().await else {
                return;
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(ClientCommand::AcceptOffer { sdp, reply }) => {
                        let offer = SdpOffer::from_sdp_string(&sdp).expect("offer parses");
                        let answer = self.rtc.sdp_api().accept_offer(offer).expect("offer applies");
                        let _ = reply.send(answer.to_sdp_string());
                    }
                    Some(ClientCommand::Writing(w)) => writing = w,
                    None => return,
                },
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((n, source)) = received else { return };
                    if let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                        let _ = self.rtc.handle_input(Input::Receive(Instant::now(), receive));
                    }
                }
                _ = tokio::time::sleep_until(timeout.into()) => {
                    let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
                }
                _ = ticks.tick(), if writing && self.connected() => {
                    tick += 1;
                    let now = Instant::now();
                    let elapsed = now - started;
                    let audio = tick.is_multiple_of(2);
                    let key = !audio && {
                        video_frames += 1;
                        std::mem::take(&mut key_next) || video_frames.is_multiple_of(GOP)
                    };
                    let frames: Vec<Frame> = if audio {
                        let time = MediaTime::new(elapsed.as_millis() as u64 * 48, Frequency::FORTY_EIGHT_KHZ);
                        vec![(self.audio, Codec::Opus, None, vec![0xfc; 60], time)]
                    } else {
                        let time = MediaTime::from_90khz(elapsed.as_millis() as u64 * 90);
                        if self.simulcast {
                            LAYERS
                                .iter()
                                .enumerate()
                                .map(|(layer, (rid, ..))| (self.video, Codec::Vp8, Some(Rid::from(*rid)), layer_frame(layer, key), time))
                                .collect()
                        } else {
                            vec![(self.video, Codec::Vp8, None, vp8_frame(key), time)]
                        }
                    };
                    for (mid, codec, rid, data, rtp_time) in frames {
                        if let Some(writer) = self.rtc.writer(mid) {
                            let pt: Option<Pt> = writer.payload_params().find(|p| p.spec().codec == codec).map(|p| p.pt());
                            let writer = match rid {
                                Some(rid) => writer.rid(rid),
                                None => writer,
                            };
                            if let Some(pt) = pt && writer.write(pt, now, rtp_time, data).is_ok() {
                                self.frames.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // One mutation at a time, each drained (str0m's rule).
                        if self.drain().await.is_none() {
                            return;
                        }
                    }
                }
            }
            if self.seen().keyframe_requests > 0 && self.publish {
                let mut seen = self.seen();
                if std::mem::take(&mut seen.keyframe_requests) > 0 {
                    key_next = true;
                }
            }
        }
    }

    fn connected(&self) -> bool {
        self.seen().connected
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("not poisoned")
    }

    /// Polls the session until it waits for time; `None` when it is over.
    async fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return Some(t),
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(event)) => self.event(event),
                Err(_) => return None,
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Connected => self.seen().connected = true,
            Event::KeyframeRequest(_) => self.seen().keyframe_requests += 1,
            Event::RtpPacket(packet) => {
                let pt = packet.header.payload_type;
                let video = self
                    .rtc
                    .codec_config()
                    .find(|p| p.pt() == pt)
                    .is_some_and(|p| p.spec().codec.is_video());
                let mut seen = self.seen();
                if video {
                    seen.video.push((
                        *packet.header.ssrc,
                        packet.header.sequence_number,
                        vp8_starts_keyframe(&packet.payload),
                    ));
                } else {
                    seen.audio.push(packet.header.sequence_number);
                }
            }
            _ => {}
        }
    }
}

/// One frame to write: its line, codec, simulcast layer, payload and media time.
type Frame = (Mid, Codec, Option<Rid>, Vec<u8>, MediaTime);

/// A simulcast publisher's layers, best first: rid, the width its keyframes announce, and the size of
/// its frames (key, delta), which tells a receiver's packets apart.
pub const LAYERS: [(&str, u16, usize, usize); 3] = [
    ("h", 320, 1600, 300),
    ("m", 160, 800, 150),
    ("l", 80, 400, 60),
];

/// A frame of simulcast layer `layer`: its keyframes carry the layer's width (RFC 6386 §9.1).
fn layer_frame(layer: usize, key: bool) -> Vec<u8> {
    let (_, width, key_size, delta_size) = LAYERS[layer];
    let mut frame = vec![0u8; if key { key_size } else { delta_size }];
    frame[0] = if key { 0x10 } else { 0x11 };
    frame[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
    frame[6..8].copy_from_slice(&width.to_le_bytes());
    frame
}

/// A VP8 frame the router's keyframe detection and a depacketizer both accept: the payload header's
/// P bit says key (0) or delta (1).
fn vp8_frame(key: bool) -> Vec<u8> {
    let mut frame = vec![0u8; if key { 2000 } else { 500 }];
    frame[0] = if key { 0x10 } else { 0x11 };
    frame[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
    frame
}

/// Whether an RTP payload is the first packet of a VP8 keyframe (RFC 7741: the descriptor's S bit and
/// partition 0, then the payload header's P bit clear).
pub fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    if first & 0x10 == 0 || first & 0x0f != 0 {
        return false;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        let Some(&x) = payload.get(1) else {
            return false;
        };
        at = 2;
        if x & 0x80 != 0 {
            at += if payload.get(at).is_some_and(|b| b & 0x80 != 0) {
                2
            } else {
                1
            };
        }
        if x & 0x40 != 0 {
            at += 1;
        }
        if x & 0x30 != 0 {
            at += 1;
        }
    }
    payload.get(at).is_some_and(|b| b & 0x01 == 0)
}

/// Sequence numbers each the one after the previous (one SSRC throughout).
pub fn contiguous(video: &[(u32, u16, bool)]) -> Result<(), String> {
    for pair in video.windows(2) {
        if pair[1].0 != pair[0].0 {
            return Err(format!("SSRC changed: {pair:?}"));
        }
        if pair[1].1 != pair[0].1.wrapping_add(1) {
            return Err(format!("gap or jump: {pair:?}"));
        }
    }
    Ok(())
}
