//! One WebSocket connection: decode → rate-limit → validate → authorise → hand to the user actor → answer;
//! and, in the same task, forward the session's events. One task per connection keeps an idle session
//! small.

use std::num::NonZeroU32;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use showcall_actors::messages::TraceContext;
use showcall_actors::trace::TARGET;
use showcall_actors::{AppId, CommandError, Outbound, Session, UserCommand};
use showcall_auth::{AuthError, Claims, TokenVerifier};
use showcall_machines::UserId;
use showcall_proto::signal::{self as pb, response::Result as Answer};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::Gateway;
use crate::codec::{self, Encoding};
use crate::convert;
use crate::validate::{self, Request};

/// WebSocket close code for "the server is restarting; reconnect" (RFC 6455 registry: 1012).
const CLOSE_SERVICE_RESTART: u16 = 1012;
/// WebSocket close code for a normal close.
const CLOSE_NORMAL: u16 = 1000;

/// A logged-in connection's identity.
struct LoggedIn {
    session: Session,
    claims: Claims,
    /// Pushed events use the encoding of the login frame.
    encoding: Encoding,
}

/// What to do after a frame.
enum Flow {
    Continue,
    Stop,
}

pub(crate) async fn serve(mut socket: WebSocket, gw: Gateway) {
    let _counted = showcall_actors::metrics::SignalingConnection::open();
    let quota = Quota::per_second(
        NonZeroU32::new(gw.config.rate_per_second.max(1)).expect("max(1) is non-zero"),
    )
    .allow_burst(NonZeroU32::new(gw.config.rate_burst.max(1)).expect("max(1) is non-zero"));
    let limiter = RateLimiter::direct(quota);
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    let conn = gw.hub.next_conn();
    let mut shutdown = gw.shutdown.clone();
    let mut login: Option<LoggedIn> = None;
    // True once the server closed the session itself (logout, replaced, token expiry): no grace period.
    let mut ended_by_server = false;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { break };
                // Boxed: the connection task is sized for its largest state and lives as long as the
                // connection; frame handling is brief, so it gets its own allocation.
                let flow = Box::pin(on_frame(&mut socket, &gw, &limiter, &tx, conn, &mut login, msg)).await;
                if matches!(flow, Flow::Stop) {
                    break;
                }
            }
            outgoing = rx.recv(), if login.is_some() => {
                let Some(out) = outgoing else { break };
                let l = login.as_ref().expect("branch enabled only when logged in");
                match out {
                    Outbound::Event(pushed) => {
                        let mut frame = convert::event(*pushed);
                        convert::set_current_user(&mut frame, l.session.user().as_str());
                        if socket.send(codec::encode(&frame, l.encoding)).await.is_err() {
                            break;
                        }
                    }
                    Outbound::Close(reason) => {
                        ended_by_server = true;
                        let text = convert::close_reason(reason).as_str_name();
                        let _ = socket.send(close(CLOSE_NORMAL, text)).await;
                        break;
                    }
                }
            }
            _ = shutdown.changed() => {
                let _ = socket.send(close(CLOSE_SERVICE_RESTART, "server shutting down; reconnect to resume")).await;
                break;
            }
        }
    }
    if let Some(l) = login
        && !ended_by_server
    {
        l.session.connection_lost();
    }
    // When the user's actor lives on another node, stop relaying its events to this connection.
    gw.hub.forget_remote_inbox(&tx);
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

async fn on_frame(
    socket: &mut WebSocket,
    gw: &Gateway,
    limiter: &DefaultDirectRateLimiter,
    tx: &mpsc::UnboundedSender<Outbound>,
    conn: showcall_machines::ConnId,
    login: &mut Option<LoggedIn>,
    msg: Message,
) -> Flow {
    if let Message::Close(_) = msg {
        return Flow::Stop;
    }
    let (frame, encoding) = match codec::decode(&msg, gw.config.max_frame_bytes) {
        Ok(Some(decoded)) => decoded,
        Ok(None) => return Flow::Continue,
        Err((e, encoding)) => {
            let answer = convert::response(
                0,
                Err(convert::error(pb::ErrorCode::MalformedFrame, e.to_string())),
            );
            return send(socket, &answer, encoding).await;
        }
    };
    let request_id = frame.request_id;
    if limiter.check().is_err() {
        let e = convert::error(pb::ErrorCode::RateLimited, "too many frames; slow down");
        return send(socket, &convert::response(request_id, Err(e)), encoding).await;
    }
    let outcome = match validate::validate(frame) {
        Ok(request) => execute(gw, tx, conn, login, request, encoding).await,
        Err(invalid) => Err(convert::invalid(&invalid)),
    };
    send(socket, &convert::response(request_id, outcome), encoding).await
}

async fn send(socket: &mut WebSocket, frame: &pb::ServerFrame, encoding: Encoding) -> Flow {
    match socket.send(codec::encode(frame, encoding)).await {
        Ok(()) => Flow::Continue,
        Err(_) => Flow::Stop,
    }
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
    tx: &mpsc::UnboundedSender<Outbound>,
    conn: showcall_machines::ConnId,
    login: &mut Option<LoggedIn>,
    request: Request,
    encoding: Encoding,
) -> Result<Option<Answer>, pb::Error> {
    let command_error = |e: CommandError| convert::command_error(&e);
    if let Request::Ping = request {
        return Ok(None);
    }
    let Some(l) = login.as_mut() else {
        let Request::Login { token } = request else {
            return Err(convert::error(
                pb::ErrorCode::Unauthenticated,
                "log in first",
            ));
        };
        let claims = verify(gw, &token)?;
        let app = AppId(claims.app.clone());
        let user = UserId(claims.sub.clone());
        let (session, ok) = gw
            .hub
            .login(app, user, conn, claims.exp * 1000, tx.clone())
            .await
            .map_err(command_error)?;
        let answer = convert::login_ok(&claims.app, &claims.sub, ok);
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
    if let showcall_actors::CommandOk::CallCreated { call_id, .. } = &ok {
        span.record("call.id", call_id.as_str());
    }
    Ok(convert::command_ok(ok))
}

/// A `call` request is the root of the call's trace (`showcall_actors::trace`): its span continues the
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
