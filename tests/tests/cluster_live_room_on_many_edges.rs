//! One live room across three nodes (issue 15), with real etcd, real node processes and Rust SDK media
//! clients on real UDP: the room's origin holds the host's session, two edges hold viewers' sessions.
//! - Viewers on both edges decode the host; the room has one member list and one event history
//!   wherever its members' media is; a viewer's 1v1 call with the host pauses the room on every edge
//!   (no host video reaches them meanwhile) and its end resumes it, each edge's viewers restarting at
//!   a keyframe.
//! - An edge that dies (SIGKILL) loses its viewers, who log in again elsewhere and watch again; the
//!   other edge's viewers miss no frame meanwhile.
//! - A viewer on an edge kicked and banned by the business server is out of the room: its session on
//!   the edge closes, its client hears code 123, and it may not join again. A host who leaves and
//!   comes back reaches the viewers on every edge again (their lines renegotiated on their edges).
//! - A node at its `[media] max_viewers` is no edge for more viewers: their sessions open on another
//!   node, and they decode the host there — also when they all arrive at once, before it could
//!   announce its load.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use showcall_proto::admin::event::Kind as EventKind;
use showcall_proto::admin::{GetChannelRequest, KickUserRequest};
use showcall_sdk::media::{MediaOptions, MediaSession, ReceivedFrame, TrackKind};
use showcall_sdk::{ChannelJoined, ChannelRole, ErrorCode, Recorded, SignalClient, channel_event};
use showcall_tests::admin::{admin_at, watch_events};
use showcall_tests::cluster::{
    DEMO_APP, Etcd, NodeOptions, NodeProcess, announced_media_sessions, eventually, media_sessions,
    origin_of, shares, start_converged, user_in, wait_converged,
};
use showcall_tests::sdk_helpers::{
    SdkUser, hang_up, is_member_joined, is_member_left, is_paused, is_resumed, more_video,
    video_call_with_media,
};

const LIVE: &str = "showroom";
const LIMIT: Duration = Duration::from_secs(30);

/// Joins the live room with media; the session and the member list the node answered with.
async fn watch(user: &SdkUser, role: ChannelRole) -> (MediaSession, ChannelJoined) {
    MediaSession::join(&user.signal, LIVE, role, MediaOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{} could not join {LIVE} with media: {e}", user.id))
}

/// Waits until `session` has decoded `frames` video and `frames` audio frames of the host.
async fn decodes_the_host(who: &str, session: &MediaSession, frames: u64) {
    session
        .wait_video_frames(frames)
        .await
        .unwrap_or_else(|e| panic!("{who} receives the host's video: {e}"));
    session
        .wait_audio_frames(frames)
        .await
        .unwrap_or_else(|e| panic!("{who} receives the host's audio: {e}"));
}

/// Sorted user ids of a member list.
fn ids<'a>(users: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let set: BTreeSet<String> = users.into_iter().map(str::to_owned).collect();
    set.into_iter().collect()
}

/// Every frame a session receives from now on, kept until [`Frames::stop`] (a broadcast receiver
/// drained as it goes, so a long window loses none to lag).
struct Frames {
    seen: Arc<Mutex<Vec<ReceivedFrame>>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Frames {
    fn record(session: &MediaSession) -> Frames {
        let mut frames = session.subscribe_frames();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                match frames.recv().await {
                    Ok(frame) => keep.lock().expect("not poisoned").push(frame),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                    Err(lagged) => return Err(lagged.to_string()),
                }
            }
        });
        Frames { seen, task }
    }

    /// The frames received so far.
    fn now(&self) -> Vec<ReceivedFrame> {
        self.seen.lock().expect("not poisoned").clone()
    }

    /// Stops recording: every frame received, or why some were not seen.
    async fn stop(self) -> Vec<ReceivedFrame> {
        self.task.abort();
        if let Ok(Err(lagged)) = self.task.await {
            panic!("frames were lost to the test's own recording: {lagged}");
        }
        Arc::try_unwrap(self.seen)
            .expect("the recording task is gone")
            .into_inner()
            .expect("not poisoned")
    }
}

/// The room's business events in `events` (`member_joined` / `member_left` / `host_paused` /
/// `host_resumed` of `LIVE`) as short lines, read until `until` accepts the list.
async fn room_events(
    events: &mut tonic::Streaming<showcall_proto::admin::Event>,
    until: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut room = Vec::new();
    while !until(&room) {
        let event = tokio::time::timeout(LIMIT, events.next())
            .await
            .unwrap_or_else(|_| panic!("no more room events within {LIMIT:?}; so far {room:?}"))
            .expect("the watch goes on")
            .expect("an event");
        let line = match event.kind {
            Some(EventKind::MemberJoined(m)) if m.channel == LIVE => {
                format!("joined {}", m.user_id)
            }
            Some(EventKind::MemberLeft(m)) if m.channel == LIVE => format!("left {}", m.user_id),
            Some(EventKind::HostPaused(p)) if p.channel == LIVE => {
                format!("paused {}", p.host_user_id)
            }
            Some(EventKind::HostResumed(p)) if p.channel == LIVE => {
                format!("resumed {}", p.host_user_id)
            }
            _ => continue,
        };
        room.push(line);
    }
    room
}

/// Three converged nodes, the host live on the room through the first: the origin, then the two
/// others (the edges).
async fn three_nodes_with_a_live_host(
    etcd: &Etcd,
) -> (NodeProcess, NodeProcess, NodeProcess, SdkUser, MediaSession) {
    let options = NodeOptions::default();
    let mut nodes = start_converged(etcd, &["n1", "n2", "n3"], &options).await;
    let host = nodes[0].prepared_user("host").await;
    let (host_live, _) = watch(&host, ChannelRole::Broadcaster).await;
    let origin_id = origin_of(&nodes.iter().collect::<Vec<_>>(), LIVE)
        .await
        .expect("the room runs somewhere");
    let at = nodes
        .iter()
        .position(|n| n.id == origin_id)
        .expect("one of ours");
    let origin = nodes.remove(at);
    let [b, c]: [NodeProcess; 2] = nodes
        .try_into()
        .unwrap_or_else(|_| unreachable!("two others"));
    println!("origin {}, edges {} and {}", origin.id, b.id, c.id);
    (origin, b, c, host, host_live)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_two_edges_share_one_room_and_its_pause_for_a_viewers_call() {
    let etcd = Etcd::start().await;
    let (origin, b, c, mut host, _host_live) = three_nodes_with_a_live_host(&etcd).await;
    let mut admin = admin_at(&c.grpc_url).await;
    // From the log's start: the host's join is in it already.
    let mut events = watch_events(&mut admin, DEMO_APP, Some(0)).await;

    // Two viewers through B (one will call the host), one through C: each session on its own node.
    let mut fan_b = b.user("fan-b").await;
    let (fan_b_media, _) = watch(&fan_b, ChannelRole::Audience).await;
    let mut caller = b.prepared_user("caller-b").await;
    let (caller_live, _) = watch(&caller, ChannelRole::Audience).await;
    let mut fan_c = c.user("fan-c").await;
    let (fan_c_media, joined) = watch(&fan_c, ChannelRole::Audience).await;
    for (who, session) in [
        ("fan-b", &fan_b_media),
        ("caller-b", &caller_live),
        ("fan-c", &fan_c_media),
    ] {
        decodes_the_host(who, session, 30).await;
    }
    assert_eq!(
        media_sessions(&origin).await,
        1.0,
        "the host's session only"
    );
    assert_eq!(media_sessions(&b).await, 2.0, "B's two viewers");
    assert_eq!(media_sessions(&c).await, 1.0, "C's viewer");

    // One member list, whichever node a member's media is on and whichever node is asked.
    let everyone = ids(["host", "fan-b", "caller-b", "fan-c"]);
    assert_eq!(
        ids(joined.members.iter().map(|m| m.user_id.as_str())),
        everyone,
        "the last joiner's snapshot: {joined:?}"
    );
    for node in [&origin, &b, &c] {
        let room = admin_at(&node.grpc_url)
            .await
            .get_channel(GetChannelRequest {
                app_id: DEMO_APP.to_owned(),
                channel: LIVE.to_owned(),
            })
            .await
            .unwrap_or_else(|e| panic!("{} answers GetChannel: {e}", node.id))
            .into_inner();
        assert_eq!(
            ids(room.members.iter().map(|m| m.user_id.as_str())),
            everyone,
            "the room's members as {} tells them: {room:?}",
            node.id
        );
    }
    // Members joined on B's or C's media are told of later joiners as any member.
    fan_b
        .wait_channel(
            LIVE,
            |k| matches!(k, channel_event::Kind::MemberJoined(m) if m.user_id == "fan-c"),
        )
        .await;

    // The viewer on B calls the host: every edge's viewers are told the host paused, and no host
    // video reaches them while the host's video flows to the caller in the call.
    let call = video_call_with_media(&mut caller, &mut host).await;
    fan_b.wait_channel(LIVE, |k| is_paused(k, "host")).await;
    fan_c.wait_channel(LIVE, |k| is_paused(k, "host")).await;
    // Frames already on their way when the host paused may still land (a starved node delivers its
    // backlog late); once a second of the call's video has reached the caller, none does for the next.
    let counts = || {
        [
            fan_b_media.stats().video_frames_in,
            fan_c_media.stats().video_frames_in,
        ]
    };
    let at_pause = counts();
    more_video(&call.caller_media, 30).await;
    let settled = counts();
    println!(
        "video frames of fan-b and fan-c: {at_pause:?} at the pause, {settled:?} a second later"
    );
    more_video(&call.caller_media, 30).await;
    assert_eq!(
        counts(),
        settled,
        "no host video reaches the room's viewers during the call (frames at the pause: {at_pause:?})"
    );

    // The call ends: every edge's viewers are told the host is back, and start again at a keyframe.
    let b_frames = Frames::record(&fan_b_media);
    let c_frames = Frames::record(&fan_c_media);
    let caller_frames = Frames::record(&caller_live);
    hang_up(&mut caller, &mut host).await;
    drop(call);
    fan_b.wait_channel(LIVE, |k| is_resumed(k, "host")).await;
    fan_c.wait_channel(LIVE, |k| is_resumed(k, "host")).await;
    caller.wait_channel(LIVE, |k| is_resumed(k, "host")).await;
    for (who, session, frames) in [
        ("fan-b", &fan_b_media, b_frames),
        ("fan-c", &fan_c_media, c_frames),
        ("caller-b, back from its call", &caller_live, caller_frames),
    ] {
        session
            .wait_video_frames(session.stats().video_frames_in + 30)
            .await
            .unwrap_or_else(|e| panic!("{who} receives live video again: {e}"));
        let first = frames
            .stop()
            .await
            .into_iter()
            .find(|f| f.kind == TrackKind::Video)
            .expect("video after the resume");
        assert!(
            first.keyframe,
            "{who}'s first frame after the resume is a keyframe"
        );
    }

    // C's viewer leaves: B's viewers are told, and C, with no viewer left, holds nothing of the room.
    fan_c
        .signal
        .leave_channel(LIVE)
        .await
        .expect("fan-c leaves");
    fan_b
        .wait_channel(
            LIVE,
            |k| matches!(k, channel_event::Kind::MemberLeft(user) if user == "fan-c"),
        )
        .await;
    eventually(
        "C's session closes",
        LIMIT,
        async || match media_sessions(&c).await {
            0.0 => Ok(()),
            sessions => Err(sessions),
        },
    )
    .await;

    // The room's business events are the room's: each join once, in order, then the pause, the
    // resume and the leave — none doubled by an edge.
    let room = room_events(&mut events, |seen| {
        seen.last().is_some_and(|l| l == "left fan-c")
    })
    .await;
    assert_eq!(
        room,
        [
            "joined host",
            "joined fan-b",
            "joined caller-b",
            "joined fan-c",
            "paused host",
            "resumed host",
            "left fan-c"
        ],
        "the room's events, as a business server watching through C reads them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_of_a_dead_edge_watch_again_elsewhere_and_the_other_edge_misses_no_frame() {
    let etcd = Etcd::start().await;
    let (origin, b, c, _host, _host_live) = three_nodes_with_a_live_host(&etcd).await;
    // Two viewers connected to B, whose user actors B serves too (the worst case: they can log in
    // again only once another node took their partitions over), and one connected to C.
    let served = shares(&[&origin, &b, &c]).await;
    let partitions = NodeOptions::default().partitions;
    let to_c = user_in("fan-b-to-c", &served[&b.id], partitions);
    let to_origin = user_in("fan-b-to-origin", &served[&b.id], partitions);
    let mut fans_b = Vec::new();
    for id in [&to_c, &to_origin] {
        let fan = b.user(id).await;
        let (media, _) = watch(&fan, ChannelRole::Audience).await;
        decodes_the_host(id, &media, 20).await;
        fans_b.push((fan, media));
    }
    let fan_c = c.user("fan-c").await;
    let (fan_c_media, _) = watch(&fan_c, ChannelRole::Audience).await;
    decodes_the_host("fan-c", &fan_c_media, 20).await;
    assert_eq!(
        media_sessions(&b).await,
        2.0,
        "B holds its two viewers' sessions"
    );
    assert_eq!(media_sessions(&c).await, 1.0, "fan-c's session is on C");

    // From here to the end, every frame C's viewer receives is recorded.
    let c_frames = Frames::record(&fan_c_media);
    let b_id = b.id.clone();
    b.kill().await;

    // B's viewers' apps see their connections drop, log in again through a live node each, and
    // rejoin the room: each watches again, its session on the node it logged in through.
    let mut again = Vec::new();
    for ((mut fan, media), node) in fans_b.into_iter().zip([&c, &origin]) {
        fan.wait_signal(|r| matches!(r, Recorded::SignalDisconnected { .. }))
            .await;
        drop(media);
        let signal: SignalClient = node.log_in_again(&fan.id).await;
        let (media, _) = eventually("a viewer of B rejoins the room", LIMIT, async || {
            MediaSession::join(
                &signal,
                LIVE,
                ChannelRole::Audience,
                MediaOptions::default(),
            )
            .await
            .map_err(|e| e.to_string())
        })
        .await;
        decodes_the_host(&fan.id, &media, 30).await;
        again.push((fan.id.clone(), signal, media));
    }
    assert_eq!(
        media_sessions(&c).await,
        2.0,
        "{to_c}'s new session is on C, with fan-c's"
    );
    assert_eq!(
        media_sessions(&origin).await,
        2.0,
        "{to_origin}'s new session is on the origin, with the host's"
    );

    // The origin has seen B die (its lease ran out): the window covers the cluster's reaction.
    eventually("the origin sees B gone", LIMIT, async || {
        let live = origin
            .info()
            .await
            .map(|i| i.live_nodes)
            .unwrap_or_default();
        if live.contains(&b_id) {
            Err(live)
        } else {
            Ok(())
        }
    })
    .await;

    // C's viewer went on without a gap: B's death cost it no frame. The rejoined viewers go on
    // watching, members of the room.
    let before = c_frames.now().len();
    fan_c_media
        .wait_video_frames(fan_c_media.stats().video_frames_in + 30)
        .await
        .expect("fan-c keeps watching");
    for (id, _, media) in &again {
        media
            .wait_video_frames(media.stats().video_frames_in + 30)
            .await
            .unwrap_or_else(|e| panic!("{id} keeps watching after the cluster saw B die: {e}"));
    }
    let room = admin_at(&origin.grpc_url)
        .await
        .get_channel(GetChannelRequest {
            app_id: DEMO_APP.to_owned(),
            channel: LIVE.to_owned(),
        })
        .await
        .expect("the origin answers GetChannel")
        .into_inner();
    assert_eq!(
        ids(room.members.iter().map(|m| m.user_id.as_str())),
        ids(["host", "fan-c", to_c.as_str(), to_origin.as_str()]),
        "the room's members after B's viewers came back: {room:?}"
    );
    let frames = c_frames.stop().await;
    assert!(frames.len() > before, "frames were recorded");
    let gaps: Vec<(TrackKind, u64)> = frames
        .iter()
        .filter(|f| !f.contiguous)
        .map(|f| (f.kind, f.rtp_time))
        .collect();
    let (video, audio) = (
        frames.iter().filter(|f| f.kind == TrackKind::Video).count(),
        frames.iter().filter(|f| f.kind == TrackKind::Audio).count(),
    );
    println!("{b_id} killed; fan-c received {video} video and {audio} audio frames meanwhile");
    assert!(
        gaps.is_empty(),
        "fan-c (on {}) missed frames while {b_id} died: {gaps:?}",
        c.id
    );
}

/// The host live on a room whose origin is `n1` (the only node when it opened), and `n2`, a node
/// that takes one viewer at most (`[media] max_viewers = 1`).
async fn an_origin_and_a_node_for_one_viewer(
    etcd: &Etcd,
) -> (NodeProcess, NodeProcess, SdkUser, MediaSession) {
    let options = NodeOptions::default();
    let origin = NodeProcess::start(etcd, "n1", &options).await;
    wait_converged(&[&origin], options.partitions).await;
    let host = origin.prepared_user("host").await;
    let (host_live, _) = watch(&host, ChannelRole::Broadcaster).await;
    let limited_options = NodeOptions {
        env: vec![("SHOWCALL_MEDIA__MAX_VIEWERS".to_owned(), "1".to_owned())],
        ..options.clone()
    };
    let limited = NodeProcess::start(etcd, "n2", &limited_options).await;
    wait_converged(&[&origin, &limited], options.partitions).await;
    assert_eq!(
        origin_of(&[&origin, &limited], LIVE).await.as_deref(),
        Some(origin.id.as_str()),
        "the room stays on its origin"
    );
    (origin, limited, host, host_live)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_viewer_limit_sends_more_viewers_elsewhere() {
    let etcd = Etcd::start().await;
    let (origin, limited, _host, _host_live) = an_origin_and_a_node_for_one_viewer(&etcd).await;

    // The first viewer through the limited node has its session there.
    let first = limited.user("first").await;
    let (first_media, _) = watch(&first, ChannelRole::Audience).await;
    decodes_the_host("first", &first_media, 20).await;
    assert_eq!(
        media_sessions(&limited).await,
        1.0,
        "the first viewer's session is on n2"
    );
    // What the origin chooses by: n2 announces its viewer.
    eventually(
        "n2 announces its one session",
        LIMIT,
        async || match announced_media_sessions(&etcd, &limited.id).await {
            Some(1) => Ok(()),
            other => Err(other),
        },
    )
    .await;

    // More viewers through it: n2 is full, so their sessions open on the origin; they decode there.
    let mut beyond = Vec::new();
    for id in ["second", "third"] {
        let viewer = limited.user(id).await;
        let (media, _) = watch(&viewer, ChannelRole::Audience).await;
        decodes_the_host(id, &media, 20).await;
        beyond.push((viewer, media));
    }
    assert_eq!(
        media_sessions(&limited).await,
        1.0,
        "n2 took no viewer beyond its limit"
    );
    assert_eq!(
        media_sessions(&origin).await,
        3.0,
        "the host's session and the two viewers' beyond n2's limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_arriving_at_once_at_a_node_with_room_for_one_viewer_gets_one_session_there() {
    let etcd = Etcd::start().await;
    let (origin, limited, _host, _host_live) = an_origin_and_a_node_for_one_viewer(&etcd).await;
    // Four viewers through n2 join at once: before n2 can announce its first one.
    let mut crowd = Vec::new();
    for i in 0..4 {
        crowd.push(limited.user(&format!("viewer-{i}")).await);
    }
    let joined =
        futures_util::future::join_all(crowd.iter().map(|v| watch(v, ChannelRole::Audience))).await;
    for ((session, _), viewer) in joined.iter().zip(&crowd) {
        decodes_the_host(&viewer.id, session, 20).await;
    }
    assert_eq!(
        media_sessions(&limited).await,
        1.0,
        "n2 holds one viewer, its max_viewers"
    );
    assert_eq!(
        media_sessions(&origin).await,
        4.0,
        "the host's session and the three viewers n2 had no room for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_kicked_and_banned_on_an_edge_loses_its_session_there_and_may_not_join_again() {
    let etcd = Etcd::start().await;
    let (origin, b, c, _host, _host_live) = three_nodes_with_a_live_host(&etcd).await;
    let mut fan = b.user("fan-b").await;
    let (media, _) = watch(&fan, ChannelRole::Audience).await;
    decodes_the_host("fan-b", &media, 20).await;
    assert_eq!(media_sessions(&b).await, 1.0, "fan-b's session is on B");
    let witness = c.user("fan-c").await;
    let (witness_media, _) = watch(&witness, ChannelRole::Audience).await;
    decodes_the_host("fan-c", &witness_media, 20).await;

    // The business server (through the origin's API: any node would do) bans fan-b for ten minutes.
    let mut admin = admin_at(&origin.grpc_url).await;
    let banned = admin
        .kick_user(KickUserRequest {
            app_id: DEMO_APP.into(),
            channel: LIVE.into(),
            user_id: "fan-b".into(),
            ban_seconds: 600,
            ban_join: true,
            ..Default::default()
        })
        .await
        .expect("banned")
        .into_inner();
    assert!(banned.banned_until_ms > 0);
    let error = fan.wait_call(|r| matches!(r, Recorded::Error { .. })).await;
    assert!(
        matches!(error, Recorded::Error { code: 123, .. }),
        "{error:?}"
    );
    // Its session on the edge is closed; the other edge's viewer watches on.
    eventually(
        "B closed fan-b's session",
        LIMIT,
        async || match media_sessions(&b).await {
            0.0 => Ok(()),
            n => Err(n),
        },
    )
    .await;
    more_video(&witness_media, 30).await;
    // Out of the room's member list, and refused when it asks again.
    let members = admin
        .get_channel(GetChannelRequest {
            app_id: DEMO_APP.into(),
            channel: LIVE.into(),
        })
        .await
        .expect("the room is open")
        .into_inner()
        .members;
    assert_eq!(
        ids(members.iter().map(|m| m.user_id.as_str())),
        ids(["host", "fan-c"])
    );
    let refused = MediaSession::join(
        &fan.signal,
        LIVE,
        ChannelRole::Audience,
        MediaOptions::default(),
    )
    .await
    .expect_err("a banned viewer may not join again");
    assert!(
        matches!(&refused, showcall_sdk::SdkError::Refused { code, .. } if *code == ErrorCode::Banned),
        "{refused:?}"
    );
    assert_eq!(media_sessions(&b).await, 0.0, "the refusal opened nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_who_leaves_and_comes_back_reaches_the_viewers_on_every_edge_again() {
    let etcd = Etcd::start().await;
    let (_origin, b, c, host, host_live) = three_nodes_with_a_live_host(&etcd).await;
    let mut fans = Vec::new();
    for (node, id) in [(&b, "fan-b"), (&c, "fan-c")] {
        let fan = node.user(id).await;
        let (media, _) = watch(&fan, ChannelRole::Audience).await;
        decodes_the_host(id, &media, 20).await;
        fans.push((fan, media));
    }

    let renegotiated: Vec<u64> = fans.iter().map(|(_, m)| m.stats().renegotiations).collect();

    // The host leaves the room: every edge's viewers hear it.
    host.signal
        .leave_channel(LIVE)
        .await
        .expect("the host leaves");
    drop(host_live);
    for (fan, _) in fans.iter_mut() {
        fan.wait_channel(LIVE, |k| is_member_left(k, "host")).await;
    }

    // It comes back with a fresh offer: every edge's viewers hear it and decode it again on the
    // sessions they had (their edges renegotiated them).
    let (_host_again, _) = watch(&host, ChannelRole::Broadcaster).await;
    for ((fan, media), before) in fans.iter_mut().zip(renegotiated) {
        fan.wait_channel(LIVE, |k| is_member_joined(k, "host"))
            .await;
        more_video(media, 30).await;
        let stats = media.stats();
        assert!(stats.renegotiations > before, "{}: {stats:?}", fan.id);
    }
    assert_eq!(media_sessions(&b).await, 1.0, "fan-b's same session on B");
    assert_eq!(media_sessions(&c).await, 1.0, "fan-c's same session on C");
}
