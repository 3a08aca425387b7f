//! A client's SDP in the media router. The input is used twice: as the SDP offer of a member joining a
//! channel (the router opens a session from it and answers), and as a member's SDP answer to an offer
//! the router made when it renegotiated the member's session. Both go through one worker's engine, sans
//! IO (`showcall_media::fuzzing::SdpHarness`), after the gateway's size limit, as in production.
//!
//! Beyond "no panic": an answer the router writes parses as SDP; an offer it accepts makes exactly one
//! session, which closing the channel removes (nothing leaks from one input to the next); an answer it
//! refuses without closing the session leaves its offer waiting, unchanged.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use showcall_gateway::validate::MAX_SDP_OFFER;
use showcall_media::fuzzing::SdpHarness;
use showcall_media::{MediaError, PeerKey};
use str0m::change::SdpAnswer;

/// The joining member's channel (the harness keeps its connected member in another).
const APP: &str = "app";
const CHANNEL: &str = "live";

thread_local! {
    /// One engine for the whole run: making one costs a DTLS certificate (a P-384 key), and connecting
    /// the member that answers costs a DTLS handshake.
    static HARNESS: RefCell<SdpHarness> = RefCell::new(SdpHarness::new());
}

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    // The gateway refuses longer offers and answers before they reach the router.
    if sdp.len() > MAX_SDP_OFFER {
        return;
    }
    HARNESS.with_borrow_mut(|harness| {
        as_offer(harness, sdp);
        as_answer(harness, sdp);
    });
});

/// The input as the SDP offer of a member joining; a publisher or audience (by the input's length, so
/// each input is one case).
fn as_offer(harness: &mut SdpHarness, sdp: &str) {
    let may_publish = sdp.len().is_multiple_of(2);
    let joining = PeerKey {
        app: APP.into(),
        channel: CHANNEL.into(),
        user: "joining".into(),
    };
    let before = harness.sessions();
    if let Ok(answer) = harness.open(joining, may_publish, sdp) {
        SdpAnswer::from_sdp_string(&answer).expect("the router's answer is SDP");
        assert_eq!(
            harness.sessions(),
            before + 1,
            "an accepted offer makes one session"
        );
    }
    harness.close_room(APP, CHANNEL);
    assert_eq!(
        harness.sessions(),
        before,
        "closing the channel ends its sessions"
    );
    harness.take_events();
}

/// The input as the connected member's answer to the router's pending offer.
fn as_answer(harness: &mut SdpHarness, sdp: &str) {
    let offer = harness
        .pending_offer()
        .expect("a connected member gets a re-offer");
    match harness.accept_answer(offer.member.clone(), offer.revision, sdp) {
        Err(MediaError::InvalidAnswer(_)) if harness.sessions() == 1 => {
            assert_eq!(
                harness.pending_offer(),
                Some(offer),
                "an answer refused without closing the session changes nothing"
            );
        }
        _ => {}
    }
}
