//! [`WebhookMessage`]: what one event becomes on the wire — the body, its id and its type (pure).

use bytes::Bytes;
use showcall_ports::event_log::LoggedEvent;
use showcall_proto::admin as pb;

/// The header carrying the event id, equal on every attempt of one event (the IETF idempotency-key
/// draft's name, which many HTTP frameworks already understand).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// The header carrying the event type (see [`event_type`]), so a receiver can route before parsing.
pub const EVENT_TYPE_HEADER: &str = "showcall-event-type";

/// The header carrying the attempt number (1 for the first), for the receiver's logs.
pub const ATTEMPT_HEADER: &str = "showcall-delivery-attempt";

/// One event, ready to POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookMessage {
    /// The event's cursor in the log (the delivery checkpoint moves to it).
    pub cursor: u64,
    /// `evt-<cursor>`: the same id `WatchEvents` gives this event, and the same on every retry.
    pub id: String,
    /// The event type ([`event_type`]).
    pub event_type: &'static str,
    /// The canonical protobuf JSON of the `showcall.admin.v1.Event` (as `WatchEvents` carries it): one
    /// schema for both ways of hearing about events.
    pub body: Bytes,
}

impl WebhookMessage {
    pub fn new(logged: LoggedEvent) -> Self {
        let cursor = logged.cursor;
        let event = crate::events::to_proto(logged);
        let event_type = event_type(&event);
        // Generated pbjson serde of plain data: serialising to a Vec cannot fail.
        let body = serde_json::to_vec(&event).expect("an Event serialises to JSON");
        Self {
            cursor,
            id: event.id,
            event_type,
            body: Bytes::from(body),
        }
    }
}

/// The `Showcall-Event-Type` of an event: `<subject>.<what happened>`, named after the `Event.kind` field.
pub fn event_type(event: &pb::Event) -> &'static str {
    use pb::event::Kind;
    match &event.kind {
        Some(Kind::UserOnline(_)) => "user.online",
        Some(Kind::UserOffline(_)) => "user.offline",
        Some(Kind::MemberJoined(_)) => "member.joined",
        Some(Kind::MemberLeft(_)) => "member.left",
        Some(Kind::HostPaused(_)) => "host.paused",
        Some(Kind::HostResumed(_)) => "host.resumed",
        Some(Kind::CallCreated(_)) => "call.created",
        Some(Kind::CallRinging(_)) => "call.ringing",
        Some(Kind::CallAccepted(_)) => "call.accepted",
        Some(Kind::CallConnected(_)) => "call.connected",
        Some(Kind::CallEnded(_)) => "call.ended",
        Some(Kind::BillingTick(_)) => "call.billing_tick",
        Some(Kind::MemberKicked(_)) => "member.kicked",
        None => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use showcall_ports::event_log::{BusinessEvent, EventKind};
    use showcall_protocol::AppId;

    use super::*;

    #[test]
    fn a_message_carries_the_event_id_type_and_canonical_json() {
        let message = WebhookMessage::new(LoggedEvent {
            cursor: 42,
            event: BusinessEvent {
                app: AppId("demo".into()),
                at: 1_700_000_000_000,
                kind: EventKind::UserOnline {
                    user: "alice".into(),
                },
            },
        });
        assert_eq!(message.cursor, 42);
        assert_eq!(message.id, "evt-42");
        assert_eq!(message.event_type, "user.online");
        let json: serde_json::Value = serde_json::from_slice(&message.body).expect("json");
        assert_eq!(json["id"], "evt-42");
        assert_eq!(json["appId"], "demo");
        assert_eq!(json["userOnline"]["userId"], "alice");
        // The canonical JSON parses back into the same proto Event a watcher gets.
        let back: pb::Event = serde_json::from_slice(&message.body).expect("pbjson");
        assert_eq!(back.cursor, 42);
    }
}
