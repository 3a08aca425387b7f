//! The actor layer without sockets: a single-node [`Hub`] with its user, call and channel actors, clients
//! that are only their connection inboxes, and tokio's paused clock. Timeouts (calling, grace, token
//! expiry) are reached on virtual time — the runtime jumps to the next timer when every task waits — so
//! each story takes milliseconds, and its times are exact.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use showcall_machines::call::CallUpdate;
use showcall_machines::user::{CallCommand, ClientEvent, CloseReason, Prepared};
use showcall_machines::{
    CallEvent, CallId, CallState, CallType, ChannelName, Millis, Role, StateReason, UserConfig,
};
use showcall_protocol::AppId;
use showcall_protocol::CommandOk;
use showcall_protocol::ConnectionInbox;
use showcall_protocol::InboxReceiver;
use showcall_protocol::NodeId;
use showcall_protocol::Outbound;
use showcall_protocol::UserCommand;
use showcall_protocol::connection_inbox;
use showcall_protocol::events::EventKind;
use showcall_runtime::Hub;
use showcall_runtime::HubParts;
use showcall_runtime::Session;

/// Tokens in these stories live an hour unless a story says otherwise.
const HOUR_MS: Millis = 3_600_000;
/// Longer than any timer here: a wait that reaches it means the story is stuck.
const STUCK: Duration = Duration::from_secs(600);

fn hub() -> Hub {
    Hub::new(HubParts::single_node(
        NodeId("n1".into()),
        UserConfig::default(),
    ))
}

fn app() -> AppId {
    AppId("app".into())
}

/// One client: its session and what its connection is sent.
struct Client {
    session: Session,
    inbox: InboxReceiver,
    /// Keeps the connection's sender alive, as the gateway does while the socket is open.
    _sender: ConnectionInbox,
    seen: Vec<ClientEvent>,
    closed: Option<CloseReason>,
}

impl Client {
    async fn login(hub: &Hub, user: &str, token_ms: Millis) -> Client {
        let (sender, inbox) = connection_inbox(64);
        let expires = hub.now_ms() + token_ms;
        let (session, _) = hub
            .login(app(), user.into(), hub.next_conn(), expires, sender.clone())
            .await
            .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
        Client {
            session,
            inbox,
            _sender: sender,
            seen: Vec::new(),
            closed: None,
        }
    }

    async fn prepared(hub: &Hub, user: &str) -> Client {
        let mut c = Client::login(hub, user, HOUR_MS).await;
        c.command(UserCommand::Prepare(Prepared::default())).await;
        c.state(CallState::Prepared, StateReason::None).await;
        c
    }

    async fn command(&mut self, command: UserCommand) -> CommandOk {
        let what = format!("{command:?}");
        self.session
            .command(command)
            .await
            .unwrap_or_else(|e| panic!("{}: {what}: {e}", self.session.user()))
    }

    /// Places a video call; the call's id and its private channel.
    async fn call(&mut self, callee: &str) -> (CallId, ChannelName) {
        let placed = self
            .command(UserCommand::Call {
                callee: callee.into(),
                call_type: CallType::Video,
                extension: BTreeMap::new(),
                timeout_ms: None,
                trace: Default::default(),
            })
            .await;
        let CommandOk::CallCreated { call_id, channel } = placed else {
            panic!("a call is created: {placed:?}");
        };
        (call_id, channel)
    }

    async fn call_command(&mut self, call_id: &CallId, command: CallCommand) {
        let call_id = call_id.clone();
        self.command(UserCommand::CallCommand { call_id, command })
            .await;
    }

    async fn join(&mut self, channel: &ChannelName) {
        self.command(UserCommand::JoinChannel {
            channel: channel.clone(),
            role: Role::Broadcaster,
            may_publish: true,
            offer: None,
        })
        .await;
    }

    /// The next thing the connection is sent (an event, or the session's close).
    async fn next(&mut self) -> Option<ClientEvent> {
        let out = tokio::time::timeout(STUCK, self.inbox.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("{}: nothing came; saw {:?}", self.session.user(), self.seen)
            });
        match out.expect("the inbox lives as long as its sender") {
            Outbound::Event(pushed) => {
                self.seen.push(pushed.event.clone());
                Some(pushed.event)
            }
            Outbound::Close(reason) => {
                self.closed = Some(reason);
                None
            }
        }
    }

    /// Waits for a call state change to `state` with `reason`; returns its call id.
    async fn state(&mut self, state: CallState, reason: StateReason) -> CallId {
        loop {
            if let Some(ClientEvent::Call {
                call_id,
                update:
                    CallUpdate::State {
                        state: s,
                        reason: r,
                        ..
                    },
            }) = self.next().await
                && (s, r) == (state, reason)
            {
                return call_id;
            }
        }
    }

    async fn event(&mut self, event: CallEvent) {
        loop {
            if let Some(ClientEvent::Call {
                update: CallUpdate::Event { event: e, .. },
                ..
            }) = self.next().await
                && e == event
            {
                return;
            }
        }
    }

    /// Reads until the session is closed; returns why.
    async fn until_closed(&mut self) -> CloseReason {
        while self.closed.is_none() {
            self.next().await;
        }
        self.closed.expect("set by the loop")
    }
}

/// alice calls bob, bob accepts, both join: connected. Returns the call id and channel.
async fn connected(alice: &mut Client, bob: &mut Client) -> (CallId, ChannelName) {
    let (call, channel) = alice.call("bob").await;
    bob.state(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    bob.call_command(&call, CallCommand::Accept).await;
    alice.join(&channel).await;
    bob.join(&channel).await;
    alice
        .state(CallState::Connected, StateReason::BothJoined)
        .await;
    bob.state(CallState::Connected, StateReason::BothJoined)
        .await;
    (call, channel)
}

#[tokio::test(start_paused = true)]
async fn a_ring_nobody_answers_times_out_for_both_after_the_calling_timeout() {
    let hub = hub();
    let mut alice = Client::prepared(&hub, "alice").await;
    let mut bob = Client::prepared(&hub, "bob").await;
    let placed_at = hub.now_ms();
    let (call, _) = alice.call("bob").await;
    bob.state(CallState::Calling, StateReason::RemoteVideoCall)
        .await;

    let ended = alice
        .state(CallState::Prepared, StateReason::CallingTimeout)
        .await;
    assert_eq!(ended, call);
    bob.state(CallState::Prepared, StateReason::RemoteCallingTimeout)
        .await;
    let waited = hub.now_ms() - placed_at;
    let timeout = UserConfig::default().default_call_timeout_ms;
    assert!(
        (timeout..timeout + 100).contains(&waited),
        "the call ended {waited} ms after it was placed"
    );
    assert_eq!(hub.calls_active(), 0, "the call actor stopped");
}

#[tokio::test(start_paused = true)]
async fn a_call_to_a_user_not_logged_in_is_offline_at_once() {
    let hub = hub();
    let mut alice = Client::prepared(&hub, "alice").await;
    let placed_at = hub.now_ms();
    alice.call("nobody").await;
    alice
        .state(CallState::Prepared, StateReason::RemoteOffline)
        .await;
    assert_eq!(hub.now_ms(), placed_at, "no timer was waited for");
}

#[tokio::test(start_paused = true)]
async fn a_caller_gone_past_its_grace_ends_the_call_for_the_callee() {
    let hub = hub();
    let mut alice = Client::prepared(&hub, "alice").await;
    let mut bob = Client::prepared(&hub, "bob").await;
    let (call, _) = connected(&mut alice, &mut bob).await;

    let dropped_at = hub.now_ms();
    alice.session.connection_lost();
    bob.event(CallEvent::RemoteLeft).await;
    let ended = bob
        .state(CallState::Prepared, StateReason::RemoteLeft)
        .await;
    assert_eq!(ended, call);
    let waited = hub.now_ms() - dropped_at;
    let grace = UserConfig::default().grace_ms;
    assert!(
        (grace..grace + 100).contains(&waited),
        "ended {waited} ms after the drop"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_expiring_in_a_call_ends_it_for_its_user_first_then_closes_the_session() {
    let hub = hub();
    let mut alice = Client::login(&hub, "alice", 60_000).await;
    alice
        .command(UserCommand::Prepare(Prepared::default()))
        .await;
    let mut bob = Client::prepared(&hub, "bob").await;
    let (call, _) = connected(&mut alice, &mut bob).await;

    assert_eq!(alice.until_closed().await, CloseReason::TokenExpired);
    let ends: Vec<String> = alice
        .seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Call {
                call_id,
                update: CallUpdate::State { state, reason, .. },
            } if *call_id == call && *state == CallState::Prepared => Some(format!("{reason:?}")),
            ClientEvent::Call {
                update: CallUpdate::Disconnected { .. },
                ..
            } => Some("disconnected".into()),
            ClientEvent::SessionClosed { reason } => Some(format!("closed {reason:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        ends,
        ["TokenExpired", "disconnected", "closed TokenExpired"]
    );
    bob.state(CallState::Prepared, StateReason::RemoteLoggedOut)
        .await;
}

#[tokio::test(start_paused = true)]
async fn the_business_events_tell_a_calls_story_in_order() {
    let hub = hub();
    let mut watch = hub.events().watch(None).expect("watch from the start");
    let mut alice = Client::prepared(&hub, "alice").await;
    let mut bob = Client::prepared(&hub, "bob").await;
    let (call, _) = connected(&mut alice, &mut bob).await;
    alice
        .call_command(
            &call,
            CallCommand::Hangup {
                reason: "bye".into(),
            },
        )
        .await;
    bob.state(CallState::Prepared, StateReason::RemoteHangup)
        .await;

    let mut story = Vec::new();
    while !story.iter().any(|s: &String| s.starts_with("ended")) {
        let next = tokio::time::timeout(STUCK, watch.next())
            .await
            .expect("the events came")
            .expect("the log lives")
            .expect("no watch error");
        let line = match next.event.kind {
            EventKind::CallCreated { call: c, .. } if c == call => "created".to_owned(),
            EventKind::CallRinging { call: c } if c == call => "ringing".to_owned(),
            EventKind::CallAccepted { call: c } if c == call => "accepted".to_owned(),
            EventKind::CallConnected { call: c } if c == call => "connected".to_owned(),
            EventKind::CallEnded { record } if record.id == call => {
                format!("ended after {} ms connected", record.connected_ms)
            }
            _ => continue,
        };
        story.push(line);
    }
    assert_eq!(
        story,
        [
            "created",
            "ringing",
            "accepted",
            "connected",
            "ended after 0 ms connected"
        ]
    );
}
