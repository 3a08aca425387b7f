//! The actors' `MediaControl` port implemented on the str0m media router, and the task that carries the
//! router's events back to the channel actors.

use showcall_machines::user::UserInput;
use showcall_machines::{ChannelName, ChannelUpdate, UserId};
use std::net::{IpAddr, SocketAddr};

use showcall_media::{MediaError, MediaEvent, MediaRouter, PeerKey, RelayKey, RelayPeer};
use showcall_ports::{
    AnswerApplied, LayerCapped, MediaControl, MediaRefusal, MediaRelay, SessionOpening,
};
use showcall_protocol::media_edge::RelayTicket;
use showcall_protocol::metrics as names;
use showcall_protocol::{AppId, NodeId, VideoLayer};
use showcall_runtime::Hub;
use tokio::sync::mpsc;

/// Bytes of a relay key (its hex form on the node link is twice as long).
const KEY_LEN: usize = RelayKey::LEN;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct RouterPort {
    router: MediaRouter,
    /// The IP other nodes reach the relay socket at, when it binds every interface
    /// (`media_advertise_ip`).
    relay_advertise_ip: Option<IpAddr>,
}

impl RouterPort {
    pub fn new(router: MediaRouter) -> Self {
        Self {
            router,
            relay_advertise_ip: None,
        }
    }

    /// The IP announced for the relay socket when it binds every interface.
    pub fn with_relay_advertise_ip(self, ip: Option<IpAddr>) -> Self {
        Self {
            relay_advertise_ip: ip,
            ..self
        }
    }

    /// Where other nodes reach this router's relay socket.
    fn relay_addr(&self) -> Result<SocketAddr, MediaRefusal> {
        let mut addr = self.router.relay_addr().ok_or_else(no_relay)?;
        if addr.ip().is_unspecified()
            && let Some(ip) = self.relay_advertise_ip
        {
            addr.set_ip(ip);
        }
        Ok(addr)
    }
}

fn no_relay() -> MediaRefusal {
    MediaRefusal::Unavailable("this node's media router has no relay socket".into())
}

/// A relay refusal of the router, for the node that asked.
fn relay_refusal(e: MediaError) -> MediaRefusal {
    match e {
        MediaError::Stopped => MediaRefusal::Unavailable("the media router is not running".into()),
        other => MediaRefusal::Unavailable(other.to_string()),
    }
}

/// A ticket's relay peer: its node, address and key (hex of [`RelayKey`]'s bytes).
fn relay_peer(node: &NodeId, ticket: &RelayTicket) -> Result<RelayPeer, MediaRefusal> {
    let addr = ticket
        .addr
        .parse()
        .map_err(|e| MediaRefusal::InvalidOffer(format!("relay address {:?}: {e}", ticket.addr)))?;
    let key = key_from_hex(&ticket.key).ok_or_else(|| {
        MediaRefusal::InvalidOffer(format!("relay key: not {KEY_LEN} bytes of hex"))
    })?;
    Ok(RelayPeer {
        node: node.0.clone(),
        addr,
        key,
    })
}

fn key_to_hex(key: &RelayKey) -> String {
    key.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn key_from_hex(hex: &str) -> Option<RelayKey> {
    let text = hex.as_bytes();
    if text.len() != KEY_LEN * 2 {
        return None;
    }
    let mut bytes = [0u8; KEY_LEN];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(RelayKey::from_bytes(bytes))
}

impl MediaRelay for RouterPort {
    fn relays(&self) -> bool {
        self.router.relay_addr().is_some()
    }

    fn edge_ticket(&self) -> Result<RelayTicket, MediaRefusal> {
        Ok(RelayTicket {
            addr: self.relay_addr()?.to_string(),
            key: key_to_hex(&RelayKey::random()),
        })
    }

    fn add_edge(
        &self,
        app: &AppId,
        channel: &ChannelName,
        edge_node: &NodeId,
        edge: &RelayTicket,
    ) -> Result<RelayTicket, MediaRefusal> {
        let peer = relay_peer(edge_node, edge)?;
        self.router
            .add_edge(&app.0, &channel.0, peer)
            .map_err(relay_refusal)?;
        Ok(RelayTicket {
            addr: self.relay_addr()?.to_string(),
            key: edge.key.clone(),
        })
    }

    fn remove_edge(&self, app: &AppId, channel: &ChannelName, edge_node: &NodeId) {
        self.router.remove_edge(&app.0, &channel.0, &edge_node.0);
    }

    fn subscribe_origin(
        &self,
        app: &AppId,
        channel: &ChannelName,
        origin_node: &NodeId,
        origin: &RelayTicket,
    ) -> Result<(), MediaRefusal> {
        let peer = relay_peer(origin_node, origin)?;
        self.router
            .subscribe_origin(&app.0, &channel.0, peer)
            .map_err(relay_refusal)
    }

    fn unsubscribe_origin(&self, app: &AppId, channel: &ChannelName) {
        self.router.unsubscribe_origin(&app.0, &channel.0);
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

/// Measures the router's load every second into `load` (sessions, and the bit rate sent since the last
/// sample), for the node info, until the router stops.
pub async fn sample_media_load(
    router: MediaRouter,
    load: std::sync::Arc<std::sync::Mutex<showcall_cluster::MediaLoad>>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut last: Option<(tokio::time::Instant, u64)> = None;
    loop {
        tick.tick().await;
        let Ok(stats) = router.stats().await else {
            return;
        };
        let now = tokio::time::Instant::now();
        let egress_bps = match last {
            Some((then, bytes)) => {
                let secs = now.duration_since(then).as_secs_f64().max(0.001);
                (stats.bytes_out.saturating_sub(bytes) as f64 * 8.0 / secs) as u64
            }
            None => 0,
        };
        last = Some((now, stats.bytes_out));
        *load.lock().unwrap_or_else(|e| e.into_inner()) = showcall_cluster::MediaLoad {
            sessions: stats.sessions as u64,
            egress_bps,
        };
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
            // The edge keeps its viewers' sessions: an origin that died is a node loss the edge hears
            // of from the cluster (its rooms from that origin close here, `showcall_runtime`), and a
            // path that heals resumes by itself.
            MediaEvent::RelayStalled {
                app,
                channel,
                origin_node,
            } => {
                metrics::counter!(names::MEDIA_EDGE_RELAY_TOTAL, "event" => "stalled").increment(1);
                tracing::warn!(%app, %channel, origin = %origin_node, "media relay from origin stalled");
            }
            MediaEvent::RelayResumed {
                app,
                channel,
                origin_node,
            } => {
                metrics::counter!(names::MEDIA_EDGE_RELAY_TOTAL, "event" => "resumed").increment(1);
                tracing::info!(%app, %channel, origin = %origin_node, "media relay from origin resumed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_key_travels_as_hex_and_comes_back_the_same() {
        let key = RelayKey::random();
        let hex = key_to_hex(&key);
        assert_eq!(hex.len(), KEY_LEN * 2);
        let back = key_from_hex(&hex).expect("reads back");
        assert_eq!(back.to_bytes(), key.to_bytes());
    }

    #[test]
    fn a_bad_ticket_is_refused() {
        let node = NodeId("n2".into());
        for (addr, key) in [
            ("not-an-address", "00".repeat(KEY_LEN)),
            ("127.0.0.1:7809", "zz".repeat(KEY_LEN)),
            ("127.0.0.1:7809", "00".repeat(KEY_LEN - 1)),
        ] {
            let ticket = RelayTicket {
                addr: addr.into(),
                key,
            };
            assert!(
                matches!(
                    relay_peer(&node, &ticket),
                    Err(MediaRefusal::InvalidOffer(_))
                ),
                "{ticket:?}"
            );
        }
    }
}
