//! The media router, as the actors need it: open and close members' media sessions, apply their answers.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use showcall_machines::{ChannelName, UserId};
use showcall_protocol::media_edge::MemberMedia;
use showcall_protocol::{AppId, CommandError, CommandOk, NodeId, VideoLayer};

/// A media session's SDP answer, or why the offer was refused (shown to the client).
pub type SessionOpening = Pin<Box<dyn Future<Output = Result<String, MediaRefusal>> + Send>>;

/// Why a media session could not be opened. Serde data: an edge's refusal travels to the origin.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MediaRefusal {
    /// The offer is malformed or cannot be negotiated.
    InvalidOffer(String),
    /// A member that may not publish offered to send.
    PublishNotAllowed,
    /// An answer to the router's offer that is malformed or cannot be applied.
    InvalidAnswer(String),
    /// No offer to answer (no media session, nothing pending, or a stale revision), or no session to
    /// restart ICE on.
    NotNegotiating(String),
    /// No media router (or it stopped), or the node holding the session did not answer.
    Unavailable(String),
    /// No media node has room for another viewer (`max_viewers`, `max_egress_bps`).
    NoRoom,
}

/// The outcome of answering the router's offer.
pub type AnswerApplied = Pin<Box<dyn Future<Output = Result<(), MediaRefusal>> + Send>>;

/// The outcome of capping a member's simulcast layer.
pub type LayerCapped = Pin<Box<dyn Future<Output = Result<(), MediaRefusal>> + Send>>;

/// Commands to the media router, sent by channel actors; the node implements it on the str0m router.
pub trait MediaControl: Send + Sync + Debug + 'static {
    /// Opens the media session of a channel member from its SDP offer; resolves to the SDP answer.
    fn open_session(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        may_publish: bool,
        offer: String,
    ) -> SessionOpening;
    /// Closes a member's media session (left, removed, or the channel closed).
    fn close_session(&self, app: &AppId, channel: &ChannelName, user: &UserId);
    /// Closes every media session of a channel at once (it ended).
    fn close_channel(&self, app: &AppId, channel: &ChannelName);
    /// Applies a member's answer to the router's renegotiation offer `revision`.
    fn accept_answer(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        revision: u64,
        answer: String,
    ) -> AnswerApplied;
    /// Restarts ICE on a member's media session from its offer (new ICE credentials: its network
    /// changed); resolves to the SDP answer. The session keeps its streams.
    fn restart_ice(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        offer: String,
    ) -> SessionOpening;
    /// The best simulcast layer a member's session receives of each publisher's video.
    fn set_video_layer(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        max_layer: VideoLayer,
    ) -> LayerCapped;
    /// Start or stop forwarding a publisher's media to a channel's subscribers.
    fn set_forwarding(&self, app: &AppId, channel: &ChannelName, publisher: &UserId, forward: bool);
    /// Ask a publisher for a keyframe (PLI), so subscribers can start decoding at once.
    fn request_keyframe(&self, app: &AppId, channel: &ChannelName, publisher: &UserId);
}

/// No media router (signaling only): commands are logged and dropped.
#[derive(Debug, Default)]
pub struct NoMedia;

impl MediaControl for NoMedia {
    fn open_session(
        &self,
        _: &AppId,
        _: &ChannelName,
        _: &UserId,
        _: bool,
        _: String,
    ) -> SessionOpening {
        Box::pin(async {
            Err(MediaRefusal::Unavailable(
                "this node has no media router".into(),
            ))
        })
    }

    fn close_session(&self, _: &AppId, _: &ChannelName, _: &UserId) {}

    fn close_channel(&self, _: &AppId, _: &ChannelName) {}

    fn accept_answer(
        &self,
        _: &AppId,
        _: &ChannelName,
        _: &UserId,
        _: u64,
        _: String,
    ) -> AnswerApplied {
        Box::pin(async {
            Err(MediaRefusal::NotNegotiating(
                "this node has no media router".into(),
            ))
        })
    }

    fn restart_ice(&self, _: &AppId, _: &ChannelName, _: &UserId, _: String) -> SessionOpening {
        Box::pin(async {
            Err(MediaRefusal::NotNegotiating(
                "this node has no media router".into(),
            ))
        })
    }

    fn set_video_layer(
        &self,
        _: &AppId,
        _: &ChannelName,
        _: &UserId,
        _: VideoLayer,
    ) -> LayerCapped {
        Box::pin(async {
            Err(MediaRefusal::NotNegotiating(
                "this node has no media router".into(),
            ))
        })
    }

    fn set_forwarding(
        &self,
        app: &AppId,
        channel: &ChannelName,
        publisher: &UserId,
        forward: bool,
    ) {
        tracing::debug!(%app, %channel, %publisher, forward, "media forwarding (no media router)");
    }

    fn request_keyframe(&self, app: &AppId, channel: &ChannelName, publisher: &UserId) {
        tracing::debug!(%app, %channel, %publisher, "keyframe request (no media router)");
    }
}

/// The media routers of other nodes are out of reach (no node link): every command is refused, so a
/// context without a link never pretends a remote session exists.
#[derive(Debug)]
pub struct Unreachable(pub NodeId);

impl MediaControl for Unreachable {
    fn open_session(
        &self,
        _: &AppId,
        _: &ChannelName,
        _: &UserId,
        _: bool,
        _: String,
    ) -> SessionOpening {
        let why = format!("no link to node {}", self.0);
        Box::pin(async move { Err(MediaRefusal::Unavailable(why)) })
    }

    fn close_session(&self, app: &AppId, channel: &ChannelName, user: &UserId) {
        tracing::warn!(node = %self.0, %app, %channel, %user, "media session not closed: no link to its node");
    }

    fn close_channel(&self, app: &AppId, channel: &ChannelName) {
        tracing::warn!(node = %self.0, %app, %channel, "media sessions not closed: no link to their node");
    }

    fn accept_answer(
        &self,
        _: &AppId,
        _: &ChannelName,
        _: &UserId,
        _: u64,
        _: String,
    ) -> AnswerApplied {
        let why = format!("no link to node {}", self.0);
        Box::pin(async move { Err(MediaRefusal::Unavailable(why)) })
    }

    fn restart_ice(&self, _: &AppId, _: &ChannelName, _: &UserId, _: String) -> SessionOpening {
        let why = format!("no link to node {}", self.0);
        Box::pin(async move { Err(MediaRefusal::Unavailable(why)) })
    }

    fn set_video_layer(
        &self,
        _: &AppId,
        _: &ChannelName,
        _: &UserId,
        _: VideoLayer,
    ) -> LayerCapped {
        let why = format!("no link to node {}", self.0);
        Box::pin(async move { Err(MediaRefusal::Unavailable(why)) })
    }

    fn set_forwarding(&self, app: &AppId, channel: &ChannelName, publisher: &UserId, _: bool) {
        tracing::warn!(node = %self.0, %app, %channel, %publisher, "forwarding not set: no link to its node");
    }

    fn request_keyframe(&self, app: &AppId, channel: &ChannelName, publisher: &UserId) {
        tracing::warn!(node = %self.0, %app, %channel, %publisher, "keyframe not requested: no link to its node");
    }
}

/// The outcome of a member's command for its own media session, as the client is answered.
pub type MemberMediaDone = Pin<Box<dyn Future<Output = Result<CommandOk, CommandError>> + Send>>;

/// Carries out a member's command for its media session (`showcall_protocol::media_edge::MemberMedia`)
/// on `media` — the router holding the session — and says how the client is answered.
pub fn member_media(
    media: &dyn MediaControl,
    app: &AppId,
    channel: &ChannelName,
    user: &UserId,
    command: MemberMedia,
) -> MemberMediaDone {
    match command {
        MemberMedia::Answer {
            sdp_answer,
            revision,
        } => {
            let applied = media.accept_answer(app, channel, user, revision, sdp_answer);
            Box::pin(async move {
                applied
                    .await
                    .map(|()| CommandOk::Done)
                    .map_err(|refusal| refusal.into_command_error("answer_media.sdp_answer"))
            })
        }
        MemberMedia::RestartIce { sdp_offer } => {
            let restarted = media.restart_ice(app, channel, user, sdp_offer);
            Box::pin(async move {
                restarted
                    .await
                    .map(|sdp_answer| CommandOk::IceRestarted { sdp_answer })
                    .map_err(|refusal| refusal.into_command_error("restart_ice.sdp_offer"))
            })
        }
        MemberMedia::SetVideoLayer { max_layer } => {
            let capped = media.set_video_layer(app, channel, user, max_layer);
            Box::pin(async move {
                capped
                    .await
                    .map(|()| CommandOk::Done)
                    .map_err(|refusal| refusal.into_command_error("set_video_layer.max_layer"))
            })
        }
    }
}

impl MediaRefusal {
    /// The client's refusal for this refusal of an SDP it sent in `field` (e.g. `join_channel.sdp_offer`).
    pub fn into_command_error(self, field: &str) -> CommandError {
        match self {
            MediaRefusal::InvalidOffer(why) | MediaRefusal::InvalidAnswer(why) => {
                CommandError::InvalidArgument(format!("{field}: {why}"))
            }
            MediaRefusal::NotNegotiating(why) => CommandError::NotAllowed(why),
            MediaRefusal::PublishNotAllowed => CommandError::PermissionDenied(
                "only a broadcaster may publish: an audience member offers receive-only media"
                    .into(),
            ),
            MediaRefusal::Unavailable(why) => CommandError::Unavailable(why),
            MediaRefusal::NoRoom => {
                CommandError::Unavailable(showcall_protocol::media_edge::NoMediaRoom.to_string())
            }
        }
    }
}
