//! Users driven through the Rust SDK, for the media benchmarks: a logged-in [`SignalClient`], and a
//! [`CallUser`] (signal client + [`CallApi`]) whose state changes are stamped with the instant the app
//! would see them, plus a host that answers every call the way an app would ([`answer_calls`]), and a
//! live room's send-only broadcaster ([`publish`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use showcall_sdk::{
    CallApi, CallApiListener, CallConfig, CallState, CallStateReason, ChannelJoined, ChannelRole,
    EventInfo, MediaOptions, MediaPeer, MediaSession, MediaSource, PrepareConfig, SignalClient,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long one wait may take before the benchmark gives up (a hang, not a measurement).
pub(super) const GUARD: Duration = Duration::from_secs(30);

/// Connects and logs in.
pub(super) async fn login(url: &str, token: &str) -> anyhow::Result<SignalClient> {
    let signal = SignalClient::connect(url).await?;
    signal.login(token).await?;
    Ok(signal)
}

/// Awaits `fut` for at most [`GUARD`].
pub(super) async fn guarded<T>(what: &str, fut: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(GUARD, fut)
        .await
        .with_context(|| format!("{what}: nothing within {GUARD:?}"))
}

/// Joins `channel` as broadcaster publishing `source` (send-only: it receives nothing here).
pub(super) async fn publish(
    signal: &SignalClient,
    channel: &str,
    source: Arc<MediaSource>,
) -> anyhow::Result<MediaSession> {
    Ok(publish_joined(signal, channel, source).await?.0)
}

/// [`publish`], with the join's answer (its host candidate says which node's router carries it).
pub(super) async fn publish_joined(
    signal: &SignalClient,
    channel: &str,
    source: Arc<MediaSource>,
) -> anyhow::Result<(MediaSession, ChannelJoined)> {
    let mut peer = MediaPeer::new(MediaOptions {
        receive: false,
        ..MediaOptions::default()
    })?;
    peer.set_source(source);
    let offer = peer.create_offer(true)?;
    let joined = signal
        .join_channel_with_offer(channel, ChannelRole::Broadcaster, &offer)
        .await?;
    peer.accept_answer(&joined.sdp_answer)?;
    Ok((peer.start()?, joined))
}

/// One call state change and when the app was told.
pub(super) struct StateChange {
    pub at: Instant,
    pub state: CallState,
    pub reason: CallStateReason,
    pub info: EventInfo,
}

/// Stamps every state change as the `CallApi` reports it (on its listener task, as an app sees it).
struct Stamp(mpsc::UnboundedSender<StateChange>);

impl CallApiListener for Stamp {
    fn on_call_state_changed(
        &self,
        state: CallState,
        reason: CallStateReason,
        _event_reason: &str,
        info: &EventInfo,
    ) {
        let _ = self.0.send(StateChange {
            at: Instant::now(),
            state,
            reason,
            info: info.clone(),
        });
    }
}

/// A user who makes or takes calls: prepared for calls, with media joined per call by the bench.
pub(super) struct CallUser {
    pub signal: Arc<SignalClient>,
    pub api: CallApi,
    states: mpsc::UnboundedReceiver<StateChange>,
}

impl CallUser {
    /// Logs in, initializes the call API and prepares for calls (default settings: connected on the
    /// first media frame both ways).
    pub async fn prepared(url: &str, token: &str) -> anyhow::Result<Self> {
        Self::prepared_with(url, token, PrepareConfig::default()).await
    }

    /// [`prepared`](Self::prepared) with the given call settings.
    pub async fn prepared_with(
        url: &str,
        token: &str,
        prepare: PrepareConfig,
    ) -> anyhow::Result<Self> {
        let signal = Arc::new(SignalClient::connect(url).await?);
        let me = signal.login(token).await?;
        let api = CallApi::new();
        api.initialize(CallConfig {
            app_id: me.app_id,
            user_id: me.user_id,
            signal: signal.clone(),
        });
        let (tx, states) = mpsc::unbounded_channel();
        api.add_listener(Arc::new(Stamp(tx)));
        api.prepare_for_call(prepare).await?;
        Ok(Self {
            signal,
            api,
            states,
        })
    }

    /// The next state change, whatever it is; `None` once the call API is gone.
    pub async fn next_change(&mut self) -> Option<StateChange> {
        self.states.recv().await
    }

    /// Forgets the state changes reported so far, so that the next wait sees only later ones.
    pub fn discard_changes(&mut self) {
        while self.states.try_recv().is_ok() {}
    }

    /// The next change to `state` (with `reason`, if given); earlier changes are skipped.
    pub async fn wait_state(
        &mut self,
        state: CallState,
        reason: Option<CallStateReason>,
    ) -> anyhow::Result<StateChange> {
        guarded(&format!("call state {state:?}"), async {
            loop {
                let change = self.states.recv().await.context("call API gone")?;
                if change.state == state && reason.is_none_or(|r| r == change.reason) {
                    return Ok(change);
                }
            }
        })
        .await?
    }
}

/// What the answering host saw of one call.
pub(super) struct Answered {
    /// It rang (`calling`).
    pub ringing: Instant,
    /// Its call media session is up (ICE and DTLS done).
    pub media_up: Instant,
    /// `connected` (first frame both ways).
    pub connected: Instant,
}

/// Runs a host that accepts every call at once, joins the call's channel with media (the shipped
/// sample), and waits for `connected` and then for the call's end; reports each call once it ended.
pub(super) fn answer_calls(
    mut host: CallUser,
    reports: mpsc::UnboundedSender<Answered>,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        loop {
            // Between calls the host may wait any time: no guard here.
            let ring = loop {
                let change = host.states.recv().await.context("call API gone")?;
                if change.state == CallState::Calling {
                    break change;
                }
            };
            host.api.accept_with_call_id(&ring.info.call_id).await?;
            let (media, _) = MediaSession::join(
                &host.signal,
                &ring.info.from_room_id,
                ChannelRole::Broadcaster,
                MediaOptions::default(),
            )
            .await?;
            let connected = host
                .wait_state(
                    CallState::Connected,
                    Some(CallStateReason::RecvRemoteFirstFrame),
                )
                .await?;
            host.wait_state(CallState::Prepared, None).await?;
            let media_up = media.stats().connected_at.unwrap_or(connected.at);
            media.close();
            let _ = reports.send(Answered {
                ringing: ring.at,
                media_up,
                connected: connected.at,
            });
        }
    })
}

/// The port of the first UDP host candidate in an SDP answer: where the session's router receives (in a
/// cluster, which node carries the session).
pub(super) fn host_candidate_port(sdp: &str) -> Option<u16> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .filter(|l| l.contains("typ host") && l.to_ascii_lowercase().contains(" udp "))
        .find_map(|l| l.split_whitespace().nth(5)?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_candidate_port_is_read_from_an_answer() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40123 typ host\r\n\
                   a=candidate:2 1 tcp 1 127.0.0.1 40124 typ host tcptype passive\r\n";
        assert_eq!(host_candidate_port(sdp), Some(40123));
        assert_eq!(host_candidate_port("v=0\r\n"), None);
    }
}
