//! The business-server questions and orders (users, hosts, channels, kicks, calls): their requests
//! checked into domain values, and the hub's answers in proto form.
//!
//! Page tokens are the last key of the previous page, hex-encoded so apps treat them as opaque (they
//! may change form later); a token that does not decode is INVALID_ARGUMENT.

use showcall_auth::{AppKeys, validate_channel, validate_user_id};
use showcall_machines::call::CallPhase;
use showcall_machines::{CallId, ChannelName, PublishState, Role, UserId};
use showcall_ports::bans::Ban;
use showcall_ports::directory::{ChannelEntry, MemberEntry, Presence, UserEntry};
use showcall_proto::admin as pb;
use showcall_protocol::AppId;
use showcall_protocol::CommandError;
use tonic::Status;

use crate::request::AdminError;

/// Page size when the request leaves it 0.
pub const DEFAULT_PAGE: usize = 100;
/// Largest page.
pub const MAX_PAGE: usize = showcall_ports::directory::MAX_PAGE;
/// Longest ban: 30 days.
pub const MAX_BAN_SECONDS: u32 = 30 * 24 * 3600;
/// Longest reason given to `EndCall`, in bytes.
pub const MAX_REASON_BYTES: usize = 256;
/// Longest call id accepted (the server's are 32 hex digits).
const MAX_CALL_ID_BYTES: usize = 64;

fn invalid(field: &'static str, reason: impl Into<String>) -> AdminError {
    AdminError::InvalidArgument {
        field,
        reason: reason.into(),
    }
}

/// A configured app.
pub fn app(app_id: &str, keys: &AppKeys) -> Result<AppId, AdminError> {
    if app_id.is_empty() {
        return Err(invalid("app_id", "is empty"));
    }
    if !keys.contains(app_id) {
        return Err(invalid(
            "app_id",
            format!("app {app_id:?} is not configured on this node"),
        ));
    }
    Ok(AppId(app_id.to_owned()))
}

pub fn user(user_id: &str) -> Result<UserId, AdminError> {
    validate_user_id(user_id).map_err(|e| invalid("user_id", e.to_string()))?;
    Ok(UserId(user_id.to_owned()))
}

pub fn channel(name: &str) -> Result<ChannelName, AdminError> {
    validate_channel(name).map_err(|e| invalid("channel", e.to_string()))?;
    Ok(ChannelName(name.to_owned()))
}

pub fn call(call_id: &str) -> Result<CallId, AdminError> {
    if call_id.is_empty() {
        return Err(invalid("call_id", "is empty"));
    }
    if call_id.len() > MAX_CALL_ID_BYTES || !call_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid("call_id", "is not a call id"));
    }
    Ok(CallId(call_id.to_owned()))
}

pub fn reason(reason: &str) -> Result<String, AdminError> {
    if reason.is_empty() || reason.len() > MAX_REASON_BYTES {
        return Err(invalid(
            "reason",
            format!("must be 1..={MAX_REASON_BYTES} bytes"),
        ));
    }
    Ok(reason.to_owned())
}

/// A page request: its size and the key to continue after.
pub fn page(page_size: u32, page_token: &str) -> Result<(usize, Option<String>), AdminError> {
    let size = match page_size as usize {
        0 => DEFAULT_PAGE,
        n if n <= MAX_PAGE => n,
        _ => return Err(invalid("page_size", format!("must be 0..={MAX_PAGE}"))),
    };
    if page_token.is_empty() {
        return Ok((size, None));
    }
    let after = decode_token(page_token).ok_or_else(|| invalid("page_token", "is not a token"))?;
    Ok((size, Some(after)))
}

/// The token continuing after `last`, when the page was full (a shorter page is the last one).
pub fn next_token(last: Option<&str>, got: usize, size: usize) -> String {
    match last {
        Some(last) if got == size => last.bytes().map(|b| format!("{b:02x}")).collect(),
        _ => String::new(),
    }
}

fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// A checked kick: the ban to record, if any.
pub fn ban(req: &pb::KickUserRequest, now_ms: u64) -> Result<Option<Ban>, AdminError> {
    let privileges = req.ban_join || req.ban_publish_audio || req.ban_publish_video;
    if req.ban_seconds == 0 {
        if privileges {
            return Err(invalid(
                "ban_seconds",
                "is 0 (kick only) but privileges to ban are set",
            ));
        }
        return Ok(None);
    }
    if req.ban_seconds > MAX_BAN_SECONDS {
        return Err(invalid(
            "ban_seconds",
            format!("must be 0..={MAX_BAN_SECONDS}"),
        ));
    }
    if !privileges {
        return Err(invalid(
            "ban_join",
            "a ban needs at least one privilege (ban_join, ban_publish_audio, ban_publish_video)",
        ));
    }
    Ok(Some(Ban {
        join: req.ban_join,
        publish_audio: req.ban_publish_audio,
        publish_video: req.ban_publish_video,
        until: now_ms + u64::from(req.ban_seconds) * 1000,
    }))
}

/// A hub refusal on the business API (its code's one mapping, `showcall_protocol::error_code`).
pub fn status(e: CommandError) -> Status {
    Status::new(e.code().grpc(), e.to_string())
}

fn role(role: Role) -> i32 {
    match role {
        Role::Broadcaster => pb::MemberRole::Broadcaster as i32,
        Role::Audience => pb::MemberRole::Audience as i32,
    }
}

pub fn user_proto(entry: UserEntry) -> pb::User {
    pb::User {
        user_id: entry.user.0,
        presence: match entry.presence {
            Presence::Online => pb::Presence::Online,
            Presence::Live => pb::Presence::Live,
            Presence::InCall => pb::Presence::InCall,
        } as i32,
        away: entry.away,
        prepared: entry.prepared,
        call: entry.call.map(|call| pb::UserCall {
            call_id: call.id.0,
            peer_user_id: call.peer.0,
            state: call.state,
        }),
        channels: entry
            .channels
            .into_iter()
            .map(|(channel, r)| pb::UserChannel {
                channel: channel.0,
                role: role(r),
            })
            .collect(),
    }
}

/// A user with no session anywhere.
pub fn offline(user: UserId) -> pb::User {
    pb::User {
        user_id: user.0,
        presence: pb::Presence::Offline as i32,
        ..Default::default()
    }
}

pub fn channel_proto(entry: ChannelEntry) -> pb::Channel {
    pb::Channel {
        channel: entry.channel.0,
        call_id: entry.call.map(|c| c.0).unwrap_or_default(),
        members: entry.members.into_iter().map(member_proto).collect(),
        broadcaster_paused: entry.broadcaster_paused,
    }
}

fn member_proto(m: MemberEntry) -> pb::Member {
    pb::Member {
        user_id: m.user.0,
        role: role(m.role),
        publish: match m.publish {
            PublishState::None => pb::PublishState::None,
            PublishState::Publishing => pb::PublishState::Publishing,
            PublishState::Paused => pb::PublishState::Paused,
        } as i32,
    }
}

pub fn call_proto(entry: showcall_ports::directory::CallEntry) -> pb::Call {
    pb::Call {
        call_id: entry.id.0,
        caller_user_id: entry.caller.0,
        callee_user_id: entry.callee.0,
        channel: entry.channel.0,
        call_type: crate::events::call_kind(entry.call_type),
        phase: match entry.status.phase {
            CallPhase::Authorizing => pb::CallPhase::Authorizing,
            CallPhase::Ringing => pb::CallPhase::Ringing,
            CallPhase::Connecting => pb::CallPhase::Connecting,
            CallPhase::Connected => pb::CallPhase::Connected,
            CallPhase::Ended => pb::CallPhase::Unspecified,
        } as i32,
        created_at_ms: entry.status.created_at,
        accepted_at_ms: entry.status.accepted_at,
        connected_at_ms: entry.status.connected_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let token = next_token(Some("user-42"), 10, 10);
        assert_eq!(
            page(10, &token).expect("valid"),
            (10, Some("user-42".into()))
        );
        assert_eq!(
            next_token(Some("user-42"), 9, 10),
            "",
            "a short page is the last"
        );
        assert!(matches!(
            page(10, "zz"),
            Err(AdminError::InvalidArgument {
                field: "page_token",
                ..
            })
        ));
        assert!(matches!(
            page(1001, ""),
            Err(AdminError::InvalidArgument {
                field: "page_size",
                ..
            })
        ));
        assert_eq!(page(0, "").expect("default"), (DEFAULT_PAGE, None));
    }

    #[test]
    fn a_ban_needs_a_duration_and_a_privilege() {
        let kick = |secs, join| pb::KickUserRequest {
            ban_seconds: secs,
            ban_join: join,
            ..Default::default()
        };
        assert_eq!(ban(&kick(0, false), 0).expect("kick only"), None);
        assert!(ban(&kick(0, true), 0).is_err());
        assert!(ban(&kick(60, false), 0).is_err());
        assert!(ban(&kick(MAX_BAN_SECONDS + 1, true), 0).is_err());
        let banned = ban(&kick(60, true), 1_000).expect("ban").expect("some");
        assert_eq!(banned.until, 61_000);
        assert!(banned.join && !banned.publish_audio);
    }
}
