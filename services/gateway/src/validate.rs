//! Validation at the edge: a decoded [`ClientFrame`](pb::ClientFrame) becomes a domain [`Request`] or a typed refusal.
//! Every limit the protocol documents is enforced here, once, before anything reaches an actor.

use std::collections::{BTreeMap, HashMap};

use showcall_machines::user::{CallCommand, Prepared};
use showcall_machines::{CallId, CallType, ChannelName, Role, UserId};
use showcall_proto::signal::{self as pb, client_frame::Command};
use showcall_protocol::messages::TraceContext;
use showcall_protocol::{UserCommand, VideoLayer};

/// Most entries in an extension map.
pub const MAX_EXTENSION_ENTRIES: usize = 16;
/// Longest extension key, bytes.
pub const MAX_EXTENSION_KEY: usize = 64;
/// Longest extension value, bytes.
pub const MAX_EXTENSION_VALUE: usize = 1024;
/// Longest free-text reason, bytes.
pub const MAX_REASON: usize = 256;
/// Longest calling timeout, ms.
pub const MAX_CALL_TIMEOUT_MS: u32 = 600_000;
/// Longest token, bytes.
pub const MAX_TOKEN: usize = 4096;
/// Largest SDP offer accepted, bytes.
pub const MAX_SDP_OFFER: usize = 16_384;
/// Call ids are 32 hex digits; anything longer is not one of ours.
pub const MAX_CALL_ID: usize = 64;
/// Longest `traceparent` (version 00 takes 55 bytes; later versions may append fields).
pub const MAX_TRACEPARENT: usize = 256;

/// A validated client request.
#[derive(Debug)]
pub enum Request {
    Login {
        token: String,
        /// The client would connect to its session's node (`Login.follow_home`).
        follow_home: bool,
    },
    RenewToken {
        token: String,
    },
    Ping,
    /// Needs the session's grants checked before it goes to the actors.
    Join {
        channel: ChannelName,
        role: Role,
        offer: Option<String>,
    },
    Command(UserCommand),
}

/// A refused frame: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("request_id must be non-zero")]
    NoRequestId,
    #[error("frame has no command")]
    NoCommand,
    #[error("{field}: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

fn field(field: &'static str, problem: impl Into<String>) -> Invalid {
    Invalid::Field {
        field,
        problem: problem.into(),
    }
}

/// Validates one frame.
pub fn validate(frame: pb::ClientFrame) -> Result<Request, Invalid> {
    if frame.request_id == 0 {
        return Err(Invalid::NoRequestId);
    }
    let command = frame.command.ok_or(Invalid::NoCommand)?;
    Ok(match command {
        Command::Login(l) => Request::Login {
            token: token("login.token", l.token)?,
            follow_home: l.follow_home,
        },
        Command::RenewToken(r) => Request::RenewToken {
            token: token("renew_token.token", r.token)?,
        },
        Command::Logout(_) => Request::Command(UserCommand::Logout),
        Command::Deinitialize(_) => Request::Command(UserCommand::Unprepare),
        Command::Ping(_) => Request::Ping,
        Command::PrepareForCall(p) => {
            let call_timeout_ms = p
                .call_timeout_ms
                .map(|t| timeout("prepare_for_call.call_timeout_ms", t))
                .transpose()?;
            Request::Command(UserCommand::Prepare(Prepared {
                extension: extension("prepare_for_call.user_extension", p.user_extension)?,
                call_timeout_ms,
                first_frame_waiting_disabled: p.first_frame_waiting_disabled,
            }))
        }
        Command::Call(c) => {
            let callee = user_id("call.remote_user_id", c.remote_user_id)?;
            let call_type = match pb::CallType::try_from(c.call_type) {
                Ok(pb::CallType::Video) => CallType::Video,
                Ok(pb::CallType::Audio) => CallType::Audio,
                Err(_) => return Err(field("call.call_type", "unknown call type")),
            };
            let timeout_ms = c
                .call_timeout_ms
                .map(|t| timeout("call.call_timeout_ms", t))
                .transpose()?;
            Request::Command(UserCommand::Call {
                callee,
                call_type,
                extension: extension("call.call_extension", c.call_extension)?,
                timeout_ms,
                trace: traceparent("call.traceparent", c.traceparent)?,
            })
        }
        Command::CancelCall(c) => {
            call_command("cancel_call.call_id", c.call_id, CallCommand::Cancel)?
        }
        Command::Accept(a) => call_command("accept.call_id", a.call_id, CallCommand::Accept)?,
        Command::Reject(r) => {
            let reason = reason("reject.reason", r.reason)?;
            call_command("reject.call_id", r.call_id, CallCommand::Reject { reason })?
        }
        Command::Hangup(h) => {
            let reason = reason("hangup.reason", h.reason)?;
            call_command("hangup.call_id", h.call_id, CallCommand::Hangup { reason })?
        }
        Command::JoinChannel(j) => {
            let role = match pb::ChannelRole::try_from(j.role) {
                Ok(pb::ChannelRole::Audience) => Role::Audience,
                Ok(pb::ChannelRole::Broadcaster) => Role::Broadcaster,
                Err(_) => return Err(field("join_channel.role", "unknown role")),
            };
            if j.sdp_offer.len() > MAX_SDP_OFFER {
                return Err(field(
                    "join_channel.sdp_offer",
                    format!("longer than {MAX_SDP_OFFER} bytes"),
                ));
            }
            Request::Join {
                channel: channel("join_channel.channel", j.channel)?,
                role,
                offer: (!j.sdp_offer.is_empty()).then_some(j.sdp_offer),
            }
        }
        Command::LeaveChannel(l) => Request::Command(UserCommand::LeaveChannel {
            channel: channel("leave_channel.channel", l.channel)?,
        }),
        Command::AnswerMedia(a) => {
            if a.sdp_answer.is_empty() {
                return Err(field("answer_media.sdp_answer", "is required"));
            }
            if a.sdp_answer.len() > MAX_SDP_OFFER {
                return Err(field(
                    "answer_media.sdp_answer",
                    format!("longer than {MAX_SDP_OFFER} bytes"),
                ));
            }
            if a.revision == 0 {
                return Err(field("answer_media.revision", "is required"));
            }
            Request::Command(UserCommand::AnswerMedia {
                channel: channel("answer_media.channel", a.channel)?,
                sdp_answer: a.sdp_answer,
                revision: a.revision,
            })
        }
        Command::RestartIce(r) => {
            if r.sdp_offer.is_empty() {
                return Err(field("restart_ice.sdp_offer", "is required"));
            }
            if r.sdp_offer.len() > MAX_SDP_OFFER {
                return Err(field(
                    "restart_ice.sdp_offer",
                    format!("longer than {MAX_SDP_OFFER} bytes"),
                ));
            }
            Request::Command(UserCommand::RestartIce {
                channel: channel("restart_ice.channel", r.channel)?,
                sdp_offer: r.sdp_offer,
            })
        }
        Command::SetVideoLayer(v) => {
            let max_layer = match pb::VideoLayer::try_from(v.max_layer) {
                Ok(pb::VideoLayer::High) => VideoLayer::High,
                Ok(pb::VideoLayer::Medium) => VideoLayer::Medium,
                Ok(pb::VideoLayer::Low) => VideoLayer::Low,
                Ok(pb::VideoLayer::Unspecified) | Err(_) => {
                    return Err(field("set_video_layer.max_layer", "unknown layer"));
                }
            };
            Request::Command(UserCommand::SetVideoLayer {
                channel: channel("set_video_layer.channel", v.channel)?,
                max_layer,
            })
        }
    })
}

fn token(name: &'static str, t: String) -> Result<String, Invalid> {
    if t.is_empty() {
        return Err(field(name, "is required"));
    }
    if t.len() > MAX_TOKEN {
        return Err(field(name, format!("longer than {MAX_TOKEN} bytes")));
    }
    Ok(t)
}

fn user_id(name: &'static str, id: String) -> Result<UserId, Invalid> {
    showcall_auth::validate_user_id(&id).map_err(|e| field(name, e.to_string()))?;
    Ok(UserId(id))
}

fn channel(name: &'static str, c: String) -> Result<ChannelName, Invalid> {
    if c == showcall_auth::claims::WILDCARD_CHANNEL {
        return Err(field(name, "`*` is a grant, not a channel"));
    }
    showcall_auth::validate_channel(&c).map_err(|e| field(name, e.to_string()))?;
    Ok(ChannelName(c))
}

fn call_command(name: &'static str, id: String, command: CallCommand) -> Result<Request, Invalid> {
    if id.is_empty() {
        return Err(field(name, "is required"));
    }
    if id.len() > MAX_CALL_ID || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(field(name, "is not a call id"));
    }
    Ok(Request::Command(UserCommand::CallCommand {
        call_id: CallId(id),
        command,
    }))
}

fn reason(name: &'static str, r: String) -> Result<String, Invalid> {
    if r.len() > MAX_REASON {
        return Err(field(name, format!("longer than {MAX_REASON} bytes")));
    }
    Ok(r)
}

/// An optional W3C traceparent: empty = none (the call starts a new trace).
fn traceparent(name: &'static str, t: String) -> Result<TraceContext, Invalid> {
    if t.is_empty() {
        return Ok(TraceContext::default());
    }
    if t.len() > MAX_TRACEPARENT {
        return Err(field(name, format!("longer than {MAX_TRACEPARENT} bytes")));
    }
    TraceContext::parse(&t).ok_or_else(|| {
        field(
            name,
            "not a W3C traceparent (00-<32 hex trace id>-<16 hex span id>-<2 hex flags>)",
        )
    })
}

fn timeout(name: &'static str, t: u32) -> Result<u64, Invalid> {
    if t > MAX_CALL_TIMEOUT_MS {
        return Err(field(name, format!("more than {MAX_CALL_TIMEOUT_MS} ms")));
    }
    Ok(u64::from(t))
}

fn extension(
    name: &'static str,
    map: HashMap<String, String>,
) -> Result<BTreeMap<String, String>, Invalid> {
    if map.len() > MAX_EXTENSION_ENTRIES {
        return Err(field(
            name,
            format!("more than {MAX_EXTENSION_ENTRIES} entries"),
        ));
    }
    for (k, v) in &map {
        if k.is_empty() || k.len() > MAX_EXTENSION_KEY {
            return Err(field(
                name,
                format!("keys must be 1..={MAX_EXTENSION_KEY} bytes"),
            ));
        }
        if v.len() > MAX_EXTENSION_VALUE {
            return Err(field(
                name,
                format!("values must be at most {MAX_EXTENSION_VALUE} bytes"),
            ));
        }
    }
    Ok(map.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(command: Command) -> pb::ClientFrame {
        pb::ClientFrame {
            request_id: 1,
            command: Some(command),
        }
    }

    #[test]
    fn request_id_zero_is_refused() {
        let f = pb::ClientFrame {
            request_id: 0,
            command: Some(Command::Ping(pb::Ping {})),
        };
        assert_eq!(validate(f).unwrap_err(), Invalid::NoRequestId);
    }

    #[test]
    fn empty_callee_names_the_field() {
        let err = validate(frame(Command::Call(pb::Call::default()))).unwrap_err();
        assert!(matches!(
            err,
            Invalid::Field {
                field: "call.remote_user_id",
                ..
            }
        ));
    }

    #[test]
    fn unknown_call_type_is_refused() {
        let call = pb::Call {
            remote_user_id: "b".into(),
            call_type: 9,
            ..Default::default()
        };
        let err = validate(frame(Command::Call(call))).unwrap_err();
        assert!(matches!(
            err,
            Invalid::Field {
                field: "call.call_type",
                ..
            }
        ));
    }

    #[test]
    fn oversized_extension_is_refused() {
        let call = pb::Call {
            remote_user_id: "b".into(),
            call_extension: (0..17).map(|i| (format!("k{i}"), "v".to_owned())).collect(),
            ..Default::default()
        };
        let err = validate(frame(Command::Call(call))).unwrap_err();
        assert!(matches!(
            err,
            Invalid::Field {
                field: "call.call_extension",
                ..
            }
        ));
    }

    #[test]
    fn a_malformed_traceparent_names_the_field() {
        for bad in ["hello", "00-abc-def-01", &"0".repeat(MAX_TRACEPARENT + 1)] {
            let call = pb::Call {
                remote_user_id: "b".into(),
                traceparent: bad.to_owned(),
                ..Default::default()
            };
            let err = validate(frame(Command::Call(call))).unwrap_err();
            assert!(
                matches!(
                    err,
                    Invalid::Field {
                        field: "call.traceparent",
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn a_client_traceparent_travels_with_the_call() {
        let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let call = pb::Call {
            remote_user_id: "b".into(),
            traceparent: sent.to_owned(),
            ..Default::default()
        };
        let Ok(Request::Command(UserCommand::Call { trace, .. })) =
            validate(frame(Command::Call(call)))
        else {
            panic!("a valid call");
        };
        assert_eq!(trace.traceparent.as_deref(), Some(sent));
        let none = pb::Call {
            remote_user_id: "b".into(),
            ..Default::default()
        };
        let Ok(Request::Command(UserCommand::Call { trace, .. })) =
            validate(frame(Command::Call(none)))
        else {
            panic!("a valid call");
        };
        assert_eq!(trace, TraceContext::default());
    }

    #[test]
    fn wildcard_is_not_a_channel() {
        let join = pb::JoinChannel {
            channel: "*".into(),
            ..Default::default()
        };
        assert!(validate(frame(Command::JoinChannel(join))).is_err());
    }

    #[test]
    fn oversized_sdp_offer_is_refused() {
        let join = pb::JoinChannel {
            channel: "room".into(),
            sdp_offer: "v=0\r\n".repeat(MAX_SDP_OFFER),
            ..Default::default()
        };
        let err = validate(frame(Command::JoinChannel(join))).unwrap_err();
        assert!(matches!(
            err,
            Invalid::Field {
                field: "join_channel.sdp_offer",
                ..
            }
        ));
    }

    #[test]
    fn a_video_layer_must_be_a_known_one() {
        for unknown in [pb::VideoLayer::Unspecified as i32, 9] {
            let set = pb::SetVideoLayer {
                channel: "room".into(),
                max_layer: unknown,
            };
            let err = validate(frame(Command::SetVideoLayer(set))).unwrap_err();
            assert!(matches!(
                err,
                Invalid::Field {
                    field: "set_video_layer.max_layer",
                    ..
                }
            ));
        }
        let set = pb::SetVideoLayer {
            channel: "room".into(),
            max_layer: pb::VideoLayer::Low as i32,
        };
        assert!(matches!(
            validate(frame(Command::SetVideoLayer(set))),
            Ok(Request::Command(UserCommand::SetVideoLayer {
                max_layer: VideoLayer::Low,
                ..
            }))
        ));
    }

    #[test]
    fn call_ids_must_be_alphanumeric() {
        let hang = pb::Hangup {
            call_id: "../x".into(),
            reason: String::new(),
        };
        assert!(validate(frame(Command::Hangup(hang))).is_err());
    }
}
