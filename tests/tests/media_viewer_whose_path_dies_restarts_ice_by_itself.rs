//! A viewer whose media path goes dead under it — its network drops for a while, signaling stays — restarts
//! ICE by itself and watches again, without the app doing anything and without leaving the room: the Rust
//! SDK's silence watch (nothing from the node for `SILENCE_BEFORE_RESTART`, 6 s) sends the restart over
//! signaling, and once the path is back the session's new checks get through and video resumes on the
//! same session. The explicit restart (`MediaSession::restart_ice`) is `media_viewer_network_change_restarts_ice`.
//!
//! The dead path is made by topology: the viewer runs inside a network namespace (`IsolatedHost`); the
//! node's signaling listens on the link's first address and its media on a second one
//! (`add_outside_address`). Taking that second address away makes every media datagram to it undeliverable
//! while signaling goes on; giving it back revives the path. The test gives it back once the viewer has
//! restarted (the node answered and the session applied the answer: `MediaStats::ice_restarts`), so what
//! it shows is the restart bringing the session back, not the old path simply coming back to life. The
//! host publishes from outside and loses its path too; it restarts by itself the same way, and often
//! first — which is why the test waits for the viewer's own restart rather than the node's count of
//! restarts (`showcall_media_ice_restarts_total`, checked at the end).
//!
//! Needs root (network namespaces).

use showcall_sdk::ChannelRole;
use showcall_sdk::media::{MediaOptions, MediaSession, MediaStats};
use showcall_tests::DEADLINE;
use showcall_tests::cluster::eventually;
use showcall_tests::netns::MediaPathThatDies;
use showcall_tests::prometheus::scrape;
use showcall_tests::sdk_helpers::SdkUser;
use tokio::sync::oneshot;

const LIVE: &str = "host_live";
/// Video frames that show a viewer is watching: a second of the host's 30 fps.
const FRAMES: u64 = 30;
const ICE_RESTARTS: &str = "showcall_media_ice_restarts_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_whose_media_path_dies_restarts_ice_by_itself_and_watches_again() {
    let world = MediaPathThatDies::start().await;
    let (network, node) = (&world.network, &world.node);
    let host = SdkUser::login(node, "host").await;
    let _host_media = host.join_media(LIVE, ChannelRole::Broadcaster).await;

    let (url, app, token) = (node.url(), node.app().to_owned(), node.token("fan-1"));
    let inside = network.inside_ip;
    let (watching_tx, watching) = oneshot::channel::<MediaStats>();
    let (restarted_tx, restarted) = oneshot::channel::<()>();
    let (path_back_tx, path_back) = oneshot::channel::<()>();
    let viewer = network.run_inside(async move || {
        let viewer = SdkUser::login_at(&url, &app, "fan-1", &token).await;
        let (media, _) = MediaSession::join(
            &viewer.signal,
            LIVE,
            ChannelRole::Audience,
            MediaOptions {
                bind_ip: inside.into(),
                ..MediaOptions::default()
            },
        )
        .await
        .expect("the viewer joins with media");
        let before =
            within(media.wait_for(|s| s.video_keyframes_in >= 1 && s.video_frames_in >= FRAMES))
                .await;
        watching_tx.send(before.clone()).expect("the test waits");
        // The silence watch restarts while the path is still dead.
        within(media.wait_for(|s| s.ice_restarts >= 1)).await;
        restarted_tx.send(()).expect("the test waits");
        path_back.await.expect("the test gives the path back");
        let after = within(media.wait_for(|s| {
            s.ice_restarts >= 1
                && s.video_frames_in >= before.video_frames_in + FRAMES
                && s.video_keyframes_in > before.video_keyframes_in
        }))
        .await;
        (before, after)
    });
    let outside_world = async {
        let before = watching.await.expect("the viewer watches");
        assert_eq!(before.ice_restarts, 0);
        world.kill();
        // The viewer's silence watch restarts ICE over signaling; the node answers it.
        restarted.await.expect("the viewer restarts");
        world.revive();
        path_back_tx.send(()).expect("the viewer waits");
    };
    let ((before, after), ()) = tokio::join!(viewer, outside_world);

    assert!(after.connected, "connected again: {after:?}");
    assert!(
        after.ice_restarts >= 1,
        "it restarted ICE by itself: {after:?}"
    );
    assert!(
        after.video_frames_in >= before.video_frames_in + FRAMES,
        "video again after the restart: {before:?} → {after:?}"
    );
    // An operator sees it: the node counts the restarts it answered (the host's too, when its silence
    // watch fired before the path came back).
    eventually(
        "the node counted the viewer's ICE restart",
        DEADLINE,
        async || match scrape(node.handle.http_addr).await.get(ICE_RESTARTS) {
            n if n >= 1.0 => Ok(n),
            n => Err(n),
        },
    )
    .await;
}

/// `wait` within the test's deadline, on a session that stays alive.
async fn within(
    wait: impl std::future::Future<Output = Result<MediaStats, showcall_sdk::SdkError>>,
) -> MediaStats {
    tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("within the deadline")
        .expect("the session lives")
}
