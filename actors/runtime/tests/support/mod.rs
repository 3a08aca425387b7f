//! A client of a hub without a socket (its session and its connection's inbox), and the stories the
//! actor-layer tests share.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::time::Duration;

use showcall_machines::call::CallUpdate;
use showcall_machines::user::{CallCommand, ClientEvent, CloseReason, Prepared};
use showcall_machines::{
    CallEvent, CallId, CallState, CallType, ChannelName, Millis, Role, StateReason, UserConfig,
};
use showcall_protocol::{
    AppId, CommandOk, ConnectionInbox, InboxReceiver, NodeId, Outbound, UserCommand,
    connection_inbox,
};
use showcall_runtime::{Hub, HubParts, Session};

/// Tokens in these stories live an hour unless a story says otherwise.
pub const HOUR_MS: Millis = 3_600_000;
/// Longer than any timer here: a wait that reaches it means the story is stuck.
pub const STUCK: Duration = Duration::from_secs(600);

pub fn hub() -> Hub {
    Hub::new(HubParts::single_node(
        NodeId("n1".into()),
        UserConfig::default(),
    ))
}

pub fn app() -> AppId {
    AppId("app".into())
}

/// One client: its session and what its connection is sent.
pub struct Client {
    pub session: Session,
    inbox: InboxReceiver,
    /// Keeps the connection's sender alive, as the gateway does while the socket is open.
    _sender: ConnectionInbox,
    pub seen: Vec<ClientEvent>,
    pub closed: Option<CloseReason>,
}

impl Client {
    pub async fn login(hub: &Hub, user: &str, token_ms: Millis) -> Client {
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

    pub async fn prepared(hub: &Hub, user: &str) -> Client {
        let mut c = Client::login(hub, user, HOUR_MS).await;
        c.command(UserCommand::Prepare(Prepared::default())).await;
        c.state(CallState::Prepared, StateReason::None).await;
        c
    }

    pub async fn command(&mut self, command: UserCommand) -> CommandOk {
        let what = format!("{command:?}");
        self.session
            .command(command)
            .await
            .unwrap_or_else(|e| panic!("{}: {what}: {e}", self.session.user()))
    }

    /// Places a video call; the call's id and its private channel.
    pub async fn call(&mut self, callee: &str) -> (CallId, ChannelName) {
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

    pub async fn call_command(&mut self, call_id: &CallId, command: CallCommand) {
        let call_id = call_id.clone();
        self.command(UserCommand::CallCommand { call_id, command })
            .await;
    }

    pub async fn join(&mut self, channel: &ChannelName) {
        self.command(UserCommand::JoinChannel {
            channel: channel.clone(),
            role: Role::Broadcaster,
            may_publish: true,
            offer: None,
        })
        .await;
    }

    /// The next thing the connection is sent (an event, or the session's close).
    pub async fn next(&mut self) -> Option<ClientEvent> {
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
    pub async fn state(&mut self, state: CallState, reason: StateReason) -> CallId {
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

    pub async fn event(&mut self, event: CallEvent) {
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
    pub async fn until_closed(&mut self) -> CloseReason {
        while self.closed.is_none() {
            self.next().await;
        }
        self.closed.expect("set by the loop")
    }
}

/// alice calls bob, bob accepts, both join: connected. Returns the call id and channel.
pub async fn connected(alice: &mut Client, bob: &mut Client) -> (CallId, ChannelName) {
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

/// `caller` hangs up `call`; `callee` hears `remoteHangup`.
pub async fn hang_up(caller: &mut Client, callee: &mut Client, call: &CallId) {
    caller
        .call_command(
            call,
            CallCommand::Hangup {
                reason: "bye".into(),
            },
        )
        .await;
    callee
        .state(CallState::Prepared, StateReason::RemoteHangup)
        .await;
}
