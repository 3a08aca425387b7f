//! `ChannelMachine`: who is in a channel, in which role, and whether the broadcaster's publication is
//! forwarded.
//!
//! Two kinds of channel share these rules:
//! - a **live** room, named by the app: at most one broadcaster, any number of audience members. A 1v1 call
//!   pauses its broadcaster (the room stays open; members are told) and resumes it when the call ends.
//! - a **call** channel, minted by the server for one call: only that call's two participants may join, both
//!   as broadcasters; the call is told of joins and leaves; when the call ends the channel closes for good.
//!
//! The media router (next issue) acts on the same effects: `RequestKeyframe` after a resume, forwarding only
//! `Publishing` members.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::{CallId, ChannelName, PublishState, Role, UserId};

/// What kind of channel this is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelKind {
    Live,
    Call {
        call: CallId,
        participants: [UserId; 2],
    },
}

/// A member's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub role: Role,
    pub publish: PublishState,
}

/// Inputs to a [`ChannelMachine`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelInput {
    /// A user asks to join. `may_publish` is the token's publish grant (checked for broadcasters of live
    /// rooms; call participants publish by right of the call).
    Join {
        user: UserId,
        role: Role,
        may_publish: bool,
    },
    Leave {
        user: UserId,
    },
    /// A call accepted by `host` pauses its live publication here.
    PauseBroadcaster {
        host: UserId,
        call: CallId,
    },
    /// That call ended.
    ResumeBroadcaster {
        host: UserId,
        call: CallId,
    },
    /// The call of a call channel ended: everyone out, no more joins.
    Close,
    /// The business server removes `user` (kick or ban). Unlike a leave, the user actor is told why, and
    /// in a call channel the call ends.
    Kick {
        user: UserId,
        /// Seconds until the user may join again (0 = kicked, not banned), for the user's notice.
        ban_seconds: u64,
    },
}

/// What members are told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelUpdate {
    MemberJoined {
        user: UserId,
        member: Member,
    },
    MemberLeft {
        user: UserId,
    },
    /// The broadcaster went into a private call.
    BroadcasterPaused {
        user: UserId,
    },
    /// The node renegotiates the member's media session (the router's offer; the member answers it).
    MediaOffer {
        sdp_offer: String,
        revision: u64,
    },
    /// The broadcaster is back live.
    BroadcasterResumed {
        user: UserId,
    },
    /// The member's estimated bandwidth no longer carries any video layer (`paused`: its video stopped,
    /// its audio goes on), or carries one again. From the media router, not the channel machine. Wire
    /// 1.3.
    VideoPausedForBandwidth {
        paused: bool,
    },
}

/// Effects the channel actor carries out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelEffect {
    /// Tell one member.
    Deliver {
        to: UserId,
        update: ChannelUpdate,
    },
    /// Tell the call of a call channel that a participant joined or left.
    CallMemberJoined {
        call: CallId,
        user: UserId,
    },
    CallMemberLeft {
        call: CallId,
        user: UserId,
    },
    /// Tell a user actor it is no longer in this channel (closed under it).
    Removed {
        user: UserId,
    },
    /// Tell a user actor the business server kicked it out of this channel.
    Kicked {
        user: UserId,
        ban_seconds: u64,
    },
    /// End the call of this call channel (a participant was kicked).
    EndCall {
        call: CallId,
        reason: String,
    },
    /// Forward `user`'s publication to the other members (`on`), or hold it back in the media router
    /// (while it is a broadcaster paused for a private call).
    Forward {
        user: UserId,
        on: bool,
    },
    /// Ask the broadcaster for a keyframe so members see video at once (acted on by the media router).
    RequestKeyframe {
        from: UserId,
    },
    /// Something the business server hears of (its `member_*` and `host_*` events).
    Report(ChannelReport),
    /// Nobody is left (live) or the channel closed (call): the actor stops.
    Stop,
}

/// What the channel reports to the business server, each in the step that did it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelReport {
    /// A user became a member (a rejoin with another role is not a new member).
    MemberJoined { user: UserId, role: Role },
    /// A member left, was kicked, or the channel closed under it.
    MemberLeft { user: UserId, role: Role },
    /// The broadcaster went into a private call.
    HostPaused { host: UserId, call: CallId },
    /// It is back live.
    HostResumed { host: UserId },
}

/// A refused input; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ChannelError {
    #[error("only the two participants of the call may join its channel")]
    NotAParticipant,
    #[error("the channel already has a broadcaster")]
    HasBroadcaster,
    #[error("the token does not grant publishing")]
    PublishNotGranted,
    #[error("user is not in the channel")]
    NotInChannel,
    #[error("the channel is closed")]
    Closed,
}

/// A snapshot for a joiner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelView {
    pub members: Vec<(UserId, Member)>,
    pub broadcaster_paused: bool,
}

/// One channel's rules. See the module docs.
#[derive(Clone, Debug)]
pub struct ChannelMachine {
    name: ChannelName,
    kind: ChannelKind,
    members: BTreeMap<UserId, Member>,
    /// The broadcaster paused by a call, and that call: only its end resumes it. Kept even while the host
    /// is not a member so a host that rejoins mid-call stays paused.
    paused: Option<(UserId, CallId)>,
    closed: bool,
}

impl ChannelMachine {
    pub fn new(name: ChannelName, kind: ChannelKind) -> Self {
        Self {
            name,
            kind,
            members: BTreeMap::new(),
            paused: None,
            closed: false,
        }
    }

    pub fn name(&self) -> &ChannelName {
        &self.name
    }

    pub fn kind(&self) -> &ChannelKind {
        &self.kind
    }

    pub fn member(&self, user: &UserId) -> Option<Member> {
        self.members.get(user).copied()
    }

    /// The broadcaster held back by a call, if any (whether or not it is in the room now).
    pub fn paused_broadcaster(&self) -> Option<&UserId> {
        self.paused.as_ref().map(|(host, _)| host)
    }

    /// The broadcaster paused and the call that paused it.
    pub fn paused_by(&self) -> Option<(&UserId, &CallId)> {
        self.paused.as_ref().map(|(host, call)| (host, call))
    }

    /// The members who broadcast, with their membership.
    pub fn broadcasters(&self) -> impl Iterator<Item = (&UserId, &Member)> {
        self.members
            .iter()
            .filter(|(_, member)| member.role == Role::Broadcaster)
    }

    /// The members' ids.
    pub fn member_ids(&self) -> impl Iterator<Item = &UserId> {
        self.members.keys()
    }

    /// True once a call channel was closed (its call ended).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Everyone in the channel now.
    pub fn view(&self) -> ChannelView {
        ChannelView {
            members: self.members.iter().map(|(u, m)| (u.clone(), *m)).collect(),
            broadcaster_paused: self
                .paused
                .as_ref()
                .is_some_and(|(h, _)| self.members.contains_key(h)),
        }
    }

    /// Feeds one input. On `Err` nothing changed.
    pub fn handle(&mut self, input: ChannelInput) -> Result<Vec<ChannelEffect>, ChannelError> {
        if self.closed {
            return Err(ChannelError::Closed);
        }
        let mut fx = Vec::new();
        match input {
            ChannelInput::Join {
                user,
                role,
                may_publish,
            } => self.join(user, role, may_publish, &mut fx)?,
            ChannelInput::Leave { user } => {
                let Some(left) = self.members.remove(&user) else {
                    return Err(ChannelError::NotInChannel);
                };
                fx.push(ChannelEffect::Report(ChannelReport::MemberLeft {
                    user: user.clone(),
                    role: left.role,
                }));
                self.tell_others(
                    &user,
                    ChannelUpdate::MemberLeft { user: user.clone() },
                    &mut fx,
                );
                if let ChannelKind::Call { call, .. } = &self.kind {
                    fx.push(ChannelEffect::CallMemberLeft {
                        call: call.clone(),
                        user,
                    });
                } else if self.members.is_empty() && self.paused.is_none() {
                    fx.push(ChannelEffect::Stop);
                }
            }
            ChannelInput::PauseBroadcaster { host, call } => {
                if let Some((paused_host, paused_call)) = &mut self.paused {
                    // The host's next call may pause before its previous call's resume arrives (they come
                    // from different call actors): the pause now belongs to the newer call, so the stale
                    // resume is ignored and the room never flickers live mid-call.
                    if *paused_host == host {
                        *paused_call = call;
                    }
                    return Ok(fx);
                }
                self.paused = Some((host.clone(), call.clone()));
                fx.push(ChannelEffect::Report(ChannelReport::HostPaused {
                    host: host.clone(),
                    call,
                }));
                fx.push(ChannelEffect::Forward {
                    user: host.clone(),
                    on: false,
                });
                if let Some(m) = self.members.get_mut(&host)
                    && m.role == Role::Broadcaster
                {
                    m.publish = PublishState::Paused;
                    self.tell_all(ChannelUpdate::BroadcasterPaused { user: host }, &mut fx);
                }
            }
            ChannelInput::ResumeBroadcaster { host, call } => {
                if self.paused != Some((host.clone(), call)) {
                    return Ok(fx);
                }
                self.paused = None;
                fx.push(ChannelEffect::Report(ChannelReport::HostResumed {
                    host: host.clone(),
                }));
                fx.push(ChannelEffect::Forward {
                    user: host.clone(),
                    on: true,
                });
                if let Some(m) = self.members.get_mut(&host)
                    && m.role == Role::Broadcaster
                {
                    m.publish = PublishState::Publishing;
                    self.tell_all(
                        ChannelUpdate::BroadcasterResumed { user: host.clone() },
                        &mut fx,
                    );
                    fx.push(ChannelEffect::RequestKeyframe { from: host });
                } else if self.members.is_empty() {
                    fx.push(ChannelEffect::Stop);
                }
            }
            ChannelInput::Kick { user, ban_seconds } => {
                let Some(kicked) = self.members.remove(&user) else {
                    return Err(ChannelError::NotInChannel);
                };
                fx.push(ChannelEffect::Report(ChannelReport::MemberLeft {
                    user: user.clone(),
                    role: kicked.role,
                }));
                self.tell_others(
                    &user,
                    ChannelUpdate::MemberLeft { user: user.clone() },
                    &mut fx,
                );
                fx.push(ChannelEffect::Kicked {
                    user: user.clone(),
                    ban_seconds,
                });
                if let ChannelKind::Call { call, .. } = &self.kind {
                    // A 1v1 without one of its two parties is over (the seed's business server hangs up
                    // after a kick; here the server does it at once).
                    fx.push(ChannelEffect::EndCall {
                        call: call.clone(),
                        reason: format!("kicked: {user}"),
                    });
                } else if self.members.is_empty() && self.paused.is_none() {
                    fx.push(ChannelEffect::Stop);
                }
            }
            ChannelInput::Close => {
                self.closed = true;
                for (user, member) in std::mem::take(&mut self.members) {
                    fx.push(ChannelEffect::Report(ChannelReport::MemberLeft {
                        user: user.clone(),
                        role: member.role,
                    }));
                    fx.push(ChannelEffect::Removed { user });
                }
                fx.push(ChannelEffect::Stop);
            }
        }
        Ok(fx)
    }

    /// Whether `user` may join as `role` now, and the role it would get (call participants always
    /// broadcast). Changes nothing: the actor asks first when a join also opens a media session, so a
    /// refused join never leaves a session behind.
    pub fn check_join(
        &self,
        user: &UserId,
        role: Role,
        may_publish: bool,
    ) -> Result<Role, ChannelError> {
        if self.closed {
            return Err(ChannelError::Closed);
        }
        match &self.kind {
            ChannelKind::Call { participants, .. } => {
                if !participants.contains(user) {
                    return Err(ChannelError::NotAParticipant);
                }
                // Both parties of a call publish, whatever role they asked for.
                Ok(Role::Broadcaster)
            }
            ChannelKind::Live => {
                if role == Role::Broadcaster {
                    if !may_publish {
                        return Err(ChannelError::PublishNotGranted);
                    }
                    let other = self
                        .members
                        .iter()
                        .any(|(u, m)| u != user && m.role == Role::Broadcaster);
                    if other {
                        return Err(ChannelError::HasBroadcaster);
                    }
                }
                Ok(role)
            }
        }
    }

    fn join(
        &mut self,
        user: UserId,
        role: Role,
        may_publish: bool,
        fx: &mut Vec<ChannelEffect>,
    ) -> Result<(), ChannelError> {
        let role = self.check_join(&user, role, may_publish)?;
        let publish = match role {
            Role::Audience => PublishState::None,
            Role::Broadcaster if self.paused.as_ref().is_some_and(|(h, _)| *h == user) => {
                PublishState::Paused
            }
            Role::Broadcaster => PublishState::Publishing,
        };
        if publish == PublishState::Paused {
            // A paused broadcaster (re)joining, maybe with a new media session: held back there too.
            fx.push(ChannelEffect::Forward {
                user: user.clone(),
                on: false,
            });
        }
        let member = Member { role, publish };
        let previous = self.members.insert(user.clone(), member);
        if previous.is_none() {
            fx.push(ChannelEffect::Report(ChannelReport::MemberJoined {
                user: user.clone(),
                role,
            }));
        }
        if previous == Some(member) {
            // Joining again with the same standing changes nothing and tells no member. A call is told
            // again (it ignores what it knows): a join whose answer was lost and that the client
            // retried must still reach the call, or it never connects.
            if let ChannelKind::Call { call, .. } = &self.kind {
                fx.push(ChannelEffect::CallMemberJoined {
                    call: call.clone(),
                    user,
                });
            }
            return Ok(());
        }
        self.tell_others(
            &user,
            ChannelUpdate::MemberJoined {
                user: user.clone(),
                member,
            },
            fx,
        );
        match &self.kind {
            ChannelKind::Call { call, .. } => fx.push(ChannelEffect::CallMemberJoined {
                call: call.clone(),
                user,
            }),
            ChannelKind::Live => {
                // A new subscriber needs a keyframe to start decoding.
                if let Some((b, m)) = self
                    .members
                    .iter()
                    .find(|(_, m)| m.role == Role::Broadcaster)
                    && m.publish == PublishState::Publishing
                {
                    fx.push(ChannelEffect::RequestKeyframe { from: b.clone() });
                }
            }
        }
        Ok(())
    }

    fn tell_others(&self, except: &UserId, update: ChannelUpdate, fx: &mut Vec<ChannelEffect>) {
        for user in self.members.keys().filter(|u| *u != except) {
            fx.push(ChannelEffect::Deliver {
                to: user.clone(),
                update: update.clone(),
            });
        }
    }

    fn tell_all(&self, update: ChannelUpdate, fx: &mut Vec<ChannelEffect>) {
        for user in self.members.keys() {
            fx.push(ChannelEffect::Deliver {
                to: user.clone(),
                update: update.clone(),
            });
        }
    }
}
