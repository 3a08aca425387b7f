//! A tiny synchronous dispatcher that wires the real machines the way the actors of `showcall-actors` do,
//! for `call_random_interleavings`.
//!
//! One FIFO mailbox per user, call and channel; the test picks which mailbox delivers next, so messages
//! from different senders race the way they do between actors, while each sender's messages keep their
//! order. Client commands reach their user machine at once (they are answered directly), only while the
//! client is connected, and a client acts on a channel again only once its last join there was answered.
//! Routing follows the actors: a call or channel message is dropped when its target is gone; a message to
//! a user goes to the session that was live when it was sent and is dropped if that one has stopped —
//! except a ring, which is answered `Undeliverable(Offline)` so the caller hears at once (the call actor's
//! rule for a ring with nobody to take it).
//!
//! Every refused input is checked to leave its machine exactly as it was.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use showcall_machines::call::Undeliverable;
use showcall_machines::user::{CallCommand, Prepared, Pushed};
use showcall_machines::{
    CallEffect, CallId, CallInput, CallMachine, CallRecord, CallType, ChannelEffect, ChannelInput,
    ChannelKind, ChannelMachine, ChannelName, ConnId, Millis, PauseAt, Role, UserConfig,
    UserEffect, UserError, UserId, UserInput, UserMachine, UserTimer,
};

pub const NAMES: [&str; 3] = ["alice", "bob", "carol"];
pub const TOKEN_MS: Millis = 120_000;

pub fn uid(u: usize) -> UserId {
    NAMES[u].into()
}

pub fn index_of(user: &UserId) -> usize {
    NAMES
        .iter()
        .position(|n| *n == user.as_str())
        .expect("one of the three users")
}

pub fn live_room(host: usize) -> ChannelName {
    format!("live-{}", NAMES[host]).into()
}

/// What happens next.
#[derive(Clone, Debug)]
pub enum Op {
    /// The k-th non-empty mailbox delivers one message.
    Deliver(usize),
    Call {
        from: usize,
        to: usize,
        timeout: bool,
    },
    /// Cancel (0), accept (1, 2), reject (3) or hang up (4, 5) — the current call, or (`stale`) an old one.
    Command {
        who: usize,
        cmd: u8,
        stale: bool,
    },
    JoinCall(usize),
    LeaveCall(usize),
    GoLive(usize),
    Watch {
        who: usize,
        host: usize,
    },
    LeaveRoom {
        who: usize,
        host: usize,
    },
    Drop(usize),
    Login(usize),
    Logout(usize),
    Renew(usize),
    /// The k-th pending timer (by deadline) fires; the clock jumps to it if it lies ahead.
    Fire(usize),
    /// The business server ends the k-th running call.
    Terminate(usize),
    Wait(Millis),
    /// Scenario tests only: a named mailbox delivers everything it holds.
    DrainUser(usize),
    DrainCall(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dest {
    User(usize),
    Call(CallId),
    Channel(ChannelName),
}

#[derive(Debug)]
pub enum Msg {
    /// To the user incarnation `inc`.
    User {
        inc: u32,
        input: UserInput,
    },
    Call(CallInput),
    /// To the channel instance `inst` (a live room is reopened after it stops).
    Join {
        inst: u32,
        user: UserId,
        role: Role,
    },
    Channel {
        inst: u32,
        input: ChannelInput,
    },
}

#[derive(Clone, Debug)]
pub enum Timer {
    User {
        u: usize,
        inc: u32,
        timer: UserTimer,
    },
    Call(CallId),
}

/// One login's session and everything its client was pushed.
pub struct Session {
    pub inc: u32,
    pub machine: UserMachine,
    pub client: Vec<Pushed>,
}

pub struct CallSlot {
    pub machine: CallMachine,
    pub records: Vec<CallRecord>,
    pub paused: Vec<(ChannelName, UserId)>,
    pub resumed: Vec<(ChannelName, UserId)>,
    /// The parties whose user machines withdrew the call for a glare (each told its own client
    /// `glareResolved`, whatever the call then ends with).
    pub gave_way: Vec<UserId>,
}

pub struct World {
    pub now: Millis,
    pub config: UserConfig,
    pub users: Vec<Session>,
    /// Stopped sessions, kept for their client logs.
    pub archive: Vec<(usize, Session)>,
    pub calls: BTreeMap<CallId, CallSlot>,
    pub channels: BTreeMap<ChannelName, (u32, ChannelMachine)>,
    pub mail: BTreeMap<Dest, VecDeque<Msg>>,
    pub timers: Vec<(Millis, Timer)>,
    pub next_conn: u64,
    pub next_call: u32,
    pub next_inst: u32,
    pub last_call: [Option<CallId>; 3],
    /// Joins whose answer the client still awaits: a client acts on a channel again only once its user
    /// machine has taken the confirmation (sent before the answer) or the join was refused.
    pub awaiting: BTreeSet<(usize, ChannelName)>,
}

impl World {
    pub fn new(pause_at: PauseAt) -> Self {
        let config = UserConfig {
            pause_at,
            // The world models one timer per call (the calling timeout); billing ticks and admission
            // have their own tests (call_admission.rs, call_billing_ticks.rs).
            billing_tick_ms: 0,
            ..UserConfig::default()
        };
        let mut w = World {
            now: 1_000,
            users: Vec::new(),
            archive: Vec::new(),
            calls: BTreeMap::new(),
            channels: BTreeMap::new(),
            mail: BTreeMap::new(),
            timers: Vec::new(),
            next_conn: 0,
            next_call: 0,
            next_inst: 0,
            last_call: [None, None, None],
            awaiting: BTreeSet::new(),
            config,
        };
        for u in 0..3 {
            let machine = UserMachine::new(uid(u), w.config.clone());
            w.users.push(Session {
                inc: 0,
                machine,
                client: Vec::new(),
            });
            w.login(u);
        }
        w
    }

    pub fn alive(&self, u: usize) -> bool {
        !self.users[u].machine.is_closed()
    }

    pub fn online(&self, u: usize) -> Option<ConnId> {
        self.users[u].machine.connection()
    }

    pub fn enqueue(&mut self, dest: Dest, msg: Msg) {
        self.mail.entry(dest).or_default().push_back(msg);
    }

    /// A message to the user's live incarnation; nobody to send to once it stopped.
    pub fn send_user(&mut self, u: usize, input: UserInput) {
        if self.alive(u) {
            let inc = self.users[u].inc;
            self.enqueue(Dest::User(u), Msg::User { inc, input });
        }
    }

    pub fn send_call(&mut self, id: CallId, input: CallInput) {
        if self.calls.get(&id).is_some_and(|c| !c.machine.is_ended()) {
            self.enqueue(Dest::Call(id), Msg::Call(input));
        }
    }

    pub fn send_channel(&mut self, channel: ChannelName, input: ChannelInput) {
        if let Some((inst, _)) = self.channels.get(&channel) {
            let inst = *inst;
            self.enqueue(Dest::Channel(channel), Msg::Channel { inst, input });
        }
    }

    pub fn join(&mut self, channel: ChannelName, user: UserId, role: Role) {
        self.awaiting.insert((index_of(&user), channel.clone()));
        let inst = match self.channels.get(&channel) {
            Some((inst, _)) => *inst,
            None => {
                self.next_inst += 1;
                let m = ChannelMachine::new(channel.clone(), ChannelKind::Live);
                self.channels.insert(channel.clone(), (self.next_inst, m));
                self.next_inst
            }
        };
        self.enqueue(Dest::Channel(channel), Msg::Join { inst, user, role });
    }

    /// A log-in on a new connection: a replacement, a resume, or (once stopped) a new session.
    pub fn login(&mut self, u: usize) {
        if !self.alive(u) {
            let inc = self.users[u].inc + 1;
            let fresh = Session {
                inc,
                machine: UserMachine::new(uid(u), self.config.clone()),
                client: Vec::new(),
            };
            let old = std::mem::replace(&mut self.users[u], fresh);
            self.archive.push((u, old));
        }
        self.next_conn += 1;
        let login = UserInput::Login {
            conn: ConnId(self.next_conn),
            token_expires_at: self.now + TOKEN_MS,
        };
        self.feed_user(u, login)
            .expect("a live session accepts a login");
        let _ = self.feed_user(u, UserInput::Prepare(Prepared::default()));
    }

    pub fn feed_user(&mut self, u: usize, input: UserInput) -> Result<(), UserError> {
        let session = &mut self.users[u];
        let before = format!("{:?}", session.machine);
        let fx = match session.machine.handle(input, self.now) {
            Ok(fx) => fx,
            Err(e) => {
                assert_eq!(
                    format!("{:?}", session.machine),
                    before,
                    "a refused user input changed {}",
                    NAMES[u]
                );
                return Err(e);
            }
        };
        if let Some(call) = session.machine.call() {
            self.last_call[u] = Some(call.id.clone());
        }
        let inc = session.inc;
        for effect in fx {
            match effect {
                UserEffect::Push(pushed) => {
                    let log = &mut self.users[u].client;
                    let last = log.last().map_or(0, |p| p.seq);
                    assert!(
                        pushed.seq > last,
                        "{}'s events are numbered in order: {pushed:?}",
                        NAMES[u]
                    );
                    log.push(pushed);
                }
                UserEffect::Close { .. } | UserEffect::Stop => {}
                UserEffect::SpawnCall(setup) => {
                    let id = setup.id.clone();
                    let machine = CallMachine::new(setup, self.now);
                    let slot = CallSlot {
                        machine,
                        records: vec![],
                        paused: vec![],
                        resumed: vec![],
                        gave_way: Vec::new(),
                    };
                    self.calls.insert(id.clone(), slot);
                    self.feed_call(&id, CallInput::Start);
                }
                UserEffect::ToCall { call_id, input }
                | UserEffect::CommandCall { call_id, input } => {
                    if let (CallInput::GaveWay { by }, Some(slot)) =
                        (&input, self.calls.get_mut(&call_id))
                    {
                        slot.gave_way.push(by.clone());
                    }
                    self.send_call(call_id, input);
                }
                UserEffect::JoinChannel { channel, role, .. } => self.join(channel, uid(u), role),
                UserEffect::LeaveChannel { channel } => {
                    self.send_channel(channel, ChannelInput::Leave { user: uid(u) })
                }
                UserEffect::ToChannel { channel, input } => self.send_channel(channel, input),
                UserEffect::SetTimer { timer, at } => {
                    self.timers.push((at, Timer::User { u, inc, timer }));
                }
            }
        }
        Ok(())
    }

    pub fn feed_call(&mut self, id: &CallId, input: CallInput) {
        let slot = self.calls.get_mut(id).expect("calls are never forgotten");
        let before = format!("{:?}", slot.machine);
        let Ok(fx) = slot.machine.handle(input, self.now) else {
            assert_eq!(
                format!("{:?}", slot.machine),
                before,
                "a refused call input changed {id}"
            );
            return;
        };
        // Like the call actor: effects in order, a failed ring's answer appended.
        let mut queue = VecDeque::from(fx);
        while let Some(effect) = queue.pop_front() {
            match effect {
                CallEffect::OpenChannel { channel, members } => {
                    self.next_inst += 1;
                    let kind = ChannelKind::Call {
                        call: id.clone(),
                        participants: members,
                    };
                    let m = ChannelMachine::new(channel.clone(), kind);
                    self.channels.insert(channel, (self.next_inst, m));
                }
                CallEffect::Ring { callee, info } => {
                    let c = index_of(&callee);
                    if self.alive(c) {
                        self.send_user(c, UserInput::Ring { info });
                    } else {
                        let offline = CallInput::Undeliverable(Undeliverable::Offline);
                        let slot = self.calls.get_mut(id).expect("calls are never forgotten");
                        queue.extend(slot.machine.handle(offline, self.now).expect("ringing"));
                    }
                }
                CallEffect::Notify { to, update } => {
                    self.send_user(
                        index_of(&to),
                        UserInput::CallUpdate {
                            call_id: id.clone(),
                            update,
                        },
                    );
                }
                CallEffect::SetTimer { at, .. } => {
                    self.timers
                        .retain(|(_, t)| !matches!(t, Timer::Call(c) if c == id));
                    self.timers.push((at, Timer::Call(id.clone())));
                }
                CallEffect::CancelTimer { .. } => {
                    self.timers
                        .retain(|(_, t)| !matches!(t, Timer::Call(c) if c == id));
                }
                CallEffect::PauseLive { channel, host } => {
                    let slot = self.calls.get_mut(id).expect("calls are never forgotten");
                    slot.paused.push((channel.clone(), host.clone()));
                    let call = id.clone();
                    self.send_channel(channel, ChannelInput::PauseBroadcaster { host, call });
                }
                CallEffect::ResumeLive { channel, host } => {
                    let slot = self.calls.get_mut(id).expect("calls are never forgotten");
                    slot.resumed.push((channel.clone(), host.clone()));
                    let call = id.clone();
                    self.send_channel(channel, ChannelInput::ResumeBroadcaster { host, call });
                }
                CallEffect::CloseChannel { channel } => {
                    self.send_channel(channel, ChannelInput::Close)
                }
                CallEffect::Ended(record) => {
                    let slot = self.calls.get_mut(id).expect("calls are never forgotten");
                    slot.records.push(record);
                    assert_eq!(slot.records.len(), 1, "{id} ended twice");
                }
                // No node dies in this world: the snapshot is not needed and nothing is restored.
                CallEffect::Persist(_) => {}
                // Business events: no business server in this world.
                CallEffect::Progress(_) => {}
                CallEffect::AskParty { .. } | CallEffect::AskChannel { .. } => {
                    unreachable!("only restored calls ask")
                }
                CallEffect::Authorize(_) => unreachable!("no app in this world requires admission"),
                CallEffect::BillingTick { .. } => {
                    unreachable!("billing ticks are off in this world")
                }
            }
        }
    }

    pub fn channel_message(&mut self, channel: ChannelName, msg: Msg) {
        if let Msg::Join { user, .. } = &msg {
            // Answered now, one way or the other; a confirmation is on its way to the user if admitted.
            self.awaiting.remove(&(index_of(user), channel.clone()));
        }
        let Some((current, m)) = self.channels.get_mut(&channel) else {
            return;
        };
        let before = format!("{m:?}");
        let (inst, input) = match msg {
            Msg::Join { inst, user, role } => (
                inst,
                ChannelInput::Join {
                    user,
                    role,
                    may_publish: true,
                },
            ),
            Msg::Channel { inst, input } => (inst, input),
            _ => unreachable!("only channel messages reach channels"),
        };
        if inst != *current {
            return; // sent to an instance that has stopped since
        }
        let joiner = match &input {
            ChannelInput::Join { user, .. } => Some(user.clone()),
            _ => None,
        };
        let fx = match m.handle(input) {
            Ok(fx) => fx,
            Err(_) => {
                assert_eq!(
                    format!("{m:?}"),
                    before,
                    "a refused channel input changed {channel}"
                );
                return;
            }
        };
        if let Some(user) = joiner {
            // The channel actor tells the user actor before anyone else hears of the join.
            let role = m.member(&user).expect("just joined").role;
            if self.alive(index_of(&user)) {
                self.awaiting.insert((index_of(&user), channel.clone()));
            }
            self.send_user(
                index_of(&user),
                UserInput::ChannelJoined {
                    channel: channel.clone(),
                    role,
                    broadcasters: Vec::new(),
                },
            );
        }
        for effect in fx {
            match effect {
                ChannelEffect::Deliver { to, update } => {
                    self.send_user(
                        index_of(&to),
                        UserInput::ChannelUpdate {
                            channel: channel.clone(),
                            update,
                        },
                    );
                }
                ChannelEffect::CallMemberJoined { call, user } => {
                    self.send_call(call, CallInput::ChannelJoined { user, media: false })
                }
                // No media router and no business server in this world.
                ChannelEffect::Forward { .. } | ChannelEffect::Report(_) => {}
                ChannelEffect::CallMemberLeft { call, user } => {
                    self.send_call(call, CallInput::ChannelLeft { user })
                }
                ChannelEffect::Removed { user } => {
                    self.send_user(
                        index_of(&user),
                        UserInput::ChannelRemoved {
                            channel: channel.clone(),
                        },
                    );
                }
                ChannelEffect::Kicked { user, ban_seconds } => {
                    self.send_user(
                        index_of(&user),
                        UserInput::Kicked {
                            channel: channel.clone(),
                            ban_seconds,
                        },
                    );
                }
                ChannelEffect::EndCall { call, reason } => {
                    self.send_call(call, CallInput::Terminate { reason })
                }
                ChannelEffect::RequestKeyframe { .. } => {}
                ChannelEffect::Stop => {
                    // A closed call channel stays, refusing joins; a live room is reopened by its next join.
                    if !channel.is_call_channel() {
                        self.channels.remove(&channel);
                    }
                }
            }
        }
    }

    pub fn deliver(&mut self, dest: Dest) {
        let Some(msg) = self.mail.get_mut(&dest).and_then(VecDeque::pop_front) else {
            return;
        };
        match (dest, msg) {
            (Dest::User(u), Msg::User { inc, input }) => {
                if let UserInput::ChannelJoined { channel, .. } = &input {
                    self.awaiting.remove(&(u, channel.clone()));
                }
                if inc == self.users[u].inc && self.alive(u) {
                    let _ = self.feed_user(u, input);
                } else if let UserInput::Ring { info } = input {
                    self.feed_call(
                        &info.call_id,
                        CallInput::Undeliverable(Undeliverable::Offline),
                    );
                }
            }
            (Dest::Call(id), Msg::Call(input)) => self.feed_call(&id, input),
            (Dest::Channel(channel), msg) => self.channel_message(channel, msg),
            (dest, msg) => unreachable!("{msg:?} in the mailbox of {dest:?}"),
        }
    }

    pub fn quiet(&self) -> bool {
        self.mail.values().all(VecDeque::is_empty)
    }

    pub fn drain(&mut self) {
        while let Some(dest) = self
            .mail
            .iter()
            .find(|(_, q)| !q.is_empty())
            .map(|(d, _)| d.clone())
        {
            self.deliver(dest);
        }
    }

    /// A client joins (`Some(role)`) or leaves a channel — once its last join there was answered.
    pub fn channel_command(&mut self, u: usize, channel: ChannelName, join: Option<Role>) {
        if self.online(u).is_none() || self.awaiting.contains(&(u, channel.clone())) {
            return;
        }
        let input = match join {
            Some(role) => UserInput::JoinChannel {
                channel,
                role,
                may_publish: true,
                offer: None,
            },
            None => UserInput::LeaveChannel { channel },
        };
        let _ = self.feed_user(u, input);
    }

    pub fn fire(&mut self, k: usize) {
        if self.timers.is_empty() {
            return;
        }
        self.timers.sort_by_key(|(at, _)| *at);
        let (at, timer) = self.timers.remove(k % self.timers.len());
        self.now = self.now.max(at);
        match timer {
            Timer::User { u, inc, timer } => {
                if inc == self.users[u].inc {
                    self.send_user(u, UserInput::Timer(timer));
                }
            }
            Timer::Call(id) => self.send_call(id, CallInput::CallingTimeout),
        }
    }

    pub fn apply(&mut self, op: &Op) {
        match *op {
            Op::Deliver(k) => {
                let ready: Vec<Dest> = self
                    .mail
                    .iter()
                    .filter(|(_, q)| !q.is_empty())
                    .map(|(d, _)| d.clone())
                    .collect();
                if !ready.is_empty() {
                    self.deliver(ready[k % ready.len()].clone());
                }
            }
            Op::DrainUser(u) => {
                while self.mail.get(&Dest::User(u)).is_some_and(|q| !q.is_empty()) {
                    self.deliver(Dest::User(u));
                }
            }
            Op::DrainCall(id) => {
                let dest = Dest::Call(id.into());
                while self.mail.get(&dest).is_some_and(|q| !q.is_empty()) {
                    self.deliver(dest.clone());
                }
            }
            Op::Call { from, to, timeout } if self.online(from).is_some() => {
                self.next_call += 1;
                let n = self.next_call;
                let start = UserInput::StartCall {
                    callee: uid(to),
                    call_type: CallType::Video,
                    extension: BTreeMap::new(),
                    timeout_ms: if timeout { None } else { Some(0) },
                    call_id: format!("c{n}").into(),
                    channel: format!("call-c{n}").into(),
                };
                let _ = self.feed_user(from, start);
            }
            Op::Command { who, cmd, stale } if self.online(who).is_some() => {
                let current = self.users[who].machine.call().map(|c| c.id.clone());
                let old = self.last_call[who]
                    .clone()
                    .filter(|id| Some(id) != current.as_ref());
                let call_id = match (stale, current) {
                    (false, Some(id)) => id,
                    _ => old.unwrap_or_else(|| "c-unknown".into()),
                };
                let is_current = self.users[who]
                    .machine
                    .call()
                    .is_some_and(|c| c.id == call_id);
                let command = match cmd {
                    0 => CallCommand::Cancel,
                    1 | 2 => CallCommand::Accept,
                    3 => CallCommand::Reject {
                        reason: "no".into(),
                    },
                    _ => CallCommand::Hangup {
                        reason: "bye".into(),
                    },
                };
                let result = self.feed_user(who, UserInput::Command { call_id, command });
                if !is_current {
                    assert_eq!(
                        result,
                        Err(UserError::NoSuchCall),
                        "a stale call id is refused"
                    );
                }
            }
            Op::JoinCall(who) | Op::LeaveCall(who) => {
                let current = self.users[who].machine.call().map(|c| c.channel.clone());
                let old = self.last_call[who]
                    .as_ref()
                    .map(|id| format!("call-{id}").into());
                if let Some(channel) = current.or(old) {
                    let join = matches!(op, Op::JoinCall(_)).then_some(Role::Broadcaster);
                    self.channel_command(who, channel, join);
                }
            }
            Op::GoLive(who) => self.channel_command(who, live_room(who), Some(Role::Broadcaster)),
            Op::Watch { who, host } if who != host => {
                self.channel_command(who, live_room(host), Some(Role::Audience));
            }
            Op::LeaveRoom { who, host } => self.channel_command(who, live_room(host), None),
            Op::Drop(who) => {
                if let Some(conn) = self.online(who) {
                    self.feed_user(who, UserInput::ConnectionLost { conn })
                        .expect("the live connection drops");
                }
            }
            Op::Login(who) => self.login(who),
            Op::Logout(who) => {
                if let Some(conn) = self.online(who) {
                    self.feed_user(who, UserInput::Logout { conn })
                        .expect("the live connection logs out");
                }
            }
            Op::Renew(who) if self.online(who).is_some() => {
                let renew = UserInput::RenewToken {
                    token_expires_at: self.now + TOKEN_MS,
                };
                self.feed_user(who, renew).expect("a live session renews");
            }
            Op::Fire(k) => self.fire(k),
            Op::Terminate(k) => {
                let running: Vec<CallId> = self
                    .calls
                    .iter()
                    .filter(|(_, c)| !c.machine.is_ended())
                    .map(|(id, _)| id.clone())
                    .collect();
                if !running.is_empty() {
                    self.send_call(
                        running[k % running.len()].clone(),
                        CallInput::Terminate {
                            reason: "ops".into(),
                        },
                    );
                }
            }
            Op::Wait(ms) => self.now += ms,
            _ => {} // a command from a client that is not connected never reaches its session
        }
    }
}
