//! One live room across nodes (issue 15) whose origin dies: real etcd, three real node processes and
//! Rust SDK media clients on real UDP. The host publishes on the room's origin; a viewer on each of the
//! two other nodes watches through its own node (an edge). The origin is SIGKILLed: the viewers'
//! media sessions stay up on their edges (no new join, no ICE or DTLS again); the host's app logs in
//! again on a survivor and goes live again (the SDKs do not rejoin by themselves: the app joins and
//! publishes, as after any `SessionClosed`); meanwhile each viewer is told the host left (`memberLeft`:
//! the room went with its node) and, once it is back, that it joined; the room reopens on the node the placement picks, the
//! edges find it and re-subscribe with their viewers, who are members of the reopened room and
//! receive the host's video again on the same sessions.
//!
//! The same with an origin **frozen** (SIGSTOP) past its lease rather than killed: its edges report the
//! stalled relay, the cluster counts it dead and the room reopens on a survivor as above; when the
//! frozen node wakes (SIGCONT) it finds its lease gone and drops the room without a word to its old
//! edges, whose viewers go on watching the new origin undisturbed.
//!
//! And a host that does **not** come back within the grace period: the room is given up on every edge,
//! whose viewers' sessions close and whose clients are told they are out of the room (`memberLeft`
//! naming themselves).

use std::time::Duration;

use showcall_proto::admin::GetChannelRequest;
use showcall_sdk::media::{MediaOptions, MediaSession};
use showcall_sdk::{ChannelRole, SdkError};
use showcall_tests::admin::admin_at;
use showcall_tests::cluster::{
    Etcd, NodeOptions, NodeProcess, eventually, shares, start_converged, user_in,
};
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::{SdkUser, is_member_joined, is_member_left, more_video};

const APP: &str = "demo";
const LIVE: &str = "showroom";
/// Longer than a lease (2 s) runs out plus the survivors' takeover and a join's retries.
const LIMIT: Duration = Duration::from_secs(60);

/// The node the channel runs on (its origin), among `nodes`.
async fn origin_of(nodes: &[&NodeProcess], channel: &str) -> Option<String> {
    let actor = format!("channel/{APP}/{channel}");
    for node in nodes {
        let info = node.info().await?;
        if info.active_actors.contains(&actor) {
            return Some(node.id.clone());
        }
    }
    None
}

/// Media sessions a node's router holds now (every path).
async fn media_sessions(node: &NodeProcess) -> f64 {
    let page = scrape(node.http_addr).await;
    ["udp", "tcp", "relay"]
        .iter()
        .map(|path| page.get(&format!("showcall_media_sessions{{path=\"{path}\"}}")))
        .sum()
}

/// Three converged nodes with the host live: the nodes, the host, its media session, and the room's
/// origin.
async fn three_nodes_with_a_live_host(
    etcd: &Etcd,
    options: &NodeOptions,
) -> (Vec<NodeProcess>, SdkUser, MediaSession, String) {
    let nodes = start_converged(etcd, &["n1", "n2", "n3"], options).await;
    // The host goes live; the room opens where the placement puts it: its origin.
    let host = nodes[0].prepared_user("host").await;
    let host_live = host.join_media(LIVE, ChannelRole::Broadcaster).await;
    let all: Vec<&NodeProcess> = nodes.iter().collect();
    let origin_id = origin_of(&all, LIVE)
        .await
        .expect("the room runs somewhere");
    println!("origin {origin_id}");
    (nodes, host, host_live, origin_id)
}

/// One viewer per node but the origin, connected there, its session there too (so it outlives the
/// origin): its media session is on that node, an edge of the room. Each decodes the host.
async fn a_viewer_on_each_edge(
    nodes: &[NodeProcess],
    origin_id: &str,
    options: &NodeOptions,
) -> Vec<(SdkUser, MediaSession)> {
    let all: Vec<&NodeProcess> = nodes.iter().collect();
    let served = shares(&all).await;
    let mut viewers = Vec::new();
    for edge in nodes.iter().filter(|n| n.id != origin_id) {
        let id = user_in(
            &format!("fan-{}", edge.id),
            &served[&edge.id],
            options.partitions,
        );
        let viewer = edge.user(&id).await;
        let media = viewer.join_media(LIVE, ChannelRole::Audience).await;
        media
            .wait_video_frames(10)
            .await
            .expect("the host's video reaches the viewer through its node");
        viewers.push((viewer, media));
    }
    viewers
}

/// Takes the origin out of `nodes` (to be killed or frozen).
fn take_origin(nodes: &mut Vec<NodeProcess>, origin_id: &str) -> NodeProcess {
    let at = nodes
        .iter()
        .position(|n| n.id == origin_id)
        .expect("listed");
    nodes.remove(at)
}

/// The host's app logs in again through `survivor` and goes live again: joins the room and publishes
/// with a fresh offer. Both are refused "try again" while the dead node's lease and pin last.
async fn host_goes_live_again(survivor: &NodeProcess) -> (SdkUser, MediaSession) {
    let host = eventually("the host logs in again", LIMIT, async || {
        SdkUser::try_login_at(&survivor.signal_url, APP, "host", &survivor.token("host"))
            .await
            .map_err(|e: SdkError| e.to_string())
    })
    .await;
    let live = eventually("the host goes live again", LIMIT, async || {
        MediaSession::join(
            &host.signal,
            LIVE,
            ChannelRole::Broadcaster,
            MediaOptions::default(),
        )
        .await
        .map(|(media, _)| media)
        .map_err(|e| e.to_string())
    })
    .await;
    (host, live)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_edges_keep_their_sessions_when_the_origin_is_killed_and_see_the_host_again() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let (mut nodes, host, host_live, origin_id) =
        three_nodes_with_a_live_host(&etcd, &options).await;
    let mut viewers = a_viewer_on_each_edge(&nodes, &origin_id, &options).await;
    for edge in nodes.iter().filter(|n| n.id != origin_id) {
        assert_eq!(
            media_sessions(edge).await,
            1.0,
            "one viewer's session on {}",
            edge.id
        );
    }

    // SIGKILL the origin, with the host's media session (and maybe its signaling session).
    take_origin(&mut nodes, &origin_id).kill().await;
    drop(host_live);
    drop(host);
    let frames_at_kill: Vec<u64> = viewers
        .iter()
        .map(|(_, media)| media.stats().video_frames_in)
        .collect();

    // Each viewer is told the host left: the room went with its node (the viewers stay members, their
    // sessions kept by their edges).
    for (viewer, _) in viewers.iter_mut() {
        viewer
            .wait_channel(LIVE, |k| is_member_left(k, "host"))
            .await;
    }

    // The host's app logs in again (any survivor) and goes live again.
    let (_host, _host_live) = host_goes_live_again(&nodes[0]).await;
    let survivors: Vec<&NodeProcess> = nodes.iter().collect();
    let new_origin = origin_of(&survivors, LIVE)
        .await
        .expect("the room reopened on a survivor");
    println!("new origin {new_origin}");

    // The viewers' same sessions receive the host again: no join, no new session; each is told the
    // host is back.
    for (viewer, _) in viewers.iter_mut() {
        viewer
            .wait_channel(LIVE, |k| is_member_joined(k, "host"))
            .await;
    }
    for ((viewer, media), before) in viewers.iter().zip(frames_at_kill) {
        media
            .wait_video_frames(before + 30)
            .await
            .unwrap_or_else(|e| panic!("{} sees the host again: {e:?}", viewer.id));
        assert!(
            media.stats().connected,
            "{}'s session never closed",
            viewer.id
        );
    }
    for node in &nodes {
        let expected = if node.id == new_origin { 2.0 } else { 1.0 };
        assert_eq!(
            media_sessions(node).await,
            expected,
            "{}: its viewer's session (and the host's on the new origin)",
            node.id
        );
    }

    // Each edge counted its origin's death and finding the new one (the node that reopened the room
    // among them).
    let mut lost = 0.0;
    let mut found = 0.0;
    for node in &nodes {
        let page = scrape(node.http_addr).await;
        lost += page.get("showcall_media_edge_origin_total{event=\"lost\"}");
        found += page.get("showcall_media_edge_origin_total{event=\"found\"}");
    }
    assert_eq!(
        (lost, found),
        (2.0, 2.0),
        "both edges lost and found the origin"
    );

    // The reopened room's member list has them (the business server sees it).
    let origin = nodes
        .iter()
        .find(|n| n.id == new_origin)
        .expect("a survivor");
    let mut admin = admin_at(&origin.grpc_url).await;
    let mut want: Vec<String> = viewers.iter().map(|(v, _)| v.id.clone()).collect();
    want.push("host".into());
    want.sort();
    eventually(
        "the room lists the host and both viewers",
        LIMIT,
        async || {
            let channel = admin
                .get_channel(GetChannelRequest {
                    app_id: APP.into(),
                    channel: LIVE.into(),
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let mut members: Vec<String> = channel.members.into_iter().map(|m| m.user_id).collect();
            members.sort();
            if members == want {
                Ok(())
            } else {
                Err(members.join(","))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_frozen_past_its_lease_loses_the_room_and_its_waking_disturbs_no_viewer() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let (mut nodes, host, host_live, origin_id) =
        three_nodes_with_a_live_host(&etcd, &options).await;
    let mut viewers = a_viewer_on_each_edge(&nodes, &origin_id, &options).await;
    let frozen = take_origin(&mut nodes, &origin_id);

    // Frozen: each edge reports its relay stalled, and once the lease is gone its viewers hear the
    // host left.
    frozen.pause();
    for node in &nodes {
        eventually(
            "the edge reports the stalled relay",
            LIMIT,
            async || match scrape(node.http_addr)
                .await
                .get("showcall_media_edge_relay_total{event=\"stalled\"}")
            {
                n if n >= 1.0 => Ok(()),
                n => Err(n),
            },
        )
        .await;
    }
    for (viewer, _) in viewers.iter_mut() {
        viewer
            .wait_channel(LIVE, |k| is_member_left(k, "host"))
            .await;
    }

    // The host's app gives up on the frozen node, logs in on a survivor and goes live again.
    drop(host_live);
    drop(host);
    let (_host, _host_live) = host_goes_live_again(&nodes[0]).await;
    let survivors: Vec<&NodeProcess> = nodes.iter().collect();
    let new_origin = origin_of(&survivors, LIVE)
        .await
        .expect("the room reopened on a survivor");
    for (viewer, media) in viewers.iter_mut() {
        viewer
            .wait_channel(LIVE, |k| is_member_joined(k, "host"))
            .await;
        more_video(media, 30).await;
    }

    // The frozen node wakes: it finds its lease gone and drops the room it ran. The viewers watch
    // on, on the same sessions, from the new origin; nobody hears the host leave again.
    frozen.resume();
    eventually("the woken node runs the room no more", LIMIT, async || {
        let info = frozen.info().await.ok_or("no answer yet")?;
        if info
            .active_actors
            .iter()
            .any(|a| a.ends_with(&format!("/{LIVE}")))
        {
            Err("still runs it")
        } else {
            Ok(())
        }
    })
    .await;
    for (viewer, media) in viewers.iter_mut() {
        more_video(media, 60).await;
        assert!(
            media.stats().connected,
            "{}'s session never closed",
            viewer.id
        );
    }
    assert_eq!(
        origin_of(&survivors, LIVE).await.as_deref(),
        Some(new_origin.as_str()),
        "the room stays where it reopened"
    );
    for (viewer, _) in viewers.iter_mut() {
        let heard = viewer.channel_events_since(LIVE);
        assert!(
            !heard.iter().any(|k| is_member_left(k, "host")),
            "{} heard the host leave after it came back: {heard:?}",
            viewer.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_of_a_room_whose_host_does_not_come_back_in_time_are_told_they_are_out() {
    let etcd = Etcd::start().await;
    // The time a host has to come back.
    let options = NodeOptions {
        env: vec![("SHOWCALL_GRACE_PERIOD".into(), "3s".into())],
        ..NodeOptions::default()
    };
    let (mut nodes, host, host_live, origin_id) =
        three_nodes_with_a_live_host(&etcd, &options).await;
    let mut viewers = a_viewer_on_each_edge(&nodes, &origin_id, &options).await;
    take_origin(&mut nodes, &origin_id).kill().await;
    drop(host_live);
    drop(host);

    // Told the host left when its node died; the host never comes back, and once the grace period is
    // over each viewer is told it is out of the room itself (`memberLeft` naming it).
    for (viewer, _) in viewers.iter_mut() {
        let me = viewer.id.clone();
        viewer
            .wait_channel(LIVE, |k| is_member_left(k, "host"))
            .await;
        viewer.wait_channel(LIVE, |k| is_member_left(k, &me)).await;
    }
    // Its session on its edge closed with the room; each edge counted the room given up.
    for edge in &nodes {
        eventually("the edge's viewer session closed", LIMIT, async || {
            let n = media_sessions(edge).await;
            if n == 0.0 {
                Ok(())
            } else {
                Err(format!("{n} sessions on {}", edge.id))
            }
        })
        .await;
        let page = scrape(edge.http_addr).await;
        assert_eq!(
            page.get("showcall_media_edge_origin_total{event=\"given_up\"}"),
            1.0,
            "{} gave the room up",
            edge.id
        );
    }
}
