//! A call actor on its own: no hub, no other actor — a test context whose outbox records what the actor
//! sends (and says which users have a session to ring), on tokio's paused clock. What a call actor does
//! is checked as the messages it sends, the business events it reports, and that it stops and is
//! forgotten at its end. The test is the actor's registry: it hands the actor its messages one at a
//! time (`Begin` first) and delivers its timers, as `showcall-runtime`'s `calls` does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::ActorId;
use showcall_actors::{ActorContext, CallActor, CallStart, TimerKey};
use showcall_machines::call::CallUpdate;
use showcall_machines::user::UserTimer;
use showcall_machines::{
    CallId, CallInput, CallSetup, CallState, CallTimer, CallType, ChannelInput, ChannelKind,
    ChannelName, Millis, PauseAt, Role, StateReason, UserConfig, UserId, UserInput,
};
use showcall_ports::admission::{Admission, NoAdmission};
use showcall_ports::memory_outbox::{MemoryOutbox, Sent as MemorySent};
use showcall_ports::outbox::{Outbox, Sending};
use showcall_ports::{
    CallLedger, CallRecordSink, Clock, Directory, LocalPlacement, LogRecords, MediaControl,
    NoLedger, NoMedia, Placement,
};
use showcall_protocol::events::EventKind;
use showcall_protocol::messages::{CallMsg, Responder};
use showcall_protocol::trace::TraceContext;
use showcall_protocol::{ActorKey, AppId, CommandError, CommandOk, NodeId};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// What the actor sent, in order.
#[derive(Debug, Clone, PartialEq)]
enum Sent {
    User(UserId, String),
    Call(CallId),
    Channel(ChannelName, String),
    OpenedChannel(ChannelName),
    Forgotten(CallId),
}

/// A context whose outbox records instead of delivering ([`MemoryOutbox`]). Only `online` users can be
/// rung.
struct RecordingContext {
    node: NodeId,
    clock: Clock,
    config: UserConfig,
    outbox: MemoryOutbox,
    events: Mutex<Vec<EventKind>>,
    placement: Arc<dyn Placement>,
    media: Arc<dyn MediaControl>,
    records: Arc<dyn CallRecordSink>,
    ledger: Arc<dyn CallLedger>,
    admission: Arc<dyn Admission>,
    directory: Directory,
    /// How long opening the call channel takes (a node-link round trip in a cluster).
    open_takes: Mutex<Duration>,
    /// Where the actor's timers are delivered (the test's mailbox for it).
    mailbox: Mutex<Option<mpsc::UnboundedSender<CallMsg>>>,
    /// Armed timers by their key's number, and the last number given.
    armed: Mutex<(HashMap<u64, AbortHandle>, u64)>,
}

impl RecordingContext {
    fn new(online: &[&str]) -> Arc<Self> {
        let node = NodeId("n1".into());
        Arc::new(Self {
            placement: Arc::new(LocalPlacement::new(node.clone())),
            node,
            clock: Clock::system(),
            config: UserConfig::default(),
            outbox: MemoryOutbox::with_sessions(online.iter().copied()),
            events: Mutex::default(),
            media: Arc::new(NoMedia),
            records: Arc::new(LogRecords),
            ledger: Arc::new(NoLedger),
            admission: Arc::new(NoAdmission),
            directory: Directory::default(),
            open_takes: Mutex::default(),
            mailbox: Mutex::default(),
            armed: Mutex::default(),
        })
    }

    /// What the actor sent, in the short form the tests compare.
    fn sent(&self) -> Vec<Sent> {
        self.outbox
            .sent()
            .into_iter()
            .flat_map(|sent| match sent {
                // A step's updates sent together are recorded one by one, as a client sees them.
                MemorySent::User {
                    user,
                    input: UserInput::CallUpdates { call_id, updates },
                } => updates
                    .into_iter()
                    .map(|update| {
                        let call_id = call_id.clone();
                        let input = UserInput::CallUpdate { call_id, update };
                        Sent::User(user.clone(), user_input(&input))
                    })
                    .collect(),
                other => Vec::from_iter(recorded(other)),
            })
            .collect()
    }

    /// The business events reported so far, by name.
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().iter().map(name).collect()
    }
}

/// One thing the actor sent, in the short form the tests compare.
fn recorded(sent: MemorySent) -> Option<Sent> {
    match sent {
        MemorySent::User { user, input } => Some(Sent::User(user, user_input(&input))),
        MemorySent::Call { call, .. } | MemorySent::CallCommand { call, .. } => {
            Some(Sent::Call(call))
        }
        MemorySent::Channel { channel, input } => Some(Sent::Channel(channel, name(&input))),
        MemorySent::AskChannel { channel, .. } => Some(Sent::Channel(channel, "Adopt".into())),
        MemorySent::OpenChannel { channel, .. } => Some(Sent::OpenedChannel(channel)),
        MemorySent::ForgetCall(call) => Some(Sent::Forgotten(call)),
        _ => None,
    }
}

/// A value's variant name, from its debug form.
fn name(value: &impl std::fmt::Debug) -> String {
    format!("{value:?}")
        .split([' ', '{', '('])
        .next()
        .unwrap_or("")
        .to_owned()
}

/// The text a user input is recorded as: a call update's state and reason, or the input's name.
fn user_input(input: &UserInput) -> String {
    match input {
        UserInput::CallUpdate {
            update: CallUpdate::State { state, reason, .. },
            ..
        } => format!("state {state:?} {reason:?}"),
        UserInput::CallUpdate {
            update: CallUpdate::Event { event, .. },
            ..
        } => format!("event {event:?}"),
        other => name(other),
    }
}

impl Outbox for RecordingContext {
    fn send_user(&self, app: &AppId, user: &UserId, input: UserInput) -> bool {
        self.outbox.send_user(app, user, input)
    }

    fn send_call(&self, app: &AppId, call: &CallId, input: CallInput) {
        self.outbox.send_call(app, call, input)
    }

    fn send_channel(&self, app: &AppId, channel: &ChannelName, input: ChannelInput) {
        self.outbox.send_channel(app, channel, input)
    }

    fn command_call(&self, app: &AppId, call: &CallId, input: CallInput, r: Responder<CommandOk>) {
        self.outbox.command_call(app, call, input, r)
    }

    fn ask_channel(&self, app: &AppId, channel: &ChannelName, call: CallId) {
        self.outbox.ask_channel(app, channel, call)
    }

    fn spawn_call(&self, app: AppId, setup: CallSetup) -> Sending<'_, Result<(), CommandError>> {
        self.outbox.spawn_call(app, setup)
    }

    fn open_call_channel<'a>(
        &'a self,
        app: &'a AppId,
        channel: &'a ChannelName,
        kind: ChannelKind,
    ) -> Sending<'a, Result<(), CommandError>> {
        let takes = *self.open_takes.lock().unwrap();
        Box::pin(async move {
            tokio::time::sleep(takes).await;
            // Recorded once open.
            self.outbox.open_call_channel(app, channel, kind).await
        })
    }

    fn join_channel<'a>(
        &'a self,
        app: &'a AppId,
        channel: &'a ChannelName,
        user: UserId,
        role: Role,
        may_publish: bool,
        offer: Option<String>,
        reply: Responder<CommandOk>,
    ) -> Sending<'a, ()> {
        (self.outbox).join_channel(app, channel, user, role, may_publish, offer, reply)
    }

    fn member_media(
        &self,
        app: &AppId,
        channel: &ChannelName,
        user: UserId,
        command: showcall_protocol::media_edge::MemberMedia,
        reply: Responder<CommandOk>,
    ) {
        self.outbox.member_media(app, channel, user, command, reply)
    }

    fn forget_call(&self, call: &CallId) {
        self.outbox.forget_call(call)
    }

    fn forget_channel(&self, app: &AppId, channel: &ChannelName, id: ActorId) {
        self.outbox.forget_channel(app, channel, id)
    }
}

impl ActorContext for RecordingContext {
    fn node(&self) -> &NodeId {
        &self.node
    }
    fn now_ms(&self) -> Millis {
        self.clock.now_ms()
    }
    fn user_config(&self) -> &UserConfig {
        &self.config
    }
    fn serves(&self, _: &ActorKey) -> bool {
        true
    }
    fn placement(&self) -> &Arc<dyn Placement> {
        &self.placement
    }
    fn media(&self) -> &Arc<dyn MediaControl> {
        &self.media
    }
    fn records(&self) -> &Arc<dyn CallRecordSink> {
        &self.records
    }
    fn ledger(&self) -> &Arc<dyn CallLedger> {
        &self.ledger
    }
    fn admission(&self) -> &Arc<dyn Admission> {
        &self.admission
    }
    fn directory(&self) -> &Directory {
        &self.directory
    }
    fn emit(&self, _: &AppId, kind: EventKind) {
        self.events.lock().unwrap().push(kind);
    }
    // A call actor never touches a user's timers.
    fn arm_user_timer(&self, _: &AppId, _: &UserId, _: UserTimer, _: Millis) -> TimerKey {
        unreachable!("a call actor arms no user timer")
    }
    fn arm_call_timer(&self, _: &AppId, _: &CallId, timer: CallTimer, at: Millis) -> TimerKey {
        let mailbox = self
            .mailbox
            .lock()
            .unwrap()
            .clone()
            .expect("run_call set it");
        let after = Duration::from_millis(at.saturating_sub(self.now_ms()));
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = mailbox.send(CallMsg::Timer(timer));
        });
        let mut armed = self.armed.lock().unwrap();
        armed.1 += 1;
        let key = TimerKey { at, seq: armed.1 };
        armed.0.insert(key.seq, task.abort_handle());
        key
    }
    fn cancel_timer(&self, key: TimerKey) {
        if let Some(task) = self.armed.lock().unwrap().0.remove(&key.seq) {
            task.abort();
        }
    }
}

fn setup() -> CallSetup {
    CallSetup {
        id: "c1".into(),
        channel: "call-c1".into(),
        caller: "viewer".into(),
        callee: "host".into(),
        call_type: CallType::Video,
        extension: BTreeMap::new(),
        call_extension: BTreeMap::new(),
        timeout_ms: Some(15_000),
        first_frame_waiting_disabled: false,
        pause_at: PauseAt::Accept,
        caller_live: vec![],
        admission_timeout_ms: None,
        billing_tick_ms: None,
    }
}

/// Starts the call actor with `ctx`, hands it its messages until it stops (virtual time), and disarms
/// what it left armed, as its registry does.
async fn run_call(ctx: Arc<RecordingContext>) {
    let (mailbox, mut messages) = mpsc::unbounded_channel();
    *ctx.mailbox.lock().unwrap() = Some(mailbox.clone());
    let start = CallStart::New(setup(), TraceContext::default());
    let context: showcall_actors::Context = ctx.clone();
    let mut actor = CallActor::new(context, AppId("app".into()), start);
    // What the registry sends once it knows the actor.
    mailbox.send(CallMsg::Begin).unwrap();
    let stopped = async {
        while !actor.stopped() {
            let msg = messages.recv().await.expect("the test holds a sender");
            actor.handle(msg).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(600), stopped)
        .await
        .expect("the call actor stops by itself");
    for key in actor.timers() {
        ctx.cancel_timer(*key);
    }
}

fn viewer(what: &str) -> Sent {
    Sent::User("viewer".into(), what.into())
}

#[tokio::test(start_paused = true)]
async fn a_callee_with_no_session_ends_the_call_at_once_as_offline() {
    let ctx = RecordingContext::new(&["viewer"]);
    let started = ctx.clock.now_ms();
    run_call(ctx.clone()).await;
    assert_eq!(ctx.clock.now_ms(), started, "no timer was waited for");
    let sent = ctx.sent();
    assert!(opened_before_told_anything(&sent, "call-c1"), "{sent:?}");
    assert!(
        sent.contains(&viewer("state Calling LocalVideoCall")),
        "{sent:?}"
    );
    assert!(
        sent.contains(&Sent::User("host".into(), "Ring".into())),
        "the ring was tried: {sent:?}"
    );
    assert!(
        sent.contains(&viewer("state Prepared RemoteOffline")),
        "{sent:?}"
    );
    assert_eq!(sent.last(), Some(&Sent::Forgotten("c1".into())));
    assert_eq!(ctx.events(), ["CallCreated", "CallEnded"]);
}

/// Whether `channel` was open before it was told anything (here: to close).
fn opened_before_told_anything(sent: &[Sent], channel: &str) -> bool {
    let at = |wanted: &Sent| sent.iter().position(|s| s == wanted);
    let opened = at(&Sent::OpenedChannel(channel.into()));
    let closed = at(&Sent::Channel(channel.into(), "Close".into()));
    matches!((opened, closed), (Some(opened), Some(closed)) if opened < closed)
}

#[tokio::test(start_paused = true)]
async fn the_ring_goes_out_while_the_call_channel_opens_and_the_channel_hears_nothing_before() {
    let ctx = RecordingContext::new(&["viewer"]);
    *ctx.open_takes.lock().unwrap() = Duration::from_secs(1);
    let started = ctx.clock.now_ms();
    run_call(ctx.clone()).await;
    let sent = ctx.sent();
    let at = |wanted: &Sent| sent.iter().position(|s| s == wanted);
    let rung = at(&Sent::User("host".into(), "Ring".into())).expect("the ring was tried");
    let opened = at(&Sent::OpenedChannel("call-c1".into())).expect("the channel opened");
    assert!(
        rung < opened,
        "the ring did not wait for the open: {sent:?}"
    );
    assert!(opened_before_told_anything(&sent, "call-c1"), "{sent:?}");
    assert_eq!(
        ctx.clock.now_ms() - started,
        1_000,
        "the call ended once its channel was open, to close it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_ring_nobody_answers_times_out_for_both_on_the_calling_timer() {
    let ctx = RecordingContext::new(&["viewer", "host"]);
    let started = ctx.clock.now_ms();
    run_call(ctx.clone()).await;
    assert_eq!(ctx.clock.now_ms() - started, 15_000, "ended by its timer");
    let sent = ctx.sent();
    assert!(
        sent.contains(&viewer(&format!(
            "state {:?} {:?}",
            CallState::Prepared,
            StateReason::CallingTimeout
        ))),
        "{sent:?}"
    );
    assert!(
        sent.contains(&Sent::Channel("call-c1".into(), "Close".into())),
        "its channel is closed: {sent:?}"
    );
    // The ring was sent but never delivered (nobody answered for the host): no `ringing` milestone.
    assert_eq!(ctx.events(), ["CallCreated", "CallEnded"]);
}
