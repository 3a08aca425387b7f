//! `CallMachine`: the server-authoritative rules of one 1v1 call.
//!
//! One machine per call holds both parties' view. Inputs arrive from the parties' user actors, the call's
//! channel and timers; the machine answers with [`CallEffect`]s: what each party is told, which timers to
//! start, which live channels to pause or resume, and finally the call record. It does no IO and reads no
//! clock: `now` comes with every input.
//!
//! Phases: [`Authorizing`](self::admission) (only when the app requires admission: caller `calling`, callee
//! unaware) → `Ringing` (caller `calling`; callee `calling` as the ring is delivered — its user actor tells
//! it, or the call does when the user's answer says it did not) → `Connecting` (accepted) → `Connected`
//! (both joined the call channel) → `Ended`. Every path to `Ended` tells both parties (the callee only if
//! the ring reached it) and emits exactly one [`CallRecord`]; an ended machine refuses every further input
//! with [`CallError::Ended`].
//!
//! Decisions where CallAPI is silent or flawed:
//! - The calling timeout is one server timer covering `calling` + `connecting`; on expiry the caller sees
//!   `callingTimeout` and the callee `remoteCallingTimeout`.
//! - `connected` needs the accept, both parties in the call channel and — when both joined with media and
//!   first-frame waiting is on (the default) — a first frame from each side forwarded to the other (the
//!   server sees it: it is the media router). A party that joined without media (signaling only, e.g. an
//!   app with its own media path) keeps the join rule: the server cannot observe media it does not carry.
//!   The reason is whatever completed last: `localAccepted`/`remoteAccepted`, `recvRemoteFirstFrame`, or
//!   `bothJoined`.
//! - `hangup` is for accepted calls; while ringing the caller cancels and the callee rejects.
//! - `GaveWay` (glare) ends the call in any phase: the user actor that resolved the glare (the caller's, or
//!   the callee's when its own Call arrived while this call rang it) has already moved on to the winning
//!   call, so a call it gave way an instant after the peer accepted must not outlive it. The caller always
//!   sees `glareResolved`; the callee sees the call withdrawn (a callee that gave way itself has already told
//!   its client `glareResolved`).
//! - Admission and billing ticks are in [`admission`](self::admission) and [`billing`](self::billing).

mod admission;
mod billing;
mod status;
mod takeover;

use std::collections::BTreeMap;

pub use admission::{ADMISSION_TIMED_OUT, AdmissionRequest};
pub use status::{CallPhase, CallStatus};
pub use takeover::{ADOPTION_TIMEOUT_MS, CallSnapshot};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::{
    CallEvent, CallId, CallState, CallType, ChannelName, EventInfo, Millis, PauseAt, Side,
    StateReason, UserId,
};

/// Everything fixed when a call is created. Ids are minted by the caller's actor and passed in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSetup {
    pub id: CallId,
    /// The private channel minted for this call; only the two parties may join it.
    pub channel: ChannelName,
    pub caller: UserId,
    pub callee: UserId,
    pub call_type: CallType,
    /// The caller's user extension merged with the call extension: what the callee is shown.
    pub extension: BTreeMap<String, String>,
    /// The call extension alone (the caller's `Call` command): merged over the callee's user extension,
    /// it is what the caller is shown. Defaulted so records written before it existed still restore.
    #[serde(default)]
    pub call_extension: BTreeMap<String, String>,
    /// Calling timeout covering calling + connecting, in ms; `None` = no timeout.
    pub timeout_ms: Option<u64>,
    /// Kept for the media issue (connected on join instead of first frame); today both rules coincide.
    pub first_frame_waiting_disabled: bool,
    /// When the parties' live publications are paused.
    pub pause_at: PauseAt,
    /// Live channels where the caller is broadcaster (paused like the callee's).
    pub caller_live: Vec<ChannelName>,
    /// `Some(ms)`: the app's business server must allow the call before it rings, and has this long to
    /// answer (see [`admission`](self::admission)). `None`: the call rings at once. Defaulted so records
    /// written before admission existed still restore.
    #[serde(default)]
    pub admission_timeout_ms: Option<u64>,
    /// `Some(ms)`: while connected, a billing tick every `ms` (see [`billing`](self::billing)).
    #[serde(default)]
    pub billing_tick_ms: Option<u64>,
}

/// Why the callee's user actor could not ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Undeliverable {
    /// Not logged in (or gone), or has not prepared for calls.
    Offline,
    /// In another call.
    Busy,
    /// The callee is calling the caller at the same moment and its call wins (see `UserMachine`).
    Glare,
}

/// How a session ended, for [`CallInput::SessionEnded`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionEnd {
    /// The client logged out.
    LoggedOut,
    /// The token expired without renewal.
    TokenExpired,
    /// The connection dropped and the grace period passed.
    Gone,
}

/// Inputs to a [`CallMachine`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallInput {
    /// The call was created: tell the caller, ring the callee, arm the timeout.
    Start,
    /// The callee's user actor rang its client.
    Delivered {
        /// Live channels where the callee is broadcaster.
        live_channels: Vec<ChannelName>,
        /// The callee's user extension, shown to the caller.
        extension: BTreeMap<String, String>,
        /// The callee's user actor told its client it is being called (`calling` and the
        /// `remoteVideoCall`/`remoteAudioCall` event) when the ring reached it, so the call does not:
        /// the callee's `calling` then waits for no round trip to the call's node. Absent (false) from
        /// a node of wire 1.5 or older, whose users leave it to the call; written only when true.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        announced: bool,
    },
    /// The callee's user actor could not ring.
    Undeliverable(Undeliverable),
    /// Client command: withdraw the ringing call.
    Cancel { by: UserId },
    /// Client command: accept the ringing call.
    Accept { by: UserId },
    /// Client command: refuse the ringing call.
    Reject { by: UserId, reason: String },
    /// Client command: end an accepted call.
    Hangup { by: UserId, reason: String },
    /// A party joined the call channel; `media` when it opened a media session there.
    ChannelJoined { user: UserId, media: bool },
    /// The first frame from `from` was forwarded to the other party (by the media router).
    MediaFlowing { from: UserId },
    /// A party left the call channel (the call goes on; it may rejoin).
    ChannelLeft { user: UserId },
    /// A party's connection dropped; its grace period runs in its user actor.
    PeerAway { user: UserId },
    /// A party reconnected within its grace period.
    PeerBack { user: UserId },
    /// A party's session ended.
    SessionEnded { user: UserId, how: SessionEnd },
    /// A party's user actor withdrew this call because the callee called the caller at the same moment and
    /// that call wins (glare): sent by the caller when the winning call rings it, or by the callee when its
    /// own Call to the caller arrives while this call rings it.
    GaveWay { by: UserId },
    /// The calling timer fired.
    CallingTimeout,
    /// The business server or an operator ends the call.
    Terminate { reason: String },
    /// The node carrying the call's channel (its media) is gone: the call cannot go on. Ends it once
    /// for both parties with `endedByServer`; the record says `node_lost`.
    ChannelLost,
    /// The node carrying the call's channel is leaving: a connected call moves to channel `to` on
    /// another node (see `takeover`'s module docs). Refused in any other phase.
    MoveChannel { to: ChannelName },
    /// A call restored from its snapshot on a new node: ask its parties and channel whether they still
    /// hold it (see [`takeover`](self::takeover)).
    Adopt,
    /// A party's user actor answered the adoption: whether this is still its call.
    PartyPresent { user: UserId, present: bool },
    /// The call channel answered the adoption: whether it still exists.
    ChannelPresent { present: bool },
    /// The adoption timer fired.
    AdoptionTimeout,
    /// The business server answered the admission request (an error answer arrives as a refusal).
    Authorized { allowed: bool, reason: String },
    /// The admission timer fired before the business server answered.
    AdmissionTimeout,
    /// The billing tick timer fired.
    BillingTick,
}

/// What one party is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallUpdate {
    /// onCallStateChanged.
    State {
        state: CallState,
        reason: StateReason,
        event_reason: String,
        info: EventInfo,
    },
    /// onCallEventChanged.
    Event {
        event: CallEvent,
        event_reason: String,
        /// What the party is shown of the call now, when the event changed it: `RemoteUserRecvCall`
        /// carries the callee's user extension to the caller while it rings. Defaulted so messages
        /// written before it existed still read.
        #[serde(default)]
        info: Option<EventInfo>,
    },
    /// onCallConnected.
    Connected {
        room: ChannelName,
        call_user: UserId,
        timestamp: Millis,
    },
    /// onCallDisconnected (only connected → prepared).
    Disconnected {
        room: ChannelName,
        hangup_user: Option<UserId>,
        timestamp: Millis,
        duration_ms: u64,
    },
}

impl CallUpdate {
    /// True when this update ends the call for its recipient.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            CallUpdate::State {
                state: CallState::Prepared,
                ..
            }
        )
    }
}

/// Timers a call arms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CallTimer {
    Calling,
    /// A restored call waits this long for its parties and channel.
    Adoption,
    /// How long the business server has to answer the admission request.
    Admission,
    /// The next billing tick of a connected call.
    BillingTick,
}

/// Why a call ended: the billing record's cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndCause {
    Cancelled,
    Rejected {
        reason: String,
    },
    Busy,
    Offline,
    Glare,
    Hangup {
        by: UserId,
        reason: String,
    },
    Timeout,
    SessionEnded {
        user: UserId,
        how: SessionEnd,
    },
    Terminated {
        reason: String,
    },
    /// The node running the call died and the call could not go on elsewhere.
    NodeLost,
    /// The business server refused the call (or did not answer in time) before it rang.
    Refused {
        /// The business server's reason, or why there was no answer.
        reason: String,
    },
}

/// The call record handed to the business server once per call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: CallId,
    pub channel: ChannelName,
    pub caller: UserId,
    pub callee: UserId,
    pub call_type: CallType,
    pub created_at: Millis,
    pub accepted_at: Option<Millis>,
    pub connected_at: Option<Millis>,
    pub ended_at: Millis,
    /// Time spent connected; 0 when the call never connected.
    pub connected_ms: u64,
    pub cause: EndCause,
}

/// Effects the actor carries out, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallEffect {
    /// Record the call channel's membership: only these two may join it.
    OpenChannel {
        channel: ChannelName,
        members: [UserId; 2],
    },
    /// Ask the callee's user actor to ring; it answers `Delivered` or `Undeliverable`.
    Ring {
        callee: UserId,
        info: EventInfo,
    },
    /// Tell one party something.
    Notify {
        to: UserId,
        update: CallUpdate,
    },
    /// Arm `timer`, due at `at` (Unix ms, the clock `now` is read from); one armed again replaces it.
    SetTimer {
        timer: CallTimer,
        at: Millis,
    },
    CancelTimer {
        timer: CallTimer,
    },
    /// Stop forwarding a host's live publication (the channel stays open).
    PauseLive {
        channel: ChannelName,
        host: UserId,
    },
    /// Forward it again (and request a keyframe, once media exists).
    ResumeLive {
        channel: ChannelName,
        host: UserId,
    },
    /// Remove everyone from the call channel and refuse further joins.
    CloseChannel {
        channel: ChannelName,
    },
    /// The call connected: keep this snapshot where another node can restore the call from it.
    Persist(CallSnapshot),
    /// Ask a party's user actor whether this call is still its call (answer: `PartyPresent`).
    AskParty {
        user: UserId,
    },
    /// Ask the call channel whether it still exists (answer: `ChannelPresent`).
    AskChannel {
        channel: ChannelName,
    },
    /// Ask the app's business server whether the caller may make this call (answer: `Authorized`, or
    /// the admission timer fires first).
    Authorize(AdmissionRequest),
    /// A connected call's billing tick: tell the business server.
    BillingTick {
        /// 1, 2, 3, … counted from the connect (tick `n` is due `n` × the tick after it).
        tick: u64,
        /// Time connected so far.
        connected_ms: u64,
    },
    /// The call reached a milestone the business server hears of (its end is [`CallEffect::Ended`]).
    Progress(CallProgress),
    /// The call is over; the record goes to the business server; the actor stops.
    Ended(CallRecord),
}

/// A call's milestones before its end, each reported once, in this order (accepted and connected may
/// come in one step, when both parties were in the channel before the accept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallProgress {
    /// The call exists (its caller sees `calling`; it may still wait for admission).
    Created,
    /// The ring reached the callee's client.
    Ringing,
    /// The callee accepted.
    Accepted,
    /// Accepted, both parties in the channel (and media flowing, where the rule asks for it).
    Connected,
}

/// A refused input. Commands map these to client errors; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum CallError {
    #[error("user is not a participant of this call")]
    NotParticipant,
    #[error("{command} is not allowed for the {side:?} while the call is {phase}")]
    NotAllowed {
        command: &'static str,
        side: Side,
        phase: &'static str,
    },
    #[error("{input} is not expected while the call is {phase}")]
    Unexpected {
        input: &'static str,
        phase: &'static str,
    },
    #[error("the call has ended")]
    Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the business server's admission answer (`asked` once Start sent the request).
    Authorizing {
        asked: bool,
    },
    Ringing {
        delivered: bool,
    },
    Connecting,
    Connected {
        since: Millis,
    },
    Ended,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Authorizing { .. } => "authorizing",
            Phase::Ringing { delivered: false } => "ringing (not yet delivered)",
            Phase::Ringing { delivered: true } => "ringing",
            Phase::Connecting => "connecting",
            Phase::Connected { .. } => "connected",
            Phase::Ended => "ended",
        }
    }
}

/// One call's rules. See the module docs.
#[derive(Clone, Debug)]
pub struct CallMachine {
    setup: CallSetup,
    phase: Phase,
    created_at: Millis,
    accepted_at: Option<Millis>,
    /// Whether each party (by [`Side::index`]) is in the call channel now.
    joined: [bool; 2],
    /// Whether each party joined with a media session.
    media: [bool; 2],
    /// Whether each party's first frame has reached the other.
    flowed: [bool; 2],
    /// The callee's user extension, shown to the caller.
    callee_extension: BTreeMap<String, String>,
    /// The callee's live channels, known once the ring is delivered.
    callee_live: Vec<ChannelName>,
    /// Live channels paused for this call, resumed exactly once at the end.
    paused: Vec<(ChannelName, UserId)>,
    timing: BTreeMap<String, Millis>,
    /// Whether the ring was sent and not refused, i.e. whether the callee must hear of the end.
    callee_involved: bool,
    /// Set while a restored call waits for its holders' answers.
    adoption: Option<takeover::Adoption>,
    /// The number of the next billing tick (1 for a call that just connected).
    next_tick: u64,
}

impl CallMachine {
    /// A new call; feed it [`CallInput::Start`] next.
    pub fn new(setup: CallSetup, now: Millis) -> Self {
        let mut timing = BTreeMap::new();
        timing.insert("call".to_owned(), now);
        let phase = if setup.admission_timeout_ms.is_some() {
            Phase::Authorizing { asked: false }
        } else {
            Phase::Ringing { delivered: false }
        };
        Self {
            setup,
            phase,
            created_at: now,
            accepted_at: None,
            joined: [false; 2],
            media: [false; 2],
            flowed: [false; 2],
            callee_extension: BTreeMap::new(),
            callee_live: Vec::new(),
            paused: Vec::new(),
            timing,
            callee_involved: false,
            adoption: None,
            next_tick: 1,
        }
    }

    pub fn setup(&self) -> &CallSetup {
        &self.setup
    }

    pub fn id(&self) -> &CallId {
        &self.setup.id
    }

    /// True once the call has ended.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The state a party sees now (`Prepared` once ended).
    pub fn state_of(&self, side: Side) -> CallState {
        match self.phase {
            Phase::Authorizing { .. } => match side {
                Side::Caller => CallState::Calling,
                Side::Callee => CallState::Prepared,
            },
            Phase::Ringing { delivered } => {
                if side == Side::Caller || delivered {
                    CallState::Calling
                } else {
                    CallState::Prepared
                }
            }
            Phase::Connecting => CallState::Connecting,
            Phase::Connected { .. } => CallState::Connected,
            Phase::Ended => CallState::Prepared,
        }
    }

    /// The event info a party is shown now.
    pub fn info_for(&self, side: Side) -> EventInfo {
        // The peer's user extension with the call extension merged over it (the proto's rule).
        let extension = match side {
            Side::Caller => {
                let mut merged = self.callee_extension.clone();
                merged.extend(self.setup.call_extension.clone());
                merged
            }
            Side::Callee => self.setup.extension.clone(),
        };
        EventInfo {
            call_id: self.setup.id.clone(),
            from_user: self.setup.caller.clone(),
            from_room: self.setup.channel.clone(),
            remote_user: self.setup.callee.clone(),
            call_type: self.setup.call_type,
            extension,
            timing: self.timing.clone(),
        }
    }

    /// Which side a user is, if a participant.
    pub fn side_of(&self, user: &UserId) -> Option<Side> {
        if *user == self.setup.caller {
            Some(Side::Caller)
        } else if *user == self.setup.callee {
            Some(Side::Callee)
        } else {
            None
        }
    }

    fn user(&self, side: Side) -> &UserId {
        match side {
            Side::Caller => &self.setup.caller,
            Side::Callee => &self.setup.callee,
        }
    }

    /// Feeds one input. On `Err` nothing changed.
    pub fn handle(&mut self, input: CallInput, now: Millis) -> Result<Vec<CallEffect>, CallError> {
        if self.phase == Phase::Ended {
            return Err(CallError::Ended);
        }
        let mut fx = Vec::new();
        match input {
            CallInput::Start => self.start(now, &mut fx)?,
            CallInput::Delivered {
                live_channels,
                extension,
                announced,
            } => self.delivered(live_channels, extension, announced, now, &mut fx)?,
            CallInput::Undeliverable(why) => self.undeliverable(why, now, &mut fx)?,
            CallInput::Cancel { by } => {
                let side = self.participant(&by)?;
                let ringing = matches!(
                    self.phase,
                    Phase::Ringing { .. } | Phase::Authorizing { .. }
                );
                if side != Side::Caller || !ringing {
                    return Err(self.not_allowed("cancel", side));
                }
                self.end(
                    now,
                    EndCause::Cancelled,
                    [
                        (
                            StateReason::LocalCancelled,
                            Some(CallEvent::LocalCancelled),
                            String::new(),
                        ),
                        (
                            StateReason::RemoteCancelled,
                            Some(CallEvent::RemoteCancelled),
                            String::new(),
                        ),
                    ],
                    Some(by),
                    &mut fx,
                );
            }
            CallInput::Accept { by } => self.accept(by, now, &mut fx)?,
            CallInput::Reject { by, reason } => {
                let side = self.participant(&by)?;
                if side != Side::Callee || self.phase != (Phase::Ringing { delivered: true }) {
                    return Err(self.not_allowed("reject", side));
                }
                self.end(
                    now,
                    EndCause::Rejected {
                        reason: reason.clone(),
                    },
                    [
                        (
                            StateReason::RemoteRejected,
                            Some(CallEvent::RemoteRejected),
                            reason.clone(),
                        ),
                        (
                            StateReason::LocalRejected,
                            Some(CallEvent::LocalRejected),
                            reason,
                        ),
                    ],
                    Some(by),
                    &mut fx,
                );
            }
            CallInput::Hangup { by, reason } => {
                let side = self.participant(&by)?;
                if !matches!(self.phase, Phase::Connecting | Phase::Connected { .. }) {
                    return Err(self.not_allowed("hangup", side));
                }
                let local = (
                    StateReason::LocalHangup,
                    Some(CallEvent::LocalHangup),
                    reason.clone(),
                );
                let remote = (
                    StateReason::RemoteHangup,
                    Some(CallEvent::RemoteHangup),
                    reason.clone(),
                );
                let views = match side {
                    Side::Caller => [local, remote],
                    Side::Callee => [remote, local],
                };
                let cause = EndCause::Hangup {
                    by: by.clone(),
                    reason,
                };
                self.end(now, cause, views, Some(by), &mut fx);
            }
            CallInput::ChannelJoined { user, media } => {
                self.channel_joined(user, media, now, &mut fx)?
            }
            CallInput::MediaFlowing { from } => self.media_flowing(from, now, &mut fx)?,
            CallInput::ChannelLeft { user } => {
                let side = self.participant(&user)?;
                self.refuse_before_channel("channel left")?;
                if self.joined[side.index()] {
                    self.joined[side.index()] = false;
                    self.event(side, CallEvent::LocalLeft, "", &mut fx);
                    if self.knows_of_call(side.other()) {
                        self.event(
                            side.other(),
                            CallEvent::RemoteLeft,
                            "left the call channel",
                            &mut fx,
                        );
                    }
                }
            }
            CallInput::PeerAway { user } => {
                let side = self.participant(&user)?;
                if self.knows_of_call(side.other()) {
                    self.event(
                        side.other(),
                        CallEvent::RemoteLeft,
                        "connection lost",
                        &mut fx,
                    );
                }
            }
            CallInput::PeerBack { user } => {
                let side = self.participant(&user)?;
                if self.knows_of_call(side.other()) {
                    self.event(
                        side.other(),
                        CallEvent::RemoteReconnected,
                        "reconnected",
                        &mut fx,
                    );
                }
            }
            CallInput::SessionEnded { user, how } => {
                let side = self.participant(&user)?;
                let (own, peer, text) = match how {
                    SessionEnd::LoggedOut => (
                        StateReason::LocalHangup,
                        StateReason::RemoteLoggedOut,
                        "peer logged out",
                    ),
                    SessionEnd::TokenExpired => (
                        StateReason::TokenExpired,
                        StateReason::RemoteLoggedOut,
                        "peer's session expired",
                    ),
                    SessionEnd::Gone => (
                        StateReason::LocalLeft,
                        StateReason::RemoteLeft,
                        "peer did not come back within the grace period",
                    ),
                };
                let own_view = (own, None, text.to_owned());
                let peer_view = (peer, Some(CallEvent::RemoteLeft), text.to_owned());
                let views = match side {
                    Side::Caller => [own_view, peer_view],
                    Side::Callee => [peer_view, own_view],
                };
                let cause = EndCause::SessionEnded {
                    user: user.clone(),
                    how,
                };
                self.end(now, cause, views, Some(user), &mut fx);
            }
            CallInput::GaveWay { by } => {
                // In glare the losing call is always the caller's, whichever party's user actor noticed first:
                // the caller's (the callee's call rang it) or the callee's (its own Call arrived while this
                // call rang it). That actor decides on its own, possibly stale, view ("still calling") and has
                // already told its client and moved on to the winning call. So the call ends in whatever phase
                // it reached meanwhile (the callee may have accepted an instant ago): refusing would leave the
                // other party alone in a call its peer no longer tracks.
                self.participant(&by)?;
                let text = "the callee called at the same moment; its call goes on".to_owned();
                let callee_view = if matches!(self.phase, Phase::Ringing { .. }) {
                    (
                        StateReason::RemoteCancelled,
                        Some(CallEvent::RemoteCancelled),
                        text.clone(),
                    )
                } else {
                    (
                        StateReason::RemoteHangup,
                        Some(CallEvent::RemoteHangup),
                        text.clone(),
                    )
                };
                self.end(
                    now,
                    EndCause::Glare,
                    [(StateReason::GlareResolved, None, text), callee_view],
                    Some(by),
                    &mut fx,
                );
            }
            CallInput::CallingTimeout => {
                if !matches!(self.phase, Phase::Ringing { .. } | Phase::Connecting) {
                    return Err(self.unexpected("calling timeout"));
                }
                self.end(
                    now,
                    EndCause::Timeout,
                    [
                        (
                            StateReason::CallingTimeout,
                            Some(CallEvent::CallingTimeout),
                            String::new(),
                        ),
                        (
                            StateReason::RemoteCallingTimeout,
                            Some(CallEvent::RemoteCallingTimeout),
                            String::new(),
                        ),
                    ],
                    None,
                    &mut fx,
                );
            }
            CallInput::Adopt => self.adopt(now, &mut fx)?,
            CallInput::PartyPresent { user, present } => {
                self.party_present(user, present, now, &mut fx)?
            }
            CallInput::ChannelPresent { present } => self.channel_present(present, now, &mut fx)?,
            CallInput::AdoptionTimeout => self.adoption_timeout(now, &mut fx)?,
            CallInput::Authorized { allowed, reason } => {
                self.authorized(allowed, reason, now, &mut fx)?
            }
            CallInput::AdmissionTimeout => self.admission_timeout(now, &mut fx)?,
            CallInput::BillingTick => self.billing_tick_fired(now, &mut fx)?,
            CallInput::ChannelLost => self.channel_lost(now, &mut fx),
            CallInput::MoveChannel { to } => self.move_channel(to, &mut fx)?,
            CallInput::Terminate { reason } => {
                let view = (StateReason::EndedByServer, None, reason.clone());
                self.end(
                    now,
                    EndCause::Terminated { reason },
                    [view.clone(), view],
                    None,
                    &mut fx,
                );
            }
        }
        Ok(fx)
    }

    fn start(&mut self, now: Millis, fx: &mut Vec<CallEffect>) -> Result<(), CallError> {
        if self.phase == (Phase::Authorizing { asked: false }) {
            self.phase = Phase::Authorizing { asked: true };
            fx.push(CallEffect::Progress(CallProgress::Created));
            self.announce_to_caller(fx);
            self.ask_admission(now, fx);
            return Ok(());
        }
        if self.phase != (Phase::Ringing { delivered: false }) || self.callee_involved {
            return Err(self.unexpected("start"));
        }
        fx.push(CallEffect::Progress(CallProgress::Created));
        self.open_channel(fx);
        self.announce_to_caller(fx);
        self.ring(now, fx);
        Ok(())
    }

    pub(super) fn open_channel(&self, fx: &mut Vec<CallEffect>) {
        fx.push(CallEffect::OpenChannel {
            channel: self.setup.channel.clone(),
            members: [self.setup.caller.clone(), self.setup.callee.clone()],
        });
    }

    /// The caller's `calling`, as soon as the call exists (also while it is being authorized).
    fn announce_to_caller(&self, fx: &mut Vec<CallEffect>) {
        let (reason, event) = match self.setup.call_type {
            CallType::Video => (StateReason::LocalVideoCall, CallEvent::LocalVideoCall),
            CallType::Audio => (StateReason::LocalAudioCall, CallEvent::LocalAudioCall),
        };
        self.state(Side::Caller, CallState::Calling, reason, "", fx);
        self.event(Side::Caller, event, "", fx);
    }

    /// Rings the callee and arms the calling timeout (from now: admission time does not count).
    fn ring(&mut self, now: Millis, fx: &mut Vec<CallEffect>) {
        self.callee_involved = true;
        fx.push(CallEffect::Ring {
            callee: self.setup.callee.clone(),
            info: self.info_for(Side::Callee),
        });
        if let Some(after_ms) = self.setup.timeout_ms {
            fx.push(CallEffect::SetTimer {
                timer: CallTimer::Calling,
                at: now + after_ms,
            });
        }
        if self.setup.pause_at == PauseAt::Ringing {
            self.pause(Side::Caller, fx);
        }
    }

    fn delivered(
        &mut self,
        live_channels: Vec<ChannelName>,
        extension: BTreeMap<String, String>,
        announced: bool,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        if self.phase != (Phase::Ringing { delivered: false }) || !self.callee_involved {
            return Err(self.unexpected("delivered"));
        }
        self.phase = Phase::Ringing { delivered: true };
        fx.push(CallEffect::Progress(CallProgress::Ringing));
        self.callee_live = live_channels;
        self.callee_extension = extension;
        self.timing.insert("ringing".to_owned(), now);
        if !announced {
            let (reason, event) = self.setup.call_type.ringing_callee();
            self.state(Side::Callee, CallState::Calling, reason, "", fx);
            self.event(Side::Callee, event, "", fx);
        }
        // The caller learns the callee's user extension now, while it rings.
        fx.push(CallEffect::Notify {
            to: self.setup.caller.clone(),
            update: CallUpdate::Event {
                event: CallEvent::RemoteUserRecvCall,
                event_reason: String::new(),
                info: Some(self.info_for(Side::Caller)),
            },
        });
        if self.setup.pause_at == PauseAt::Ringing {
            self.pause(Side::Callee, fx);
        }
        Ok(())
    }

    fn undeliverable(
        &mut self,
        why: Undeliverable,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        if self.phase != (Phase::Ringing { delivered: false }) || !self.callee_involved {
            return Err(self.unexpected("undeliverable"));
        }
        // The callee never rang: it hears nothing of this call.
        self.callee_involved = false;
        let (cause, reason, event, text) = match why {
            Undeliverable::Busy => (
                EndCause::Busy,
                StateReason::RemoteCallBusy,
                Some(CallEvent::RemoteCallBusy),
                "The user is currently busy",
            ),
            Undeliverable::Offline => (
                EndCause::Offline,
                StateReason::RemoteOffline,
                Some(CallEvent::RemoteOffline),
                "the user is offline or not prepared for calls",
            ),
            Undeliverable::Glare => (
                EndCause::Glare,
                StateReason::GlareResolved,
                None,
                "the callee called at the same moment; its call goes on",
            ),
        };
        let unused = (StateReason::None, None, String::new());
        self.end(
            now,
            cause,
            [(reason, event, text.to_owned()), unused],
            None,
            fx,
        );
        Ok(())
    }

    fn accept(
        &mut self,
        by: UserId,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        let side = self.participant(&by)?;
        if side != Side::Callee || self.phase != (Phase::Ringing { delivered: true }) {
            return Err(self.not_allowed("accept", side));
        }
        self.phase = Phase::Connecting;
        fx.push(CallEffect::Progress(CallProgress::Accepted));
        self.accepted_at = Some(now);
        self.timing.insert("accept".to_owned(), now);
        self.state(
            Side::Callee,
            CallState::Connecting,
            StateReason::LocalAccepted,
            "",
            fx,
        );
        self.event(Side::Callee, CallEvent::LocalAccepted, "", fx);
        self.state(
            Side::Caller,
            CallState::Connecting,
            StateReason::RemoteAccepted,
            "",
            fx,
        );
        self.event(Side::Caller, CallEvent::RemoteAccepted, "", fx);
        if self.setup.pause_at == PauseAt::Accept {
            self.pause(Side::Caller, fx);
            self.pause(Side::Callee, fx);
        }
        if self.ready() {
            self.connect(
                now,
                [StateReason::RemoteAccepted, StateReason::LocalAccepted],
                fx,
            );
        }
        Ok(())
    }

    /// Whether everything but the accept is in place for `connected`.
    fn ready(&self) -> bool {
        let media_rule = !self.setup.first_frame_waiting_disabled && self.media == [true, true];
        self.joined == [true, true] && (!media_rule || self.flowed == [true, true])
    }

    fn media_flowing(
        &mut self,
        from: UserId,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        let side = self.participant(&from)?;
        self.refuse_before_channel("media flowing")?;
        if self.flowed[side.index()] {
            return Ok(());
        }
        self.flowed[side.index()] = true;
        let key = match side {
            Side::Caller => "caller_first_frame",
            Side::Callee => "callee_first_frame",
        };
        self.timing.insert(key.to_owned(), now);
        if self.knows_of_call(side.other()) {
            self.event(side.other(), CallEvent::RecvRemoteFirstFrame, "", fx);
        }
        if self.phase == Phase::Connecting && self.ready() {
            let reason = StateReason::RecvRemoteFirstFrame;
            self.connect(now, [reason, reason], fx);
        }
        Ok(())
    }

    fn channel_joined(
        &mut self,
        user: UserId,
        media: bool,
        now: Millis,
        fx: &mut Vec<CallEffect>,
    ) -> Result<(), CallError> {
        let side = self.participant(&user)?;
        self.refuse_before_channel("channel joined")?;
        if self.joined[side.index()] && self.media[side.index()] == media {
            return Ok(());
        }
        self.media[side.index()] = media;
        if self.joined[side.index()] {
            // Rejoined with or without media: only the connect rule may have changed.
            if self.phase == Phase::Connecting && self.ready() {
                self.connect(now, [StateReason::BothJoined, StateReason::BothJoined], fx);
            }
            return Ok(());
        }
        self.joined[side.index()] = true;
        let key = match side {
            Side::Caller => "caller_joined",
            Side::Callee => "callee_joined",
        };
        self.timing.insert(key.to_owned(), now);
        self.event(side, CallEvent::LocalJoined, "", fx);
        if self.knows_of_call(side.other()) {
            self.event(side.other(), CallEvent::RemoteJoined, "", fx);
        }
        if self.phase == Phase::Connecting && self.ready() {
            self.connect(now, [StateReason::BothJoined, StateReason::BothJoined], fx);
        }
        Ok(())
    }

    fn connect(&mut self, now: Millis, reasons: [StateReason; 2], fx: &mut Vec<CallEffect>) {
        self.phase = Phase::Connected { since: now };
        fx.push(CallEffect::Progress(CallProgress::Connected));
        self.timing.insert("connected".to_owned(), now);
        if self.setup.timeout_ms.is_some() {
            fx.push(CallEffect::CancelTimer {
                timer: CallTimer::Calling,
            });
        }
        for side in [Side::Caller, Side::Callee] {
            self.state(side, CallState::Connected, reasons[side.index()], "", fx);
            fx.push(CallEffect::Notify {
                to: self.user(side).clone(),
                update: CallUpdate::Connected {
                    room: self.setup.channel.clone(),
                    call_user: self.setup.caller.clone(),
                    timestamp: now,
                },
            });
        }
        if let Some(snapshot) = self.snapshot() {
            fx.push(CallEffect::Persist(snapshot));
        }
        self.arm_billing_tick(fx);
    }

    fn pause(&mut self, side: Side, fx: &mut Vec<CallEffect>) {
        let host = self.user(side).clone();
        let channels = match side {
            Side::Caller => self.setup.caller_live.clone(),
            Side::Callee => self.callee_live.clone(),
        };
        for channel in channels {
            if self.paused.iter().any(|(c, h)| *c == channel && *h == host) {
                continue;
            }
            fx.push(CallEffect::PauseLive {
                channel: channel.clone(),
                host: host.clone(),
            });
            self.paused.push((channel, host.clone()));
        }
    }

    /// Ends the call: `views[side]` is (reason, event, event_reason) for that side.
    fn end(
        &mut self,
        now: Millis,
        cause: EndCause,
        views: [(StateReason, Option<CallEvent>, String); 2],
        ended_by: Option<UserId>,
        fx: &mut Vec<CallEffect>,
    ) {
        let was_connected = match self.phase {
            Phase::Connected { since } => Some(since),
            _ => None,
        };
        // Nothing was opened or armed for the ring yet: no channel to close, no calling timer.
        let authorizing = matches!(self.phase, Phase::Authorizing { .. });
        if authorizing {
            fx.push(CallEffect::CancelTimer {
                timer: CallTimer::Admission,
            });
        }
        if was_connected.is_some() && self.billing_tick().is_some() {
            fx.push(CallEffect::CancelTimer {
                timer: CallTimer::BillingTick,
            });
        }
        self.phase = Phase::Ended;
        self.timing.insert("end".to_owned(), now);
        if self.adoption.take().is_some() {
            fx.push(CallEffect::CancelTimer {
                timer: CallTimer::Adoption,
            });
        }
        if self.setup.timeout_ms.is_some() && was_connected.is_none() && !authorizing {
            fx.push(CallEffect::CancelTimer {
                timer: CallTimer::Calling,
            });
        }
        let [caller_view, callee_view] = views;
        for (side, (reason, event, text)) in
            [(Side::Caller, caller_view), (Side::Callee, callee_view)]
        {
            if side == Side::Callee && !self.callee_involved {
                continue;
            }
            self.state(side, CallState::Prepared, reason, &text, fx);
            if let Some(event) = event {
                self.event(side, event, &text, fx);
            }
            if let Some(since) = was_connected {
                fx.push(CallEffect::Notify {
                    to: self.user(side).clone(),
                    update: CallUpdate::Disconnected {
                        room: self.setup.channel.clone(),
                        hangup_user: ended_by.clone(),
                        timestamp: now,
                        duration_ms: now.saturating_sub(since),
                    },
                });
            }
        }
        for (channel, host) in std::mem::take(&mut self.paused) {
            fx.push(CallEffect::ResumeLive { channel, host });
        }
        if !authorizing {
            fx.push(CallEffect::CloseChannel {
                channel: self.setup.channel.clone(),
            });
        }
        fx.push(CallEffect::Ended(CallRecord {
            id: self.setup.id.clone(),
            channel: self.setup.channel.clone(),
            caller: self.setup.caller.clone(),
            callee: self.setup.callee.clone(),
            call_type: self.setup.call_type,
            created_at: self.created_at,
            accepted_at: self.accepted_at,
            connected_at: was_connected,
            ended_at: now,
            connected_ms: was_connected.map_or(0, |since| now.saturating_sub(since)),
            cause,
        }));
    }

    pub(super) fn state(
        &self,
        side: Side,
        state: CallState,
        reason: StateReason,
        text: &str,
        fx: &mut Vec<CallEffect>,
    ) {
        fx.push(CallEffect::Notify {
            to: self.user(side).clone(),
            update: CallUpdate::State {
                state,
                reason,
                event_reason: text.to_owned(),
                info: self.info_for(side),
            },
        });
    }

    fn event(&self, side: Side, event: CallEvent, text: &str, fx: &mut Vec<CallEffect>) {
        fx.push(CallEffect::Notify {
            to: self.user(side).clone(),
            update: CallUpdate::Event {
                event,
                event_reason: text.to_owned(),
                info: None,
            },
        });
    }

    /// Whether a party has been told of the call. Presence events (joined, left, away, back) reach a party
    /// only then: the callee hears nothing before its ring is delivered.
    fn knows_of_call(&self, side: Side) -> bool {
        side == Side::Caller
            || !matches!(
                self.phase,
                Phase::Ringing { delivered: false } | Phase::Authorizing { .. }
            )
    }

    /// While the call is authorizing its channel does not exist yet: nothing can happen in it.
    fn refuse_before_channel(&self, input: &'static str) -> Result<(), CallError> {
        match self.phase {
            Phase::Authorizing { .. } => Err(self.unexpected(input)),
            _ => Ok(()),
        }
    }

    fn participant(&self, user: &UserId) -> Result<Side, CallError> {
        self.side_of(user).ok_or(CallError::NotParticipant)
    }

    fn not_allowed(&self, command: &'static str, side: Side) -> CallError {
        CallError::NotAllowed {
            command,
            side,
            phase: self.phase.name(),
        }
    }

    fn unexpected(&self, input: &'static str) -> CallError {
        CallError::Unexpected {
            input,
            phase: self.phase.name(),
        }
    }
}
