//! An in-memory transport for unit tests of the SDK's own logic (correlation, dispatch, mirror). It plays
//! the server's part only as far as the test scripts it; end-to-end tests run against the real server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use showcall_proto::signal::client_frame::Command;
use showcall_proto::signal::server_frame::Frame;
use showcall_proto::signal::{
    CallState, CallStateChanged, CallStateReason, ClientFrame, Error, ErrorCode, Event, EventInfo,
    LoginResult, Response, ServerFrame, event, response,
};
use tokio::sync::mpsc;

use crate::transport::{SignalTransport, TransportEvent, TransportEventSender, transport_channel};
use crate::{SdkError, SignalClient};

/// Deadlock guard for waits in tests (not a speed assertion).
const GUARD: Duration = Duration::from_secs(10);

pub(crate) struct FakeTransport {
    sent: mpsc::UnboundedSender<ClientFrame>,
    events: TransportEventSender,
    closed: AtomicBool,
}

impl FakeTransport {
    fn shut(&self, reason: &str) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let _ = self.events.send(TransportEvent::Closed {
                reason: reason.to_owned(),
            });
        }
    }
}

impl SignalTransport for FakeTransport {
    fn send(&self, frame: ClientFrame) -> Result<(), SdkError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SdkError::Disconnected);
        }
        self.sent.send(frame).map_err(|_| SdkError::Disconnected)
    }
    fn close(&self) {
        self.shut("closed by client");
    }
    fn abort(&self) {
        self.shut("aborted");
    }
}

/// The test's side of a fake connection.
pub(crate) struct FakeServer {
    sent: mpsc::UnboundedReceiver<ClientFrame>,
    events: TransportEventSender,
    transport: Arc<FakeTransport>,
    seq: u64,
}

/// A fake transport and the server side that scripts it.
pub(crate) fn fake_pair() -> (
    Box<dyn SignalTransport>,
    crate::TransportEventReceiver,
    FakeServer,
) {
    let (events, rx) = transport_channel();
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let transport = Arc::new(FakeTransport {
        sent: sent_tx,
        events: events.clone(),
        closed: AtomicBool::new(false),
    });
    let server = FakeServer {
        sent: sent_rx,
        events,
        transport: transport.clone(),
        seq: 0,
    };
    (Box::new(transport), rx, server)
}

/// A client on a fake connection.
pub(crate) fn fake_client() -> (SignalClient, FakeServer) {
    let (transport, rx, server) = fake_pair();
    (SignalClient::with_transport(transport, rx), server)
}

impl FakeServer {
    /// The next frame the client sent.
    pub async fn next_frame(&mut self) -> ClientFrame {
        match tokio::time::timeout(GUARD, self.sent.recv()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("client side of the fake transport is gone"),
            Err(_) => panic!("the client sent nothing within {GUARD:?}"),
        }
    }

    /// The next command and its request id.
    pub async fn expect(&mut self) -> (u64, Command) {
        let frame = self.next_frame().await;
        (
            frame.request_id,
            frame.command.expect("frame without a command"),
        )
    }

    /// Asserts the client has sent nothing more (so far).
    pub fn assert_quiet(&mut self) {
        if let Ok(frame) = self.sent.try_recv() {
            panic!("unexpected frame from the client: {frame:?}");
        }
    }

    fn deliver(&self, frame: Frame) {
        let _ = self
            .events
            .send(TransportEvent::Frame(ServerFrame { frame: Some(frame) }));
    }

    pub fn respond(&self, request_id: u64, result: Option<response::Result>) {
        self.deliver(Frame::Response(Response {
            request_id,
            error: None,
            result,
        }));
    }

    pub fn ok(&self, request_id: u64) {
        self.respond(request_id, None);
    }

    pub fn refuse(&self, request_id: u64, code: ErrorCode, message: &str) {
        self.refuse_raw(request_id, code as i32, message);
    }

    pub fn refuse_raw(&self, request_id: u64, code: i32, message: &str) {
        self.deliver(Frame::Response(Response {
            request_id,
            error: Some(Error {
                code,
                message: message.to_owned(),
            }),
            result: None,
        }));
    }

    /// Continues `seq` where `previous` stopped, as a server does for a resumed session.
    pub fn continue_seq(&mut self, previous: &FakeServer) {
        self.seq = previous.seq;
    }

    /// Pushes an event with the next `seq`.
    pub fn push(&mut self, kind: event::Kind) {
        self.seq += 1;
        let seq = self.seq;
        self.push_event(Event {
            seq,
            server_time_ms: 1_000 + seq,
            kind: Some(kind),
        });
    }

    pub fn push_event(&self, event: Event) {
        self.deliver(Frame::Event(event));
    }

    /// The server side closes the connection.
    pub fn close(&self, reason: &str) {
        self.transport.shut(reason);
    }

    /// Answers the next frame, which must be a Login, with `result`.
    pub async fn answer_login(&mut self, result: LoginResult) {
        let (id, cmd) = self.expect().await;
        assert!(
            matches!(cmd, Command::Login(_)),
            "expected login, got {cmd:?}"
        );
        self.respond(id, Some(response::Result::Login(result)));
    }
}

/// A `CallStateChanged` event kind.
pub(crate) fn state_kind(
    call_id: &str,
    state: CallState,
    reason: CallStateReason,
    info: Option<EventInfo>,
) -> event::Kind {
    event::Kind::CallStateChanged(CallStateChanged {
        call_id: call_id.to_owned(),
        state: state as i32,
        reason: reason as i32,
        event_reason: String::new(),
        event_info: info,
    })
}

/// Event info of a call from `caller` to `callee`.
pub(crate) fn info(call_id: &str, caller: &str, callee: &str) -> EventInfo {
    EventInfo {
        call_id: call_id.to_owned(),
        from_user_id: caller.to_owned(),
        from_room_id: format!("call-{call_id}"),
        remote_user_id: callee.to_owned(),
        ..Default::default()
    }
}

/// A fresh-session login result for `user`.
pub(crate) fn login_result(user: &str) -> LoginResult {
    LoginResult {
        app_id: "app".to_owned(),
        user_id: user.to_owned(),
        resumed: false,
        token_expires_at_ms: 9_999,
        call: None,
        channels: vec![],
        grace_period_ms: 30_000,
        ice_servers: vec![],
    }
}
