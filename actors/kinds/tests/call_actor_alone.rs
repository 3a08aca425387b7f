//! A call actor on its own: no hub, no other actor — a test context whose outbox records what the actor
//! sends (and says which users have a session to ring), on tokio's paused clock. What a call actor does
//! is checked as the messages it sends, the business events it reports, and that it stops and is
//! forgotten at its end.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorStatus};
use showcall_actors::{ActorContext, CallActor, CallStart, TimerKey};
use showcall_machines::call::CallUpdate;
use showcall_machines::user::UserTimer;
use showcall_machines::{
    CallId, CallInput, CallSetup, CallState, CallType, ChannelInput, ChannelKind, ChannelName,
    Millis, PauseAt, Role, StateReason, UserConfig, UserId, UserInput,
};
use showcall_ports::admission::{Admission, NoAdmission};
use showcall_ports::outbox::{Outbox, Sending};
use showcall_ports::{
    CallLedger, CallRecordSink, Clock, Directory, LocalPlacement, LogRecords, MediaControl,
    NoLedger, NoMedia, Placement,
};
use showcall_protocol::events::EventKind;
use showcall_protocol::messages::{CallMsg, Responder};
use showcall_protocol::trace::TraceContext;
use showcall_protocol::{ActorKey, AppId, CommandError, CommandOk, NodeId};

/// What the actor sent, in order.
#[derive(Debug, Clone, PartialEq)]
enum Sent {
    User(UserId, String),
    Call(CallId),
    Channel(ChannelName, String),
    OpenedChannel(ChannelName),
    Forgotten(CallId),
}

/// A context whose outbox records instead of delivering. Only `online` users can be rung.
struct RecordingContext {
    node: NodeId,
    clock: Clock,
    config: UserConfig,
    online: HashSet<UserId>,
    sent: Mutex<Vec<Sent>>,
    events: Mutex<Vec<EventKind>>,
    placement: Arc<dyn Placement>,
    media: Arc<dyn MediaControl>,
    records: Arc<dyn CallRecordSink>,
    ledger: Arc<dyn CallLedger>,
    admission: Arc<dyn Admission>,
    directory: Directory,
}

impl RecordingContext {
    fn new(online: &[&str]) -> Arc<Self> {
        let node = NodeId("n1".into());
        Arc::new(Self {
            placement: Arc::new(LocalPlacement::new(node.clone())),
            node,
            clock: Clock::system(),
            config: UserConfig::default(),
            online: online.iter().map(|u| UserId::from(*u)).collect(),
            sent: Mutex::default(),
            events: Mutex::default(),
            media: Arc::new(NoMedia),
            records: Arc::new(LogRecords),
            ledger: Arc::new(NoLedger),
            admission: Arc::new(NoAdmission),
            directory: Directory::default(),
        })
    }

    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    fn record(&self, sent: Sent) {
        self.sent.lock().unwrap().push(sent);
    }

    /// The business events reported so far, by name.
    fn events(&self) -> Vec<String> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .map(|e| {
                format!("{e:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }
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
        other => format!("{other:?}")
            .split([' ', '{'])
            .next()
            .unwrap_or("")
            .to_owned(),
    }
}

impl Outbox for RecordingContext {
    fn send_user(&self, _: &AppId, user: &UserId, input: UserInput) -> bool {
        self.record(Sent::User(user.clone(), user_input(&input)));
        self.online.contains(user)
    }

    fn send_call(&self, _: &AppId, call: &CallId, _: CallInput) {
        self.record(Sent::Call(call.clone()));
    }

    fn send_channel(&self, _: &AppId, channel: &ChannelName, input: ChannelInput) {
        let what = format!("{input:?}")
            .split([' ', '{'])
            .next()
            .unwrap_or("")
            .to_owned();
        self.record(Sent::Channel(channel.clone(), what));
    }

    fn command_call(&self, _: &AppId, call: &CallId, _: CallInput, _: Responder<CommandOk>) {
        self.record(Sent::Call(call.clone()));
    }

    fn ask_channel(&self, _: &AppId, channel: &ChannelName, _: CallId) {
        self.record(Sent::Channel(channel.clone(), "Adopt".into()));
    }

    fn spawn_call(&self, _: AppId, _: CallSetup) -> Sending<'_, Result<(), CommandError>> {
        Box::pin(async { Err(CommandError::Unavailable("not in this test".into())) })
    }

    fn open_call_channel<'a>(
        &'a self,
        _: &'a AppId,
        channel: &'a ChannelName,
        _: ChannelKind,
    ) -> Sending<'a, Result<(), CommandError>> {
        self.record(Sent::OpenedChannel(channel.clone()));
        Box::pin(async { Ok(()) })
    }

    fn join_channel<'a>(
        &'a self,
        _: &'a AppId,
        _: &'a ChannelName,
        _: UserId,
        _: Role,
        _: bool,
        _: Option<String>,
        reply: Responder<CommandOk>,
    ) -> Sending<'a, ()> {
        let _ = reply.send(Err(CommandError::Unavailable("not in this test".into())));
        Box::pin(async {})
    }

    fn forget_call(&self, call: &CallId) {
        self.record(Sent::Forgotten(call.clone()));
    }

    fn forget_channel(&self, _: &AppId, _: &ChannelName, _: ActorId) {}
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
    fn cancel_timer(&self, _: TimerKey) {
        unreachable!("a call actor disarms no user timer")
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

/// Starts the call actor with `ctx` and waits (virtually) until it has stopped.
async fn run_call(ctx: Arc<RecordingContext>) {
    let start = CallStart::New(setup(), TraceContext::default());
    let context: showcall_actors::Context = ctx;
    let (actor, handle) = Actor::spawn(None, CallActor, (context, AppId("app".into()), start))
        .await
        .expect("the call actor starts");
    // What the registry sends once it knows the actor.
    actor
        .cast(CallMsg::Begin)
        .expect("the actor takes messages");
    tokio::time::timeout(Duration::from_secs(600), handle)
        .await
        .expect("the call actor stops by itself")
        .expect("it stopped cleanly");
    assert_eq!(actor.get_status(), ActorStatus::Stopped);
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
    assert_eq!(sent[0], Sent::OpenedChannel("call-c1".into()), "{sent:?}");
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
