//! A sans-IO handle on one worker's [`Engine`] for the fuzz targets (`fuzz/`), built only with the
//! `fuzzing` feature: the engine is private to the crate, and going through [`crate::MediaRouter`]
//! would put a UDP socket, a thread and two channel hops in every fuzz input.
//!
//! It drives the same commands the router sends — open a session from a client's SDP offer, apply a
//! client's SDP answer to a router-made offer, close — on a virtual clock, and shows what the engine
//! told the node.
//!
//! The router makes offers only to members whose session is up (str0m reports a session's lines once
//! ICE and DTLS are through), so [`SdpHarness::pending_offer`] keeps one such member: a str0m client
//! (as the Rust SDK makes them) connected over an in-memory network, whose lines a publisher on another
//! worker turns inactive by leaving and active again by coming back — one re-offer each time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::MediaError;
use crate::protocol::{Command, Kind, MediaEvent, PeerKey};
use crate::relay::{self, Control, RelayInbox, first_session_id};

/// The host candidate the engine puts in its answers.
const ROUTER: ([u8; 4], u16) = ([127, 0, 0, 1], 5000);
/// The connected member's address.
const MEMBER: ([u8; 4], u16) = ([127, 0, 0, 2], 6000);
/// The connected member's channel; [`SdpHarness::close_room`] of another channel leaves it alone.
const MEMBER_APP: &str = "app";
const MEMBER_CHANNEL: &str = "connected";
/// Virtual time per step while a member connects, and the most steps it may take.
const STEP: Duration = Duration::from_millis(5);
const CONNECT_STEPS: usize = 2_000;

/// One worker's engine and the far ends of what it sends out. See the module docs.
pub struct SdpHarness {
    engine: Engine,
    now: Instant,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    /// The member [`SdpHarness::pending_offer`] keeps connected, once it is.
    member: Option<Member>,
    /// Worker 1's inboxes: the engine hands packets and control messages there for the channel it
    /// shares with the publisher on worker 1. Drained after each command.
    relay_packets: mpsc::Receiver<relay::Forwarded>,
    relay_control: mpsc::UnboundedReceiver<Control>,
    /// Worker 0's own inboxes, held so the engine's sends to itself never fail.
    _own: RelayInbox,
    _own_packets: mpsc::Receiver<relay::Forwarded>,
    _own_control: mpsc::UnboundedReceiver<Control>,
}

/// A member whose session is up, and where its renegotiation stands.
struct Member {
    /// The member's side of the session, which the tests answer the router's offers with (the harness
    /// sends it nothing once the session is up).
    #[cfg(test)]
    rtc: Rtc,
    /// Whether the publisher on worker 1 is in the channel now (the member's lines follow it).
    publisher_present: bool,
    /// The router's offer waiting for the member's answer.
    pending: Option<RouterOffer>,
}

/// An offer the router made a member, waiting for the member's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterOffer {
    pub member: PeerKey,
    /// What the answer must name ([`SdpHarness::accept_answer`]).
    pub revision: u64,
    pub sdp_offer: String,
}

impl Default for SdpHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl SdpHarness {
    /// Worker 0 of two (the engine's DTLS certificate is made here, once).
    pub fn new() -> Self {
        str0m::crypto::from_feature_flags().install_process_default();
        let (own_packets_tx, own_packets) = mpsc::channel(relay::PACKET_QUEUE);
        let (own_control_tx, own_control) = mpsc::unbounded_channel();
        let (packets_tx, relay_packets) = mpsc::channel(relay::PACKET_QUEUE);
        let (control_tx, relay_control) = mpsc::unbounded_channel();
        let own = RelayInbox {
            packets: own_packets_tx,
            control: own_control_tx,
        };
        let other = RelayInbox {
            packets: packets_tx,
            control: control_tx,
        };
        let (events_tx, events) = mpsc::unbounded_channel();
        let now = Instant::now();
        let engine = Engine::new(
            now,
            SocketAddr::from(ROUTER),
            None,
            events_tx,
            0,
            vec![own.clone(), other].into(),
        );
        Self {
            engine,
            now,
            events,
            member: None,
            relay_packets,
            relay_control,
            _own: own,
            _own_packets: own_packets,
            _own_control: own_control,
        }
    }

    /// Opens `key`'s session from a client's SDP `offer`, as the router's `open` does; the SDP answer.
    pub fn open(
        &mut self,
        key: PeerKey,
        may_publish: bool,
        offer: &str,
    ) -> Result<String, MediaError> {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        self.command(Command::Open {
            key,
            may_publish,
            offer: offer.to_owned(),
            reply,
        });
        answer.try_recv().unwrap_or(Err(MediaError::Stopped))
    }

    /// Applies a client's SDP `answer` to the router's pending offer `revision`, as the router's
    /// `accept_answer` does.
    pub fn accept_answer(
        &mut self,
        key: PeerKey,
        revision: u64,
        answer: &str,
    ) -> Result<(), MediaError> {
        let (reply, mut accepted) = tokio::sync::oneshot::channel();
        let member = key == member_key();
        self.command(Command::AcceptAnswer {
            key,
            revision,
            answer: answer.to_owned(),
            reply,
        });
        let accepted = accepted.try_recv().unwrap_or(Err(MediaError::Stopped));
        if member {
            self.after_answer(&accepted);
        }
        accepted
    }

    /// An offer the router made a member whose session is up, waiting for the member's answer.
    /// Connects the member first when it has no session (at the start, or after an answer the router
    /// could not apply closed it); `None` if that fails.
    pub fn pending_offer(&mut self) -> Option<RouterOffer> {
        if self.member.is_none() {
            self.member = Some(self.connect_member()?);
        }
        let member = self.member.as_mut()?;
        if let Some(offer) = &member.pending {
            return Some(offer.clone());
        }
        // The publisher coming or going flips the member's lines: the router re-offers.
        member.publisher_present = !member.publisher_present;
        let kinds = if member.publisher_present {
            vec![Kind::Audio, Kind::Video]
        } else {
            Vec::new()
        };
        self.engine.control(Control::Publisher {
            session: first_session_id(1),
            key: PeerKey {
                user: "publisher".into(),
                ..member_key()
            },
            kinds,
        });
        self.end_turn();
        let offer = self
            .take_events()
            .into_iter()
            .find_map(|event| match event {
                MediaEvent::Offer {
                    key,
                    revision,
                    sdp_offer,
                } if key == member_key() => Some(RouterOffer {
                    member: key,
                    revision,
                    sdp_offer,
                }),
                _ => None,
            });
        let member = self.member.as_mut()?;
        member.pending.clone_from(&offer);
        offer
    }

    /// Closes every session of a channel, as the router does when the channel ends.
    pub fn close_room(&mut self, app: &str, channel: &str) {
        self.command(Command::CloseRoom {
            app: app.to_owned(),
            channel: channel.to_owned(),
        });
        if (app, channel) == (MEMBER_APP, MEMBER_CHANNEL) {
            self.member = None;
        }
    }

    /// Sessions open now.
    pub fn sessions(&mut self) -> usize {
        let (reply, mut stats) = tokio::sync::oneshot::channel();
        self.command(Command::Stats { reply });
        stats.try_recv().map_or(0, |s| s.sessions)
    }

    /// What the engine told the node since the last call.
    pub fn take_events(&mut self) -> Vec<MediaEvent> {
        std::iter::from_fn(|| self.events.try_recv().ok()).collect()
    }

    /// Where the member stands after the router took (or refused) its answer: answered, still waiting
    /// (the answer did not parse: nothing changed), or gone (it parsed but did not apply: the router
    /// closed the session).
    fn after_answer(&mut self, accepted: &Result<(), MediaError>) {
        let closed = self.take_events().iter().any(
            |event| matches!(event, MediaEvent::SessionClosed { key } if *key == member_key()),
        );
        if closed {
            self.member = None;
            return;
        }
        if let Some(member) = self.member.as_mut()
            && accepted.is_ok()
        {
            member.pending = None;
        }
    }

    /// A str0m client offering to receive audio and video joins, and its session comes up over an
    /// in-memory network on the virtual clock.
    fn connect_member(&mut self) -> Option<Member> {
        let member_addr = SocketAddr::from(MEMBER);
        let mut rtc = Rtc::builder().build(self.now);
        rtc.add_local_candidate(Candidate::host(member_addr, "udp").ok()?);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply()?;
        let answer = self
            .open(member_key(), false, &offer.to_sdp_string())
            .ok()?;
        rtc.sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).ok()?)
            .ok()?;
        for _ in 0..CONNECT_STEPS {
            self.now += STEP;
            self.engine.set_time(self.now);
            rtc.handle_input(Input::Timeout(self.now)).ok()?;
            loop {
                match rtc.poll_output().ok()? {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        self.engine
                            .datagram(Protocol::Udp, member_addr, &t.contents);
                    }
                    Output::Event(_) => {}
                }
            }
            self.engine.end_turn();
            let router = SocketAddr::from(ROUTER);
            for (to, data) in self.engine.take_transmits().collect::<Vec<_>>() {
                if to == member_addr
                    && let Ok(receive) = Receive::new(Protocol::Udp, router, to, &data)
                {
                    rtc.handle_input(Input::Receive(self.now, receive)).ok()?;
                }
            }
            // The member's lines are known once the session is up: the publisher's first appearance
            // then changes nothing, which is how a connected member starts.
            let up = rtc.is_connected();
            if up {
                self.engine.control(Control::Publisher {
                    session: first_session_id(1),
                    key: PeerKey {
                        user: "publisher".into(),
                        ..member_key()
                    },
                    kinds: vec![Kind::Audio, Kind::Video],
                });
                self.end_turn();
                self.take_events();
                return Some(Member {
                    #[cfg(test)]
                    rtc,
                    publisher_present: true,
                    pending: None,
                });
            }
        }
        None
    }

    /// One turn of the worker loop: the command, then due timers and every session drained.
    fn command(&mut self, command: Command) {
        self.engine.set_time(self.now);
        self.engine.command(command);
        self.end_turn();
    }

    /// Due timers and every session drained; what the engine sent is dropped (the member's datagrams
    /// matter only while it connects).
    fn end_turn(&mut self) {
        self.engine.end_turn();
        self.engine.take_transmits().for_each(drop);
        while self.relay_packets.try_recv().is_ok() {}
        while self.relay_control.try_recv().is_ok() {}
    }
}

/// The member [`SdpHarness::pending_offer`] keeps connected.
fn member_key() -> PeerKey {
    PeerKey {
        app: MEMBER_APP.into(),
        channel: MEMBER_CHANNEL.into(),
        user: "member".into(),
    }
}

#[cfg(test)]
mod tests {
    use str0m::change::SdpOffer;

    use super::*;

    /// The fuzz target's answer path with real answers: the connected member answers each re-offer as
    /// its str0m session does, and the router takes it; the publisher going and coming makes the next.
    #[test]
    fn a_connected_member_answers_the_routers_offers() {
        let mut harness = SdpHarness::new();
        for round in 1..=3 {
            let offer = harness.pending_offer().expect("a re-offer");
            assert_eq!(offer.member, member_key());
            assert_eq!(offer.revision, round, "one offer per round");
            let member = harness.member.as_mut().expect("connected");
            let answer = member
                .rtc
                .sdp_api()
                .accept_offer(SdpOffer::from_sdp_string(&offer.sdp_offer).expect("sdp"))
                .expect("the member takes the router's offer")
                .to_sdp_string();
            if std::env::var_os("SHOWCALL_PRINT_SDP").is_some() {
                // How fuzz/corpus/media_sdp's str0m answers were made.
                println!("--- router offer {round}\n{}", offer.sdp_offer);
                println!("--- member answer {round}\n{answer}");
            }
            assert_eq!(
                harness.accept_answer(offer.member.clone(), offer.revision, &answer),
                Ok(())
            );
            assert_eq!(
                harness.accept_answer(offer.member, offer.revision, &answer),
                Err(MediaError::NoPendingOffer),
                "an offer is answered once"
            );
            assert_eq!(harness.sessions(), 1);
        }
        harness.close_room(MEMBER_APP, MEMBER_CHANNEL);
        assert_eq!(harness.sessions(), 0);
    }

    #[test]
    fn an_answer_that_does_not_parse_leaves_the_offer_pending() {
        let mut harness = SdpHarness::new();
        let offer = harness.pending_offer().expect("a re-offer");
        assert!(matches!(
            harness.accept_answer(offer.member.clone(), offer.revision, "v=0 garbage"),
            Err(MediaError::InvalidAnswer(_))
        ));
        assert_eq!(harness.pending_offer(), Some(offer));
    }
}
