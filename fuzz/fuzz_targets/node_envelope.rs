//! A frame on the node link, as the receiving node handles it: the protobuf `Envelope` (as tonic decodes
//! it off the stream), unframed into the actors' `remote::Envelope` (its JSON payload and the trace
//! context), and — for a partition handoff — the user sessions and connected calls restored into their
//! machines, with the timers they arm fired, as the new owner's actors do.
//!
//! Nodes trust each other, but a node must not die of a frame that a peer of another build, a bug or a
//! bit flip sent. Beyond "no panic": an envelope that decodes encodes again (the node passes envelopes
//! on to a key's owner) into the same JSON, and a restored session snapshots back to what was sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use showcall_machines::{
    CallEffect, CallInput, CallMachine, CallSnapshot, CallTimer, UserConfig, UserEffect, UserInput,
    UserMachine,
};
use showcall_proto::node as pb;
use showcall_protocol::Envelope;
use showcall_protocol::envelope::Body;
use showcall_protocol::handoff::Handoff;

/// The receiving node's clock, ms.
const NOW_MS: u64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = pb::Envelope::decode(data) else {
        return;
    };
    let Ok(envelope) = showcall_cluster::link::unframe(&frame) else {
        return;
    };
    let _ = envelope.target();
    let _ = envelope.trace.context();
    assert_reencodes(&envelope);
    if let Body::Handoff { handoff, .. } = envelope.body {
        install(handoff);
    }
});

fn assert_reencodes(envelope: &Envelope) {
    let json = envelope.encode();
    let again = Envelope::decode(&json).expect("an envelope's own encoding decodes");
    assert_eq!(again.encode(), json, "an envelope's encoding is stable");
}

/// What `Hub::install` and the actors it starts do with a handoff, minus the actors.
fn install(handoff: Handoff) {
    for user in handoff.users {
        let sent = user.snapshot.clone();
        let Ok(mut machine) = UserMachine::restore(user.snapshot, UserConfig::default()) else {
            continue;
        };
        assert_eq!(
            machine.snapshot(),
            sent,
            "a restored session is the one sent"
        );
        for effect in machine.restored_timers(NOW_MS) {
            if let UserEffect::SetTimer { timer, at } = effect {
                let _ = machine.handle(UserInput::Timer(timer), at);
            }
        }
    }
    for call in handoff.calls {
        resume(call.snapshot.clone());
        restore(call.snapshot);
    }
}

/// A call handed over by a leaving node: it goes on, its billing ticks where they stood.
fn resume(snapshot: CallSnapshot) {
    let mut machine = CallMachine::resume(snapshot);
    let timers = machine.resumed_timers();
    fire(&mut machine, timers);
}

/// The same snapshot as a crashed node's call record: the call asks its parties and channel first.
fn restore(snapshot: CallSnapshot) {
    let mut machine = CallMachine::restore(snapshot);
    if let Ok(effects) = machine.handle(CallInput::Adopt, NOW_MS) {
        fire(&mut machine, effects);
    }
}

/// Fires the timers `effects` arm, each at its due time.
fn fire(machine: &mut CallMachine, effects: Vec<CallEffect>) {
    for effect in effects {
        if let CallEffect::SetTimer { timer, at } = effect {
            let input = match timer {
                CallTimer::Calling => CallInput::CallingTimeout,
                CallTimer::Adoption => CallInput::AdoptionTimeout,
                CallTimer::Admission => CallInput::AdmissionTimeout,
                CallTimer::BillingTick => CallInput::BillingTick,
            };
            let _ = machine.handle(input, at);
        }
    }
}
