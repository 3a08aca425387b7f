use showcall_proto::signal::client_frame::Command;
use showcall_proto::signal::{
    BroadcasterPaused, ChannelEvent, ChannelJoined, ChannelRole, ErrorCode, Event,
    SessionCloseReason, SessionClosed, TokenWillExpire, channel_event, event, response,
};

use crate::fake::{fake_client, login_result};
use crate::{EventRecorder, Recorded, SdkError};

fn joined(channel: &str) -> Option<response::Result> {
    Some(response::Result::ChannelJoined(ChannelJoined {
        channel: channel.to_owned(),
        role: ChannelRole::Audience as i32,
        members: vec![],
        broadcaster_paused: false,
        sdp_answer: String::new(),
    }))
}

#[tokio::test]
async fn request_ids_start_at_one_and_responses_route_by_id() {
    let (client, mut server) = fake_client();
    let a = tokio::spawn({
        let c = client.clone();
        async move { c.join_channel("room-a", ChannelRole::Audience).await }
    });
    let (id_a, cmd_a) = server.expect().await;
    let b = tokio::spawn({
        let c = client.clone();
        async move { c.join_channel("room-b", ChannelRole::Audience).await }
    });
    let (id_b, cmd_b) = server.expect().await;
    assert_eq!((id_a, id_b), (1, 2));
    assert!(matches!(cmd_a, Command::JoinChannel(ref j) if j.channel == "room-a"));
    assert!(matches!(cmd_b, Command::JoinChannel(ref j) if j.channel == "room-b"));

    // Answered out of order: each caller still gets its own answer.
    server.respond(id_b, joined("room-b"));
    server.respond(id_a, joined("room-a"));
    assert_eq!(b.await.unwrap().unwrap().channel, "room-b");
    assert_eq!(a.await.unwrap().unwrap().channel, "room-a");

    let ping = tokio::spawn({
        let c = client.clone();
        async move { c.ping().await }
    });
    let (id, cmd) = server.expect().await;
    assert_eq!(id, 3);
    assert!(matches!(cmd, Command::Ping(_)));
    server.ok(id);
    ping.await.unwrap().unwrap();
}

#[tokio::test]
async fn refused_response_maps_to_typed_error() {
    let (client, mut server) = fake_client();
    let c = client.clone();
    let renew = tokio::spawn(async move { c.renew_token("t2").await });
    let (id, cmd) = server.expect().await;
    assert!(matches!(cmd, Command::RenewToken(ref r) if r.token == "t2"));
    server.refuse(id, ErrorCode::TokenInvalid, "token names another user");
    let err = renew.await.unwrap().unwrap_err();
    assert_eq!(
        err,
        SdkError::Refused {
            code: ErrorCode::TokenInvalid,
            message: "token names another user".to_owned()
        }
    );
    assert_eq!(err.code(), Some(ErrorCode::TokenInvalid));

    // A code this SDK does not know (a newer server) still fails cleanly.
    let c = client.clone();
    let ping = tokio::spawn(async move { c.ping().await });
    let (id, _) = server.expect().await;
    server.refuse_raw(id, 999, "new reason");
    assert_eq!(
        ping.await.unwrap().unwrap_err().code(),
        Some(ErrorCode::Unspecified)
    );
}

#[tokio::test]
async fn login_returns_info_and_reports_connected() {
    let (client, mut server) = fake_client();
    let mut rec = EventRecorder::new();
    rec.attach_signal(&client);
    let c = client.clone();
    let login = tokio::spawn(async move { c.login("tok").await });
    let (id, cmd) = server.expect().await;
    assert!(matches!(cmd, Command::Login(ref l) if l.token == "tok"));
    server.respond(id, Some(response::Result::Login(login_result("alice"))));
    let info = login.await.unwrap().unwrap();
    assert_eq!(info.user_id, "alice");
    assert_eq!(info.app_id, "app");
    assert!(!info.resumed);
    assert_eq!(info.token_expires_at_ms, 9_999);
    assert_eq!(info.grace_period_ms, 30_000);
    assert_eq!(rec.next().await, Recorded::SignalConnected);
    assert_eq!(client.login_info(), Some(info));
}

#[tokio::test]
async fn success_without_the_expected_result_is_a_protocol_error() {
    let (client, mut server) = fake_client();
    let c = client.clone();
    let login = tokio::spawn(async move { c.login("tok").await });
    let (id, _) = server.expect().await;
    server.ok(id);
    assert!(matches!(login.await.unwrap(), Err(SdkError::Protocol(_))));
    assert_eq!(client.login_info(), None);
}

#[tokio::test]
async fn pending_requests_fail_when_the_transport_closes() {
    let (client, mut server) = fake_client();
    let mut rec = EventRecorder::new();
    rec.attach_signal(&client);
    let c = client.clone();
    let ping = tokio::spawn(async move { c.ping().await });
    let _ = server.expect().await;
    assert!(client.is_connected());
    server.close("network lost");
    assert_eq!(ping.await.unwrap(), Err(SdkError::Disconnected));
    assert_eq!(
        rec.next().await,
        Recorded::SignalDisconnected {
            reason: "network lost".to_owned()
        }
    );
    assert!(!client.is_connected());
    // Later commands fail at once, without reaching the transport.
    assert_eq!(client.ping().await, Err(SdkError::Disconnected));
    server.assert_quiet();
}

#[tokio::test]
async fn responses_to_unknown_ids_are_ignored() {
    let (client, mut server) = fake_client();
    server.ok(42);
    let c = client.clone();
    let ping = tokio::spawn(async move { c.ping().await });
    let (id, _) = server.expect().await;
    server.ok(id);
    ping.await.unwrap().unwrap();
}

#[tokio::test]
async fn events_reach_subscribers_in_order_without_duplicates() {
    let (client, server) = fake_client();
    let mut events = client.subscribe_events();
    let ev = |seq: u64| Event {
        seq,
        server_time_ms: seq,
        kind: Some(event::Kind::TokenWillExpire(TokenWillExpire {
            expires_at_ms: seq,
        })),
    };
    for seq in [1, 2, 2, 1, 3] {
        server.push_event(ev(seq));
    }
    for seq in [1, 2, 3] {
        assert_eq!(events.recv().await.unwrap().seq, seq);
    }
    // A ping round trip proves the duplicates were processed (and dropped), not just late.
    let c = client.clone();
    let mut server = server;
    let ping = tokio::spawn(async move { c.ping().await });
    let (id, _) = server.expect().await;
    server.ok(id);
    ping.await.unwrap().unwrap();
    assert!(events.try_recv().is_err());
}

#[tokio::test]
async fn session_events_reach_signal_listeners() {
    let (client, mut server) = fake_client();
    let mut rec = EventRecorder::new();
    rec.attach_signal(&client);
    let c = client.clone();
    let login = tokio::spawn(async move { c.login("tok").await });
    server.answer_login(login_result("host")).await;
    login.await.unwrap().unwrap();
    assert_eq!(rec.next().await, Recorded::SignalConnected);

    let paused = ChannelEvent {
        channel: "live".to_owned(),
        kind: Some(channel_event::Kind::BroadcasterPaused(BroadcasterPaused {
            user_id: "host".to_owned(),
            reason: "private_call".to_owned(),
        })),
    };
    server.push(event::Kind::ChannelEvent(paused.clone()));
    server.push(event::Kind::TokenWillExpire(TokenWillExpire {
        expires_at_ms: 77,
    }));
    server.push(event::Kind::SessionClosed(SessionClosed {
        reason: SessionCloseReason::Replaced as i32,
        message: "logged in elsewhere".to_owned(),
    }));
    server.close("closed by server");
    assert_eq!(rec.next().await, Recorded::Channel(paused));
    assert_eq!(
        rec.next().await,
        Recorded::TokenWillExpire { expires_at_ms: 77 }
    );
    assert_eq!(
        rec.next().await,
        Recorded::SessionClosed {
            reason: SessionCloseReason::Replaced,
            message: "logged in elsewhere".to_owned()
        }
    );
    assert!(matches!(
        rec.next().await,
        Recorded::SignalDisconnected { .. }
    ));
    assert_eq!(client.login_info(), None);
}

#[tokio::test]
async fn close_and_abort_reach_the_transport() {
    let (client, _server) = fake_client();
    let mut rec = EventRecorder::new();
    rec.attach_signal(&client);
    client.abort();
    assert_eq!(
        rec.next().await,
        Recorded::SignalDisconnected {
            reason: "aborted".to_owned()
        }
    );
    assert_eq!(client.ping().await, Err(SdkError::Disconnected));
}

#[tokio::test]
async fn replaced_transport_serves_new_requests() {
    let (client, mut old) = fake_client();
    let mut rec = EventRecorder::new();
    rec.attach_signal(&client);
    old.close("network lost");
    assert!(matches!(
        rec.next().await,
        Recorded::SignalDisconnected { .. }
    ));

    let (transport, rx, mut server) = crate::fake::fake_pair();
    client.replace_transport(transport, rx);
    let c = client.clone();
    let login = tokio::spawn(async move { c.login("tok").await });
    let mut resumed = login_result("alice");
    resumed.resumed = true;
    server.answer_login(resumed).await;
    assert!(login.await.unwrap().unwrap().resumed);
    assert_eq!(rec.next().await, Recorded::SignalConnected);
    old.assert_quiet();
}

#[tokio::test]
async fn removed_listeners_hear_nothing_more() {
    let (client, server) = fake_client();
    let mut kept = EventRecorder::new();
    let removed = EventRecorder::new();
    kept.attach_signal(&client);
    removed.attach_signal(&client);
    let listener: std::sync::Arc<dyn crate::SignalListener> = removed.listener();
    assert!(client.remove_listener(&listener));
    assert!(!client.remove_listener(&listener));
    server.push_event(Event {
        seq: 1,
        server_time_ms: 1,
        kind: Some(event::Kind::TokenWillExpire(TokenWillExpire {
            expires_at_ms: 5,
        })),
    });
    assert_eq!(
        kept.next().await,
        Recorded::TokenWillExpire { expires_at_ms: 5 }
    );
    let mut removed = removed;
    assert!(removed.drain_ready().is_empty());
}
