//! The actors' `MediaControl` port implemented on the str0m media router, and the task that carries the
//! router's events back to the channel actors.

use showcall_machines::user::UserInput;
use showcall_machines::{ChannelName, ChannelUpdate, UserId};
use showcall_media::{MediaError, MediaEvent, MediaRouter, PeerKey};
use showcall_ports::{AnswerApplied, LayerCapped, MediaControl, MediaRefusal, SessionOpening};
use showcall_protocol::{AppId, VideoLayer};
use showcall_runtime::Hub;
use tokio::sync::mpsc;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct RouterPort {
    router: MediaRouter,
}

impl RouterPort {
    pub fn new(router: MediaRouter) -> Self {
        Self { router }
    }
}

fn key(app: &AppId, channel: &ChannelName, user: &UserId) -> PeerKey {
    PeerKey {
        app: app.0.clone(),
        channel: channel.0.clone(),
        user: user.0.clone(),
    }
}

impl MediaControl for RouterPort {
    fn open_session(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        may_publish: bool,
        offer: String,
    ) -> SessionOpening {
        let router = self.router.clone();
        let key = key(app, channel, user);
        Box::pin(async move {
            router
                .open(key, may_publish, offer)
                .await
                .map_err(|e| match e {
                    MediaError::InvalidOffer(why) | MediaError::Negotiation(why) => {
                        MediaRefusal::InvalidOffer(why)
                    }
                    MediaError::PublishNotAllowed => MediaRefusal::PublishNotAllowed,
                    MediaError::Stopped => {
                        MediaRefusal::Unavailable("the media router is not running".into())
                    }
                    other => MediaRefusal::InvalidOffer(other.to_string()),
                })
        })
    }

    fn close_channel(&self, app: &AppId, channel: &ChannelName) {
        self.router.close_room(&app.0, &channel.0);
    }

    fn accept_answer(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        revision: u64,
        answer: String,
    ) -> AnswerApplied {
        let router = self.router.clone();
        let key = key(app, channel, user);
        Box::pin(async move {
            router
                .accept_answer(key, revision, answer)
                .await
                .map_err(|e| match e {
                    MediaError::InvalidAnswer(_) | MediaError::StaleRevision { .. } => {
                        MediaRefusal::InvalidAnswer(e.to_string())
                    }
                    MediaError::Stopped => {
                        MediaRefusal::Unavailable("the media router is not running".into())
                    }
                    other => MediaRefusal::NotNegotiating(other.to_string()),
                })
        })
    }

    fn restart_ice(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        offer: String,
    ) -> SessionOpening {
        let router = self.router.clone();
        let key = key(app, channel, user);
        Box::pin(async move {
            router.restart_ice(key, offer).await.map_err(|e| match e {
                MediaError::InvalidOffer(why) | MediaError::Negotiation(why) => {
                    MediaRefusal::InvalidOffer(why)
                }
                MediaError::NotIceRestart(_) => MediaRefusal::InvalidOffer(e.to_string()),
                MediaError::PublishNotAllowed => MediaRefusal::PublishNotAllowed,
                MediaError::Stopped => {
                    MediaRefusal::Unavailable("the media router is not running".into())
                }
                other => MediaRefusal::NotNegotiating(other.to_string()),
            })
        })
    }

    fn close_session(&self, app: &AppId, channel: &ChannelName, user: &UserId) {
        self.router.close(key(app, channel, user));
    }

    fn set_video_layer(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: &UserId,
        max_layer: VideoLayer,
    ) -> LayerCapped {
        let router = self.router.clone();
        let key = key(app, channel, user);
        Box::pin(async move {
            router
                .set_max_layer(key, max_layer.rank())
                .await
                .map_err(|e| match e {
                    MediaError::UnknownLayer(_) => MediaRefusal::InvalidOffer(e.to_string()),
                    MediaError::Stopped => {
                        MediaRefusal::Unavailable("the media router is not running".into())
                    }
                    other => MediaRefusal::NotNegotiating(other.to_string()),
                })
        })
    }

    fn set_forwarding(
        &self,
        app: &AppId,
        channel: &ChannelName,
        publisher: &UserId,
        forward: bool,
    ) {
        self.router
            .set_forwarding(&app.0, &channel.0, &publisher.0, forward);
    }

    fn request_keyframe(&self, app: &AppId, channel: &ChannelName, publisher: &UserId) {
        self.router
            .request_keyframe(&app.0, &channel.0, &publisher.0);
    }
}

/// Carries the router's events to the actors until the router stops.
pub async fn forward_events(hub: Hub, mut events: mpsc::UnboundedReceiver<MediaEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            MediaEvent::FirstFrame { from, .. } => {
                let app = AppId(from.app);
                let channel = ChannelName(from.channel);
                hub.media_flowing(&app, &channel, UserId(from.user));
            }
            MediaEvent::Offer {
                key,
                revision,
                sdp_offer,
            } => {
                let app = AppId(key.app);
                let update = UserInput::ChannelUpdate {
                    channel: ChannelName(key.channel),
                    update: ChannelUpdate::MediaOffer {
                        sdp_offer,
                        revision,
                    },
                };
                hub.send_user(&app, &UserId(key.user), update);
            }
            MediaEvent::VideoPaused { key, paused } => {
                let app = AppId(key.app);
                let update = UserInput::ChannelUpdate {
                    channel: ChannelName(key.channel),
                    update: ChannelUpdate::VideoPausedForBandwidth { paused },
                };
                hub.send_user(&app, &UserId(key.user), update);
            }
            MediaEvent::SessionClosed { key } => {
                tracing::info!(app = %key.app, channel = %key.channel, user = %key.user, "media session closed");
            }
            // The relay's own log says so too; what to do about it is the control plane's (issue 15).
            MediaEvent::RelayStalled {
                app,
                channel,
                origin_node,
            } => {
                tracing::warn!(%app, %channel, origin = %origin_node, "media relay from origin stalled");
            }
            MediaEvent::RelayResumed {
                app,
                channel,
                origin_node,
            } => {
                tracing::info!(%app, %channel, origin = %origin_node, "media relay from origin resumed");
            }
        }
    }
}
