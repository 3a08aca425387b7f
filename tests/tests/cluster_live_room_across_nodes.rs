//! One live room across nodes (issue 15), with real etcd, two real node processes and Rust SDK media
//! clients on real UDP: the host publishes on the room's origin (the node its channel is pinned to); a
//! viewer connected to the other node gets its media session on that node (the default edge rule,
//! `client_node`), whose router subscribes to the origin and fans the host out; the viewer decodes the
//! host's video and audio. The host goes into a 1v1 call: the viewer is told the broadcaster paused,
//! and after the hangup that it resumed, and frames flow again.
//! - An edge that dies (SIGKILL) is a node loss the origin's room sees: a viewer whose media session was
//!   there leaves the room (the other members are told), though its session's user actor lives on.

use showcall_sdk::{ChannelRole, channel_event};
use showcall_tests::cluster::{
    Etcd, NodeOptions, NodeProcess, eventually, media_sessions, origin_of, shares, start_converged,
    user_in,
};
use showcall_tests::sdk_helpers::{hang_up, is_paused, is_resumed, video_call_with_media};

const LIVE: &str = "showroom";
const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_on_another_node_watches_the_host_through_its_own_node_and_sees_the_pause() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let [n1, n2]: [NodeProcess; 2] = start_converged(&etcd, &["n1", "n2"], &options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("two nodes"));
    let nodes = [&n1, &n2];

    // The host goes live through n1; the room opens on whichever node placement picks: its origin.
    let mut host = n1.prepared_user("host").await;
    let _host_live = host.join_media(LIVE, ChannelRole::Broadcaster).await;
    let origin_id = origin_of(&nodes, LIVE)
        .await
        .expect("the room runs somewhere");
    let (origin, edge) = if origin_id == n1.id {
        (&n1, &n2)
    } else {
        (&n2, &n1)
    };
    println!("origin {}, edge {}", origin.id, edge.id);

    // A viewer connected to the other node: its media session is opened there.
    let mut fan = edge.user("fan").await;
    let fan_media = fan.join_media(LIVE, ChannelRole::Audience).await;
    let stats = fan_media
        .wait_video_frames(30)
        .await
        .expect("the host's video reaches the viewer through its node");
    assert!(
        stats.video_keyframes_in >= 1,
        "decoding starts at a keyframe: {stats:?}"
    );
    fan_media
        .wait_audio_frames(20)
        .await
        .expect("the host's audio reaches the viewer through its node");
    // Counted by the path of their latest datagram: both sessions have one by now.
    assert_eq!(
        media_sessions(edge).await,
        1.0,
        "the viewer's session is on its own node ({})",
        edge.id
    );
    assert_eq!(
        media_sessions(origin).await,
        1.0,
        "the origin holds the host's session only"
    );

    // The host takes a 1v1 call: the viewer on the edge is told, as any member of the room.
    let mut caller = edge.prepared_user("caller").await;
    let call = video_call_with_media(&mut caller, &mut host).await;
    fan.wait_channel(LIVE, |k| is_paused(k, "host")).await;

    // Back live after the hangup: the viewer is told and frames flow again.
    hang_up(&mut caller, &mut host).await;
    let before = fan_media.stats().video_frames_in;
    fan.wait_channel(LIVE, |k| is_resumed(k, "host")).await;
    fan_media
        .wait_video_frames(before + 30)
        .await
        .expect("live video again after the call, through the edge");
    drop(call);

    // The viewer leaves: its session on the edge closes.
    fan.signal
        .leave_channel(LIVE)
        .await
        .expect("the viewer leaves");
    eventually("the edge's session closes", LIMIT, async || {
        let sessions = media_sessions(edge).await;
        if sessions == 0.0 {
            Ok(())
        } else {
            Err(sessions)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_whose_edge_node_dies_leaves_the_room() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let [n1, n2]: [NodeProcess; 2] = start_converged(&etcd, &["n1", "n2"], &options)
        .await
        .try_into()
        .unwrap_or_else(|_| unreachable!("two nodes"));
    let host = n1.prepared_user("host").await;
    let _host_live = host.join_media(LIVE, ChannelRole::Broadcaster).await;
    let origin_id = origin_of(&[&n1, &n2], LIVE)
        .await
        .expect("the room runs somewhere");
    let (origin, edge) = if origin_id == n1.id {
        (n1, n2)
    } else {
        (n2, n1)
    };
    // The watcher and the fan have their sessions on the origin, which survives; the fan connects to
    // the edge, so its media goes there.
    let served = shares(&[&origin, &edge]).await;
    let on_origin = &served[&origin.id];
    let watcher_id = user_in("watcher", on_origin, options.partitions);
    let fan_id = user_in("fan", on_origin, options.partitions);
    let mut watcher = origin.user(&watcher_id).await;
    watcher
        .signal
        .join_channel(LIVE, ChannelRole::Audience)
        .await
        .expect("the watcher joins");
    let fan = edge.user(&fan_id).await;
    let fan_media = fan.join_media(LIVE, ChannelRole::Audience).await;
    fan_media
        .wait_video_frames(10)
        .await
        .expect("the fan watches through the edge");
    assert_eq!(
        media_sessions(&edge).await,
        1.0,
        "the fan's session is on the edge"
    );

    edge.kill().await;
    let left = watcher
        .wait_channel(
            LIVE,
            |k| matches!(k, channel_event::Kind::MemberLeft(user) if *user == fan_id),
        )
        .await;
    println!("the room heard: {left:?}");
}
