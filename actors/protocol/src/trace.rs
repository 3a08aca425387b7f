//! One call, one trace: the trace context that travels with actor messages, and the names of a call's spans.
//!
//! Decisions (the issue is silent on them):
//! - Spans are ordinary `tracing` spans with target [`TARGET`] at DEBUG level. The node exports them over
//!   OTLP only when an endpoint is configured (its OTLP layer enables this target whatever the log level);
//!   otherwise the log filter (INFO by default) disables them, and a message costs a disabled-callsite
//!   check and an empty context.
//! - The context travels as a W3C `traceparent` string ([`TraceContext`]): captured from the current span
//!   when a message ([`Traced::new`](Traced::new)) or an envelope is sent, continued by
//!   the receiver. An envelope's context is attached while the receiving hub delivers it, so whatever the
//!   delivery starts (a call actor, a call channel) continues the sender's trace.
//! - The root of a call's trace is the caller's `call` request at the gateway (`signal.call`), itself a
//!   child of the client's span when the request carries a `traceparent`.
//! - The call actor keeps one span for the call's whole life (`call`); each input it handles is a child
//!   span `call.<input>` whatever context the input came with: an accept or a hangup is a request of
//!   another client, yet it lands in the call's tree.
//! - A call channel keeps the context it was opened under: each party's join (with its media session),
//!   leave and first frame are spans under it.
//! - A call taken over by another node after its node died starts a new trace (its `call` span has
//!   `call.restored = true`): the ledger's snapshot does not keep the context.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use showcall_machines::call::{EndCause, SessionEnd};
use showcall_machines::user::UserInput;
use showcall_machines::{CallId, CallInput};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use serde::{Deserialize, Serialize};

/// The `tracing` target of every span of a call's trace: what the node's OTLP layer exports.
pub const TARGET: &str = "showcall::trace";

/// The W3C header name, also the key in the node link's `trace_context` map.
pub const TRACEPARENT: &str = "traceparent";

/// W3C trace context of the span that sent a message, so one call is one trace across actors and nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    pub traceparent: Option<String>,
}

/// A machine input with the trace context it was sent under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traced<T> {
    pub payload: T,
    pub trace: TraceContext,
}

impl<T> Traced<T> {
    /// `payload`, sent under the current span ([`TraceContext::current`]).
    pub fn new(payload: T) -> Self {
        Self {
            payload,
            trace: TraceContext::current(),
        }
    }
}

impl TraceContext {
    /// The context of the current span: the span this code runs in, or — when no exported span is
    /// current (a node link delivering an envelope) — the OpenTelemetry context attached to the task.
    /// Empty when nothing is traced.
    pub fn current() -> Self {
        let cx = tracing::Span::current().context();
        if cx.span().span_context().is_valid() {
            Self::of(&cx)
        } else {
            Self::of(&Context::current())
        }
    }

    /// `span`'s context (empty when it is not exported).
    pub fn of_span(span: &tracing::Span) -> Self {
        Self::of(&span.context())
    }

    /// The context's span as a `traceparent`; empty when it has no valid span.
    pub fn of(cx: &Context) -> Self {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(cx, &mut carrier);
        Self {
            traceparent: carrier.remove(TRACEPARENT),
        }
    }

    /// A context from a `traceparent` someone else sent (a client, another node); `None` when it is not
    /// a valid W3C traceparent (wrong length or version, non-hex or all-zero ids).
    pub fn parse(traceparent: &str) -> Option<Self> {
        if !well_formed(traceparent) {
            return None;
        }
        let parsed = Self {
            traceparent: Some(traceparent.to_owned()),
        };
        // The propagator refuses the rest: version ff, all-zero ids.
        parsed.is_set().then_some(parsed)
    }

    /// Whether this carries a valid span context.
    pub fn is_set(&self) -> bool {
        self.context().span().span_context().is_valid()
    }

    /// The OpenTelemetry context whose (remote) span is the one this names; empty when unset or invalid.
    pub fn context(&self) -> Context {
        let Some(traceparent) = &self.traceparent else {
            return Context::new();
        };
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.clone())]);
        TraceContextPropagator::new().extract(&carrier)
    }

    /// Makes `span` a child of the span this names (call before anything reads `span`'s context). Does
    /// nothing when this is empty or `span` is not exported.
    pub fn continue_in(&self, span: &tracing::Span) {
        let cx = self.context();
        if cx.span().span_context().is_valid() {
            // Err only when the span is disabled (not exported) or already started: nothing to continue.
            let _ = span.set_parent(cx);
        }
    }
}

/// The W3C shape the SDK's propagator does not check (it reads ids as numbers, so `abc` would pass):
/// `version-traceid-parentid-flags` with 2, 32, 16 and 2 lowercase hex digits; version 00 has exactly these
/// four fields, a later version may append more.
fn well_formed(traceparent: &str) -> bool {
    let hex = |field: &str, len: usize| {
        field.len() == len
            && field
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let fields: Vec<&str> = traceparent.split('-').collect();
    match fields.as_slice() {
        [version, trace, span, flags, rest @ ..] => {
            hex(version, 2)
                && hex(trace, 32)
                && hex(span, 16)
                && hex(flags, 2)
                && (rest.is_empty() || *version != "00")
        }
        _ => false,
    }
}

/// The name of the span in which the call actor handles `input`.
pub fn call_step(input: &CallInput) -> &'static str {
    match input {
        CallInput::Start => "call.start",
        CallInput::Delivered { .. } => "call.ringing",
        CallInput::Undeliverable(_) => "call.undeliverable",
        CallInput::Cancel { .. } => "call.cancel",
        CallInput::Accept { .. } => "call.accept",
        CallInput::Reject { .. } => "call.reject",
        CallInput::Hangup { .. } => "call.hangup",
        CallInput::ChannelJoined { .. } => "call.party_joined",
        CallInput::MediaFlowing { .. } => "call.media_flowing",
        CallInput::ChannelLeft { .. } => "call.party_left",
        CallInput::PeerAway { .. } => "call.peer_away",
        CallInput::PeerBack { .. } => "call.peer_back",
        CallInput::SessionEnded { .. } => "call.session_ended",
        CallInput::GaveWay { .. } => "call.gave_way",
        CallInput::CallingTimeout => "call.timeout",
        CallInput::Terminate { .. } => "call.terminate",
        CallInput::ChannelLost => "call.channel_lost",
        CallInput::MoveChannel { .. } => "call.move_channel",
        CallInput::Adopt => "call.adopt",
        CallInput::PartyPresent { .. } => "call.party_present",
        CallInput::ChannelPresent { .. } => "call.channel_present",
        CallInput::AdoptionTimeout => "call.adoption_timeout",
        CallInput::Authorized { .. } => "call.authorized",
        CallInput::AdmissionTimeout => "call.admission_timeout",
        CallInput::BillingTick => "call.billing_tick",
    }
}

/// The call a user actor's input is about, with the span name it is handled in; `None` for inputs that
/// are not part of a call's trace (logins, presence, channel events).
pub fn user_step(input: &UserInput) -> Option<(&'static str, &CallId)> {
    match input {
        UserInput::Ring { info } => Some(("user.ring", &info.call_id)),
        UserInput::CallUpdate { call_id, .. } | UserInput::CallUpdates { call_id, .. } => {
            Some(("user.call_update", call_id))
        }
        UserInput::CallAdopted { call_id } => Some(("user.call_adopted", call_id)),
        _ => None,
    }
}

/// `call.end_reason`: the business events' `call_ended.reason`, with how a session ended.
pub fn end_reason(cause: &EndCause) -> &'static str {
    match cause {
        EndCause::SessionEnded { how, .. } => match how {
            SessionEnd::LoggedOut => "session_ended.logged_out",
            SessionEnd::TokenExpired => "session_ended.token_expired",
            SessionEnd::Gone => "session_ended.gone",
        },
        other => other.name(),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn remote(trace: u128, span: u64, sampled: bool) -> Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let sc = SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            flags,
            true,
            TraceState::default(),
        );
        Context::new().with_remote_span_context(sc)
    }

    #[test]
    fn a_span_context_survives_inject_then_extract() {
        let sent = remote(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, true);
        let wire = TraceContext::of(&sent);
        assert_eq!(
            wire.traceparent.as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        let received = wire.context();
        let (a, b) = (sent.span(), received.span());
        let (a, b) = (a.span_context(), b.span_context());
        assert_eq!(b.trace_id(), a.trace_id());
        assert_eq!(b.span_id(), a.span_id());
        assert_eq!(b.trace_flags(), a.trace_flags());
        assert!(b.is_remote());
    }

    #[test]
    fn an_unsampled_context_keeps_its_flag() {
        let wire = TraceContext::of(&remote(7, 9, false));
        assert_eq!(
            wire.traceparent.as_deref(),
            Some("00-00000000000000000000000000000007-0000000000000009-00")
        );
        assert!(!wire.context().span().span_context().is_sampled());
    }

    #[test]
    fn no_span_means_no_traceparent() {
        let wire = TraceContext::of(&Context::new());
        assert_eq!(wire, TraceContext::default());
        assert!(!wire.is_set());
        assert!(!wire.context().span().span_context().is_valid());
    }

    #[test]
    fn parse_accepts_a_w3c_traceparent() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceContext::parse(text).expect("valid");
        assert_eq!(parsed.traceparent.as_deref(), Some(text));
        assert!(parsed.is_set());
    }

    #[test]
    fn parse_refuses_what_is_not_a_traceparent() {
        for bad in [
            "",
            "hello",
            // all-zero trace id / span id
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // version ff is forbidden
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // short ids, non-hex, upper case, extra fields in version 00
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-abc-def-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn without_an_exporter_the_current_context_is_empty() {
        let span = tracing::debug_span!(target: TARGET, "call");
        let _entered = span.enter();
        assert_eq!(TraceContext::current(), TraceContext::default());
    }
}
