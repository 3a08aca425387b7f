//! A rolling restart of a three-node cluster, as an operator deploys a new version (real processes, real
//! etcd, real media between Rust clients): each node in turn gets SIGTERM, exits by itself, starts again
//! with the same id, and the cluster converges before the next one.
//! - Every session survives every restart: clients whose WebSocket was on the restarted node are closed
//!   with 1012, reconnect to another node and resume (same session, same call).
//! - **No call is lost.** Where its sessions and call actor ran moves with their partitions; a call whose
//!   channel (its media) ran on the restarted node moves to a channel on another node — both parties are
//!   told (`connected`, `mediaMoved`, the new channel) and join it again, and media flows again there.
//!   Media of calls on other nodes keeps flowing through the restart (frames counted on both sides).
//! - Every call then hangs up as usual, and the business server gets exactly one `call_ended` per call.

use std::collections::HashMap;
use std::time::Instant;

use showcall_proto::admin::{CallPhase, GetCallRequest, WatchEventsRequest};
use showcall_sdk::media::{MediaOptions, MediaSession};
use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole};
use showcall_tests::admin::{admin_at, ends_of};
use showcall_tests::cluster::{
    DEMO_APP, Etcd, NodeOptions, NodeProcess, connected_call_where, eventually, node_tag,
    resume_at, shares, user_in, wait_converged,
};
use showcall_tests::sdk_helpers::{SdkUser, hang_up, more_video};

const NODES: [&str; 3] = ["n1", "n2", "n3"];
const LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// One call and where its parts are: the parties' sockets and the channel's node (indexes in NODES).
struct Pair {
    caller: SdkUser,
    callee: SdkUser,
    call: String,
    sockets: [usize; 2],
    media_node: usize,
    /// How often its channel moved.
    moves: usize,
}

/// How many times `user` was told that `call` ended (a `prepared` state with an end reason; the SDK's
/// own "session resumed" `prepared` after a resume into no call is not an end).
fn ends_told(user: &SdkUser, call: &str) -> usize {
    user.rec
        .seen()
        .iter()
        .filter(|r| {
            matches!(r, showcall_sdk::Recorded::State { state: CallState::Prepared, reason, info, .. }
                if info.call_id == call && *reason != CallStateReason::None)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_no_session_and_no_call() {
    let etcd = Etcd::start().await;
    let options = NodeOptions::default();
    let mut nodes = Vec::new();
    for id in NODES {
        nodes.push(NodeProcess::start(&etcd, id, &options).await);
    }
    wait_converged(&nodes.iter().collect::<Vec<_>>(), options.partitions).await;
    let tags: Vec<String> = nodes.iter().map(node_tag).collect();
    // A call's channel opens on its caller's node unless another is much less loaded (README
    // "Placement"): each caller below is a user whose session the call's media node serves.
    let by_node = shares(&nodes.iter().collect::<Vec<_>>()).await;
    let homed_on =
        |prefix: &str, node: usize| user_in(prefix, &by_node[NODES[node]], options.partitions);

    // One call with real media: sockets on n1 and n2, media on n3 (the last to restart).
    let viewer_id = homed_on("viewer", 2);
    let mut viewer = nodes[0].prepared_user(&viewer_id).await;
    let mut host = nodes[1].prepared_user("host").await;
    let media_call = loop {
        let created = viewer
            .api
            .call("host", CallType::Video, HashMap::new())
            .await
            .expect("call placed");
        host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
            .await;
        if created.channel.ends_with(&format!("@{}", tags[2])) {
            break created;
        }
        viewer.api.cancel_call().await.expect("cancelled");
        viewer
            .wait_state(CallState::Prepared, CallStateReason::LocalCancelled)
            .await;
        host.wait_state(CallState::Prepared, CallStateReason::RemoteCancelled)
            .await;
    };
    host.api.accept(&viewer_id).await.expect("accepted");
    let (mut viewer_media, _) = MediaSession::join(
        &viewer.signal,
        &media_call.channel,
        ChannelRole::Broadcaster,
        MediaOptions::default(),
    )
    .await
    .expect("viewer joins with media");
    let (mut host_media, _) = MediaSession::join(
        &host.signal,
        &media_call.channel,
        ChannelRole::Broadcaster,
        MediaOptions::default(),
    )
    .await
    .expect("host joins with media");
    viewer
        .wait_state(CallState::Connected, CallStateReason::RecvRemoteFirstFrame)
        .await;
    host.wait_state(CallState::Connected, CallStateReason::RecvRemoteFirstFrame)
        .await;
    let mut pairs = vec![Pair {
        caller: viewer,
        callee: host,
        call: media_call.call_id.clone(),
        sockets: [0, 1],
        media_node: 2,
        moves: 0,
    }];
    // Signaling-only calls: one for every (caller socket, callee socket, media node) placement.
    for caller_at in 0..3 {
        for callee_at in 0..3 {
            let media_node = (caller_at + callee_at) % 3;
            let tag = tags[media_node].clone();
            let name = format!("{caller_at}{callee_at}");
            let mut caller = nodes[caller_at]
                .prepared_user(&homed_on(&format!("caller-{name}"), media_node))
                .await;
            let mut callee = nodes[callee_at]
                .prepared_user(&format!("callee-{name}"))
                .await;
            let call =
                connected_call_where(&mut caller, &mut callee, options.partitions, |_, t| {
                    t == tag
                })
                .await;
            pairs.push(Pair {
                caller,
                callee,
                call,
                sockets: [caller_at, callee_at],
                media_node,
                moves: 0,
            });
        }
    }
    let started = Instant::now();
    for (restarted, id) in NODES.into_iter().enumerate() {
        let node = nodes.remove(restarted);
        let stop = Instant::now();
        let (status, exit) = node.terminate().await;
        assert!(
            status.success(),
            "{} exited with {status}",
            NODES[restarted]
        );
        let node = NodeProcess::start(&etcd, id, &options).await;
        nodes.insert(restarted, node);
        wait_converged(&nodes.iter().collect::<Vec<_>>(), options.partitions).await;
        println!(
            "{id}: exited {exit:?} after SIGTERM, cluster converged {:?} after SIGTERM",
            stop.elapsed()
        );
        // Clients of the restarted node resume elsewhere, in their call.
        let elsewhere = (restarted + 1) % 3;
        for pair in &mut pairs {
            for (side, at) in pair.sockets.into_iter().enumerate() {
                if at != restarted {
                    continue;
                }
                let user = if side == 0 {
                    &mut pair.caller
                } else {
                    &mut pair.callee
                };
                let resumed_call = resume_at(user, &nodes[elsewhere]).await;
                assert_eq!(resumed_call.as_ref(), Some(&pair.call), "{}", user.id);
                pair.sockets[side] = elsewhere;
            }
        }
        // Calls whose media ran on the restarted node moved: both parties join the new channel.
        for (i, pair) in pairs.iter_mut().enumerate() {
            if pair.media_node != restarted {
                continue;
            }
            let mut moved_to = String::new();
            for party in [&mut pair.caller, &mut pair.callee] {
                let (why, info) = party
                    .wait_state_text(CallState::Connected, CallStateReason::MediaMoved)
                    .await;
                assert_eq!(
                    why,
                    "the call's media moved to another node: join the call channel again"
                );
                moved_to = info.from_room_id;
            }
            let tag = moved_to
                .rsplit_once('@')
                .map(|(_, t)| t)
                .unwrap_or_default();
            pair.media_node = tags
                .iter()
                .position(|t| t == tag)
                .unwrap_or_else(|| panic!("{moved_to} is on a node of the cluster"));
            assert_ne!(pair.media_node, restarted, "moved off the leaving node");
            pair.moves += 1;
            if i == 0 {
                // The media call: fresh offers on the new channel, and video flows again both ways.
                let join = |user: &SdkUser| {
                    let (signal, channel) = (user.signal.clone(), moved_to.clone());
                    async move {
                        MediaSession::join(
                            &signal,
                            &channel,
                            ChannelRole::Broadcaster,
                            MediaOptions::default(),
                        )
                        .await
                        .expect("joins the moved channel with media")
                        .0
                    }
                };
                let rejoined = Instant::now();
                let last_frames = viewer_media.stats().video_frames_in;
                viewer_media = join(&pair.caller).await;
                host_media = join(&pair.callee).await;
                // What the move costs the media call: from its parties' rejoin to video again on the
                // new channel (printed, not asserted).
                more_video(&viewer_media, 1).await;
                println!(
                    "media call moved off {id}: video again {:?} after the rejoin began ({last_frames} frames before)",
                    rejoined.elapsed()
                );
            } else {
                for party in [&pair.caller, &pair.callee] {
                    party
                        .api
                        .join_call_channel()
                        .await
                        .expect("joins the moved channel");
                }
            }
        }
        let mut admin = admin_at(&nodes[elsewhere].grpc_url).await;
        for pair in &mut pairs {
            // "Try again" while its partition moves (the restarted node takes its share back).
            let call = eventually("the call is found", LIMIT, async || {
                match admin
                    .get_call(GetCallRequest {
                        app_id: DEMO_APP.into(),
                        call_id: pair.call.clone(),
                    })
                    .await
                {
                    Ok(call) => Ok(call.into_inner()),
                    Err(e) if e.code() == tonic::Code::Unavailable => Err(e),
                    Err(e) => panic!(
                        "call {} (sockets {:?}, media {}) runs on: {e}",
                        pair.call, pair.sockets, pair.media_node
                    ),
                }
            })
            .await;
            assert_eq!(call.phase(), CallPhase::Connected, "{call:?}");
            assert_eq!(
                (
                    ends_told(&pair.caller, &pair.call),
                    ends_told(&pair.callee, &pair.call)
                ),
                (0, 0),
                "nobody was told call {} ended",
                pair.call
            );
        }
        // The media call's media flows, both ways (through the restart, or again after its move).
        more_video(&viewer_media, 15).await;
        more_video(&host_media, 15).await;
    }
    println!("rolling restart of 3 nodes took {:?}", started.elapsed());

    // Every call is still there and hangs up as usual; the business server hears of each end once.
    for pair in &mut pairs {
        hang_up(&mut pair.caller, &mut pair.callee).await;
    }
    let mut admin = admin_at(&nodes[0].grpc_url).await;
    let mut events = admin
        .watch_events(WatchEventsRequest {
            after_cursor: Some(0),
            app_id: DEMO_APP.into(),
        })
        .await
        .expect("watch from the start accepted")
        .into_inner();
    let wanted: Vec<String> = pairs.iter().map(|p| p.call.clone()).collect();
    let ended = ends_of(&mut events, &wanted).await;
    let moves: usize = pairs.iter().map(|p| p.moves).sum();
    println!(
        "{} calls, none lost; their channels moved {moves} times",
        pairs.len()
    );
    for pair in &pairs {
        assert_eq!(ended[&pair.call], ["hangup"], "call {}", pair.call);
        assert_eq!(
            (
                ends_told(&pair.caller, &pair.call),
                ends_told(&pair.callee, &pair.call)
            ),
            (1, 1),
            "call {} (sockets {:?}, media {}): the caller saw {:#?}",
            pair.call,
            pair.sockets,
            pair.media_node,
            pair.caller.rec.seen()
        );
    }
}
