//! The forwarding core without sockets, on a virtual clock: str0m clients (a VP8 publisher at the frame
//! level, receivers at the RTP level so the test sees sequence numbers) exchange datagrams with the
//! [`Engine`] in memory, and time moves only when the test moves it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{Extension, ExtensionMap};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot};

use super::Engine;
use crate::keyframe::{VideoCodec, starts_keyframe};
use crate::protocol::{Command, MediaEvent, PeerKey};
use crate::relay::{Mesh, RelayInbox};

const ROUTER: ([u8; 4], u16) = ([10, 0, 0, 1], 5000);
/// The router's ICE-TCP address: the same port number, on TCP.
const ROUTER_TCP: ([u8; 4], u16) = ([10, 0, 0, 1], 5000);
/// What an active TCP candidate names as its port (RFC 6544: 9, the discard port; it connects from an
/// ephemeral one).
const ACTIVE_TCP_PORT: u16 = 9;
/// Virtual time per step of the simulation.
const STEP: Duration = Duration::from_millis(5);
/// A video frame every 33 ms (30 fps).
const FRAME_EVERY: u32 = 33;

fn router_addr() -> SocketAddr {
    SocketAddr::from(ROUTER)
}

fn router_tcp_addr() -> SocketAddr {
    SocketAddr::from(ROUTER_TCP)
}

fn key(user: &str) -> PeerKey {
    PeerKey {
        app: "app".into(),
        channel: "live".into(),
        user: user.into(),
    }
}

/// A VP8 frame the router's keyframe detection and a str0m depacketizer both accept: the payload
/// header's P bit says key (0) or delta (1). A keyframe takes two packets, a delta one (≈ 150 kbit/s,
/// under what the client's pacer sends before it has an estimate).
fn vp8_frame(key: bool) -> Vec<u8> {
    let mut frame = vec![0u8; if key { 2000 } else { 500 }];
    frame[0] = if key { 0x10 } else { 0x11 };
    frame[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
    frame
}

/// A simulcast publisher's layers, best first: rid, the width its keyframes announce, and the size of
/// its frames (key, delta), which tells a receiver's packets apart (≈ 125 kbit/s for the three).
const LAYERS: [(&str, u16, usize, usize); 3] = [
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

/// One client of the router: its str0m session, its address, and what it saw.
struct Client {
    rtc: Rtc,
    /// Its UDP address, or the address its TCP connection comes from.
    addr: SocketAddr,
    /// UDP, or TCP only (a client whose UDP is blocked).
    transport: Protocol,
    key: PeerKey,
    /// The video line.
    video: Mid,
    /// RTP packets received: (SSRC, sequence number, starts a keyframe).
    packets: Vec<(u32, u16, bool)>,
    /// The payload size of each of those packets.
    payload_sizes: Vec<usize>,
    /// Packets received with the marker bit (a video frame's last).
    frame_ends: usize,
    /// A publisher sending its video as the simulcast [`LAYERS`].
    simulcast: bool,
    keyframe_requests: usize,
}

impl Client {
    fn new(
        user: &str,
        port: u16,
        rtp_mode: bool,
        now: Instant,
        transport: Protocol,
        transport_cc: bool,
    ) -> Self {
        let addr = SocketAddr::from(([10, 0, 1, 1], port));
        let mut config = Rtc::builder()
            .clear_codecs()
            .enable_vp8(true)
            .set_rtp_mode(rtp_mode);
        if !transport_cc {
            let standard = ExtensionMap::standard();
            let mut map = ExtensionMap::empty();
            for id in 1..=14 {
                if let Some(ext) = standard.lookup(id)
                    && *ext != Extension::TransportSequenceNumber
                {
                    map.set(id, ext.clone());
                }
            }
            config = config.set_extension_map(map);
        }
        let mut rtc = config.build(now);
        let candidate = match transport {
            Protocol::Tcp => Candidate::builder()
                .tcp()
                .host(Self::active_tcp_candidate(addr))
                .tcptype(TcpType::Active)
                .build(),
            _ => Candidate::host(addr, "udp"),
        };
        rtc.add_local_candidate(candidate.expect("host candidate"));
        Self {
            rtc,
            addr,
            transport,
            key: key(user),
            video: Mid::from("unset"),
            packets: Vec::new(),
            payload_sizes: Vec::new(),
            frame_ends: 0,
            simulcast: false,
            keyframe_requests: 0,
        }
    }

    /// The address a client's active TCP candidate names.
    fn active_tcp_candidate(addr: SocketAddr) -> SocketAddr {
        SocketAddr::new(addr.ip(), ACTIVE_TCP_PORT)
    }

    /// The keyframe starts among what arrived.
    fn keyframes(&self) -> usize {
        self.packets.iter().filter(|p| p.2).count()
    }
}

/// The engine, its clients and the virtual clock.
struct Sim {
    engine: Engine,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    clients: HashMap<String, Client>,
    now: Instant,
    /// Virtual milliseconds run so far.
    elapsed_ms: u32,
    /// Frames the publisher wrote, and its keyframes among them.
    frames: u32,
    keyframes_sent: u32,
    /// The publisher answers keyframe requests (a real encoder would, after its throttle).
    answer_keyframe_requests: bool,
    key_next: bool,
    /// Clients joining from now on offer transport-wide feedback (TWCC), so the node estimates their
    /// bandwidth and paces to it. Without it a receiver's pacer stays at the initial estimate.
    transport_cc: bool,
}

impl Sim {
    fn new() -> Self {
        str0m::crypto::from_feature_flags().install_process_default();
        let now = Instant::now();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (packets, _) = mpsc::channel(1);
        let (control, _) = mpsc::unbounded_channel();
        let mesh: Mesh = vec![RelayInbox { packets, control }].into();
        Self {
            engine: Engine::new(
                now,
                router_addr(),
                Some(router_tcp_addr()),
                events_tx,
                0,
                mesh,
            ),
            events,
            clients: HashMap::new(),
            now,
            elapsed_ms: 0,
            frames: 0,
            keyframes_sent: 0,
            answer_keyframe_requests: true,
            key_next: true,
            transport_cc: true,
        }
    }

    /// Joins `user` with an offer to send (publisher) or receive video.
    fn join(&mut self, user: &str, port: u16, publish: bool) {
        self.join_over(user, port, publish, Protocol::Udp);
    }

    /// Joins `user` with a client that has only `transport`.
    fn join_over(&mut self, user: &str, port: u16, publish: bool, transport: Protocol) {
        self.join_with(user, port, publish, transport, false);
    }

    /// Joins `user` as a publisher sending the simulcast [`LAYERS`].
    fn join_simulcast(&mut self, user: &str, port: u16) {
        self.join_with(user, port, true, Protocol::Udp, true);
    }

    fn join_with(
        &mut self,
        user: &str,
        port: u16,
        publish: bool,
        transport: Protocol,
        simulcast: bool,
    ) {
        let mut client = Client::new(user, port, !publish, self.now, transport, self.transport_cc);
        client.simulcast = simulcast;
        let dir = if publish {
            Direction::SendOnly
        } else {
            Direction::RecvOnly
        };
        let layers = simulcast.then(|| {
            let mut layers = Simulcast::new();
            for (rid, ..) in LAYERS {
                layers.add_send_layer(SimulcastLayer::new(rid));
            }
            layers
        });
        let mut api = client.rtc.sdp_api();
        client.video = api.add_media(MediaKind::Video, dir, None, None, layers);
        let (offer, pending) = api.apply().expect("an offer");
        let (reply, answer) = oneshot::channel();
        self.engine.set_time(self.now);
        self.engine.command(Command::Open {
            key: client.key.clone(),
            may_publish: publish,
            offer: offer.to_sdp_string(),
            reply,
        });
        let answer = answer.blocking_recv().expect("replied").expect("accepted");
        let answer = SdpAnswer::from_sdp_string(&answer).expect("answer parses");
        client
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer applies");
        self.clients.insert(user.to_owned(), client);
        self.settle();
    }

    fn command(&mut self, command: Command) {
        self.engine.set_time(self.now);
        self.engine.command(command);
        self.settle();
    }

    /// Moves datagrams between the clients and the engine until nobody has anything to send.
    fn settle(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            self.engine.set_time(self.now);
            let users: Vec<String> = self.clients.keys().cloned().collect();
            for user in &users {
                let client = self.clients.get_mut(user).expect("listed");
                let _ = client.rtc.handle_input(Input::Timeout(self.now));
                moved |= self.drain_client(user);
            }
            self.engine.end_turn();
            let udp: Vec<_> = self.engine.take_transmits().collect();
            let tcp: Vec<_> = self.engine.take_tcp_transmits().collect();
            let transmits = udp
                .into_iter()
                .map(|t| (Protocol::Udp, t))
                .chain(tcp.into_iter().map(|t| (Protocol::Tcp, t)));
            for (transport, (to, data)) in transmits {
                moved = true;
                let Some(user) = self
                    .clients
                    .iter()
                    .find(|(_, c)| c.addr == to && c.transport == transport)
                    .map(|(u, _)| u.clone())
                else {
                    continue;
                };
                let client = self.clients.get_mut(&user).expect("found");
                // Over TCP, the client's str0m knows the connection by its candidate's address.
                let (from, at) = match transport {
                    Protocol::Tcp => (router_tcp_addr(), Client::active_tcp_candidate(to)),
                    _ => (router_addr(), to),
                };
                if let Ok(receive) = Receive::new(transport, from, at, &data) {
                    let _ = client.rtc.handle_input(Input::Receive(self.now, receive));
                }
                // str0m holds one received RTP packet until polled: each input is drained at once.
                self.drain_client(&user);
            }
            while let Ok(event) = self.events.try_recv() {
                if let MediaEvent::Offer {
                    key,
                    revision,
                    sdp_offer,
                } = event
                {
                    self.answer(&key.user, revision, &sdp_offer);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Polls a client until it waits for time: its datagrams go to the engine, what it saw is recorded.
    /// Whether it sent anything.
    fn drain_client(&mut self, user: &str) -> bool {
        let mut sent = false;
        let client = self.clients.get_mut(user).expect("a client");
        while let Ok(output) = client.rtc.poll_output() {
            match output {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    sent = true;
                    assert_eq!(t.proto, client.transport, "a client sends on its transport");
                    self.engine.datagram(t.proto, client.addr, &t.contents);
                }
                Output::Event(Event::RtpPacket(p)) => {
                    client.packets.push((
                        *p.header.ssrc,
                        p.header.sequence_number,
                        starts_keyframe(VideoCodec::Vp8, &p.payload),
                    ));
                    client.payload_sizes.push(p.payload.len());
                    client.frame_ends += usize::from(p.header.marker);
                }
                Output::Event(Event::KeyframeRequest(_)) => {
                    client.keyframe_requests += 1;
                    if self.answer_keyframe_requests {
                        self.key_next = true;
                    }
                }
                Output::Event(_) => {}
            }
        }
        sent
    }

    /// A receiver answers the router's renegotiation offer.
    fn answer(&mut self, user: &str, revision: u64, offer: &str) {
        let client = self.clients.get_mut(user).expect("a client");
        let offer = SdpOffer::from_sdp_string(offer).expect("offer parses");
        let answer = client.rtc.sdp_api().accept_offer(offer).expect("applies");
        let (reply, done) = oneshot::channel();
        self.engine.command(Command::AcceptAnswer {
            key: client.key.clone(),
            revision,
            answer: answer.to_sdp_string(),
            reply,
        });
        done.blocking_recv().expect("replied").expect("accepted");
    }

    /// The publisher `user` writes one VP8 frame of `size` bytes now; its packets reach the engine
    /// together (the client has no pacer), as a burst of relayed packets does.
    fn write_frame_now(&mut self, user: &str, size: usize) {
        self.write_delta_frame(user, size);
        self.drain_client(user);
    }

    /// `user`'s client writes a delta frame of `size` bytes now (1 ms after the last).
    fn write_delta_frame(&mut self, user: &str, size: usize) {
        let mut frame = vp8_frame(false);
        frame.resize(size, 0);
        self.elapsed_ms += 1;
        let rtp_time = MediaTime::from_90khz(u64::from(self.elapsed_ms) * 90);
        let client = self.clients.get_mut(user).expect("there");
        let writer = client.rtc.writer(client.video).expect("a video line");
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Vp8)
            .map(|p| p.pt())
            .expect("VP8 negotiated");
        writer
            .write(pt, self.now, rtp_time, frame)
            .expect("frame written");
    }

    /// Writes a delta frame of `size` bytes from `user` now and returns the datagrams it went out in,
    /// not yet delivered to the engine.
    fn frame_datagrams(&mut self, user: &str, size: usize) -> Vec<Vec<u8>> {
        self.write_delta_frame(user, size);
        let client = self.clients.get_mut(user).expect("there");
        // Its pacer lets the packets go one timeout (≈ 1 µs) apart.
        let mut datagrams = Vec::new();
        let until = self.now + Duration::from_millis(5);
        while let Ok(output) = client.rtc.poll_output() {
            match output {
                Output::Timeout(t) if t <= until => {
                    let _ = client.rtc.handle_input(Input::Timeout(t));
                }
                Output::Timeout(_) => break,
                Output::Transmit(t) => datagrams.push(t.contents.to_vec()),
                Output::Event(_) => {}
            }
        }
        datagrams
    }

    /// Runs `ms` of virtual time; the publisher `user` (if there) writes a frame every 33 ms (one per
    /// layer when it sends simulcast).
    fn run(&mut self, ms: u32, publisher: &str) {
        for _ in 0..(ms / STEP.as_millis() as u32) {
            self.now += STEP;
            self.elapsed_ms += STEP.as_millis() as u32;
            let due = self.frames * FRAME_EVERY <= self.elapsed_ms;
            if due && let Some(client) = self.clients.get(publisher) {
                let key = std::mem::take(&mut self.key_next);
                let rtp_time = MediaTime::from_90khz(u64::from(self.elapsed_ms) * 90);
                let frames: Vec<(Option<Rid>, Vec<u8>)> = if client.simulcast {
                    LAYERS
                        .iter()
                        .enumerate()
                        .map(|(layer, (rid, ..))| (Some(Rid::from(*rid)), layer_frame(layer, key)))
                        .collect()
                } else {
                    vec![(None, vp8_frame(key))]
                };
                self.engine.set_time(self.now);
                for (rid, frame) in frames {
                    let client = self.clients.get_mut(publisher).expect("there");
                    let mid = client.video;
                    let pt = client.rtc.writer(mid).and_then(|w| {
                        w.payload_params()
                            .find(|p| p.spec().codec == Codec::Vp8)
                            .map(|p| p.pt())
                    });
                    let pt: Pt = pt.expect("VP8 negotiated");
                    if let Some(writer) = client.rtc.writer(mid) {
                        let writer = match rid {
                            Some(rid) => writer.rid(rid),
                            None => writer,
                        };
                        writer
                            .write(pt, self.now, rtp_time, frame)
                            .expect("frame written");
                    }
                    // One mutation at a time, each drained (str0m's rule).
                    self.drain_client(publisher);
                }
                self.frames += 1;
                self.keyframes_sent += u32::from(key);
            }
            self.settle();
        }
    }

    fn client(&self, user: &str) -> &Client {
        &self.clients[user]
    }
}

/// A receiver's sequence numbers on `ssrc`, each the one after the previous.
fn contiguous(packets: &[(u32, u16, bool)]) -> Result<(), String> {
    for pair in packets.windows(2) {
        if pair[1].0 != pair[0].0 {
            return Err(format!("SSRC changed: {pair:?}"));
        }
        if pair[1].1 != pair[0].1.wrapping_add(1) {
            return Err(format!("gap or jump: {pair:?}"));
        }
    }
    Ok(())
}

#[test]
fn a_late_receiver_starts_at_the_kept_keyframe_before_the_publisher_sends_another() {
    let mut sim = Sim::new();
    sim.join("host", 1000, true);
    sim.run(100, "host");
    sim.join("early", 1001, false);
    sim.run(500, "host");
    assert!(
        sim.client("early").keyframes() >= 1,
        "the early viewer sees video"
    );

    // From now on the publisher sends no keyframe (an encoder that throttles its answers).
    sim.answer_keyframe_requests = false;
    let sent = sim.keyframes_sent;
    sim.join("late", 1002, false);
    sim.run(200, "host");
    let late = sim.client("late");
    assert_eq!(sim.keyframes_sent, sent, "no new keyframe was sent");
    let first = late
        .packets
        .first()
        .expect("the late viewer receives video");
    assert!(first.2, "its first packet starts a keyframe: the kept one");
    contiguous(&late.packets).expect("and its numbers follow on without a gap");
}

#[test]
fn sequence_numbers_continue_across_a_pause_and_a_new_publisher() {
    let mut sim = Sim::new();
    sim.join("host", 1000, true);
    sim.join("fan", 1001, false);
    sim.run(500, "host");
    let before = sim.client("fan").packets.len();
    assert!(before > 10, "video flows");

    // The host pauses (a private call), then resumes.
    sim.command(Command::Forward {
        app: "app".into(),
        channel: "live".into(),
        publisher: "host".into(),
        forward: false,
    });
    sim.run(1000, "host");
    let paused = sim.client("fan").packets.len();
    sim.command(Command::Forward {
        app: "app".into(),
        channel: "live".into(),
        publisher: "host".into(),
        forward: true,
    });
    sim.run(500, "host");
    assert!(sim.client("fan").packets.len() > paused, "video again");

    // The host leaves and another publisher takes the room over.
    sim.command(Command::Close { key: key("host") });
    sim.clients.remove("host");
    sim.run(100, "none");
    let left = sim.client("fan").packets.len();
    sim.key_next = true;
    sim.join("cohost", 1003, true);
    sim.run(500, "cohost");
    let fan = sim.client("fan");
    assert!(
        fan.packets.len() > left,
        "the new publisher's video arrives"
    );
    contiguous(&fan.packets).expect("one continuous stream for the receiver");
}

#[test]
fn a_publisher_closing_politely_is_removed_and_its_audience_reoffered() {
    let mut sim = Sim::new();
    sim.join("host", 1000, true);
    sim.join("fan", 1001, false);
    sim.run(300, "host");
    let host = sim.clients.get_mut("host").expect("host");
    host.rtc.close().expect("close starts");
    // The close goes out; the router sees close_notify and re-offers the fan without the host's line.
    let mut offered = false;
    let mut closed = false;
    for _ in 0..20 {
        sim.now += STEP;
        sim.settle();
        let fan = sim.client("fan");
        offered |= fan
            .rtc
            .media(fan.video)
            .is_some_and(|m| m.direction() == Direction::Inactive);
        closed |= !sim.engine.by_key.contains_key(&key("host"));
    }
    assert!(closed, "the host's session is gone");
    assert!(
        offered,
        "the fan's video line turned inactive through an offer"
    );
}

/// Offers that give one payload type two codec configurations (found by the media fuzz target) are
/// refused with a typed error: str0m panicked on them, which ended the worker and every session on it.
#[test]
fn an_offer_giving_a_payload_type_two_meanings_is_refused_and_the_worker_goes_on() {
    let mut sim = Sim::new();
    for (offer, pt) in [
        (
            include_str!("../../../fuzz/corpus/media_sdp/regression-pt-h264-profiles.sdp"),
            98,
        ),
        (
            include_str!("../../../fuzz/corpus/media_sdp/regression-pt-vp9-profiles.sdp"),
            100,
        ),
    ] {
        let (reply, answer) = oneshot::channel();
        sim.command(Command::Open {
            key: key("fuzzer"),
            may_publish: true,
            offer: offer.into(),
            reply,
        });
        let refusal = format!("payload type {pt} has two meanings");
        assert!(matches!(
            answer.blocking_recv(),
            Ok(Err(crate::MediaError::InvalidOffer(why))) if why == refusal
        ));
    }
    sim.join("viewer", 7000, false);
    assert_eq!(sim.engine.by_key.len(), 1, "the next member joins as usual");
}

/// A viewer whose only path is TCP (its UDP blocked) connects to the router's passive TCP candidate and
/// receives the host's video; the router sends it everything over TCP and nothing over UDP.
#[test]
fn a_viewer_with_only_tcp_connects_and_receives_video_over_tcp() {
    let mut sim = Sim::new();
    sim.join("host", 1000, true);
    sim.join_over("fan", 40000, false, Protocol::Tcp);
    sim.run(500, "host");
    let fan = sim.client("fan");
    assert!(fan.keyframes() >= 1, "the TCP viewer sees a keyframe");
    assert!(fan.packets.len() > 10, "and video goes on");
    assert!(
        sim.engine.by_addr.contains_key(&(Protocol::Tcp, fan.addr)),
        "its connection routes to its session"
    );
}

/// Datagrams over TCP from a connection that never authenticated reach no session, whatever they say.
#[test]
fn garbage_over_tcp_reaches_no_session() {
    let mut sim = Sim::new();
    sim.join("host", 1000, true);
    sim.run(100, "host");
    let stranger = SocketAddr::from(([10, 0, 9, 9], 50000));
    for junk in [
        &b""[..],
        b"GET / HTTP/1.1",
        &[0x16, 0xfe, 0xfd, 0, 0],
        &[0x80; 40],
    ] {
        assert!(!sim.engine.datagram(Protocol::Tcp, stranger, junk));
    }
    sim.run(100, "host");
    assert_eq!(
        sim.engine.by_addr.len(),
        1,
        "only the host's address is routed"
    );
}

/// A TCP viewer whose connection drops and comes back from a new port (a new connection) goes on: the
/// closed path stops routing, the new one is learnt from its next STUN request, and media follows it
/// once str0m's ICE-lite agent lets the old path go (no check on it for 15 s, as for a NAT rebinding
/// over UDP).
#[test]
fn a_tcp_viewer_reconnecting_from_a_new_port_goes_on() {
    let mut sim = Sim::new();
    sim.join("host", 1000, true);
    sim.join_over("fan", 40000, false, Protocol::Tcp);
    sim.run(300, "host");
    let old = sim.client("fan").addr;
    sim.engine.path_closed(Protocol::Tcp, old);
    assert!(!sim.engine.by_addr.contains_key(&(Protocol::Tcp, old)));
    // The client's next connection comes from another port.
    let new = SocketAddr::from(([10, 0, 1, 1], 40001));
    sim.clients.get_mut("fan").expect("fan").addr = new;
    let before = sim.client("fan").packets.len();
    // Consent checks (every few seconds) find the session again.
    sim.run(20_000, "host");
    assert!(sim.engine.by_addr.contains_key(&(Protocol::Tcp, new)));
    assert!(
        sim.client("fan").packets.len() > before + 100,
        "video goes on over the new connection"
    );
}

/// A viewer whose network changes restarts ICE from a new address: the router answers on the same
/// session with new credentials, routes STUN naming the new ufrag to it (and nothing naming the old
/// one), forgets the old address, and the viewer's stream goes on — the same SSRC, numbered on from where
/// it was (packets sent to the old address while the new path was checked are all it can miss).
#[test]
fn a_viewer_restarting_ice_from_a_new_address_keeps_its_stream() {
    let mut sim = Sim::new();
    sim.join("host", 1000, true);
    sim.join("fan", 1001, false);
    sim.run(500, "host");
    let before = sim.client("fan").packets.len();
    assert!(before > 10, "video flows");
    let id = sim.engine.by_key[&key("fan")];
    let old_ufrag = sim.engine.peers[&id].ufrag.clone();
    let old_addr = sim.client("fan").addr;

    // The fan's network changes: an offer with new ICE credentials, then its checks from a new address.
    let fan = sim.clients.get_mut("fan").expect("fan");
    let mut api = fan.rtc.sdp_api();
    api.ice_restart(false);
    let (offer, pending) = api.apply().expect("an offer");
    let (reply, answer) = oneshot::channel();
    sim.engine.set_time(sim.now);
    sim.engine.command(Command::RestartIce {
        key: key("fan"),
        offer: offer.to_sdp_string(),
        reply,
    });
    let answer = answer.blocking_recv().expect("replied").expect("accepted");
    let new_ufrag = sim.engine.peers[&id].ufrag.clone();
    assert_ne!(new_ufrag, old_ufrag);
    assert!(
        answer.contains(&format!("a=ice-ufrag:{new_ufrag}")),
        "{answer}"
    );
    assert_eq!(sim.engine.by_ufrag.get(&new_ufrag), Some(&id));
    assert!(!sim.engine.by_ufrag.contains_key(&old_ufrag));
    assert!(!sim.engine.by_addr.contains_key(&(Protocol::Udp, old_addr)));
    assert_eq!(sim.engine.stats.ice_restarts, 1);

    let new_addr = SocketAddr::from(([10, 0, 2, 2], 2001));
    let fan = sim.clients.get_mut("fan").expect("fan");
    fan.rtc
        .sdp_api()
        .accept_answer(
            pending,
            SdpAnswer::from_sdp_string(&answer).expect("parses"),
        )
        .expect("the answer applies");
    fan.addr = new_addr;
    fan.rtc
        .add_local_candidate(Candidate::host(new_addr, "udp").expect("candidate"))
        .expect("added");
    sim.run(1000, "host");

    assert_eq!(
        sim.engine.by_addr.get(&(Protocol::Udp, new_addr)),
        Some(&id),
        "the new address routes to the same session"
    );
    let fan = sim.client("fan");
    assert!(fan.packets.len() > before + 10, "video goes on");
    // One stream, numbered on from its first packet: no new base (a resend of a packet lost meanwhile
    // may come late, so the order is not checked).
    let (ssrc, first) = (fan.packets[0].0, fan.packets[0].1);
    let span = fan.packets.len() as u16 + 100;
    for p in &fan.packets {
        assert_eq!(p.0, ssrc, "one stream throughout");
        assert!(
            p.1.wrapping_sub(first) < span,
            "numbered on from {first}, not from a new base: {p:?}"
        );
    }
}

/// What is not an ICE restart of the session is refused, and the session goes on as it was.
#[test]
fn an_offer_that_restarts_nothing_is_refused_and_changes_nothing() {
    let mut sim = Sim::new();
    sim.join("host", 1000, true);
    sim.join("fan", 1001, false);
    sim.run(300, "host");
    let id = sim.engine.by_key[&key("fan")];
    let ufrag = sim.engine.peers[&id].ufrag.clone();
    let restart = |sim: &mut Sim, offer: String| {
        let (reply, answer) = oneshot::channel();
        sim.command(Command::RestartIce {
            key: key("fan"),
            offer,
            reply,
        });
        answer.blocking_recv().expect("replied")
    };
    // The fan's current description, offered again: its credentials are the session's.
    let fan = sim.clients.get_mut("fan").expect("fan");
    let mut api = fan.rtc.sdp_api();
    api.set_direction(fan.video, Direction::RecvOnly);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (same_credentials, _) = api.apply().expect("an offer");
    let refused = restart(&mut sim, same_credentials.to_sdp_string());
    assert!(
        matches!(refused, Err(crate::MediaError::NotIceRestart(_))),
        "{refused:?}"
    );
    assert!(matches!(
        restart(&mut sim, "v=0\r\n".into()),
        Err(crate::MediaError::InvalidOffer(_))
    ));
    let (reply, answer) = oneshot::channel();
    sim.command(Command::RestartIce {
        key: key("nobody"),
        offer: "v=0\r\n".into(),
        reply,
    });
    assert_eq!(
        answer.blocking_recv().expect("replied"),
        Err(crate::MediaError::NoSession)
    );
    assert_eq!(sim.engine.peers[&id].ufrag, ufrag);
    assert_eq!(sim.engine.stats.ice_restarts, 0);
    let before = sim.client("fan").packets.len();
    sim.run(300, "host");
    assert!(sim.client("fan").packets.len() > before, "video goes on");
}

/// The simulcast layer each packet a receiver got belongs to, by its payload size (one-packet delta
/// frames; a keyframe's first packet is as long as the MTU allows, so only its last tells).
fn layer_of_delta(size: usize) -> Option<usize> {
    // str0m's VP8 packetizer adds a one-byte descriptor.
    LAYERS
        .iter()
        .position(|(_, _, _, delta)| *delta + 1 == size)
}

/// A publisher sends three layers; a receiver gets the top one, then — capped at the low one — the low
/// one from its next keyframe on, then the top again when the cap is lifted: one stream, no gap.
#[test]
fn a_receiver_is_switched_between_simulcast_layers_at_keyframes_without_a_gap() {
    let mut sim = Sim::new();
    sim.join_simulcast("host", 1000);
    sim.join("fan", 1001, false);
    sim.run(500, "host");
    let deltas = |sim: &Sim, from: usize| -> Vec<usize> {
        sim.client("fan").payload_sizes[from..]
            .iter()
            .filter_map(|s| layer_of_delta(*s))
            .collect()
    };
    let top = deltas(&sim, 0);
    assert!(top.len() > 5, "video flows: {top:?}");
    assert!(
        top.iter().all(|l| *l == 0),
        "the top layer by default: {top:?}"
    );

    let cap = |sim: &mut Sim, user: &str, layer: u8| {
        let (reply, done) = oneshot::channel();
        sim.command(Command::SetMaxLayer {
            key: key(user),
            layer,
            reply,
        });
        done.blocking_recv().expect("replied")
    };
    cap(&mut sim, "fan", 2).expect("capped");
    let at_cap = sim.client("fan").packets.len();
    let requests = sim.client("host").keyframe_requests;
    sim.run(500, "host");
    assert!(
        sim.client("host").keyframe_requests > requests,
        "the low layer's keyframe was asked for"
    );
    let down = deltas(&sim, at_cap);
    let switched = down
        .iter()
        .position(|l| *l == 2)
        .expect("the low layer arrives");
    assert!(
        down[..switched].iter().all(|l| *l == 0) && down[switched..].iter().all(|l| *l == 2),
        "the top layer until the switch, the low one after: {down:?}"
    );
    assert_eq!(sim.engine.stats.layer_switches, 1);

    cap(&mut sim, "fan", 0).expect("the cap lifted");
    let lifted = sim.client("fan").packets.len();
    sim.run(500, "host");
    let up = deltas(&sim, lifted);
    let back = up
        .iter()
        .position(|l| *l == 0)
        .expect("the top layer again");
    assert!(up[back..].iter().all(|l| *l == 0), "{up:?}");
    assert_eq!(sim.engine.stats.layer_switches, 2);
    contiguous(&sim.client("fan").packets).expect("one continuous stream across both switches");

    // A member without a session, or a layer past the last: refused, nothing changes.
    assert_eq!(
        cap(&mut sim, "nobody", 1),
        Err(crate::MediaError::NoSession)
    );
}

/// A receiver to be switched to a layer whose keyframe nobody wanted yet gets it asked at once, not after
/// the retry interval of a request still open for another layer (the publisher here answers none, so
/// that request stays open).
#[test]
fn a_keyframe_of_a_newly_wanted_layer_is_asked_at_once() {
    let mut sim = Sim::new();
    sim.join_simulcast("host", 1000);
    sim.join("fan", 1001, false);
    sim.run(500, "host");
    sim.answer_keyframe_requests = false;
    let cap = |sim: &mut Sim, layer: u8| {
        let (reply, done) = oneshot::channel();
        sim.command(Command::SetMaxLayer {
            key: key("fan"),
            layer,
            reply,
        });
        done.blocking_recv().expect("replied").expect("capped");
    };
    cap(&mut sim, 1);
    let before = sim.client("host").keyframe_requests;
    sim.run(50, "host");
    let first = sim.client("host").keyframe_requests;
    assert!(first > before, "the medium layer's keyframe was asked for");
    // Within the retry interval of that request, the low layer becomes the target.
    cap(&mut sim, 2);
    sim.run(50, "host");
    assert!(
        sim.client("host").keyframe_requests > first,
        "the low layer's keyframe was asked for at once"
    );
}

#[test]
fn a_frame_arriving_in_one_burst_goes_out_whole_in_the_same_turn() {
    // A frame's packets reaching a worker together (an edge gets the origin's relayed packets in
    // batches) are all written to the receiver's stream in one turn; str0m's pacer then releases one
    // packet per timeout, each asked for 1 µs after the last. Those timeouts are fed at once: left
    // to the loop's timer, each packet after the first waited a timer tick (≈ 1 ms), and a frame's
    // last packet reached an edge's viewers ≈ 4 ms after the origin's.
    let mut sim = Sim::new();
    sim.join("host", 6000, true);
    // The property is the engine feeding the pacer's timeouts, not the pacing: a viewer whose pacer
    // stays at the initial estimate. (With TWCC, once the router has set the simulated viewer's first
    // bandwidth targets, its pacer sends a packet every few milliseconds; why, was not looked into.)
    sim.transport_cc = false;
    sim.join("viewer", 6001, false);
    sim.run(300, "host");
    let before = sim.client("viewer").frame_ends;
    assert!(before > 0, "the viewer gets video");

    // ≈ 5 packets, under what the receiver's pacer sends at once (its 40 ms burst at the initial
    // estimate).
    sim.write_frame_now("host", 5_000);
    sim.settle();

    assert_eq!(
        sim.client("viewer").frame_ends,
        before + 1,
        "the frame's last packet reached the viewer without the clock moving"
    );
}

#[test]
fn a_pause_that_comes_inside_a_frame_lets_the_frame_finish() {
    // A pause comes at any instant; stopped inside a frame, receivers would hold its head with no
    // tail (a str0m receiver then waits ≈ 300 ms for the tail before showing anything after it).
    let mut sim = Sim::new();
    sim.join("host", 6100, true);
    // The property is the engine feeding the pacer's timeouts, not the pacing: a viewer whose pacer
    // stays at the initial estimate. (With TWCC, once the router has set the simulated viewer's first
    // bandwidth targets, its pacer sends a packet every few milliseconds; why, was not looked into.)
    sim.transport_cc = false;
    sim.join("viewer", 6101, false);
    sim.run(300, "host");
    let before = sim.client("viewer").frame_ends;
    assert!(before > 0, "the viewer gets video");

    let datagrams = sim.frame_datagrams("host", 5_000);
    assert!(datagrams.len() >= 3, "a frame of several packets");
    let host = sim.client("host").addr;
    let (head, tail) = datagrams.split_at(2);
    for d in head {
        sim.engine.datagram(Protocol::Udp, host, d);
    }
    let pause = |forward| Command::Forward {
        app: "app".into(),
        channel: "live".into(),
        publisher: "host".into(),
        forward,
    };
    sim.engine.command(pause(false));
    for d in tail {
        sim.engine.datagram(Protocol::Udp, host, d);
    }
    sim.settle();
    assert_eq!(
        sim.client("viewer").frame_ends,
        before + 1,
        "the frame under way reached the viewer whole"
    );

    // The frames after it are held; after the resume the stream goes on without a gap.
    sim.run(300, "host");
    assert_eq!(sim.client("viewer").frame_ends, before + 1, "held");
    sim.command(pause(true));
    sim.run(300, "host");
    assert!(sim.client("viewer").frame_ends > before + 1, "video again");
    contiguous(&sim.client("viewer").packets).expect("one continuous stream");
}
