//! `UserMachine`: one user's session — connection, token lifetime, readiness for calls, the call it is in,
//! the channels it is in, and the numbered stream of events its client receives.
//!
//! Decisions:
//! - **One connection per user.** A second login replaces the first (closed with `Replaced`).
//! - **Grace period.** When the connection drops the session stays for `grace_ms`: the call goes on (the peer
//!   is told `remoteLeft`), events are buffered (up to [`AWAY_BUFFER`]) and replayed on resume. A login within
//!   grace resumes everything; past grace the call ends (`remoteLeft` for the peer), channels are left and the
//!   session is gone. A user who is away counts as offline for new calls.
//! - **Busy and glare.** A user in any call is busy. If A and B call each other at once (each is the caller of
//!   a ringing call to the other), the call placed by the user with the smaller user id wins: the other user's
//!   outgoing call ends for it with `glareResolved` and it rings for the winning call instead. Both users decide
//!   alone and agree, because the rule depends only on the two ids. The losing call's ring may reach the winner
//!   before the winner's own Call does (the clients sent both at once): the winner then withdraws the call
//!   ringing it (its client sees that call end with `glareResolved`) and places its own; the loser's call
//!   ends with `glareResolved` all the same. A loser whose Call arrives after the winning call rang it is refused with
//!   [`UserError::AlreadyInCall`]: its call would lose anyway.
//! - **Call ids.** Every call command names a call id; one that is not this user's current call is refused
//!   with [`UserError::NoSuchCall`]. Updates from calls other than the current one are dropped, so a late
//!   message from an old call never reaches the client — except the end event and onCallDisconnected the
//!   call sends right after its final `prepared` state.
//! - **Tokens.** A warning event `token_warning_ms` before expiry; at expiry the session closes and a call in
//!   progress ends (`tokenExpired` for this user). RenewToken moves both deadlines.

mod snapshot;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use snapshot::{USER_SNAPSHOT_VERSION, UserSnapshot, UserSnapshotError};

use crate::call::{CallInput, CallSetup, CallUpdate, SessionEnd, Undeliverable};
use crate::channel::{ChannelInput, ChannelUpdate};
use crate::types::{
    CallEvent, CallId, CallState, CallType, ChannelName, ConnId, EventInfo, Millis, PauseAt, Role,
    Side, StateReason, UserId,
};

/// Events buffered while the connection is away; older ones are dropped first (the resume snapshot still
/// carries the call's current state).
pub const AWAY_BUFFER: usize = 256;

/// Per-node settings every user machine follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserConfig {
    /// How long a dropped session is kept for a reconnect.
    pub grace_ms: u64,
    /// How long before token expiry the client is warned.
    pub token_warning_ms: u64,
    /// Calling timeout when neither PrepareForCall nor Call sets one.
    pub default_call_timeout_ms: u64,
    pub pause_at: PauseAt,
    /// How long a connected call whose actor's node died waits to be taken over by the call's new owner
    /// before this user ends it (see [`UserInput::CallOwnerLost`]).
    pub takeover_wait_ms: u64,
    /// Billing tick period of the calls this user places (0 = no ticks); see `call::billing`.
    pub billing_tick_ms: u64,
}

impl Default for UserConfig {
    fn default() -> Self {
        Self {
            grace_ms: 30_000,
            token_warning_ms: 30_000,
            default_call_timeout_ms: 15_000,
            pause_at: PauseAt::Accept,
            takeover_wait_ms: 15_000,
            billing_tick_ms: 60_000,
        }
    }
}

/// What a user is doing, coarsest first (what the business server's presence lists show).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Presence {
    /// Has a session (possibly in its grace period), not live, not in a call.
    Online,
    /// Broadcasting in a live room.
    Live,
    /// In a call (ringing, connecting or connected).
    InCall,
}

/// The user's call settings (PrepareForCall).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    pub extension: BTreeMap<String, String>,
    /// `None` = the node default; `Some(0)` = no timeout.
    pub call_timeout_ms: Option<u64>,
    pub first_frame_waiting_disabled: bool,
}

/// A client command about the current call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallCommand {
    Cancel,
    Accept,
    Reject { reason: String },
    Hangup { reason: String },
}

/// Why a connection is closed by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    TokenExpired,
    Replaced,
    LoggedOut,
    /// The node running this session's actor is gone: reconnect and log in again (to any node).
    NodeLost,
}

/// What the client is told (numbered by [`Pushed::seq`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientEvent {
    Call {
        call_id: CallId,
        update: CallUpdate,
    },
    Channel {
        channel: ChannelName,
        update: ChannelUpdate,
    },
    TokenWillExpire {
        expires_at: Millis,
    },
    SessionClosed {
        reason: CloseReason,
    },
    /// onCallError: the business server removed this user from `channel` (kick or ban). `call_id` is the
    /// user's call when the channel is its call channel (that call ends too), else empty.
    Kicked {
        channel: ChannelName,
        call_id: Option<CallId>,
        /// Seconds until the user may join again; 0 = only kicked, not banned.
        ban_seconds: u64,
    },
}

/// The error code CallAPI apps know for "removed from the RTC channel by the server" (onCallError with
/// rtcOccurError / rtc, as the seed's business server flow expects).
pub const KICKED_ERROR_CODE: i32 = 123;

/// One numbered event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    pub seq: u64,
    pub at: Millis,
    pub event: ClientEvent,
}

/// Inputs to a [`UserMachine`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserInput {
    /// A connection logged in with a valid token.
    Login {
        conn: ConnId,
        token_expires_at: Millis,
    },
    /// That connection dropped (no logout).
    ConnectionLost {
        conn: ConnId,
    },
    Logout {
        conn: ConnId,
    },
    RenewToken {
        token_expires_at: Millis,
    },
    Prepare(Prepared),
    /// Client Deinitialize: stop taking calls until the next Prepare.
    Unprepare,
    /// Client Call command; the ids were minted by the actor.
    StartCall {
        callee: UserId,
        call_type: CallType,
        extension: BTreeMap<String, String>,
        /// `None` = the prepared default; `Some(0)` = no timeout.
        timeout_ms: Option<u64>,
        call_id: CallId,
        channel: ChannelName,
    },
    /// A call asks this user to ring. `info` is the callee's view. A user free to take it tells its
    /// client `calling` and `remoteVideoCall`/`remoteAudioCall` at once, and answers
    /// `Delivered { announced: true }`.
    Ring {
        info: EventInfo,
    },
    /// Client command for a call.
    Command {
        call_id: CallId,
        command: CallCommand,
    },
    /// A call tells this user something.
    CallUpdate {
        call_id: CallId,
        update: CallUpdate,
    },
    /// A call tells this user several things of one of its steps, in order: handled as that many
    /// `CallUpdate`s, its pushes together. (Wire 1.1: a node that reads 1.0 is sent one `CallUpdate`
    /// each.)
    CallUpdates {
        call_id: CallId,
        updates: Vec<CallUpdate>,
    },
    /// The call's actor is gone for good (the node running it died): the call ends here, for this user,
    /// as if the server had ended it (`EndedByServer`, with `reason`), with a disconnect if it was
    /// connected.
    CallLost {
        call_id: CallId,
        reason: String,
    },
    /// The node running the call's actor died. A connected call may be restored by the call's new owner
    /// from its record (it asks with [`UserInput::CallAdopted`]); the user keeps it for
    /// [`UserConfig::takeover_wait_ms`] and then gives up on it as for `CallLost`. A call that had not
    /// connected has no record: it is lost at once.
    CallOwnerLost {
        call_id: CallId,
    },
    /// The actor of the call this user just started could not be started (its partition was between
    /// owners, or its node did not answer): the call never existed. The client's `Call` is answered
    /// with the error; the user is free to call again at once.
    CallNotStarted {
        call_id: CallId,
    },
    /// A call restored on a new node asks whether it is still this user's call; the answer goes back to
    /// it as `CallInput::PartyPresent`.
    CallAdopted {
        call_id: CallId,
    },
    /// Client JoinChannel, before the channel decides. The token's publish grant and the media offer
    /// travel with it to the channel.
    JoinChannel {
        channel: ChannelName,
        role: Role,
        #[serde(default)]
        may_publish: bool,
        #[serde(default)]
        offer: Option<String>,
    },
    /// The channel admitted this user.
    ChannelJoined {
        channel: ChannelName,
        role: Role,
        /// The channel's broadcasters at the join, this user left out (wire 1.5; absent from a 1.4
        /// channel, whose members are then not told of its broadcasters when its node dies).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        broadcasters: Vec<UserId>,
    },
    /// Client LeaveChannel.
    LeaveChannel {
        channel: ChannelName,
    },
    /// The channel removed this user: a call's channel closed at the call's end, or a live room given
    /// up (its node died and it did not reopen within the grace period). For a live room the client is
    /// told it is out (`memberLeft` naming this user); a call's end is told by the call.
    ChannelRemoved {
        channel: ChannelName,
    },
    /// The node running `channel`'s actor died (its lease expired): the channel's broadcasters this
    /// session knows of are gone with it, and the client is told each left (`memberLeft`). The
    /// membership stays: a live room reopens when its host joins again, and a viewer whose media
    /// session an edge kept is a member of it again without joining (it is told who broadcasts then,
    /// `memberJoined`). Fed by the session's actor from the node's loss; never sent between nodes.
    ChannelLost {
        channel: ChannelName,
    },
    /// The business server kicked this user out of the channel (the channel already dropped it).
    Kicked {
        channel: ChannelName,
        ban_seconds: u64,
    },
    /// A channel tells this user something.
    ChannelUpdate {
        channel: ChannelName,
        update: ChannelUpdate,
    },
    Timer(UserTimer),
}

/// Timers a user arms. Stale firings are recognised by the machine (it checks its own deadlines), so the
/// actor never needs to cancel precisely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserTimer {
    TokenWarning,
    TokenExpiry,
    Grace,
    /// The wait for a lost call's takeover is over.
    Takeover,
}

impl UserInput {
    /// What the call that sent this input hears when no session of `user` exists to take it (the
    /// outbox found nobody: no actor here, nor on the owner it was sent to, nor an owner in time): a
    /// ring nobody can take is `Undeliverable(Offline)` — the caller hears so at once, not after the
    /// calling timeout — and a restored call's question finds the party absent. `None` for inputs that
    /// wait for no answer. The call actor and the router both answer with this; the rule lives here.
    pub fn unreachable_answer(&self, user: &UserId) -> Option<(CallId, CallInput)> {
        match self {
            UserInput::Ring { info } => Some((
                info.call_id.clone(),
                CallInput::Undeliverable(Undeliverable::Offline),
            )),
            UserInput::CallAdopted { call_id } => Some((
                call_id.clone(),
                CallInput::PartyPresent {
                    user: user.clone(),
                    present: false,
                },
            )),
            _ => None,
        }
    }
}

/// Effects the user actor carries out, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserEffect {
    /// Send to the live connection.
    Push(Pushed),
    /// Close a connection (after pushing its SessionClosed event).
    Close { conn: ConnId, reason: CloseReason },
    /// Create the call actor and start it.
    SpawnCall(CallSetup),
    /// Tell a call something (no reply expected).
    ToCall { call_id: CallId, input: CallInput },
    /// Forward a client's command to its call; the call's verdict is the client's answer.
    CommandCall { call_id: CallId, input: CallInput },
    /// Forward a join to the channel; the channel's verdict is the client's answer.
    JoinChannel {
        channel: ChannelName,
        role: Role,
        may_publish: bool,
        offer: Option<String>,
    },
    /// Leave a channel (no answer needed).
    LeaveChannel { channel: ChannelName },
    /// Tell a channel something on behalf of a call this user gave up on (close its call channel, resume
    /// this user's paused live rooms).
    ToChannel {
        channel: ChannelName,
        input: ChannelInput,
    },
    /// Arm `timer`, due at `at` (Unix ms, the clock `now` is read from). Timers are never cancelled:
    /// one that fires when its condition no longer holds does nothing.
    SetTimer { timer: UserTimer, at: Millis },
    /// The session is over: the actor stops.
    Stop,
}

/// A refused input; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum UserError {
    #[error("prepare for calls first")]
    NotPrepared,
    #[error("already in a call")]
    AlreadyInCall,
    #[error("cannot call yourself")]
    CallToSelf,
    #[error("no such call for this user")]
    NoSuchCall,
    #[error("not in channel")]
    NotInChannel,
    #[error("connection is not this session's")]
    NotThisConnection,
    #[error("session is closed")]
    Closed,
}

/// The call this user is in, as it was last told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveCall {
    pub id: CallId,
    pub side: Side,
    pub peer: UserId,
    pub channel: ChannelName,
    pub state: CallState,
    pub info: Option<EventInfo>,
}

impl ActiveCall {
    /// Whether `update` says what [`UserMachine::ring`] already told the callee's client: `calling`,
    /// or the `remoteVideoCall`/`remoteAudioCall` event, while the call still rings.
    fn announced_by_ring(&self, update: &CallUpdate) -> bool {
        if self.side != Side::Callee || self.state != CallState::Calling {
            return false;
        }
        match update {
            CallUpdate::State { state, .. } => *state == CallState::Calling,
            CallUpdate::Event { event, .. } => {
                matches!(
                    event,
                    CallEvent::RemoteVideoCall | CallEvent::RemoteAudioCall
                )
            }
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Session {
    /// Not logged in yet (a fresh machine).
    New,
    Online(ConnId),
    Away {
        since: Millis,
    },
    Closed,
}

/// One user's session. See the module docs.
#[derive(Clone, Debug)]
pub struct UserMachine {
    user: UserId,
    config: UserConfig,
    session: Session,
    token_expires_at: Millis,
    /// Whether the warning for the current token was sent.
    warned: bool,
    prepared: Option<Prepared>,
    call: Option<ActiveCall>,
    /// The call whose final state was just delivered: the updates the call sends right after it (its end
    /// event, onCallDisconnected) still reach the client; nothing else from an old call does.
    just_ended: Option<CallId>,
    channels: BTreeMap<ChannelName, Role>,
    /// Who broadcasts in each of `channels` (this user left out), as the channel said at the join and
    /// in its updates since: the members the client is told left when the channel's node dies.
    broadcasters: BTreeMap<ChannelName, BTreeSet<UserId>>,
    /// Joins sent to a channel and not yet confirmed. A session that ends meanwhile leaves these too (the
    /// leave follows the join into the channel), or the channel would keep a member no session runs.
    joining: BTreeSet<ChannelName>,
    /// Last event number handed out.
    seq: u64,
    /// Events produced while away, replayed on resume.
    buffered: Vec<Pushed>,
    /// True when the last login resumed an away session.
    resumed: bool,
    /// The current call, while its actor's node is dead and a takeover may still come.
    orphaned: Option<CallId>,
}

impl UserMachine {
    pub fn new(user: UserId, config: UserConfig) -> Self {
        Self {
            user,
            config,
            session: Session::New,
            token_expires_at: 0,
            warned: false,
            prepared: None,
            call: None,
            just_ended: None,
            channels: BTreeMap::new(),
            broadcasters: BTreeMap::new(),
            joining: BTreeSet::new(),
            seq: 0,
            buffered: Vec::new(),
            resumed: false,
            orphaned: None,
        }
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// Whether the user takes calls now (prepared, and not deinitialized since).
    pub fn is_prepared(&self) -> bool {
        self.prepared.is_some()
    }

    /// Whether the session is in its grace period (connection dropped, not yet resumed).
    pub fn is_away(&self) -> bool {
        matches!(self.session, Session::Away { .. })
    }

    /// The call this user is in.
    /// What this user is doing: in a call (ringing included), else live when broadcasting in a live
    /// room, else online.
    pub fn presence(&self) -> Presence {
        if self.call.is_some() {
            Presence::InCall
        } else if self.live_channels().is_empty() {
            Presence::Online
        } else {
            Presence::Live
        }
    }

    pub fn call(&self) -> Option<&ActiveCall> {
        self.call.as_ref()
    }

    pub fn channels(&self) -> impl Iterator<Item = (&ChannelName, Role)> {
        self.channels.iter().map(|(c, r)| (c, *r))
    }

    /// True when the last login resumed an away session.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    pub fn token_expires_at(&self) -> Millis {
        self.token_expires_at
    }

    /// The connection events go to, if any.
    pub fn connection(&self) -> Option<ConnId> {
        match self.session {
            Session::Online(c) => Some(c),
            _ => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.session == Session::Closed
    }

    /// Feeds one input. On `Err` nothing changed.
    pub fn handle(&mut self, input: UserInput, now: Millis) -> Result<Vec<UserEffect>, UserError> {
        if self.session == Session::Closed {
            return Err(UserError::Closed);
        }
        let mut fx = Vec::new();
        match input {
            UserInput::Login {
                conn,
                token_expires_at,
            } => self.login(conn, token_expires_at, &mut fx),
            UserInput::ConnectionLost { conn } => {
                if self.session != Session::Online(conn) {
                    return Err(UserError::NotThisConnection);
                }
                self.session = Session::Away { since: now };
                fx.push(UserEffect::SetTimer {
                    timer: UserTimer::Grace,
                    at: now + self.config.grace_ms,
                });
                if let Some(call) = &self.call {
                    fx.push(UserEffect::ToCall {
                        call_id: call.id.clone(),
                        input: CallInput::PeerAway {
                            user: self.user.clone(),
                        },
                    });
                }
            }
            UserInput::Logout { conn } => {
                if self.session != Session::Online(conn) {
                    return Err(UserError::NotThisConnection);
                }
                self.end_session(
                    SessionEnd::LoggedOut,
                    Some(CloseReason::LoggedOut),
                    now,
                    &mut fx,
                );
            }
            UserInput::RenewToken { token_expires_at } => {
                self.arm_token(token_expires_at, &mut fx);
            }
            UserInput::Prepare(prepared) => {
                if self.call.is_some() {
                    return Err(UserError::AlreadyInCall);
                }
                if self.prepared.replace(prepared).is_none() {
                    // CallAPI apps hear onCallStateChanged(prepared) when they become callable; a
                    // second Prepare only changes the settings.
                    self.push(prepared_event(), now, &mut fx);
                }
            }
            UserInput::Unprepare => {
                if self.call.is_some() {
                    return Err(UserError::AlreadyInCall);
                }
                self.prepared = None;
            }
            UserInput::StartCall {
                callee,
                call_type,
                extension,
                timeout_ms,
                call_id,
                channel,
            } => {
                let Some(prepared) = &self.prepared else {
                    return Err(UserError::NotPrepared);
                };
                if callee == self.user {
                    return Err(UserError::CallToSelf);
                }
                // Glare seen from the winner's side: the loser's call rang us before our own Call arrived.
                let withdraw_ringing = match &self.call {
                    None => false,
                    Some(current)
                        if current.side == Side::Callee
                            && current.peer == callee
                            && current.state == CallState::Calling
                            && self.user < callee =>
                    {
                        true
                    }
                    Some(_) => return Err(UserError::AlreadyInCall),
                };
                let mut merged = prepared.extension.clone();
                merged.extend(extension.clone());
                let timeout = timeout_ms
                    .or(prepared.call_timeout_ms)
                    .unwrap_or(self.config.default_call_timeout_ms);
                let setup = CallSetup {
                    id: call_id.clone(),
                    channel: channel.clone(),
                    caller: self.user.clone(),
                    callee: callee.clone(),
                    call_type,
                    extension: merged,
                    call_extension: extension,
                    timeout_ms: (timeout > 0).then_some(timeout),
                    first_frame_waiting_disabled: prepared.first_frame_waiting_disabled,
                    pause_at: self.config.pause_at,
                    caller_live: self.live_channels(),
                    // Whether the app requires admission is the call actor's to say (per app, from its node).
                    admission_timeout_ms: None,
                    billing_tick_ms: (self.config.billing_tick_ms > 0)
                        .then_some(self.config.billing_tick_ms),
                };
                if withdraw_ringing {
                    self.withdraw_glare_loser(now, &mut fx);
                }
                self.call = Some(ActiveCall {
                    id: call_id,
                    side: Side::Caller,
                    peer: callee,
                    channel,
                    state: CallState::Calling,
                    info: None,
                });
                fx.push(UserEffect::SpawnCall(setup));
            }
            UserInput::Ring { info } => self.ring(info, now, &mut fx),
            UserInput::Command { call_id, command } => {
                if self.call.as_ref().is_none_or(|c| c.id != call_id) {
                    return Err(UserError::NoSuchCall);
                }
                let by = self.user.clone();
                let input = match command {
                    CallCommand::Cancel => CallInput::Cancel { by },
                    CallCommand::Accept => CallInput::Accept { by },
                    CallCommand::Reject { reason } => CallInput::Reject { by, reason },
                    CallCommand::Hangup { reason } => CallInput::Hangup { by, reason },
                };
                fx.push(UserEffect::CommandCall { call_id, input });
            }
            UserInput::CallUpdate { call_id, update } => {
                if let Some(call) = self.call.as_mut().filter(|c| c.id == call_id) {
                    if call.announced_by_ring(&update) {
                        // A call on a node of wire 1.5 or older repeats what the ring told the client.
                        return Ok(fx);
                    }
                    if let CallUpdate::State { state, info, .. } = &update {
                        call.state = *state;
                        call.info = Some(info.clone());
                        if info.from_room != call.channel {
                            // The call's channel moved to another node: the old one is not this
                            // user's any more (its node is going away); the client joins the new one.
                            self.channels.remove(&call.channel);
                            self.broadcasters.remove(&call.channel);
                            self.joining.remove(&call.channel);
                            call.channel = info.from_room.clone();
                        }
                    }
                    if update.is_final() {
                        self.call = None;
                        self.just_ended = Some(call_id.clone());
                    }
                } else if self.just_ended.as_ref() != Some(&call_id)
                    || matches!(update, CallUpdate::State { .. })
                {
                    // A late message from a call this user has left: never reaches the client.
                    return Ok(fx);
                }
                self.push(ClientEvent::Call { call_id, update }, now, &mut fx);
            }
            UserInput::CallUpdates { call_id, updates } => {
                for update in updates {
                    let call_id = call_id.clone();
                    fx.extend(self.handle(UserInput::CallUpdate { call_id, update }, now)?);
                }
            }
            UserInput::CallOwnerLost { call_id } => {
                let Some(call) = self.call.as_ref().filter(|c| c.id == call_id) else {
                    return Ok(fx);
                };
                if call.state == CallState::Connected {
                    self.orphaned = Some(call_id);
                    fx.push(UserEffect::SetTimer {
                        timer: UserTimer::Takeover,
                        at: now + self.config.takeover_wait_ms,
                    });
                } else {
                    let reason = "the node running this call was lost".to_owned();
                    fx.extend(self.handle(UserInput::CallLost { call_id, reason }, now)?);
                }
            }
            UserInput::CallNotStarted { call_id } => {
                // Only a call this user started and whose first state the client has not been shown.
                if self
                    .call
                    .as_ref()
                    .is_some_and(|c| c.id == call_id && c.side == Side::Caller && c.info.is_none())
                {
                    self.call = None;
                }
            }
            UserInput::CallAdopted { call_id } => {
                let present = self.call.as_ref().is_some_and(|c| c.id == call_id);
                if present {
                    self.orphaned = None;
                }
                fx.push(UserEffect::ToCall {
                    call_id,
                    input: CallInput::PartyPresent {
                        user: self.user.clone(),
                        present,
                    },
                });
            }
            UserInput::CallLost { call_id, reason } => {
                let Some(call) = self.call.clone().filter(|c| c.id == call_id) else {
                    return Ok(fx);
                };
                self.orphaned = None;
                // Nobody runs the call any more: do what its end would have done to the channels. The
                // peer does the same; the channels ignore the second time.
                fx.push(UserEffect::ToChannel {
                    channel: call.channel.clone(),
                    input: ChannelInput::Close,
                });
                for channel in self.live_channels() {
                    fx.push(UserEffect::ToChannel {
                        channel,
                        input: ChannelInput::ResumeBroadcaster {
                            host: self.user.clone(),
                            call: call_id.clone(),
                        },
                    });
                }
                let Some(info) = call.info.clone() else {
                    // The client was never shown this call (no state reached it): just forget it.
                    self.call = None;
                    return Ok(fx);
                };
                let connected_at = info.timing.get("connected").copied();
                let ended = CallUpdate::State {
                    state: CallState::Prepared,
                    reason: StateReason::EndedByServer,
                    event_reason: reason,
                    info,
                };
                fx.extend(self.handle(
                    UserInput::CallUpdate {
                        call_id: call_id.clone(),
                        update: ended,
                    },
                    now,
                )?);
                if let Some(since) = connected_at {
                    let disconnected = CallUpdate::Disconnected {
                        room: call.channel.clone(),
                        hangup_user: None,
                        timestamp: now,
                        duration_ms: now.saturating_sub(since),
                    };
                    fx.extend(self.handle(
                        UserInput::CallUpdate {
                            call_id,
                            update: disconnected,
                        },
                        now,
                    )?);
                }
            }
            UserInput::JoinChannel {
                channel,
                role,
                may_publish,
                offer,
            } => {
                self.joining.insert(channel.clone());
                fx.push(UserEffect::JoinChannel {
                    channel,
                    role,
                    may_publish,
                    offer,
                });
            }
            UserInput::ChannelJoined {
                channel,
                role,
                broadcasters,
            } => {
                // Only for a join this session asked for: the confirmation of a join sent by an earlier
                // session of this user (it ended while the join was in flight, and its leave follows) is
                // not this session's membership.
                if self.joining.remove(&channel) || self.channels.contains_key(&channel) {
                    let others = broadcasters.into_iter().filter(|b| *b != self.user);
                    self.broadcasters.insert(channel.clone(), others.collect());
                    self.channels.insert(channel, role);
                }
            }
            UserInput::LeaveChannel { channel } => {
                if self.channels.remove(&channel).is_none() {
                    return Err(UserError::NotInChannel);
                }
                self.broadcasters.remove(&channel);
                fx.push(UserEffect::LeaveChannel { channel });
            }
            UserInput::ChannelRemoved { channel } => {
                let was_member = self.channels.remove(&channel).is_some();
                self.broadcasters.remove(&channel);
                if was_member && !channel.is_call_channel() {
                    let update = ChannelUpdate::MemberLeft {
                        user: self.user.clone(),
                    };
                    self.push(ClientEvent::Channel { channel, update }, now, &mut fx);
                }
            }
            UserInput::ChannelLost { channel } => {
                if self.channels.contains_key(&channel) {
                    // The entry stays (empty): the reopened room's broadcasters are followed again.
                    let known = self.broadcasters.entry(channel.clone()).or_default();
                    let gone = std::mem::take(known);
                    for user in gone {
                        let update = ChannelUpdate::MemberLeft { user };
                        let channel = channel.clone();
                        self.push(ClientEvent::Channel { channel, update }, now, &mut fx);
                    }
                }
            }
            UserInput::Kicked {
                channel,
                ban_seconds,
            } => {
                self.channels.remove(&channel);
                self.broadcasters.remove(&channel);
                self.joining.remove(&channel);
                // The call whose channel it is ends (the call channel tells the call); the client hears
                // why first, as onCallError code 123.
                let call_id = self
                    .call
                    .as_ref()
                    .filter(|call| call.channel == channel)
                    .map(|call| call.id.clone());
                self.push(
                    ClientEvent::Kicked {
                        channel,
                        call_id,
                        ban_seconds,
                    },
                    now,
                    &mut fx,
                );
            }
            UserInput::ChannelUpdate { channel, update } => {
                if self.channels.contains_key(&channel) {
                    self.follow_broadcasters(&channel, &update);
                    self.push(ClientEvent::Channel { channel, update }, now, &mut fx);
                }
            }
            UserInput::Timer(timer) => self.timer(timer, now, &mut fx),
        }
        Ok(fx)
    }

    fn login(&mut self, conn: ConnId, token_expires_at: Millis, fx: &mut Vec<UserEffect>) {
        self.resumed = false;
        match self.session {
            Session::Online(old) if old != conn => {
                // Taking over a live session carries its call and channels over, like a resume.
                self.resumed = true;
                fx.push(UserEffect::Close {
                    conn: old,
                    reason: CloseReason::Replaced,
                });
            }
            Session::Away { .. } => {
                self.resumed = true;
                if let Some(call) = &self.call {
                    fx.push(UserEffect::ToCall {
                        call_id: call.id.clone(),
                        input: CallInput::PeerBack {
                            user: self.user.clone(),
                        },
                    });
                }
            }
            _ => {}
        }
        self.session = Session::Online(conn);
        self.arm_token(token_expires_at, fx);
        for pushed in std::mem::take(&mut self.buffered) {
            fx.push(UserEffect::Push(pushed));
        }
    }

    fn arm_token(&mut self, expires_at: Millis, fx: &mut Vec<UserEffect>) {
        self.token_expires_at = expires_at;
        self.warned = false;
        let warn_at = expires_at.saturating_sub(self.config.token_warning_ms);
        fx.push(UserEffect::SetTimer {
            timer: UserTimer::TokenWarning,
            at: warn_at,
        });
        fx.push(UserEffect::SetTimer {
            timer: UserTimer::TokenExpiry,
            at: expires_at,
        });
    }

    fn ring(&mut self, mut info: EventInfo, now: Millis, fx: &mut Vec<UserEffect>) {
        let call_id = info.call_id.clone();
        let refuse = |why| UserEffect::ToCall {
            call_id: call_id.clone(),
            input: CallInput::Undeliverable(why),
        };
        let (Session::Online(_), Some(prepared)) = (self.session, &self.prepared) else {
            fx.push(refuse(Undeliverable::Offline));
            return;
        };
        let extension = prepared.extension.clone();
        if let Some(current) = &self.call {
            let glare = current.side == Side::Caller
                && current.peer == info.from_user
                && current.state == CallState::Calling;
            if !glare {
                fx.push(refuse(Undeliverable::Busy));
                return;
            }
            if self.user < info.from_user {
                // Our own call wins; theirs gives way on their side too.
                fx.push(refuse(Undeliverable::Glare));
                return;
            }
            // Their call wins: withdraw ours and tell our client before it rings for theirs.
            let ours = self
                .call
                .take()
                .expect("checked above: current call exists");
            fx.push(UserEffect::ToCall {
                call_id: ours.id.clone(),
                input: CallInput::GaveWay {
                    by: self.user.clone(),
                },
            });
            let mut info_ours = ours.info.clone().unwrap_or_else(|| EventInfo {
                call_id: ours.id.clone(),
                from_user: self.user.clone(),
                from_room: ours.channel.clone(),
                remote_user: ours.peer.clone(),
                call_type: info.call_type,
                extension: BTreeMap::new(),
                timing: BTreeMap::new(),
            });
            info_ours.timing.insert("end".to_owned(), now);
            let update = CallUpdate::State {
                state: CallState::Prepared,
                reason: StateReason::GlareResolved,
                event_reason: "the callee called at the same moment; its call goes on".to_owned(),
                info: info_ours,
            };
            self.push(
                ClientEvent::Call {
                    call_id: ours.id,
                    update,
                },
                now,
                fx,
            );
        }
        // The client hears of the call here, not from the call's answer to `Delivered`: on a cluster
        // that answer is a round trip to the call's node away.
        info.timing.insert("ringing".to_owned(), now);
        let (reason, event) = info.call_type.ringing_callee();
        self.call = Some(ActiveCall {
            id: call_id.clone(),
            side: Side::Callee,
            peer: info.from_user.clone(),
            channel: info.from_room.clone(),
            state: CallState::Calling,
            info: Some(info.clone()),
        });
        let updates = [
            CallUpdate::State {
                state: CallState::Calling,
                reason,
                event_reason: String::new(),
                info,
            },
            CallUpdate::Event {
                event,
                event_reason: String::new(),
                info: None,
            },
        ];
        for update in updates {
            let call_id = call_id.clone();
            self.push(ClientEvent::Call { call_id, update }, now, fx);
        }
        fx.push(UserEffect::ToCall {
            call_id,
            input: CallInput::Delivered {
                live_channels: self.live_channels(),
                extension,
                announced: true,
            },
        });
    }

    /// Glare, decided by the winner while the loser's call rings it: that call gives way (its caller sees
    /// `glareResolved`) and this client is told it ended, with `glareResolved` too, before the winner's own
    /// call starts. The call's later updates are dropped: this user has moved on (as in [`Self::ring`]).
    fn withdraw_glare_loser(&mut self, now: Millis, fx: &mut Vec<UserEffect>) {
        let Some(theirs) = self.call.take() else {
            return;
        };
        fx.push(UserEffect::ToCall {
            call_id: theirs.id.clone(),
            input: CallInput::GaveWay {
                by: self.user.clone(),
            },
        });
        let Some(mut info) = theirs.info else {
            // Unreachable: a callee's call keeps the info its ring carried.
            return;
        };
        info.timing.insert("end".to_owned(), now);
        let update = CallUpdate::State {
            state: CallState::Prepared,
            reason: StateReason::GlareResolved,
            event_reason: "both called at the same moment; this user's call goes on".to_owned(),
            info,
        };
        let call_id = theirs.id;
        self.push(ClientEvent::Call { call_id, update }, now, fx);
    }

    fn timer(&mut self, timer: UserTimer, now: Millis, fx: &mut Vec<UserEffect>) {
        match timer {
            UserTimer::TokenWarning => {
                let due = self
                    .token_expires_at
                    .saturating_sub(self.config.token_warning_ms);
                if !self.warned && now >= due && now < self.token_expires_at {
                    self.warned = true;
                    let expires_at = self.token_expires_at;
                    self.push(ClientEvent::TokenWillExpire { expires_at }, now, fx);
                }
            }
            UserTimer::TokenExpiry => {
                if now >= self.token_expires_at {
                    let close = self.connection().map(|_| CloseReason::TokenExpired);
                    self.end_session(SessionEnd::TokenExpired, close, now, fx);
                }
            }
            UserTimer::Grace => {
                if let Session::Away { since } = self.session
                    && now >= since + self.config.grace_ms
                {
                    self.end_session(SessionEnd::Gone, None, now, fx);
                }
            }
            UserTimer::Takeover => {
                if let Some(call_id) = self.orphaned.take() {
                    let reason = "the node running this call was lost".to_owned();
                    if let Ok(more) = self.handle(UserInput::CallLost { call_id, reason }, now) {
                        fx.extend(more);
                    }
                }
            }
        }
    }

    /// Ends the session: the call ends for the peer, channels are left, the connection (if any) closes.
    fn end_session(
        &mut self,
        how: SessionEnd,
        close: Option<CloseReason>,
        now: Millis,
        fx: &mut Vec<UserEffect>,
    ) {
        if let Some(call) = self.call.take() {
            if how == SessionEnd::TokenExpired
                && let Some(info) = call.info.clone()
            {
                // The call's own word on this end would reach a session that is gone: the client hears
                // it here, before the session closes.
                self.tell_token_expired_call(&call, info, now, fx);
            }
            fx.push(UserEffect::ToCall {
                call_id: call.id,
                input: CallInput::SessionEnded {
                    user: self.user.clone(),
                    how,
                },
            });
        }
        self.broadcasters.clear();
        let mut leave: BTreeSet<_> = std::mem::take(&mut self.channels).into_keys().collect();
        leave.append(&mut self.joining);
        for channel in leave {
            fx.push(UserEffect::LeaveChannel { channel });
        }
        if let (Some(reason), Session::Online(conn)) = (close, self.session) {
            self.push(ClientEvent::SessionClosed { reason }, now, fx);
            fx.push(UserEffect::Close { conn, reason });
        }
        self.session = Session::Closed;
        fx.push(UserEffect::Stop);
    }

    /// The call ends for this user because its token expired: `prepared` with `tokenExpired`, and a
    /// disconnect when it was connected (what the call machine says of `SessionEnd::TokenExpired`).
    fn tell_token_expired_call(
        &mut self,
        call: &ActiveCall,
        mut info: EventInfo,
        now: Millis,
        fx: &mut Vec<UserEffect>,
    ) {
        let connected_at = (call.state == CallState::Connected)
            .then(|| info.timing.get("connected").copied())
            .flatten();
        info.timing.insert("end".to_owned(), now);
        let ended = CallUpdate::State {
            state: CallState::Prepared,
            reason: StateReason::TokenExpired,
            event_reason: "this user's token expired".to_owned(),
            info,
        };
        let call_id = call.id.clone();
        self.push(
            ClientEvent::Call {
                call_id: call_id.clone(),
                update: ended,
            },
            now,
            fx,
        );
        if let Some(since) = connected_at {
            let update = CallUpdate::Disconnected {
                room: call.channel.clone(),
                hangup_user: Some(self.user.clone()),
                timestamp: now,
                duration_ms: now.saturating_sub(since),
            };
            self.push(ClientEvent::Call { call_id, update }, now, fx);
        }
    }

    /// Keeps `channel`'s broadcasters as its update says they changed.
    fn follow_broadcasters(&mut self, channel: &ChannelName, update: &ChannelUpdate) {
        let Some(broadcasters) = self.broadcasters.get_mut(channel) else {
            return;
        };
        match update {
            ChannelUpdate::MemberJoined { user, member }
                if member.role == Role::Broadcaster && *user != self.user =>
            {
                broadcasters.insert(user.clone());
            }
            ChannelUpdate::MemberLeft { user } => {
                broadcasters.remove(user);
            }
            _ => {}
        }
    }

    fn live_channels(&self) -> Vec<ChannelName> {
        self.channels
            .iter()
            .filter(|(c, r)| **r == Role::Broadcaster && !c.is_call_channel())
            .map(|(c, _)| c.clone())
            .collect()
    }

    fn push(&mut self, event: ClientEvent, now: Millis, fx: &mut Vec<UserEffect>) {
        self.seq += 1;
        let pushed = Pushed {
            seq: self.seq,
            at: now,
            event,
        };
        match self.session {
            Session::Online(_) => fx.push(UserEffect::Push(pushed)),
            Session::Away { .. } => {
                if self.buffered.len() == AWAY_BUFFER {
                    self.buffered.remove(0);
                }
                self.buffered.push(pushed);
            }
            Session::New | Session::Closed => {}
        }
    }
}

/// onCallStateChanged(prepared) outside any call: no call id, an empty event info.
fn prepared_event() -> ClientEvent {
    ClientEvent::Call {
        call_id: CallId::from(""),
        update: CallUpdate::State {
            state: CallState::Prepared,
            reason: StateReason::None,
            event_reason: String::new(),
            info: EventInfo {
                call_id: CallId::from(""),
                from_user: UserId::from(""),
                from_room: ChannelName::from(""),
                remote_user: UserId::from(""),
                call_type: CallType::Video,
                extension: BTreeMap::new(),
                timing: BTreeMap::new(),
            },
        },
    }
}
