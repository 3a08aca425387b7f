//! The soak's users: each one a task with its own seeded RNG, logging in on a random node, doing a few
//! things and leaving again, over and over until told to stop.
//!
//! - A **host** owns one live room: logs in, goes live in it (a room with media publishes the SDK's
//!   sample), accepts every call that rings (joining the call's channel, with media if the caller asked
//!   for it), and after a few minutes goes offline — logging out, or now and then dropping the
//!   connection — to come back a little later.
//! - A **viewer** logs in, does one to four things — watches a live room for a while (signaling only, or
//!   with a light RTP probe in a room with media), or calls a host (with media for a share of calls):
//!   connected, held, then hung up, or *dropped* (the connection cut without a hangup, so the call and
//!   the session end only when the grace period runs out) — and logs out (or drops), then stays away a
//!   while. After a drop it stays away longer than the grace period, so the dropped session expires on
//!   the node rather than being resumed.
//!
//! On stop every user still online logs out (a dropped session still in its grace period expires
//! by itself), which is what brings the nodes back to their baseline.
//!
//! A refusal by the server (the host is busy or offline, a room without its host) is part of the load
//! and counted by its code; anything else (a timeout, a lost connection) is a client error, counted and
//! its first messages kept, and ends that user's session by dropping it.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use showcall_sdk::{
    CallState, CallType, ChannelRole, MediaOptions, MediaSession, MediaSource, PrepareConfig,
    ProbeOptions, RtpProbe, SdkError,
};
use tokio::sync::{Semaphore, watch};

use super::super::report::histogram;
use super::super::sdk_user::{CallUser, StateChange, publish};

/// The grace period the nodes run with (`--grace-period`): how long a dropped session, and its call,
/// wait for a reconnect.
pub(super) const GRACE: Duration = Duration::from_secs(30);
/// A viewer's time offline between sessions, seconds.
const VIEWER_AWAY_S: RangeInclusive<u64> = 5..=40;
/// How long a viewer watches a room or holds a connected call, seconds.
const HOLD_S: RangeInclusive<u64> = 5..=25;
/// A host's time live before going offline, seconds.
const HOST_LIVE_S: RangeInclusive<u64> = 120..=360;
/// A host's time offline between sessions, seconds.
const HOST_AWAY_S: RangeInclusive<u64> = 5..=20;
/// Share of connected calls the viewer drops instead of hanging up.
const CALL_DROP_SHARE: f64 = 0.15;
/// Share of sessions that end by a dropped connection instead of a logout.
const SESSION_DROP_SHARE: f64 = 0.1;
/// A ringing call ends by itself after the node's call timeout (15 s); waiting longer is a hang.
const RING_GUARD: Duration = Duration::from_secs(25);
/// Any other single step (join, connect, hang up, log out).
const STEP_GUARD: Duration = Duration::from_secs(20);
/// Connected calls with media at the same time, at most: each is two decoding SDK media sessions,
/// the costliest clients here, and the box has two cores for everything.
const MEDIA_CALLS_AT_ONCE: usize = 3;
/// RTP probes watching a room with media at the same time, at most.
const PROBES_AT_ONCE: usize = 12;
/// How many client error messages are kept word for word.
const KEPT_CLIENT_ERRORS: usize = 20;

/// One live room and whether its host publishes media in it.
pub(super) struct Room {
    pub name: String,
    pub media: bool,
}

/// Counts of what the users did, for the report.
#[derive(Default)]
pub(super) struct Counters {
    pub logins: AtomicU64,
    pub logouts: AtomicU64,
    pub sessions_dropped: AtomicU64,
    /// Users logged in now (by the bench's count).
    pub online: AtomicI64,
    pub calls_placed: AtomicU64,
    pub calls_accepted: AtomicU64,
    pub calls_connected: AtomicU64,
    pub calls_hung_up: AtomicU64,
    pub calls_dropped: AtomicU64,
    /// Calls that ended before connecting (busy, offline, rejected, timed out).
    pub calls_not_connected: AtomicU64,
    pub calls_with_media: AtomicU64,
    /// Video frames the viewers of media calls received.
    pub call_video_frames: AtomicU64,
    pub room_joins: AtomicU64,
    pub room_joins_with_probe: AtomicU64,
    /// RTP packets the probes received.
    pub probe_packets: AtomicU64,
    pub hosts_live: AtomicU64,
    pub client_errors: AtomicU64,
}

/// Mints a user's token.
pub(super) type TokenFactory = Box<dyn Fn(&str) -> anyhow::Result<String> + Send + Sync>;

/// What every user shares: where the nodes are, how to mint a token, the rooms, the media caps and
/// the counters.
pub(super) struct Churn {
    pub urls: Vec<String>,
    pub token: TokenFactory,
    pub rooms: Vec<Room>,
    /// What the host of a room with media publishes.
    pub clip: Arc<MediaSource>,
    pub media_share: f64,
    pub seed: u64,
    media_calls: Arc<Semaphore>,
    probes: Arc<Semaphore>,
    pub counters: Counters,
    /// Refusals by the server, by error code.
    pub refusals: Mutex<BTreeMap<String, u64>>,
    /// Calls that ended before connecting, by the caller's state reason.
    pub not_connected: Mutex<BTreeMap<String, u64>>,
    pub first_client_errors: Mutex<Vec<String>>,
    /// Login → logged in and prepared, µs.
    pub login_latency: Mutex<Histogram<u64>>,
    /// `call()` → the caller's `connected`, µs.
    pub connect_latency: Mutex<Histogram<u64>>,
}

impl Churn {
    pub fn new(
        urls: Vec<String>,
        token: TokenFactory,
        rooms: Vec<Room>,
        clip: Arc<MediaSource>,
        media_share: f64,
        seed: u64,
    ) -> Self {
        Self {
            urls,
            token,
            rooms,
            clip,
            media_share,
            seed,
            media_calls: Arc::new(Semaphore::new(MEDIA_CALLS_AT_ONCE)),
            probes: Arc::new(Semaphore::new(PROBES_AT_ONCE)),
            counters: Counters::default(),
            refusals: Mutex::default(),
            not_connected: Mutex::default(),
            first_client_errors: Mutex::default(),
            login_latency: Mutex::new(histogram()),
            connect_latency: Mutex::new(histogram()),
        }
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn client_error(&self, user: &str, error: &anyhow::Error) {
        Self::count(&self.counters.client_errors);
        let mut kept = self.first_client_errors.lock().expect("errors lock");
        if kept.len() < KEPT_CLIENT_ERRORS {
            kept.push(format!("{user}: {error:#}"));
        }
    }

    /// `Some(value)`; `None` for a refusal by the server, counted by its code; an error otherwise.
    fn unless_refused<T>(&self, result: Result<T, SdkError>) -> anyhow::Result<Option<T>> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(SdkError::Refused { code, .. }) => {
                *self
                    .refusals
                    .lock()
                    .expect("refusals lock")
                    .entry(code.as_str_name().to_owned())
                    .or_default() += 1;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn record(histogram: &Mutex<Histogram<u64>>, since: Instant) {
        let _ = histogram
            .lock()
            .expect("histogram lock")
            .record(since.elapsed().as_micros().max(1) as u64);
    }
}

/// Who a user is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Role {
    /// Hosts the room of this index.
    Host(usize),
    Viewer,
}

/// How a session ended.
enum SessionEnd {
    LogOut,
    /// The connection is cut without a word: the node keeps the session for its grace period.
    Drop,
}

/// The user id of host `room`, or of viewer `index`.
pub(super) fn user_id(role: Role, index: usize) -> String {
    match role {
        Role::Host(room) => format!("soak-host-{room}"),
        Role::Viewer => format!("soak-viewer-{index}"),
    }
}

/// FNV-1a: a stable hash of the user id (std's hasher may change between releases), so each user
/// draws its own stream from the run's seed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn seconds(rng: &mut StdRng, range: RangeInclusive<u64>) -> Duration {
    Duration::from_secs(rng.random_range(range))
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Runs one user until `stop` turns true; then it logs out if it is online.
pub(super) async fn user(
    churn: Arc<Churn>,
    role: Role,
    index: usize,
    mut stop: watch::Receiver<bool>,
) {
    let id = user_id(role, index);
    // One stream of choices per user, from the run's seed: the same seed repeats the same choices.
    let mut rng = StdRng::seed_from_u64(churn.seed ^ fnv1a(id.as_bytes()));
    // Hosts come first so their rooms are live; viewers arrive over the first half minute.
    let mut away = match role {
        Role::Host(_) => seconds(&mut rng, 0..=3),
        Role::Viewer => seconds(&mut rng, 3..=30),
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(away) => {}
            _ = stopped(&mut stop) => return,
        }
        let mut online: Option<CallUser> = None;
        let end = tokio::select! {
            end = session(&churn, role, &id, &mut rng, &mut online) => end,
            _ = stopped(&mut stop) => Ok(SessionEnd::LogOut),
        };
        let end = end.unwrap_or_else(|e| {
            churn.client_error(&id, &e);
            SessionEnd::Drop
        });
        let Some(user) = online else {
            // Stopped (or failed) before the login finished: nothing of it stays but a connection being
            // closed, whose session, if any, expires after the grace period.
            if *stop.borrow() {
                return;
            }
            away = seconds(&mut rng, VIEWER_AWAY_S);
            continue;
        };
        churn.counters.online.fetch_sub(1, Ordering::Relaxed);
        away = match end {
            SessionEnd::LogOut => {
                if let Err(e) = log_out(&user).await {
                    churn.client_error(&id, &e);
                }
                Churn::count(&churn.counters.logouts);
                match role {
                    Role::Host(_) => seconds(&mut rng, HOST_AWAY_S),
                    Role::Viewer => seconds(&mut rng, VIEWER_AWAY_S),
                }
            }
            SessionEnd::Drop => {
                user.signal.abort();
                Churn::count(&churn.counters.sessions_dropped);
                // Away past the grace period: the dropped session expires rather than resumes.
                GRACE + seconds(&mut rng, 5..=15)
            }
        };
        drop(user);
        if *stop.borrow() {
            return;
        }
    }
}

async fn log_out(user: &CallUser) -> anyhow::Result<()> {
    tokio::time::timeout(STEP_GUARD, user.signal.logout())
        .await
        .context("logout: no answer")?
        .context("logout")
}

/// Logs in on a random node and plays the role once; the logged-in user is left in `online` for the
/// caller to log out or drop, also when this future is dropped half-way.
async fn session(
    churn: &Churn,
    role: Role,
    id: &str,
    rng: &mut StdRng,
    online: &mut Option<CallUser>,
) -> anyhow::Result<SessionEnd> {
    let url = &churn.urls[rng.random_range(0..churn.urls.len())];
    let token = (churn.token)(id)?;
    let started = Instant::now();
    let prepare = PrepareConfig {
        // A signaling-only call connects when both parties joined its channel; a call with media
        // then carries media too, but its connected state does not depend on it.
        first_frame_waiting_disabled: true,
        ..PrepareConfig::default()
    };
    let user = tokio::time::timeout(STEP_GUARD, CallUser::prepared_with(url, &token, prepare))
        .await
        .context("login: no answer")??;
    Churn::record(&churn.login_latency, started);
    Churn::count(&churn.counters.logins);
    churn.counters.online.fetch_add(1, Ordering::Relaxed);
    let user = online.insert(user);
    match role {
        Role::Host(room) => host(churn, &churn.rooms[room], rng, user).await,
        Role::Viewer => viewer(churn, rng, user).await,
    }
}

fn ending(rng: &mut StdRng) -> SessionEnd {
    if rng.random_bool(SESSION_DROP_SHARE) {
        SessionEnd::Drop
    } else {
        SessionEnd::LogOut
    }
}

/// The next state change of call `call_id` to one of `states`, within `guard`.
async fn wait_states(
    user: &mut CallUser,
    call_id: &str,
    states: &[CallState],
    guard: Duration,
) -> anyhow::Result<StateChange> {
    tokio::time::timeout(guard, async {
        loop {
            let change = user.next_change().await.context("call API gone")?;
            let this_call = change.info.call_id.is_empty() || change.info.call_id == call_id;
            if this_call && states.contains(&change.state) {
                return Ok(change);
            }
        }
    })
    .await
    .with_context(|| format!("call {call_id}: none of {states:?} within {guard:?}"))?
}

async fn host(
    churn: &Churn,
    room: &Room,
    rng: &mut StdRng,
    user: &mut CallUser,
) -> anyhow::Result<SessionEnd> {
    let publisher = if room.media {
        Some(publish(&user.signal, &room.name, churn.clip.clone()).await?)
    } else {
        let joined = user
            .signal
            .join_channel(&room.name, ChannelRole::Broadcaster)
            .await;
        churn.unless_refused(joined)?;
        None
    };
    Churn::count(&churn.counters.hosts_live);
    let offline_at = tokio::time::Instant::now() + seconds(rng, HOST_LIVE_S);
    loop {
        let Ok(change) = tokio::time::timeout_at(offline_at, user.next_change()).await else {
            break;
        };
        let change = change.context("call API gone")?;
        if change.state != CallState::Calling {
            continue;
        }
        let call_id = change.info.call_id.clone();
        if churn
            .unless_refused(user.api.accept_with_call_id(&call_id).await)?
            .is_none()
        {
            continue;
        }
        Churn::count(&churn.counters.calls_accepted);
        let with_media = change.info.extension.get("media").map(String::as_str) == Some("1");
        let media = join_call(churn, user, &change.info.from_room_id, with_media).await?;
        // The viewer hangs up, or drops and the call ends when its grace period runs out.
        let longest = GRACE + Duration::from_secs(*HOLD_S.end()) + STEP_GUARD;
        wait_states(
            user,
            &call_id,
            &[CallState::Prepared, CallState::Failed],
            longest,
        )
        .await?;
        if let Some(media) = media {
            media.close();
        }
    }
    if let Some(publisher) = publisher {
        publisher.close();
    }
    churn.unless_refused(user.signal.leave_channel(&room.name).await)?;
    Ok(ending(rng))
}

async fn viewer(
    churn: &Churn,
    rng: &mut StdRng,
    user: &mut CallUser,
) -> anyhow::Result<SessionEnd> {
    for _ in 0..rng.random_range(1..=4) {
        if rng.random_bool(0.5) {
            watch(churn, rng, user).await?;
        } else if call(churn, rng, user).await? {
            return Ok(SessionEnd::Drop);
        }
    }
    Ok(ending(rng))
}

/// Watches a random room for a while, with a probe if it has media and a probe is free.
async fn watch(churn: &Churn, rng: &mut StdRng, user: &mut CallUser) -> anyhow::Result<()> {
    let room = &churn.rooms[rng.random_range(0..churn.rooms.len())];
    let hold = seconds(rng, HOLD_S);
    let permit = room
        .media
        .then(|| churn.probes.clone().try_acquire_owned().ok())
        .flatten();
    let probe = if permit.is_some() {
        let options = ProbeOptions {
            // Summaries only: the bench counts packets, it keeps none.
            keep_packets: 0,
            ..ProbeOptions::default()
        };
        let joined = RtpProbe::join(&user.signal, &room.name, options).await;
        let Some((probe, _)) = churn.unless_refused(joined)? else {
            return Ok(());
        };
        Churn::count(&churn.counters.room_joins_with_probe);
        Some(probe)
    } else {
        let joined = user
            .signal
            .join_channel(&room.name, ChannelRole::Audience)
            .await;
        if churn.unless_refused(joined)?.is_none() {
            return Ok(());
        }
        None
    };
    Churn::count(&churn.counters.room_joins);
    tokio::time::sleep(hold).await;
    let left = tokio::time::timeout(STEP_GUARD, user.signal.leave_channel(&room.name))
        .await
        .context("leave: no answer")?;
    churn.unless_refused(left)?;
    if let Some(probe) = probe {
        let stats = probe.stats();
        churn
            .counters
            .probe_packets
            .fetch_add(stats.audio_packets + stats.video_packets, Ordering::Relaxed);
        probe.close();
    }
    drop(permit);
    Ok(())
}

/// Calls a random host; connected, the call is held, then hung up or dropped. `Ok(true)` when dropped
/// (the session is then to be cut).
async fn call(churn: &Churn, rng: &mut StdRng, user: &mut CallUser) -> anyhow::Result<bool> {
    let host = user_id(Role::Host(rng.random_range(0..churn.rooms.len())), 0);
    let hold = seconds(rng, HOLD_S);
    let drop_it = rng.random_bool(CALL_DROP_SHARE);
    let permit = rng
        .random_bool(churn.media_share)
        .then(|| churn.media_calls.clone().try_acquire_owned().ok())
        .flatten();
    let extension = HashMap::from([(
        "media".to_owned(),
        if permit.is_some() { "1" } else { "0" }.to_owned(),
    )]);
    // Changes left from before (the prepare, an earlier call) would answer the waits below.
    user.discard_changes();
    let started = Instant::now();
    Churn::count(&churn.counters.calls_placed);
    let created =
        tokio::time::timeout(STEP_GUARD, user.api.call(&host, CallType::Video, extension))
            .await
            .context("call: no answer")?;
    let Some(created) = churn.unless_refused(created)? else {
        Churn::count(&churn.counters.calls_not_connected);
        return Ok(false);
    };
    let call_id = created.call_id;
    let answered = wait_states(
        user,
        &call_id,
        &[
            CallState::Connecting,
            CallState::Prepared,
            CallState::Failed,
        ],
        RING_GUARD,
    )
    .await?;
    if answered.state != CallState::Connecting {
        not_connected(churn, &answered);
        return Ok(false);
    }
    let media = join_call(churn, user, &answered.info.from_room_id, permit.is_some()).await?;
    let connected = wait_states(
        user,
        &call_id,
        &[CallState::Connected, CallState::Prepared, CallState::Failed],
        STEP_GUARD,
    )
    .await?;
    if connected.state != CallState::Connected {
        not_connected(churn, &connected);
        return Ok(false);
    }
    Churn::record(&churn.connect_latency, started);
    Churn::count(&churn.counters.calls_connected);
    if media.is_some() {
        Churn::count(&churn.counters.calls_with_media);
    }
    tokio::time::sleep(hold).await;
    if let Some(media) = &media {
        churn
            .counters
            .call_video_frames
            .fetch_add(media.stats().video_frames_in, Ordering::Relaxed);
    }
    if drop_it {
        Churn::count(&churn.counters.calls_dropped);
        return Ok(true);
    }
    let hung_up = tokio::time::timeout(STEP_GUARD, user.api.hangup_with_call_id(&call_id, "soak"))
        .await
        .context("hangup: no answer")?;
    if churn.unless_refused(hung_up)?.is_some() {
        wait_states(
            user,
            &call_id,
            &[CallState::Prepared, CallState::Failed],
            STEP_GUARD,
        )
        .await?;
        Churn::count(&churn.counters.calls_hung_up);
    }
    if let Some(media) = media {
        media.close();
    }
    drop(permit);
    Ok(false)
}

/// Joins the call's `channel`: with a media session when `with_media`, else signaling only. A refusal is
/// counted and yields no session.
async fn join_call(
    churn: &Churn,
    user: &CallUser,
    channel: &str,
    with_media: bool,
) -> anyhow::Result<Option<MediaSession>> {
    if with_media {
        let joined = MediaSession::join(
            &user.signal,
            channel,
            ChannelRole::Broadcaster,
            MediaOptions::default(),
        )
        .await;
        Ok(churn.unless_refused(joined)?.map(|(media, _)| media))
    } else {
        churn.unless_refused(user.api.join_call_channel().await)?;
        Ok(None)
    }
}

fn not_connected(churn: &Churn, change: &StateChange) {
    Churn::count(&churn.counters.calls_not_connected);
    *churn
        .not_connected
        .lock()
        .expect("not connected lock")
        .entry(format!("{:?}", change.reason))
        .or_default() += 1;
}
