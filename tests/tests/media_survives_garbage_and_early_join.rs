//! The media router under bad input and the callee that joins early:
//! - datagrams that are not WebRTC (or not for any session) change nothing: the live room keeps flowing;
//! - neither does garbage on the ICE-TCP port: a stream that is not RFC 4571 framing is closed at once,
//!   well-framed junk reaches no session, and a viewer watching over ICE-TCP goes on;
//! - a callee allowed to join the call channel while ringing (CallAPI canJoinRtcOnCalling) receives the
//!   caller's video before accepting, and the call connects the moment it accepts.

use std::collections::HashMap;

use showcall_sdk::{
    CallState, CallStateReason, CallType, ChannelRole, MediaOptions, MediaSession, MediaTransport,
    PrepareConfig,
};
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::{DEADLINE, TestNode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_do_not_disturb_a_live_room() {
    let node = TestNode::start().await;
    let host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let _live = host.join_media("host_live", ChannelRole::Broadcaster).await;
    let fan = SdkUser::login(&node, "fan").await;
    let watching = fan.join_media("host_live", ChannelRole::Audience).await;
    watching.wait_video_frames(10).await.expect("live video");

    // Random bytes, truncated STUN, a STUN header naming no session, and an RTP-looking packet — from an
    // address no session knows.
    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("udp socket");
    let media = node.handle.media_addr;
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[9u8; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"nobody:x");
    let junk: Vec<Vec<u8>> = vec![
        vec![0xde, 0xad, 0xbe, 0xef],
        vec![0u8; 1500],
        stun[..10].to_vec(),
        stun,
        [vec![0x80, 0x60, 0x00, 0x01], vec![7u8; 200]].concat(),
    ];
    for round in 0..200 {
        attacker
            .send_to(&junk[round % junk.len()], media)
            .await
            .expect("sent");
    }

    let before = watching.stats().video_frames_in;
    watching
        .wait_video_frames(before + 30)
        .await
        .expect("the live room keeps flowing");
    assert!(!watching.stats().closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_ice_tcp_port_closes_that_connection_and_disturbs_nobody() {
    let node = TestNode::start().await;
    let host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let _live = host.join_media("host_live", ChannelRole::Broadcaster).await;
    // A viewer over ICE-TCP, on the same worker the junk goes to.
    let fan = SdkUser::login(&node, "fan").await;
    let (watching, _) = MediaSession::join(
        &fan.signal,
        "host_live",
        ChannelRole::Audience,
        MediaOptions {
            udp: false,
            ..MediaOptions::default()
        },
    )
    .await
    .expect("the fan joins over tcp");
    let seen = watching.wait_video_frames(10).await.expect("live video");
    assert_eq!(seen.transport, Some(MediaTransport::Tcp));
    let tcp = node
        .handle
        .media_tcp_addr
        .expect("ice-tcp is on by default");

    // Not RFC 4571 (an HTTP request reads as a 18 245-byte length): closed at once.
    let mut http = TcpStream::connect(tcp).await.expect("connects");
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("sent");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, http.read_to_end(&mut rest))
        .await
        .expect("the node closes the connection");
    assert!(
        closed.is_err() || rest.is_empty(),
        "nothing comes back but the close"
    );

    // Well framed, but nothing a session takes: junk, truncated STUN, STUN naming no session.
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[9u8; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"nobody:x");
    let mut framed = Vec::new();
    for datagram in [
        &[0xde, 0xad, 0xbe, 0xef][..],
        &stun[..10],
        &stun,
        &[0x80; 200],
    ] {
        framed.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
        framed.extend_from_slice(datagram);
    }
    let mut junk = TcpStream::connect(tcp).await.expect("connects");
    for _ in 0..50 {
        junk.write_all(&framed).await.expect("sent");
    }

    let before = watching.stats().video_frames_in;
    watching
        .wait_video_frames(before + 30)
        .await
        .expect("the live room keeps flowing over tcp");
    assert!(!watching.stats().closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_that_joins_while_ringing_connects_at_accept() {
    let node = TestNode::start().await;
    let mut viewer = SdkUser::prepared(&node, "viewer", PrepareConfig::default()).await;
    let mut host = SdkUser::prepared(&node, "host", PrepareConfig::default()).await;
    let created = viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    // The caller joins at once (as CallAPI's caller does), the callee while it is still ringing.
    let _viewer_media = viewer
        .join_media(&created.channel, ChannelRole::Broadcaster)
        .await;
    let info = host
        .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    let host_media = host
        .join_media(&info.from_room_id, ChannelRole::Broadcaster)
        .await;
    host_media
        .wait_video_frames(15)
        .await
        .expect("the caller's video is already there while ringing");
    assert_eq!(host.api.state(), CallState::Calling, "still ringing");

    host.api.accept("viewer").await.expect("accepted");
    // Everything else was in place: the accept is what completes the connection.
    host.wait_state(CallState::Connected, CallStateReason::LocalAccepted)
        .await;
    viewer
        .wait_state(CallState::Connected, CallStateReason::RemoteAccepted)
        .await;
}
