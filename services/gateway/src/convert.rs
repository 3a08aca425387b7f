//! Domain → wire. The machines' enums carry CallAPI's numbers, which the proto enums share, so states,
//! reasons and events convert by value; everything else is mapped field by field here and nowhere else.

use showcall_protocol::CommandError;

use showcall_protocol::CommandOk;

use showcall_machines::call::CallUpdate;
use showcall_machines::channel::{ChannelUpdate, Member};
use showcall_machines::user::{ActiveCall, ClientEvent, CloseReason, Pushed};
use showcall_machines::{CallType, EventInfo, PublishState, Role};
use showcall_proto::signal::{self as pb, event::Kind, response::Result as Answer};
use showcall_protocol::LoginOk;
use showcall_protocol::NodeId;

use crate::validate::Invalid;

/// A refusal on the signaling wire (its code's one mapping, `showcall_protocol::error_code`).
pub fn command_error(e: &CommandError) -> pb::Error {
    error(e.code().signal(), e.to_string())
}

pub fn invalid(e: &Invalid) -> pb::Error {
    let code = match e {
        Invalid::NoRequestId | Invalid::NoCommand => pb::ErrorCode::MalformedFrame,
        Invalid::Field { .. } => pb::ErrorCode::InvalidArgument,
    };
    error(code, e.to_string())
}

pub fn error(code: pb::ErrorCode, message: impl Into<String>) -> pb::Error {
    pb::Error {
        code: code as i32,
        message: message.into(),
    }
}

pub fn response(request_id: u64, outcome: Result<Option<Answer>, pb::Error>) -> pb::ServerFrame {
    let (error, result) = match outcome {
        Ok(result) => (None, result),
        Err(e) => (Some(e), None),
    };
    pb::ServerFrame {
        frame: Some(pb::server_frame::Frame::Response(pb::Response {
            request_id,
            error,
            result,
        })),
    }
}

pub fn command_ok(ok: CommandOk) -> Option<Answer> {
    match ok {
        CommandOk::Done => None,
        CommandOk::CallCreated { call_id, channel } => Some(Answer::CallCreated(pb::CallCreated {
            call_id: call_id.0,
            channel: channel.0,
        })),
        CommandOk::Joined {
            channel,
            role,
            view,
            sdp_answer,
        } => Some(Answer::ChannelJoined(pb::ChannelJoined {
            channel: channel.0,
            role: role_pb(role) as i32,
            members: view
                .members
                .into_iter()
                .map(|(u, m)| member(u.0, m))
                .collect(),
            broadcaster_paused: view.broadcaster_paused,
            sdp_answer: sdp_answer.unwrap_or_default(),
        })),
        CommandOk::IceRestarted { sdp_answer } => {
            Some(Answer::IceRestarted(pb::IceRestarted { sdp_answer }))
        }
    }
}

pub fn login_ok(app: &str, user: &str, ok: LoginOk, ice_servers: Vec<pb::IceServer>) -> Answer {
    Answer::Login(pb::LoginResult {
        app_id: app.to_owned(),
        user_id: user.to_owned(),
        resumed: ok.resumed,
        token_expires_at_ms: ok.token_expires_at,
        call: ok.call.map(snapshot),
        channels: ok.channels.into_iter().map(|c| c.0).collect(),
        grace_period_ms: u32::try_from(ok.grace_ms).unwrap_or(u32::MAX),
        ice_servers,
    })
}

/// The answer to a login sent to the node serving its session (`Login.follow_home`).
pub fn login_elsewhere(node: NodeId, signal_url: String) -> Answer {
    Answer::LoginElsewhere(pb::LoginElsewhere {
        signal_url,
        node_id: node.0,
    })
}

fn snapshot(call: ActiveCall) -> pb::CallSnapshot {
    pb::CallSnapshot {
        call_id: call.id.0,
        state: call.state as i32,
        event_info: call.info.map(event_info),
    }
}

pub fn event(p: Pushed) -> pb::ServerFrame {
    let kind = match p.event {
        ClientEvent::Call { call_id, update } => call_update(call_id.0, update),
        ClientEvent::Channel { channel, update } => Kind::ChannelEvent(pb::ChannelEvent {
            channel: channel.0,
            kind: Some(channel_update(update)),
        }),
        ClientEvent::TokenWillExpire { expires_at } => Kind::TokenWillExpire(pb::TokenWillExpire {
            expires_at_ms: expires_at,
        }),
        ClientEvent::Kicked {
            channel,
            call_id,
            ban_seconds,
        } => Kind::CallError(pb::CallError {
            call_id: call_id.map(|c| c.0).unwrap_or_default(),
            error_event: pb::CallErrorEvent::RtcOccurError as i32,
            error_type: pb::CallErrorType::Rtc as i32,
            error_code: showcall_machines::user::KICKED_ERROR_CODE,
            message: if ban_seconds == 0 {
                format!("kicked from channel {channel} by the server")
            } else {
                format!(
                    "kicked from channel {channel} by the server and banned for {ban_seconds} s"
                )
            },
        }),
        ClientEvent::SessionClosed { reason } => Kind::SessionClosed(pb::SessionClosed {
            reason: close_reason(reason) as i32,
            message: match reason {
                CloseReason::TokenExpired => "token expired".into(),
                CloseReason::Replaced => "logged in on another connection".into(),
                CloseReason::LoggedOut => "logged out".into(),
                CloseReason::NodeLost => {
                    "the node holding this session was lost; log in again".into()
                }
            },
        }),
    };
    pb::ServerFrame {
        frame: Some(pb::server_frame::Frame::Event(pb::Event {
            seq: p.seq,
            server_time_ms: p.at,
            kind: Some(kind),
        })),
    }
}

pub fn close_reason(r: CloseReason) -> pb::SessionCloseReason {
    match r {
        CloseReason::TokenExpired => pb::SessionCloseReason::TokenExpired,
        CloseReason::Replaced => pb::SessionCloseReason::Replaced,
        CloseReason::LoggedOut => pb::SessionCloseReason::LoggedOut,
        CloseReason::NodeLost => pb::SessionCloseReason::ServerShutdown,
    }
}

fn call_update(call_id: String, update: CallUpdate) -> Kind {
    match update {
        CallUpdate::State {
            state,
            reason,
            event_reason,
            info,
        } => Kind::CallStateChanged(pb::CallStateChanged {
            call_id,
            state: state as i32,
            reason: reason as i32,
            event_reason,
            event_info: Some(event_info(info)),
        }),
        CallUpdate::Event {
            event,
            event_reason,
            info,
        } => Kind::CallEventChanged(pb::CallEventChanged {
            call_id,
            event: event as i32,
            event_reason,
            event_info: info.map(event_info),
        }),
        CallUpdate::Connected {
            room,
            call_user,
            timestamp,
        } => Kind::CallConnected(pb::CallConnected {
            call_id,
            room_id: room.0,
            call_user_id: call_user.0,
            current_user_id: String::new(),
            timestamp_ms: timestamp,
        }),
        CallUpdate::Disconnected {
            room,
            hangup_user,
            timestamp,
            duration_ms,
        } => Kind::CallDisconnected(pb::CallDisconnected {
            call_id,
            room_id: room.0,
            hangup_user_id: hangup_user.map(|u| u.0).unwrap_or_default(),
            current_user_id: String::new(),
            timestamp_ms: timestamp,
            duration_ms,
        }),
    }
}

/// Fills in the recipient where the wire has a `current_user_id` (the machine does not repeat it).
pub fn set_current_user(frame: &mut pb::ServerFrame, user: &str) {
    if let Some(pb::server_frame::Frame::Event(pb::Event {
        kind: Some(kind), ..
    })) = &mut frame.frame
    {
        match kind {
            Kind::CallConnected(c) => c.current_user_id = user.to_owned(),
            Kind::CallDisconnected(d) => d.current_user_id = user.to_owned(),
            _ => {}
        }
    }
}

fn channel_update(u: ChannelUpdate) -> pb::channel_event::Kind {
    use pb::channel_event::Kind as K;
    match u {
        ChannelUpdate::MemberJoined { user, member: m } => K::MemberJoined(member(user.0, m)),
        ChannelUpdate::MemberLeft { user } => K::MemberLeft(user.0),
        ChannelUpdate::BroadcasterPaused { user } => K::BroadcasterPaused(pb::BroadcasterPaused {
            user_id: user.0,
            reason: "private_call".into(),
        }),
        ChannelUpdate::BroadcasterResumed { user } => K::BroadcasterResumed(user.0),
        ChannelUpdate::MediaOffer {
            sdp_offer,
            revision,
        } => K::MediaOffer(pb::MediaOffer {
            sdp_offer,
            revision,
        }),
        ChannelUpdate::VideoPausedForBandwidth { paused } => {
            K::VideoPausedForBandwidth(pb::VideoPausedForBandwidth { paused })
        }
    }
}

fn member(user_id: String, m: Member) -> pb::ChannelMember {
    pb::ChannelMember {
        user_id,
        role: role_pb(m.role) as i32,
        publish_state: match m.publish {
            PublishState::None => pb::PublishState::None,
            PublishState::Publishing => pb::PublishState::Publishing,
            PublishState::Paused => pb::PublishState::Paused,
        } as i32,
    }
}

fn role_pb(r: Role) -> pb::ChannelRole {
    match r {
        Role::Audience => pb::ChannelRole::Audience,
        Role::Broadcaster => pb::ChannelRole::Broadcaster,
    }
}

fn event_info(i: EventInfo) -> pb::EventInfo {
    pb::EventInfo {
        call_id: i.call_id.0,
        from_user_id: i.from_user.0,
        from_room_id: i.from_room.0,
        remote_user_id: i.remote_user.0,
        call_type: match i.call_type {
            CallType::Video => pb::CallType::Video,
            CallType::Audio => pb::CallType::Audio,
        } as i32,
        extension: i.extension.into_iter().collect(),
        timing: i.timing.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use showcall_machines::{CallEvent, CallState, StateReason};

    #[test]
    fn domain_numbers_match_the_wire() {
        assert_eq!(CallState::Failed as i32, pb::CallState::Failed as i32);
        assert_eq!(CallState::Connected as i32, pb::CallState::Connected as i32);
        assert_eq!(
            StateReason::RemoteCallBusy as i32,
            pb::CallStateReason::RemoteCallBusy as i32
        );
        assert_eq!(
            StateReason::EndedByServer as i32,
            pb::CallStateReason::EndedByServer as i32
        );
        assert_eq!(
            StateReason::RefusedByPolicy as i32,
            pb::CallStateReason::RefusedByPolicy as i32
        );
        assert_eq!(
            StateReason::MediaMoved as i32,
            pb::CallStateReason::MediaMoved as i32
        );
        assert_eq!(
            StateReason::RemoteAudioCall as i32,
            pb::CallStateReason::RemoteAudioCall as i32
        );
        assert_eq!(
            CallEvent::RemoteUserRecvCall as i32,
            pb::CallEvent::RemoteUserRecvCall as i32
        );
        assert_eq!(
            CallEvent::RemoteOffline as i32,
            pb::CallEvent::RemoteOffline as i32
        );
        assert_eq!(
            CallEvent::RemoteAudioCall as i32,
            pb::CallEvent::RemoteAudioCall as i32
        );
    }
}
