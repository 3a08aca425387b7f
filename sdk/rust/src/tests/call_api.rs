use std::collections::HashMap;
use std::sync::Arc;

use showcall_proto::signal::client_frame::Command;
use showcall_proto::signal::{
    CallConnected, CallCreated, CallDisconnected, CallError, CallEventChanged, CallSnapshot,
    ChannelJoined, TokenWillExpire, event, response,
};

use crate::fake::{FakeServer, fake_client, fake_pair, info, login_result, state_kind};
use crate::{
    CallApi, CallConfig, CallErrorEvent, CallErrorType, CallEvent, CallState, CallStateReason,
    CallType, ChannelRole, DEINITIALIZE_REASON, ErrorCode, EventRecorder, PrepareConfig, Recorded,
    SdkError, SignalClient,
};

struct Harness {
    api: CallApi,
    signal: Arc<SignalClient>,
    server: FakeServer,
    rec: EventRecorder,
}

/// A logged-in user with an initialized CallApi and a recorder on it.
async fn harness(user: &str) -> Harness {
    let (client, mut server) = fake_client();
    let signal = Arc::new(client);
    let s = signal.clone();
    let login = tokio::spawn(async move { s.login("tok").await });
    server.answer_login(login_result(user)).await;
    login.await.unwrap().unwrap();
    let api = CallApi::new();
    let rec = EventRecorder::new();
    rec.attach_call_api(&api);
    api.initialize(CallConfig {
        app_id: "app".to_owned(),
        user_id: user.to_owned(),
        signal: signal.clone(),
    });
    Harness {
        api,
        signal,
        server,
        rec,
    }
}

impl Harness {
    /// The server moves the user's state; waits until it was reported.
    async fn state(
        &mut self,
        call_id: &str,
        state: CallState,
        reason: CallStateReason,
        caller: &str,
        callee: &str,
    ) {
        let info = (!call_id.is_empty()).then(|| info(call_id, caller, callee));
        self.server.push(state_kind(call_id, state, reason, info));
        self.rec.wait_for_state(state, reason).await;
    }

    /// A round trip through the signal client: everything pushed before it has been dispatched.
    async fn sync(&mut self) {
        let s = self.signal.clone();
        let ping = tokio::spawn(async move { s.ping().await });
        let (id, cmd) = self.server.expect().await;
        assert!(
            matches!(cmd, Command::Ping(_)),
            "expected ping, got {cmd:?}"
        );
        self.server.ok(id);
        ping.await.unwrap().unwrap();
    }
}

fn states(seen: &[Recorded]) -> Vec<(CallState, CallStateReason)> {
    seen.iter()
        .filter_map(|r| match r {
            Recorded::State { state, reason, .. } => Some((*state, *reason)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn commands_need_initialize() {
    let api = CallApi::new();
    assert_eq!(api.state(), CallState::Idle);
    assert_eq!(api.get_call_id(), None);
    assert!(!api.is_initialized());
    assert_eq!(
        api.call("bob", CallType::Video, HashMap::new()).await,
        Err(SdkError::NotInitialized)
    );
    assert_eq!(
        api.prepare_for_call(PrepareConfig::default()).await,
        Err(SdkError::NotInitialized)
    );
    assert_eq!(api.accept("bob").await, Err(SdkError::NotInitialized));
    // Deinitializing an uninitialized instance is a no-op.
    assert_eq!(api.deinitialize().await, Ok(()));
}

#[tokio::test]
async fn state_mirror_follows_server_events() {
    let mut h = harness("alice").await;
    assert_eq!(h.api.state(), CallState::Idle);

    // prepare_for_call carries the config as is; its success response moves idle to prepared.
    let api = h.api.clone();
    let prepare = tokio::spawn(async move {
        api.prepare_for_call(PrepareConfig {
            room_id: "r1".to_owned(),
            call_timeout_ms: Some(0),
            user_extension: HashMap::from([("level".to_owned(), "7".to_owned())]),
            first_frame_waiting_disabled: true,
        })
        .await
    });
    let (id, cmd) = h.server.expect().await;
    let Command::PrepareForCall(p) = cmd else {
        panic!("expected prepare, got {cmd:?}")
    };
    assert_eq!(p.room_id, "r1");
    assert_eq!(p.call_timeout_ms, Some(0));
    assert_eq!(p.user_extension.get("level").map(String::as_str), Some("7"));
    assert!(p.first_frame_waiting_disabled);
    h.server.ok(id);
    prepare.await.unwrap().unwrap();
    assert_eq!(h.api.state(), CallState::Prepared);
    assert!(
        h.rec
            .next()
            .await
            .is_state(CallState::Prepared, CallStateReason::None)
    );
    // A server that also pushes "prepared" does not make apps see it twice.
    h.server.push(state_kind(
        "",
        CallState::Prepared,
        CallStateReason::None,
        None,
    ));

    // call() returns once the server's calling state was reported.
    let api = h.api.clone();
    let ext = HashMap::from([("gift".to_owned(), "rose".to_owned())]);
    let call = tokio::spawn(async move { api.call("bob", CallType::Audio, ext).await });
    let (id, cmd) = h.server.expect().await;
    let Command::Call(c) = cmd else {
        panic!("expected call, got {cmd:?}")
    };
    assert_eq!(c.remote_user_id, "bob");
    assert_eq!(c.call_type, CallType::Audio as i32);
    assert_eq!(
        c.call_extension.get("gift").map(String::as_str),
        Some("rose")
    );
    assert_eq!(
        h.api.state(),
        CallState::Prepared,
        "no state before the server says so"
    );
    h.server.respond(
        id,
        Some(response::Result::CallCreated(CallCreated {
            call_id: "c1".to_owned(),
            channel: "call-c1".to_owned(),
        })),
    );
    h.server.push(state_kind(
        "c1",
        CallState::Calling,
        CallStateReason::LocalAudioCall,
        Some(info("c1", "alice", "bob")),
    ));
    let created = call.await.unwrap().unwrap();
    assert_eq!(created.call_id, "c1");
    assert_eq!(h.api.state(), CallState::Calling);
    assert_eq!(h.api.get_call_id().as_deref(), Some("c1"));
    assert_eq!(h.api.event_info().unwrap().from_room_id, "call-c1");

    h.state(
        "c1",
        CallState::Connecting,
        CallStateReason::RemoteAccepted,
        "alice",
        "bob",
    )
    .await;
    assert_eq!(h.api.state(), CallState::Connecting);
    h.state(
        "c1",
        CallState::Connected,
        CallStateReason::BothJoined,
        "alice",
        "bob",
    )
    .await;
    assert_eq!(h.api.state(), CallState::Connected);
    h.state(
        "c1",
        CallState::Prepared,
        CallStateReason::RemoteHangup,
        "alice",
        "bob",
    )
    .await;
    assert_eq!(h.api.state(), CallState::Prepared);
    assert_eq!(h.api.get_call_id(), None);
    assert_eq!(
        h.api.event_info().unwrap().call_id,
        "c1",
        "the last call's info stays readable"
    );

    assert_eq!(
        states(h.rec.seen()),
        vec![
            (CallState::Prepared, CallStateReason::None),
            (CallState::Calling, CallStateReason::LocalAudioCall),
            (CallState::Connecting, CallStateReason::RemoteAccepted),
            (CallState::Connected, CallStateReason::BothJoined),
            (CallState::Prepared, CallStateReason::RemoteHangup),
        ]
    );
}

#[tokio::test]
async fn call_returns_when_the_state_event_came_before_the_response() {
    let mut h = harness("alice").await;
    let api = h.api.clone();
    let call = tokio::spawn(async move { api.call("bob", CallType::Video, HashMap::new()).await });
    let (id, _) = h.server.expect().await;
    h.server.push(state_kind(
        "c1",
        CallState::Calling,
        CallStateReason::LocalVideoCall,
        Some(info("c1", "alice", "bob")),
    ));
    h.rec
        .wait_for_state(CallState::Calling, CallStateReason::LocalVideoCall)
        .await;
    h.server.respond(
        id,
        Some(response::Result::CallCreated(CallCreated {
            call_id: "c1".to_owned(),
            channel: "call-c1".to_owned(),
        })),
    );
    call.await.unwrap().unwrap();
    // The mirrored call id is what cancel_call uses.
    let api = h.api.clone();
    let cancel = tokio::spawn(async move { api.cancel_call().await });
    let (id, cmd) = h.server.expect().await;
    assert!(matches!(cmd, Command::CancelCall(ref c) if c.call_id == "c1"));
    h.server.ok(id);
    cancel.await.unwrap().unwrap();
}

#[tokio::test]
async fn callee_commands_use_the_mirrored_call_id() {
    let mut h = harness("bob").await;
    assert_eq!(h.api.cancel_call().await, Err(SdkError::NoCall));
    h.state(
        "c1",
        CallState::Calling,
        CallStateReason::RemoteVideoCall,
        "alice",
        "bob",
    )
    .await;
    assert_eq!(h.api.get_call_id().as_deref(), Some("c1"));

    // Not the caller: refused locally, nothing sent.
    assert_eq!(h.api.accept("mallory").await, Err(SdkError::NoCall));
    h.server.assert_quiet();

    let api = h.api.clone();
    let accept = tokio::spawn(async move { api.accept("alice").await });
    let (id, cmd) = h.server.expect().await;
    assert!(matches!(cmd, Command::Accept(ref a) if a.call_id == "c1"));
    h.server.ok(id);
    accept.await.unwrap().unwrap();

    // A stale call id goes to the server, which refuses it.
    let api = h.api.clone();
    let stale = tokio::spawn(async move { api.hangup_with_call_id("c0", "late").await });
    let (id, cmd) = h.server.expect().await;
    assert!(matches!(cmd, Command::Hangup(ref x) if x.call_id == "c0" && x.reason == "late"));
    h.server.refuse(id, ErrorCode::NoSuchCall, "no such call");
    assert_eq!(
        stale.await.unwrap(),
        Err(SdkError::Refused {
            code: ErrorCode::NoSuchCall,
            message: "no such call".to_owned()
        })
    );

    h.state(
        "c1",
        CallState::Connecting,
        CallStateReason::LocalAccepted,
        "alice",
        "bob",
    )
    .await;
    let api = h.api.clone();
    let join = tokio::spawn(async move { api.join_call_channel().await });
    let (id, cmd) = h.server.expect().await;
    let Command::JoinChannel(j) = cmd else {
        panic!("expected join, got {cmd:?}")
    };
    assert_eq!(j.channel, "call-c1");
    assert_eq!(j.role, ChannelRole::Broadcaster as i32);
    h.server.respond(
        id,
        Some(response::Result::ChannelJoined(ChannelJoined {
            channel: "call-c1".to_owned(),
            role: ChannelRole::Broadcaster as i32,
            members: vec![],
            broadcaster_paused: false,
            sdp_answer: String::new(),
        })),
    );
    assert_eq!(join.await.unwrap().unwrap().channel, "call-c1");

    let api = h.api.clone();
    let hangup = tokio::spawn(async move { api.hangup("alice", "bye").await });
    let (id, cmd) = h.server.expect().await;
    assert!(matches!(cmd, Command::Hangup(ref x) if x.call_id == "c1" && x.reason == "bye"));
    h.server.ok(id);
    hangup.await.unwrap().unwrap();
    // The SDK did not move the state on its own.
    assert_eq!(h.api.state(), CallState::Connecting);
}

#[tokio::test]
async fn listeners_hear_every_call_event_in_server_order() {
    let mut h = harness("alice").await;
    let mut second = EventRecorder::new();
    second.attach_call_api(&h.api);
    h.server.push(state_kind(
        "c1",
        CallState::Calling,
        CallStateReason::LocalVideoCall,
        Some(info("c1", "alice", "bob")),
    ));
    h.server
        .push(event::Kind::CallEventChanged(CallEventChanged {
            call_id: "c1".to_owned(),
            event: CallEvent::RemoteUserRecvCall as i32,
            event_reason: String::new(),
            event_info: None,
        }));
    h.server.push(event::Kind::CallConnected(CallConnected {
        call_id: "c1".to_owned(),
        room_id: "call-c1".to_owned(),
        call_user_id: "alice".to_owned(),
        current_user_id: "alice".to_owned(),
        timestamp_ms: 10,
    }));
    h.server.push(event::Kind::CallError(CallError {
        call_id: "c1".to_owned(),
        error_event: CallErrorEvent::RtcOccurError as i32,
        error_type: CallErrorType::Rtc as i32,
        error_code: 123,
        message: "kicked".to_owned(),
    }));
    h.server
        .push(event::Kind::CallDisconnected(CallDisconnected {
            call_id: "c1".to_owned(),
            room_id: "call-c1".to_owned(),
            hangup_user_id: "bob".to_owned(),
            current_user_id: "alice".to_owned(),
            timestamp_ms: 20,
            duration_ms: 10,
        }));
    h.server.push(event::Kind::TokenWillExpire(TokenWillExpire {
        expires_at_ms: 1,
    }));

    let expected = vec![
        Recorded::State {
            state: CallState::Calling,
            reason: CallStateReason::LocalVideoCall,
            event_reason: String::new(),
            info: info("c1", "alice", "bob"),
        },
        Recorded::Event {
            event: CallEvent::RemoteUserRecvCall,
            event_reason: String::new(),
        },
        Recorded::Connected {
            room_id: "call-c1".to_owned(),
            call_user_id: "alice".to_owned(),
            current_user_id: "alice".to_owned(),
            timestamp_ms: 10,
        },
        Recorded::Error {
            event: CallErrorEvent::RtcOccurError,
            error_type: CallErrorType::Rtc,
            code: 123,
            message: "kicked".to_owned(),
        },
        Recorded::Disconnected {
            room_id: "call-c1".to_owned(),
            hangup_user_id: "bob".to_owned(),
            current_user_id: "alice".to_owned(),
            timestamp_ms: 20,
            duration_ms: 10,
        },
        Recorded::CallTokenWillExpire,
    ];
    for want in &expected {
        assert_eq!(&h.rec.next().await, want);
    }
    for want in &expected {
        assert_eq!(&second.next().await, want);
    }

    // A removed listener hears nothing more; the others still do.
    let l: Arc<dyn crate::CallApiListener> = second.listener();
    assert!(h.api.remove_listener(&l));
    h.state(
        "c1",
        CallState::Prepared,
        CallStateReason::RemoteHangup,
        "alice",
        "bob",
    )
    .await;
    h.sync().await;
    assert!(second.drain_ready().is_empty());
}

/// Deinitialize from `state` sends `expected` (a command matcher) and then reports prepared, idle and
/// the Deinitialize event.
/// The server's side of the last step of `deinitialize`: the user stops taking calls.
async fn answer_deinitialize(h: &mut Harness) {
    let (id, cmd) = h.server.expect().await;
    assert!(
        matches!(cmd, Command::Deinitialize(_)),
        "unexpected command {cmd:?}"
    );
    h.server.ok(id);
}

async fn deinitialize_from(
    user: &str,
    state: CallState,
    reason: CallStateReason,
    expected: fn(&Command) -> bool,
    ended_reason: CallStateReason,
) {
    let mut h = harness(user).await;
    h.state("c1", state, reason, "alice", "bob").await;
    let api = h.api.clone();
    let deinit = tokio::spawn(async move { api.deinitialize().await });
    let (id, cmd) = h.server.expect().await;
    assert!(expected(&cmd), "unexpected command {cmd:?}");
    h.server.ok(id);
    h.server.push(state_kind(
        "c1",
        CallState::Prepared,
        ended_reason,
        Some(info("c1", "alice", "bob")),
    ));
    answer_deinitialize(&mut h).await;
    deinit.await.unwrap().unwrap();

    assert_eq!(h.api.state(), CallState::Idle);
    assert_eq!(h.api.get_call_id(), None);
    assert!(!h.api.is_initialized());
    let tail: Vec<Recorded> = h.rec.drain_ready();
    assert_eq!(
        states(&tail),
        vec![
            (CallState::Prepared, ended_reason),
            (CallState::Idle, CallStateReason::None)
        ]
    );
    assert!(
        tail.last().unwrap().is_event(CallEvent::Deinitialize),
        "{tail:?}"
    );

    // Nothing is reported after deinitialize.
    h.server.push(state_kind(
        "c2",
        CallState::Calling,
        CallStateReason::RemoteVideoCall,
        None,
    ));
    h.sync().await;
    assert!(h.rec.drain_ready().is_empty());
    assert_eq!(h.api.state(), CallState::Idle);
}

#[tokio::test]
async fn deinitialize_cancels_an_outgoing_ringing_call() {
    deinitialize_from(
        "alice",
        CallState::Calling,
        CallStateReason::LocalVideoCall,
        |c| matches!(c, Command::CancelCall(x) if x.call_id == "c1"),
        CallStateReason::LocalCancelled,
    )
    .await;
}

#[tokio::test]
async fn deinitialize_rejects_an_incoming_ringing_call() {
    deinitialize_from(
        "bob",
        CallState::Calling,
        CallStateReason::RemoteVideoCall,
        |c| matches!(c, Command::Reject(x) if x.call_id == "c1" && x.reason == DEINITIALIZE_REASON),
        CallStateReason::LocalRejected,
    )
    .await;
}

#[tokio::test]
async fn deinitialize_hangs_up_a_connected_call() {
    deinitialize_from(
        "bob",
        CallState::Connected,
        CallStateReason::BothJoined,
        |c| matches!(c, Command::Hangup(x) if x.call_id == "c1" && x.reason == DEINITIALIZE_REASON),
        CallStateReason::LocalHangup,
    )
    .await;
}

#[tokio::test]
async fn deinitialize_hangs_up_a_connecting_call() {
    deinitialize_from(
        "alice",
        CallState::Connecting,
        CallStateReason::RemoteAccepted,
        |c| matches!(c, Command::Hangup(x) if x.call_id == "c1"),
        CallStateReason::LocalHangup,
    )
    .await;
}

#[tokio::test]
async fn deinitialize_without_a_call_only_stops_taking_calls() {
    let mut h = harness("alice").await;
    h.state("", CallState::Prepared, CallStateReason::None, "", "")
        .await;
    let api = h.api.clone();
    let deinit = tokio::spawn(async move { api.deinitialize().await });
    answer_deinitialize(&mut h).await;
    deinit.await.unwrap().unwrap();
    h.server.assert_quiet();
    assert_eq!(
        h.rec.drain_ready(),
        vec![
            Recorded::State {
                state: CallState::Idle,
                reason: CallStateReason::None,
                event_reason: String::new(),
                info: Default::default(),
            },
            Recorded::Event {
                event: CallEvent::Deinitialize,
                event_reason: String::new(),
            },
        ]
    );
}

#[tokio::test]
async fn deinitialize_switches_to_hangup_when_the_call_moved_on() {
    let mut h = harness("bob").await;
    h.state(
        "c1",
        CallState::Calling,
        CallStateReason::RemoteVideoCall,
        "alice",
        "bob",
    )
    .await;
    let api = h.api.clone();
    let deinit = tokio::spawn(async move { api.deinitialize().await });
    let (id, cmd) = h.server.expect().await;
    assert!(matches!(cmd, Command::Reject(_)));
    // Accepted on another path meanwhile: reject is no longer allowed, the state moved to connecting.
    h.server
        .refuse(id, ErrorCode::NotAllowed, "call already accepted");
    h.server.push(state_kind(
        "c1",
        CallState::Connecting,
        CallStateReason::LocalAccepted,
        Some(info("c1", "alice", "bob")),
    ));
    let (id, cmd) = h.server.expect().await;
    assert!(matches!(cmd, Command::Hangup(ref x) if x.call_id == "c1"));
    h.server.ok(id);
    h.server.push(state_kind(
        "c1",
        CallState::Prepared,
        CallStateReason::LocalHangup,
        None,
    ));
    answer_deinitialize(&mut h).await;
    deinit.await.unwrap().unwrap();
    assert_eq!(h.api.state(), CallState::Idle);
}

#[tokio::test]
async fn deinitialize_counts_an_already_ended_call_as_success() {
    let mut h = harness("alice").await;
    h.state(
        "c1",
        CallState::Connected,
        CallStateReason::BothJoined,
        "alice",
        "bob",
    )
    .await;
    let api = h.api.clone();
    let deinit = tokio::spawn(async move { api.deinitialize().await });
    let (id, _) = h.server.expect().await;
    h.server.push(state_kind(
        "c1",
        CallState::Prepared,
        CallStateReason::RemoteHangup,
        None,
    ));
    h.server.refuse(id, ErrorCode::NoSuchCall, "no such call");
    answer_deinitialize(&mut h).await;
    deinit.await.unwrap().unwrap();
    assert_eq!(
        states(&h.rec.drain_ready()),
        vec![
            (CallState::Prepared, CallStateReason::RemoteHangup),
            (CallState::Idle, CallStateReason::None)
        ]
    );
}

#[tokio::test]
async fn deinitialize_reports_a_lost_connection_but_still_tears_down() {
    let mut h = harness("alice").await;
    h.state(
        "c1",
        CallState::Connected,
        CallStateReason::BothJoined,
        "alice",
        "bob",
    )
    .await;
    let api = h.api.clone();
    let deinit = tokio::spawn(async move { api.deinitialize().await });
    let _ = h.server.expect().await;
    h.server.close("network lost");
    assert_eq!(deinit.await.unwrap(), Err(SdkError::Disconnected));
    assert_eq!(h.api.state(), CallState::Idle);
    assert!(
        h.rec
            .drain_ready()
            .last()
            .unwrap()
            .is_event(CallEvent::Deinitialize)
    );
}

#[tokio::test]
async fn initialize_starts_from_the_login_snapshot() {
    let (client, mut server) = fake_client();
    let signal = Arc::new(client);
    let s = signal.clone();
    let login = tokio::spawn(async move { s.login("tok").await });
    let mut resumed = login_result("bob");
    resumed.resumed = true;
    resumed.call = Some(CallSnapshot {
        call_id: "c9".to_owned(),
        state: CallState::Connected as i32,
        event_info: Some(info("c9", "alice", "bob")),
    });
    server.answer_login(resumed).await;
    login.await.unwrap().unwrap();

    let api = CallApi::new();
    let mut rec = EventRecorder::new();
    rec.attach_call_api(&api);
    api.initialize(CallConfig {
        app_id: "app".to_owned(),
        user_id: "bob".to_owned(),
        signal,
    });
    assert_eq!(api.state(), CallState::Connected);
    assert_eq!(api.get_call_id().as_deref(), Some("c9"));
    assert!(rec.drain_ready().is_empty(), "seeding is silent");
}

#[tokio::test]
async fn a_resume_reconciles_the_mirror_with_the_server() {
    let mut h = harness("alice").await;
    h.state(
        "c1",
        CallState::Connected,
        CallStateReason::BothJoined,
        "alice",
        "bob",
    )
    .await;
    h.server.close("network lost");

    // Resumed, and the call ended while away: prepared.
    let (transport, rx, mut server) = fake_pair();
    server.continue_seq(&h.server);
    h.signal.replace_transport(transport, rx);
    let s = h.signal.clone();
    let login = tokio::spawn(async move { s.login("tok").await });
    let mut resumed = login_result("alice");
    resumed.resumed = true;
    server.answer_login(resumed).await;
    login.await.unwrap().unwrap();
    let r = h
        .rec
        .wait_for(|r| matches!(r, Recorded::State { .. }))
        .await;
    assert!(
        matches!(r, Recorded::State { state: CallState::Prepared, reason: CallStateReason::None, ref event_reason, .. } if event_reason == "session resumed"),
        "{r:?}"
    );
    assert_eq!(h.api.get_call_id(), None);

    // Events keep flowing to the same CallApi over the new connection.
    server.push(state_kind(
        "c2",
        CallState::Calling,
        CallStateReason::RemoteVideoCall,
        Some(info("c2", "carol", "alice")),
    ));
    h.rec
        .wait_for_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    assert_eq!(h.api.get_call_id().as_deref(), Some("c2"));

    // A fresh session (the old one expired): the server forgot the user, idle.
    server.close("network lost");
    let (transport, rx, mut server) = fake_pair();
    h.signal.replace_transport(transport, rx);
    let s = h.signal.clone();
    let login = tokio::spawn(async move { s.login("tok").await });
    server.answer_login(login_result("alice")).await;
    login.await.unwrap().unwrap();
    let r = h
        .rec
        .wait_for(|r| matches!(r, Recorded::State { .. }))
        .await;
    assert!(
        matches!(r, Recorded::State { state: CallState::Idle, ref event_reason, .. } if event_reason == "new session"),
        "{r:?}"
    );
    // Its events count from 1 again.
    server.push(state_kind(
        "",
        CallState::Prepared,
        CallStateReason::None,
        None,
    ));
    h.rec
        .wait_for_state(CallState::Prepared, CallStateReason::None)
        .await;
}

#[tokio::test]
async fn a_refused_prepare_changes_nothing() {
    let mut h = harness("alice").await;
    let api = h.api.clone();
    let prepare = tokio::spawn(async move { api.prepare_for_call(PrepareConfig::default()).await });
    let (id, _) = h.server.expect().await;
    h.server.refuse(
        id,
        ErrorCode::InvalidArgument,
        "user_extension: too many entries",
    );
    assert_eq!(
        prepare.await.unwrap().unwrap_err().code(),
        Some(ErrorCode::InvalidArgument)
    );
    h.sync().await;
    assert_eq!(h.api.state(), CallState::Idle);
    assert!(h.rec.drain_ready().is_empty());
}
