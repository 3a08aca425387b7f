//! [`SignalClient`]: the signaling session (≈ CallAPI's `CallRtmManager`).
//!
//! It owns one connection at a time and speaks the conversation rules of `signal.proto`:
//! - every command is a `ClientFrame` with a fresh request id (from 1, never 0, never reused by this
//!   client); [`SignalClient::request`] waits for the `Response` with that id and turns a `Response.error`
//!   into [`SdkError::Refused`];
//! - a dispatcher task per connection reads the transport in order: responses complete their request,
//!   events go to subscribers ([`SignalClient::subscribe_events`], and the `CallApi`) and to
//!   [`SignalListener`]s;
//! - when the connection ends, every request still waiting fails with [`SdkError::Disconnected`].
//!
//! Event `seq` numbers continue across a resumed session, so events with a `seq` at or below the last one
//! seen are dropped as duplicates (a server may resend after a resume); a fresh (not resumed) session starts
//! counting again.
//!
//! After a network loss the app can [`reconnect`](SignalClient::reconnect) and [`login`](SignalClient::login)
//! again within the server's grace period to resume the session (its call and channels); subscribers and
//! listeners stay attached across connections.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use showcall_proto::signal::client_frame::Command;
use showcall_proto::signal::server_frame::Frame;
use showcall_proto::signal::{
    AnswerMedia, CallSnapshot, ChannelEvent, ChannelJoined, ChannelRole, ClientFrame, Event,
    IceServer, JoinChannel, LeaveChannel, Login, LoginResult, Logout, Ping, RenewToken, Response,
    RestartIce, ServerFrame, SessionCloseReason, SetVideoLayer, VideoLayer, event, response,
};
use tokio::sync::{mpsc, oneshot};

use crate::listeners::ListenerSet;
use crate::mirror::CallMirror;
use crate::transport::{
    SignalTransport, TransportEvent, TransportEventReceiver, transport_channel,
};
use crate::ws::WsTransport;
use crate::{SdkError, lock};

/// Session-level callbacks (≈ CallRtmManager's listener). All have no-op defaults. Called on the SDK's
/// dispatch task, in the order the server sent things; do not block in them.
pub trait SignalListener: Send + Sync {
    /// A login succeeded: the session is open (fresh or resumed).
    fn on_connected(&self) {}
    /// The connection ended (network loss, server close, `close()`); pending commands failed with
    /// `Disconnected`. Reconnect and log in again within the grace period to resume.
    fn on_disconnected(&self, reason: &str) {
        let _ = reason;
    }
    /// The session's token expires at `expires_at_ms` (Unix ms); call `renew_token` before then.
    fn on_token_privilege_will_expire(&self, expires_at_ms: u64) {
        let _ = expires_at_ms;
    }
    /// The server is closing the session; the connection ends right after.
    fn on_session_closed(&self, reason: SessionCloseReason, message: &str) {
        let _ = (reason, message);
    }
    /// Something happened in a channel this user is in (member joined/left, broadcaster paused/resumed).
    fn on_channel_event(&self, event: &ChannelEvent) {
        let _ = event;
    }
}

/// How long [`SignalClient::login`] waits to connect to the node serving its session before it logs in
/// where it is instead.
pub const FOLLOW_HOME_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// What a login returned (mirrors `LoginResult`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoginInfo {
    pub app_id: String,
    pub user_id: String,
    /// True when an earlier session (dropped within the grace period) was resumed with its call and channels.
    pub resumed: bool,
    /// Token expiry, Unix milliseconds.
    pub token_expires_at_ms: u64,
    /// The call this user is in, when resumed into one.
    pub call: Option<CallSnapshot>,
    /// Channels this user is in, when resumed.
    pub channels: Vec<String>,
    /// How long the server keeps a dropped session, milliseconds.
    pub grace_period_ms: u32,
    /// TURN servers with this session's credentials (empty when the node has none configured): the
    /// relay for networks that let only TLS on 443 out.
    pub ice_servers: Vec<IceServer>,
}

impl From<LoginResult> for LoginInfo {
    fn from(r: LoginResult) -> Self {
        LoginInfo {
            app_id: r.app_id,
            user_id: r.user_id,
            resumed: r.resumed,
            token_expires_at_ms: r.token_expires_at_ms,
            call: r.call,
            channels: r.channels,
            grace_period_ms: r.grace_period_ms,
            ice_servers: r.ice_servers,
        }
    }
}

/// What the `CallApi` receives from its signal client: events, and session changes that may move the call
/// state (a login's snapshot).
#[derive(Debug, Clone)]
pub(crate) enum Update {
    Event(Event),
    LoggedIn(LoginInfo),
    /// A PrepareForCall succeeded (delivered before its response).
    Prepared,
}

enum Subscriber {
    Events(mpsc::UnboundedSender<Event>),
    Updates(mpsc::UnboundedSender<Update>),
}

/// Everything the dispatcher changes in order, under one lock, so that a new subscriber gets a consistent
/// (snapshot, rest of the stream) pair.
#[derive(Default)]
struct Hub {
    subscribers: Vec<Subscriber>,
    mirror: CallMirror,
    login: Option<LoginInfo>,
    last_seq: u64,
}

impl Hub {
    fn publish_event(&mut self, ev: &Event) {
        self.subscribers.retain(|s| match s {
            Subscriber::Events(tx) => tx.send(ev.clone()).is_ok(),
            Subscriber::Updates(tx) => tx.send(Update::Event(ev.clone())).is_ok(),
        });
    }

    fn publish_update(&mut self, update: &Update) {
        self.subscribers.retain(|s| match s {
            Subscriber::Events(tx) => !tx.is_closed(),
            Subscriber::Updates(tx) => tx.send(update.clone()).is_ok(),
        });
    }
}

/// A request waiting for its response. `prepare` marks a PrepareForCall, whose success moves the mirror
/// (in order with events, so the dispatcher applies it, not the caller).
struct Waiter {
    tx: oneshot::Sender<Response>,
    prepare: bool,
}

/// One transport connection and the requests waiting on it. `pending` becomes `None` when the connection
/// ends, so a request can never be registered after the dispatcher failed the others.
struct Connection {
    transport: Box<dyn SignalTransport>,
    pending: Mutex<Option<HashMap<u64, Waiter>>>,
    /// Set when the client itself left this connection before any session was opened on it (a login
    /// sent to the node serving the session): its end is not a disconnection of the session, so
    /// listeners do not hear of it.
    left_unused: std::sync::atomic::AtomicBool,
}

impl Connection {
    fn is_open(&self) -> bool {
        lock(&self.pending).is_some()
    }
}

struct Shared {
    url: Option<String>,
    /// Whether a login asks to be sent to the node serving the session (`Login.follow_home`).
    follow_home: std::sync::atomic::AtomicBool,
    next_request_id: AtomicU64,
    conn: Mutex<Option<Arc<Connection>>>,
    listeners: ListenerSet<dyn SignalListener>,
    hub: Mutex<Hub>,
}

/// Closes the connection when the last `SignalClient` handle goes away (the dispatcher task holds the
/// shared state too, so without this the connection would outlive the app's handles).
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(conn) = lock(&self.0.conn).take() {
            conn.transport.close();
        }
    }
}

/// A [`SignalClient`] that does not keep the connection open: once every `SignalClient` clone is dropped
/// (which closes the connection), [`upgrade`](Self::upgrade) gives `None`. Helpers that live beside the
/// app's client (a media session answering renegotiations) hold this.
#[derive(Clone)]
pub struct WeakSignalClient {
    shared: Arc<Shared>,
    owner: std::sync::Weak<Owner>,
}

impl WeakSignalClient {
    pub fn upgrade(&self) -> Option<SignalClient> {
        Some(SignalClient {
            _owner: self.owner.upgrade()?,
            shared: self.shared.clone(),
        })
    }
}

/// A signaling session with a showcall gateway. Cheap to clone (clones share the session).
#[derive(Clone)]
pub struct SignalClient {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

impl fmt::Debug for SignalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalClient")
            .field("url", &self.shared.url)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl SignalClient {
    fn build(url: Option<String>) -> Self {
        let shared = Arc::new(Shared {
            // A client made with a custom transport connects the way its app chose: it is not moved.
            follow_home: std::sync::atomic::AtomicBool::new(url.is_some()),
            url,
            next_request_id: AtomicU64::new(1),
            conn: Mutex::new(None),
            listeners: ListenerSet::default(),
            hub: Mutex::new(Hub::default()),
        });
        SignalClient {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// Connects to a gateway over WebSocket (binary protobuf frames). Log in next.
    pub async fn connect(url: &str) -> Result<Self, SdkError> {
        let (tx, rx) = transport_channel();
        let transport = WsTransport::connect(url, tx).await?;
        let client = Self::build(Some(url.to_owned()));
        client.attach(Box::new(transport), rx);
        Ok(client)
    }

    /// Uses a custom transport (≈ CallAPI's pluggable `ISignalClient`). `events` is the receiving half of
    /// the channel the transport delivers into. Must be called within a tokio runtime.
    pub fn with_transport(
        transport: Box<dyn SignalTransport>,
        events: TransportEventReceiver,
    ) -> Self {
        let client = Self::build(None);
        client.attach(transport, events);
        client
    }

    /// Opens a new WebSocket connection to the URL given to [`connect`](Self::connect), replacing the
    /// current one (closed first if still open). Log in again to resume the session.
    pub async fn reconnect(&self) -> Result<(), SdkError> {
        let url = self.shared.url.clone().ok_or_else(|| {
            SdkError::Transport("reconnect needs a client made by SignalClient::connect".to_owned())
        })?;
        self.reconnect_to(&url).await
    }

    /// [`reconnect`](Self::reconnect) to another signaling URL — another node of the cluster, e.g.
    /// after the node this client was on closed the connection with 1012 ("service restart"). Log in
    /// again to resume the session there: any node serves any session.
    pub async fn reconnect_to(&self, url: &str) -> Result<(), SdkError> {
        let (tx, rx) = transport_channel();
        let transport = WsTransport::connect(url, tx).await?;
        self.attach(Box::new(transport), rx);
        Ok(())
    }

    /// Replaces the connection with a custom transport (the current one is closed first if still open).
    pub fn replace_transport(
        &self,
        transport: Box<dyn SignalTransport>,
        events: TransportEventReceiver,
    ) {
        self.attach(transport, events);
    }

    fn attach(&self, transport: Box<dyn SignalTransport>, events: TransportEventReceiver) {
        let conn = Arc::new(Connection {
            transport,
            pending: Mutex::new(Some(HashMap::new())),
            left_unused: std::sync::atomic::AtomicBool::new(false),
        });
        let old = lock(&self.shared.conn).replace(conn.clone());
        if let Some(old) = old {
            old.transport.close();
        }
        tokio::spawn(dispatch(self.shared.clone(), conn, events));
    }

    /// Whether the current connection is open (it may not be logged in yet).
    pub fn is_connected(&self) -> bool {
        lock(&self.shared.conn)
            .as_ref()
            .is_some_and(|c| c.is_open())
    }

    /// The last successful login of this session, until the server closes it.
    pub fn login_info(&self) -> Option<LoginInfo> {
        lock(&self.shared.hub).login.clone()
    }

    /// Registers a session listener (no effect if already registered).
    pub fn add_listener(&self, listener: Arc<dyn SignalListener>) {
        self.shared.listeners.add(listener);
    }

    /// Unregisters a session listener; returns whether it was registered.
    pub fn remove_listener(&self, listener: &Arc<dyn SignalListener>) -> bool {
        self.shared.listeners.remove(listener)
    }

    /// Every event received from now on, in order (duplicates by `seq` already dropped). Unbounded, so a
    /// slow consumer never loses events; drop the receiver to unsubscribe.
    pub fn subscribe_events(&self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.shared.hub)
            .subscribers
            .push(Subscriber::Events(tx));
        rx
    }

    /// The call mirror as of now plus every update after it, atomically (nothing falls in between).
    pub(crate) fn subscribe_updates(&self) -> (CallMirror, mpsc::UnboundedReceiver<Update>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut hub = lock(&self.shared.hub);
        hub.subscribers.push(Subscriber::Updates(tx));
        (hub.mirror.clone(), rx)
    }

    /// Sends one command and waits for its `Response`. A refused command is `Err(Refused)`; the `Ok`
    /// response never carries an error.
    pub async fn request(&self, command: Command) -> Result<Response, SdkError> {
        let conn = lock(&self.shared.conn)
            .clone()
            .ok_or(SdkError::Disconnected)?;
        let request_id = self.shared.next_request_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let prepare = matches!(command, Command::PrepareForCall(_));
        match lock(&conn.pending).as_mut() {
            Some(pending) => pending.insert(request_id, Waiter { tx, prepare }),
            None => return Err(SdkError::Disconnected),
        };
        let frame = ClientFrame {
            request_id,
            command: Some(command),
        };
        if let Err(e) = conn.transport.send(frame) {
            if let Some(pending) = lock(&conn.pending).as_mut() {
                pending.remove(&request_id);
            }
            return Err(e);
        }
        // The sender is dropped, never completed, when the connection ends.
        let response = rx.await.map_err(|_| SdkError::Disconnected)?;
        match response.error {
            Some(err) => {
                let err = SdkError::refused(err);
                tracing::debug!(request_id, error = %err, "command refused");
                Err(err)
            }
            None => Ok(response),
        }
    }

    /// Opens (or resumes) the session of the user named by `token` (≈ CallRtmManager.login).
    /// `SignalListener::on_connected` fires once the server accepted it.
    ///
    /// In a cluster, a client made by [`connect`](Self::connect) asks to be sent to the node serving its
    /// session (`Login.follow_home`; see [`set_follow_home`](Self::set_follow_home)): when that is
    /// another node than the one it connected to, and that node announces a URL clients reach it at, the
    /// client connects there (within [`FOLLOW_HOME_CONNECT_TIMEOUT`]) and logs in there, so its commands
    /// and events cross no node link. If that node cannot be reached, it logs in where it is, served
    /// from there as without the flag. A later [`reconnect`](Self::reconnect) goes to the URL given to
    /// `connect` again (the entry point), and the login there finds the session's node anew.
    pub async fn login(&self, token: &str) -> Result<LoginInfo, SdkError> {
        let follow = self.shared.follow_home.load(Ordering::Relaxed);
        let elsewhere = match self.login_once(token, follow).await? {
            response::Result::Login(result) => return Ok(result.into()),
            response::Result::LoginElsewhere(elsewhere) => elsewhere,
            _ => unreachable!("login_once returns only login answers"),
        };
        tracing::debug!(
            node = %elsewhere.node_id,
            url = %elsewhere.signal_url,
            "the session is served by another node: logging in there"
        );
        let (tx, events) = transport_channel();
        let moved = tokio::time::timeout(
            FOLLOW_HOME_CONNECT_TIMEOUT,
            WsTransport::connect(&elsewhere.signal_url, tx),
        )
        .await;
        match moved {
            Ok(Ok(transport)) => {
                if let Some(old) = lock(&self.shared.conn).as_ref() {
                    old.left_unused.store(true, Ordering::Relaxed);
                }
                self.attach(Box::new(transport), events);
            }
            Ok(Err(e)) => tracing::warn!(
                url = %elsewhere.signal_url,
                error = %e,
                "the session's node cannot be reached: logging in here"
            ),
            Err(_) => tracing::warn!(
                url = %elsewhere.signal_url,
                "the session's node did not answer in time: logging in here"
            ),
        }
        // Followed at most once: if the session moved again meanwhile, it is served from here.
        match self.login_once(token, false).await? {
            response::Result::Login(result) => Ok(result.into()),
            _ => Err(SdkError::Protocol(
                "login without follow_home answered login_elsewhere".to_owned(),
            )),
        }
    }

    /// Whether [`login`](Self::login) asks to be sent to the node serving the session (default: yes
    /// for a client made by [`connect`](Self::connect), no for one with a custom transport). Off, the
    /// client stays on the node it connected to, which serves it through the node link.
    pub fn set_follow_home(&self, follow: bool) {
        self.shared.follow_home.store(follow, Ordering::Relaxed);
    }

    /// One `Login`; its answer is a login result or, with `follow_home`, possibly `login_elsewhere`.
    async fn login_once(
        &self,
        token: &str,
        follow_home: bool,
    ) -> Result<response::Result, SdkError> {
        let response = self
            .request(Command::Login(Login {
                token: token.to_owned(),
                follow_home,
            }))
            .await?;
        match response.result {
            Some(result @ response::Result::Login(_)) => Ok(result),
            Some(result @ response::Result::LoginElsewhere(_)) if follow_home => Ok(result),
            _ => Err(SdkError::Protocol(
                "login response without a login result".to_owned(),
            )),
        }
    }

    /// Ends the session: a call in progress is hung up, channels are left; the server then closes the
    /// connection (`on_session_closed(LoggedOut)`, then `on_disconnected`).
    pub async fn logout(&self) -> Result<(), SdkError> {
        self.request(Command::Logout(Logout {})).await.map(drop)
    }

    /// Replaces the session's token without reconnecting (same app and user).
    pub async fn renew_token(&self, token: &str) -> Result<(), SdkError> {
        self.request(Command::RenewToken(RenewToken {
            token: token.to_owned(),
        }))
        .await
        .map(drop)
    }

    /// Joins a live channel or a call's private channel (signaling only: no media session).
    pub async fn join_channel(
        &self,
        channel: &str,
        role: ChannelRole,
    ) -> Result<ChannelJoined, SdkError> {
        self.join_channel_with_offer(channel, role, "").await
    }

    /// Joins a channel and opens a media session in it: `sdp_offer` is an SDP offer (see
    /// `media::MediaSession`, which makes one); the node's answer is `ChannelJoined.sdp_answer`. An empty
    /// offer is [`join_channel`](Self::join_channel).
    pub async fn join_channel_with_offer(
        &self,
        channel: &str,
        role: ChannelRole,
        sdp_offer: &str,
    ) -> Result<ChannelJoined, SdkError> {
        let response = self
            .request(Command::JoinChannel(JoinChannel {
                channel: channel.to_owned(),
                role: role as i32,
                sdp_offer: sdp_offer.to_owned(),
            }))
            .await?;
        match response.result {
            Some(response::Result::ChannelJoined(joined)) => Ok(joined),
            _ => Err(SdkError::Protocol(
                "join response without a channel_joined result".to_owned(),
            )),
        }
    }

    /// Leaves a channel.
    pub async fn leave_channel(&self, channel: &str) -> Result<(), SdkError> {
        self.request(Command::LeaveChannel(LeaveChannel {
            channel: channel.to_owned(),
        }))
        .await
        .map(drop)
    }

    /// Answers the node's renegotiation offer (`ChannelEvent.media_offer`) for this user's media
    /// session in `channel`. [`MediaSession`](crate::MediaSession) does this by itself.
    pub async fn answer_media(
        &self,
        channel: &str,
        sdp_answer: &str,
        revision: u64,
    ) -> Result<(), SdkError> {
        self.request(Command::AnswerMedia(AnswerMedia {
            channel: channel.to_owned(),
            sdp_answer: sdp_answer.to_owned(),
            revision,
        }))
        .await
        .map(drop)
    }

    /// Restarts ICE on this user's media session in `channel`: `sdp_offer` is the session's offer with
    /// new ICE credentials (its network changed); returns the node's answer (`IceRestarted.sdp_answer`).
    /// [`MediaSession::restart_ice`](crate::MediaSession::restart_ice) does the whole exchange.
    pub async fn restart_ice(&self, channel: &str, sdp_offer: &str) -> Result<String, SdkError> {
        let response = self
            .request(Command::RestartIce(RestartIce {
                channel: channel.to_owned(),
                sdp_offer: sdp_offer.to_owned(),
            }))
            .await?;
        match response.result {
            Some(response::Result::IceRestarted(restarted)) => Ok(restarted.sdp_answer),
            _ => Err(SdkError::Protocol(
                "restart_ice response without an ice_restarted result".to_owned(),
            )),
        }
    }

    /// Caps the simulcast layer this user's media session in `channel` receives (a small window needs
    /// no full-size picture): the node forwards the best layer a publisher sends that is not above
    /// `max_layer`, switching at that layer's next keyframe without a break in the stream.
    /// [`VideoLayer::High`] lifts the cap. Refused (and nothing changes) for
    /// [`VideoLayer::Unspecified`], outside the channel, or without a media session.
    pub async fn set_video_layer(
        &self,
        channel: &str,
        max_layer: VideoLayer,
    ) -> Result<(), SdkError> {
        self.request(Command::SetVideoLayer(SetVideoLayer {
            channel: channel.to_owned(),
            max_layer: max_layer as i32,
        }))
        .await
        .map(drop)
    }

    /// A handle that does not keep the session open (see [`WeakSignalClient`]).
    pub fn downgrade(&self) -> WeakSignalClient {
        WeakSignalClient {
            shared: self.shared.clone(),
            owner: Arc::downgrade(&self._owner),
        }
    }

    /// Keep-alive round trip.
    pub async fn ping(&self) -> Result<(), SdkError> {
        self.request(Command::Ping(Ping {})).await.map(drop)
    }

    /// Closes the connection cleanly without logging out: the server keeps the session for its grace
    /// period, as after a network loss.
    pub fn close(&self) {
        if let Some(conn) = lock(&self.shared.conn).clone() {
            conn.transport.close();
        }
    }

    /// Drops the connection abruptly (no close handshake), as a network loss would. For tests.
    pub fn abort(&self) {
        if let Some(conn) = lock(&self.shared.conn).clone() {
            conn.transport.abort();
        }
    }
}

/// Reads one connection's events in order until it ends, then fails its pending requests.
async fn dispatch(shared: Arc<Shared>, conn: Arc<Connection>, mut events: TransportEventReceiver) {
    let reason = loop {
        match events.recv().await {
            Some(TransportEvent::Frame(frame)) => shared.on_frame(&conn, frame),
            Some(TransportEvent::Closed { reason }) => break reason,
            None => break "transport stopped".to_owned(),
        }
    };
    // Dropping the waiters fails every pending request with Disconnected.
    let pending = lock(&conn.pending).take();
    let failed = pending.map_or(0, |p| p.len());
    tracing::debug!(%reason, failed, "signaling connection ended");
    if !conn.left_unused.load(Ordering::Relaxed) {
        shared.listeners.each(|l| l.on_disconnected(&reason));
    }
}

impl Shared {
    fn on_frame(&self, conn: &Connection, frame: ServerFrame) {
        match frame.frame {
            Some(Frame::Response(response)) => self.on_response(conn, response),
            Some(Frame::Event(event)) => self.on_event(event),
            None => tracing::warn!("empty server frame ignored"),
        }
    }

    fn on_response(&self, conn: &Connection, response: Response) {
        // A successful login changes the session even if its caller stopped waiting, and must be applied
        // before any event that follows it.
        if response.error.is_none()
            && let Some(response::Result::Login(result)) = &response.result
        {
            self.on_login(LoginInfo::from(result.clone()));
        }
        let waiter = lock(&conn.pending)
            .as_mut()
            .and_then(|p| p.remove(&response.request_id));
        match waiter {
            Some(waiter) => {
                if waiter.prepare && response.error.is_none() {
                    self.on_prepared();
                }
                // The caller may have stopped waiting; nothing to do then.
                drop(waiter.tx.send(response));
            }
            None => tracing::warn!(
                request_id = response.request_id,
                error = ?response.error,
                "response to no pending request ignored"
            ),
        }
    }

    fn on_login(&self, info: LoginInfo) {
        {
            let mut hub = lock(&self.hub);
            if !info.resumed {
                hub.last_seq = 0;
            }
            hub.mirror.apply_login(&info);
            hub.login = Some(info.clone());
            hub.publish_update(&Update::LoggedIn(info));
        }
        self.listeners.each(|l| l.on_connected());
    }

    fn on_prepared(&self) {
        let mut hub = lock(&self.hub);
        hub.mirror.apply_prepared();
        hub.publish_update(&Update::Prepared);
    }

    fn on_event(&self, event: Event) {
        {
            let mut hub = lock(&self.hub);
            if event.seq != 0 {
                if event.seq <= hub.last_seq {
                    tracing::debug!(
                        seq = event.seq,
                        last = hub.last_seq,
                        "duplicate event dropped"
                    );
                    return;
                }
                if hub.last_seq != 0 && event.seq != hub.last_seq + 1 {
                    tracing::warn!(
                        seq = event.seq,
                        last = hub.last_seq,
                        "gap in event sequence"
                    );
                }
                hub.last_seq = event.seq;
            }
            match &event.kind {
                Some(event::Kind::CallStateChanged(change)) => hub.mirror.apply_state(change),
                Some(event::Kind::SessionClosed(_)) => hub.login = None,
                _ => {}
            }
            hub.publish_event(&event);
        }
        match &event.kind {
            Some(event::Kind::TokenWillExpire(t)) => self
                .listeners
                .each(|l| l.on_token_privilege_will_expire(t.expires_at_ms)),
            Some(event::Kind::SessionClosed(closed)) => {
                let reason = SessionCloseReason::try_from(closed.reason).unwrap_or_default();
                self.listeners
                    .each(|l| l.on_session_closed(reason, &closed.message))
            }
            Some(event::Kind::ChannelEvent(channel)) => {
                self.listeners.each(|l| l.on_channel_event(channel))
            }
            _ => {}
        }
    }
}
