//! One WebSocket connection: rate-limit → decode → validate → authorise → hand to the user actor →
//! answer; and, in the same task, forward the session's events from its outbox. One task per connection
//! keeps an idle session small.
//!
//! What each bound does when it is reached:
//! - **Inbound frames.** Every data frame — text or binary, decodable or not — takes a token from the
//!   connection's rate limiter before anything else is done with it; a frame without one is answered
//!   RATE_LIMITED unread (its request id peeked, [`codec::peek_request_id`]), so garbage costs the node
//!   no more than commands. A frame over `max_frame_bytes` is answered MALFORMED_FRAME unparsed; one
//!   over the transport limit (4 × `max_frame_bytes`), or a text frame that is not UTF-8, cannot be
//!   read past and closes the connection with 1009 / 1007 ([`crate::close`]).
//! - **The outbox** (events for the client, [`showcall_protocol::inbox`]): at most `outbox_frames`;
//!   pushes never wait; a push that finds it full closes the connection with 4008 ("slow consumer"),
//!   also while this task is stuck writing to a socket the client does not read.
//! - **Writes.** One batch at a time (answers and events share the socket): a frame and the events
//!   already waiting behind it, up to [`WRITE_BATCH`], go out in one socket write; a write waits for
//!   the client until the outbox overflows or the node shuts down.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use showcall_auth::{AuthError, Claims, TokenVerifier};
use showcall_machines::UserId;
use showcall_proto::signal::{self as pb, response::Result as Answer};
use showcall_protocol::AppId;
use showcall_protocol::CommandError;
use showcall_protocol::ConnectionInbox;
use showcall_protocol::InboxReceiver;
use showcall_protocol::Outbound;
use showcall_protocol::OverflowSignal;
use showcall_protocol::UserCommand;
use showcall_protocol::messages::TraceContext;
use showcall_protocol::trace::TARGET;
use showcall_runtime::Session;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tracing::Instrument;

use crate::Gateway;
use crate::close::{self, End};
use crate::codec::{self, Encoding};
use crate::convert;
use crate::slots::Slot;
use crate::validate::{self, Request};

/// A logged-in connection's identity.
struct LoggedIn {
    session: Session,
    claims: Claims,
    /// Pushed events use the encoding of the login frame.
    encoding: Encoding,
}

impl LoggedIn {
    /// What an event from the outbox leads to: its frame, in the login's encoding, or the end of the
    /// connection.
    fn step_for(&self, outbound: Outbound) -> Step {
        match outbound {
            Outbound::Event(pushed) => {
                let mut frame = convert::event(*pushed);
                convert::set_current_user(&mut frame, self.session.user().as_str());
                Step::Write(codec::encode(&frame, self.encoding))
            }
            Outbound::Close(reason) => Step::End(End::SessionClosed(reason)),
        }
    }
}

/// How many frames one socket write carries at most: a step's events for one client are a handful;
/// the bound keeps a connection with a long queue from writing it all before it reads again.
const WRITE_BATCH: usize = 32;

/// What one turn of the connection's loop leads to.
enum Step {
    Nothing,
    /// Write this frame to the client.
    Write(Message),
    End(End),
}

pub(crate) async fn serve(mut socket: WebSocket, gw: Gateway, peer: SocketAddr, slot: Slot) {
    let counted = showcall_protocol::metrics::SignalingConnection::open();
    let quota = Quota::per_second(
        NonZeroU32::new(gw.config.rate_per_second.max(1)).expect("max(1) is non-zero"),
    )
    .allow_burst(NonZeroU32::new(gw.config.rate_burst.max(1)).expect("max(1) is non-zero"));
    let limiter = RateLimiter::direct(quota);
    let (inbox, mut outbox) = showcall_protocol::connection_inbox(gw.config.outbox_frames);
    let overflow = outbox.overflow();
    let conn = gw.hub.next_conn();
    let mut shutdown = gw.shutdown.clone();
    let mut login: Option<LoggedIn> = None;
    let end = loop {
        let step = tokio::select! {
            // An overflowed outbox ends the connection before anything more is read or written.
            biased;
            () = overflow.happened() => Step::End(End::SlowConsumer),
            _ = shutdown.changed() => Step::End(End::Shutdown),
            incoming = socket.recv() => match incoming {
                // Boxed: the connection task is sized for its largest state and lives as long as the
                // connection; frame handling is brief, so it gets its own allocation.
                Some(Ok(msg)) => Box::pin(on_frame(&gw, &limiter, &inbox, conn, &mut login, msg)).await,
                Some(Err(e)) => Step::End(read_failure(e)),
                None => Step::End(End::ClientGone),
            },
            outgoing = outbox.recv(), if login.is_some() => match outgoing {
                Some(outbound) => {
                    let l = login.as_ref().expect("branch enabled only when logged in");
                    l.step_for(outbound)
                }
                // This task holds an inbox handle itself: not while the connection lives.
                None => Step::End(End::ClientGone),
            },
        };
        match step {
            Step::Nothing => {}
            Step::Write(msg) => {
                let write = write(&mut socket, msg, &mut outbox, login.as_ref());
                if let Err(end) = unless_ended(write, &overflow, &mut shutdown).await {
                    break end;
                }
            }
            Step::End(end) => break end,
        }
    };
    let user = login.as_ref().map(|l| l.session.user().as_str().to_owned());
    match &end {
        End::SlowConsumer => {
            showcall_protocol::metrics::slow_consumer_disconnect();
            let capacity = outbox.capacity();
            tracing::info!(%peer, user, capacity, "signaling connection closed: slow consumer (outbox full)");
        }
        End::Unreadable { code, reason } => {
            tracing::info!(%peer, user, code, reason, "signaling connection closed: unreadable frame");
        }
        End::ClientGone | End::SessionClosed(_) | End::Shutdown => {}
    }
    // The session learns at once (its grace period starts, the peer hears `remoteLeft`), not after the
    // close frame below had its time to be written.
    if let Some(l) = login
        && !matches!(end, End::SessionClosed(_))
    {
        l.session.connection_lost();
    }
    // When the user's actor lives on another node, stop relaying its events to this connection.
    gw.hub.forget_remote_inbox(&inbox);
    if let Some(frame) = end.close_frame(outbox.capacity()) {
        let _ = tokio::time::timeout(close::CLOSE_WRITE_TIMEOUT, socket.send(frame)).await;
    }
    // The place under the caps is given back before the gauge shows one connection fewer, so whoever
    // sees the gauge drop can take the place.
    drop(slot);
    drop(counted);
}

/// Writes `first` and, in the same socket write, the events already waiting in the outbox (up to
/// [`WRITE_BATCH`] frames in all): a step often pushes several events to one client (a call's state
/// and its disconnection; an answer and the events of the step that answered it), and one write
/// instead of one each spares the node a system call and the client a wake-up per frame. Order is
/// kept: the frames go out in the order they were queued. A `Close` among the waiting events ends the
/// batch — what came before it is written first, then the connection closes.
async fn write(
    socket: &mut WebSocket,
    first: Message,
    outbox: &mut InboxReceiver,
    login: Option<&LoggedIn>,
) -> Result<(), End> {
    socket.feed(first).await.map_err(|_| End::ClientGone)?;
    let mut ended = None;
    if let Some(l) = login {
        for _ in 1..WRITE_BATCH {
            let Some(next) = outbox.try_recv() else {
                break;
            };
            match l.step_for(next) {
                Step::Write(msg) => socket.feed(msg).await.map_err(|_| End::ClientGone)?,
                Step::End(end) => {
                    ended = Some(end);
                    break;
                }
                Step::Nothing => {}
            }
        }
    }
    socket.flush().await.map_err(|_| End::ClientGone)?;
    ended.map_or(Ok(()), Err)
}

/// Runs a write to the client unless the outbox overflows or the node shuts down first. A client that
/// stopped reading keeps a write waiting: it is given up then. (A write given up may leave its frames
/// half-written in the WebSocket's buffer; the close frame that follows goes after them, so the stream
/// stays well-formed.)
async fn unless_ended(
    write: impl Future<Output = Result<(), End>>,
    overflow: &OverflowSignal,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), End> {
    tokio::select! {
        biased;
        () = overflow.happened() => Err(End::SlowConsumer),
        _ = shutdown.changed() => Err(End::Shutdown),
        written = write => written,
    }
}

/// What a failed read means. A frame the server cannot read past gets a close frame saying why; a
/// socket that failed or was reset is simply gone.
fn read_failure(e: axum::Error) -> End {
    let Ok(e) = e.into_inner().downcast::<WsError>() else {
        return End::ClientGone;
    };
    let unreadable = |code, reason: String| End::Unreadable { code, reason };
    match *e {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => unreadable(
            close::MESSAGE_TOO_BIG,
            format!("frame of {size} bytes exceeds the limit of {max_size} bytes"),
        ),
        WsError::Capacity(other) => unreadable(close::MESSAGE_TOO_BIG, other.to_string()),
        WsError::Utf8(_) => unreadable(
            close::INVALID_PAYLOAD,
            "text frame is not valid UTF-8".to_owned(),
        ),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::ClientGone,
        WsError::Protocol(p) => unreadable(close::PROTOCOL_ERROR, format!("protocol error: {p}")),
        _ => End::ClientGone,
    }
}

async fn on_frame(
    gw: &Gateway,
    limiter: &DefaultDirectRateLimiter,
    inbox: &ConnectionInbox,
    conn: showcall_machines::ConnId,
    login: &mut Option<LoggedIn>,
    msg: Message,
) -> Step {
    let encoding = match &msg {
        Message::Text(_) => Encoding::Json,
        Message::Binary(_) => Encoding::Binary,
        // The client closes: nothing more to read (its close is answered by dropping the connection).
        Message::Close(_) => return Step::End(End::ClientGone),
        // Answered by the WebSocket layer itself; they carry no command and no request id.
        Message::Ping(_) | Message::Pong(_) => return Step::Nothing,
    };
    // Every data frame counts, before it is parsed: garbage and oversized frames too.
    if limiter.check().is_err() {
        let e = convert::error(pb::ErrorCode::RateLimited, "too many frames; slow down");
        return answer(codec::peek_request_id(&msg), Err(e), encoding);
    }
    let frame = match codec::decode(&msg, gw.config.max_frame_bytes) {
        Ok(Some((frame, _))) => frame,
        // Control frames returned above.
        Ok(None) => return Step::Nothing,
        // The frame's request id is not known: 0, and the client matches by order.
        Err((e, _)) => {
            let e = convert::error(pb::ErrorCode::MalformedFrame, e.to_string());
            return answer(0, Err(e), encoding);
        }
    };
    let request_id = frame.request_id;
    let outcome = match validate::validate(frame) {
        Ok(request) => execute(gw, inbox, conn, login, request, encoding).await,
        Err(invalid) => Err(convert::invalid(&invalid)),
    };
    answer(request_id, outcome, encoding)
}

fn answer(request_id: u64, outcome: Result<Option<Answer>, pb::Error>, encoding: Encoding) -> Step {
    Step::Write(codec::encode(
        &convert::response(request_id, outcome),
        encoding,
    ))
}

fn auth_error(e: AuthError) -> pb::Error {
    match e {
        AuthError::Expired { .. } => convert::error(pb::ErrorCode::TokenExpired, e.to_string()),
        _ => convert::error(pb::ErrorCode::TokenInvalid, e.to_string()),
    }
}

fn verify(gw: &Gateway, token: &str) -> Result<Claims, pb::Error> {
    let claims = TokenVerifier::verify(&gw.config.keys, token, gw.hub.clock().now_secs())
        .map_err(auth_error)?;
    if !claims.grants.signal {
        return Err(convert::error(
            pb::ErrorCode::PermissionDenied,
            "token lacks the signal grant",
        ));
    }
    Ok(claims)
}

async fn execute(
    gw: &Gateway,
    inbox: &ConnectionInbox,
    conn: showcall_machines::ConnId,
    login: &mut Option<LoggedIn>,
    request: Request,
    encoding: Encoding,
) -> Result<Option<Answer>, pb::Error> {
    let command_error = |e: CommandError| convert::command_error(&e);
    let Some(l) = login.as_mut() else {
        let Request::Login { token, follow_home } = request else {
            return Err(convert::error(
                pb::ErrorCode::Unauthenticated,
                "log in first",
            ));
        };
        let claims = verify(gw, &token)?;
        let app = AppId(claims.app.clone());
        let user = UserId(claims.sub.clone());
        if follow_home && let Some((node, signal_url)) = gw.hub.home_elsewhere(&app, &user) {
            showcall_protocol::metrics::login_sent_elsewhere();
            return Ok(Some(convert::login_elsewhere(node, signal_url)));
        }
        let (session, ok) = gw
            .hub
            .login(app, user, conn, claims.exp * 1000, inbox.clone())
            .await
            .map_err(command_error)?;
        let ice_servers = gw.config.turn.as_ref().map_or_else(Vec::new, |turn| {
            turn.for_login(&claims, gw.hub.clock().now_secs())
        });
        let answer = convert::login_ok(&claims.app, &claims.sub, ok, ice_servers);
        *login = Some(LoggedIn {
            session,
            claims,
            encoding,
        });
        return Ok(Some(answer));
    };
    let command = match request {
        Request::Ping => return Ok(None),
        Request::Login { .. } => {
            return Err(convert::error(
                pb::ErrorCode::NotAllowed,
                "already logged in on this connection",
            ));
        }
        Request::RenewToken { token } => {
            let claims = verify(gw, &token)?;
            if claims.app != l.claims.app || claims.sub != l.claims.sub {
                return Err(convert::error(
                    pb::ErrorCode::TokenInvalid,
                    "token names another app or user",
                ));
            }
            let token_expires_at = claims.exp * 1000;
            l.session
                .command(UserCommand::RenewToken { token_expires_at })
                .await
                .map_err(command_error)?;
            l.claims = claims;
            return Ok(None);
        }
        Request::Join {
            channel,
            role,
            offer,
        } => {
            let grants = &l.claims.grants;
            // Call channels admit their two participants by right of the call, whatever the token says.
            if !channel.is_call_channel() {
                if !grants.allows_channel(channel.as_str()) {
                    return Err(convert::error(
                        pb::ErrorCode::PermissionDenied,
                        "token does not grant this channel",
                    ));
                }
                let allowed = match role {
                    showcall_machines::Role::Broadcaster => grants.publish,
                    showcall_machines::Role::Audience => grants.subscribe,
                };
                if !allowed {
                    return Err(convert::error(
                        pb::ErrorCode::PermissionDenied,
                        "token does not grant this role",
                    ));
                }
            }
            UserCommand::JoinChannel {
                channel,
                role,
                may_publish: grants.publish,
                offer,
            }
        }
        Request::Command(c) => c,
    };
    let mut command = command;
    let span = call_span(gw, l, &mut command);
    let ok = l
        .session
        .command(command)
        .instrument(span.clone())
        .await
        .map_err(command_error)?;
    if let showcall_protocol::CommandOk::CallCreated { call_id, .. } = &ok {
        span.record("call.id", call_id.as_str());
    }
    Ok(convert::command_ok(ok))
}

/// A `call` request is the root of the call's trace (`showcall_protocol::trace`): its span continues the
/// client's `traceparent` if it sent one, and the command carries this span's context on to the actors.
/// No span for other requests.
fn call_span(gw: &Gateway, l: &LoggedIn, command: &mut UserCommand) -> tracing::Span {
    let UserCommand::Call { callee, trace, .. } = command else {
        return tracing::Span::none();
    };
    let span = tracing::debug_span!(
        target: TARGET,
        parent: None,
        "signal.call",
        otel.kind = "server",
        call.id = tracing::field::Empty,
        caller.id = %l.claims.sub,
        callee.id = %callee,
        app.id = %l.claims.app,
        node.id = %gw.hub.node(),
    );
    trace.continue_in(&span);
    *trace = TraceContext::of_span(&span);
    span
}
