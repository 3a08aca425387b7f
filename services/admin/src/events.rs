//! `WatchEvents`: the business events ([`showcall_ports::event_log`]) as the proto stream.

use futures_util::StreamExt;
use showcall_machines::call::{EndCause, SessionEnd};
use showcall_machines::{CallType, Role};
use showcall_ports::event_log::{EventKind, LoggedEvent, WatchError};
use showcall_proto::admin as pb;
use tonic::Status;

/// The proto form of one logged event.
pub fn to_proto(logged: LoggedEvent) -> pb::Event {
    let LoggedEvent { cursor, event } = logged;
    let app = event.app.0;
    pb::Event {
        cursor,
        // The cursor is unique and stable: the same event always has it (here and in webhooks).
        id: format!("evt-{cursor}"),
        app_id: app,
        at_ms: event.at,
        kind: Some(kind(event.kind)),
    }
}

fn role(role: Role) -> pb::MemberRole {
    match role {
        Role::Broadcaster => pb::MemberRole::Broadcaster,
        Role::Audience => pb::MemberRole::Audience,
    }
}

pub(crate) fn call_kind(t: CallType) -> i32 {
    match t {
        CallType::Video => pb::CallKind::Video as i32,
        CallType::Audio => pb::CallKind::Audio as i32,
    }
}

/// The seed's channel event codes.
fn seed_code(role: Role, joined: bool) -> u32 {
    match (role, joined) {
        (Role::Broadcaster, true) => 103,
        (Role::Broadcaster, false) => 104,
        (Role::Audience, true) => 105,
        (Role::Audience, false) => 106,
    }
}

fn member(channel: String, user: String, r: Role, joined: bool) -> pb::ChannelMember {
    pb::ChannelMember {
        channel,
        user_id: user,
        role: role(r) as i32,
        seed_code: seed_code(r, joined),
    }
}

fn kind(kind: EventKind) -> pb::event::Kind {
    use pb::event::Kind;
    match kind {
        EventKind::UserOnline { user } => Kind::UserOnline(pb::UserPresence { user_id: user.0 }),
        EventKind::UserOffline { user } => Kind::UserOffline(pb::UserPresence { user_id: user.0 }),
        EventKind::MemberJoined {
            channel,
            user,
            role,
        } => Kind::MemberJoined(member(channel.0, user.0, role, true)),
        EventKind::MemberLeft {
            channel,
            user,
            role,
        } => Kind::MemberLeft(member(channel.0, user.0, role, false)),
        EventKind::MemberKicked { channel, user, ban } => Kind::MemberKicked(pb::MemberKicked {
            channel: channel.0,
            user_id: user.0,
            banned_until_ms: ban.map_or(0, |b| b.until),
            ban_join: ban.is_some_and(|b| b.join),
            ban_publish_audio: ban.is_some_and(|b| b.publish_audio),
            ban_publish_video: ban.is_some_and(|b| b.publish_video),
        }),
        EventKind::HostPaused {
            channel,
            host,
            call,
        } => Kind::HostPaused(pb::HostPause {
            channel: channel.0,
            host_user_id: host.0,
            call_id: call.0,
        }),
        EventKind::HostResumed { channel, host } => Kind::HostResumed(pb::HostPause {
            channel: channel.0,
            host_user_id: host.0,
            call_id: String::new(),
        }),
        EventKind::CallCreated {
            call,
            caller,
            callee,
            call_type,
            channel,
        } => Kind::CallCreated(pb::CallCreated {
            call_id: call.0,
            caller_user_id: caller.0,
            callee_user_id: callee.0,
            call_type: call_kind(call_type),
            channel: channel.0,
        }),
        EventKind::CallRinging { call } => Kind::CallRinging(pb::CallRef { call_id: call.0 }),
        EventKind::CallAccepted { call } => Kind::CallAccepted(pb::CallRef { call_id: call.0 }),
        EventKind::CallConnected { call } => Kind::CallConnected(pb::CallRef { call_id: call.0 }),
        EventKind::CallEnded { record } => {
            let reason = record.cause.name();
            let (by, detail) = match record.cause {
                EndCause::Cancelled => (Some(record.caller.clone()), String::new()),
                EndCause::Rejected { reason } => (Some(record.callee.clone()), reason),
                EndCause::Hangup { by, reason } => (Some(by), reason),
                EndCause::SessionEnded { user, how } => {
                    let how = match how {
                        SessionEnd::LoggedOut => "logged_out",
                        SessionEnd::TokenExpired => "token_expired",
                        SessionEnd::Gone => "gone",
                    };
                    (Some(user), how.to_owned())
                }
                EndCause::Terminated { reason } | EndCause::Refused { reason } => (None, reason),
                EndCause::Busy
                | EndCause::Offline
                | EndCause::Glare
                | EndCause::Timeout
                | EndCause::NodeLost => (None, String::new()),
            };
            Kind::CallEnded(pb::CallEnded {
                call_id: record.id.0,
                caller_user_id: record.caller.0,
                callee_user_id: record.callee.0,
                channel: record.channel.0,
                call_type: call_kind(record.call_type),
                created_at_ms: record.created_at,
                accepted_at_ms: record.accepted_at,
                connected_at_ms: record.connected_at,
                ended_at_ms: record.ended_at,
                connected_duration_ms: record.connected_ms,
                end_reason: reason.to_owned(),
                ended_by_user_id: by.map(|u| u.0).unwrap_or_default(),
                detail,
            })
        }
        EventKind::CallBillingTick {
            call,
            caller,
            callee,
            tick,
            connected_ms,
        } => Kind::BillingTick(pb::CallBillingTick {
            call_id: call.0,
            caller_user_id: caller.0,
            callee_user_id: callee.0,
            tick,
            connected_ms,
        }),
    }
}

/// How a watch failure reaches the business server.
pub fn watch_status(e: WatchError) -> Status {
    match e {
        WatchError::Expired { .. } => Status::out_of_range(e.to_string()),
        WatchError::Lagged => Status::aborted(e.to_string()),
        WatchError::Unavailable(_) => Status::unavailable(e.to_string()),
    }
}

/// The proto stream for one watcher: `app` filters (empty = every app).
pub fn proto_stream(
    events: showcall_ports::event_log::EventStream,
    app: String,
) -> impl futures_util::Stream<Item = Result<pb::Event, Status>> + Send + 'static {
    events.filter_map(move |item| {
        let keep = match &item {
            Ok(logged) => app.is_empty() || logged.event.app.0 == app,
            Err(_) => true,
        };
        std::future::ready(keep.then(|| item.map(to_proto).map_err(watch_status)))
    })
}
