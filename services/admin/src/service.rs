//! [`AdminService`]: the `showcall.admin.v1.Admin` implementation.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use showcall_auth::{ApiKeys, AppKeys, TokenIssuer};
use showcall_ports::event_log::EventLog;
use showcall_proto::admin as pb;
use showcall_proto::admin::admin_server::Admin;
use showcall_proto::admin::{GetNodeInfoRequest, MintTokenRequest, MintTokenResponse, NodeInfo};
use showcall_runtime::Hub;
use tonic::{Request, Response, Status};

use crate::business;
use crate::request::{AdminError, MintToken, mint_error};

/// The business-server API of one node.
#[derive(Clone)]
pub struct AdminService {
    /// The secrets tokens are minted with; the same set the gateway verifies against.
    keys: Arc<AppKeys>,
    /// The API keys callers sign their admin tokens with (none: every request is refused).
    api_keys: Arc<ApiKeys>,
    /// Describes the node at the moment of asking; the node owns the numbers (sessions, calls), so it
    /// hands in a closure rather than this crate reaching into its actors.
    node_info: Arc<dyn Fn() -> NodeInfo + Send + Sync>,
    /// The business events watchers read.
    events: Arc<dyn EventLog>,
    /// The node's actors, for the users / channels / calls RPCs (absent in a bare token service).
    hub: Option<Hub>,
    /// Turns true when the node stops: open `WatchEvents` streams end then (UNAVAILABLE, "watch again
    /// after your last cursor"), or the server's graceful stop would wait for them forever.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl AdminService {
    /// A service minting with `keys` and answering `GetNodeInfo` with whatever `node_info` returns.
    pub fn new(
        keys: Arc<AppKeys>,
        node_info: impl Fn() -> NodeInfo + Send + Sync + 'static,
    ) -> Self {
        Self {
            keys,
            api_keys: Arc::default(),
            node_info: Arc::new(node_info),
            events: Arc::new(showcall_ports::event_log::MemoryEventLog::default()),
            hub: None,
            // A service nobody stops: the sender is dropped, the value stays false.
            stopping: tokio::sync::watch::channel(false).1,
        }
    }

    /// Accepts admin tokens signed with `api_keys` (a service without keys refuses every request).
    pub fn with_api_keys(mut self, api_keys: Arc<ApiKeys>) -> Self {
        self.api_keys = api_keys;
        self
    }

    /// The interceptor that authenticates this service's callers.
    pub fn auth(&self) -> crate::AdminAuth {
        crate::AdminAuth::new(self.api_keys.clone())
    }

    /// Ends open `WatchEvents` streams when `stopping` turns true (the node shuts down).
    pub fn with_shutdown(mut self, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        self.stopping = stopping;
        self
    }

    /// Answers the users / channels / calls RPCs from `hub`'s actors (and the cluster's, through it).
    pub fn with_hub(mut self, hub: Hub) -> Self {
        self.hub = Some(hub);
        self
    }

    fn hub(&self) -> Result<&Hub, Status> {
        self.hub
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this server runs no actors"))
    }

    /// Watchers read `events` (the node's hub appends to the same log).
    pub fn with_events(mut self, events: Arc<dyn EventLog>) -> Self {
        self.events = events;
        self
    }
}

impl fmt::Debug for AdminService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminService")
            .field("keys", &self.keys)
            .field("api_keys", &self.api_keys)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch, by the system clock (tokens are checked against wall time on every
/// node, so a monotonic clock would not do).
fn now_unix() -> Result<u64, AdminError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| AdminError::Internal("system clock is before 1970".into()))
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn mint_token(
        &self,
        request: Request<MintTokenRequest>,
    ) -> Result<Response<MintTokenResponse>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        let req = MintToken::parse(req, &self.keys)?;
        let (token, expires_at) = TokenIssuer::mint(
            &self.keys,
            &req.app_id,
            &req.user_id,
            req.ttl,
            req.grants,
            now_unix()?,
        )
        .map_err(mint_error)?;
        tracing::debug!(app_id = %req.app_id, user_id = %req.user_id, expires_at, "minted token");
        Ok(Response::new(MintTokenResponse { token, expires_at }))
    }

    type WatchEventsStream =
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::Event, Status>> + Send>>;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        // A key sees its own app's events only; an empty app_id means that app.
        let app_id = caller.app;
        let events = self
            .events
            .watch(req.after_cursor)
            .map_err(crate::events::watch_status)?;
        let mut stopping = self.stopping.clone();
        let stopped = async move {
            if stopping.wait_for(|stop| *stop).await.is_err() {
                // Nobody can stop this service: the stream ends only with its watcher.
                std::future::pending::<()>().await;
            }
        };
        let events = crate::events::proto_stream(events, app_id)
            .take_until(stopped)
            .chain(futures_util::stream::once(async {
                Err(Status::unavailable(
                    "this node is shutting down: watch again (on any node) after your last cursor",
                ))
            }));
        Ok(Response::new(Box::pin(events)))
    }

    async fn get_node_info(
        &self,
        request: Request<GetNodeInfoRequest>,
    ) -> Result<Response<NodeInfo>, Status> {
        // Any app's key may ask: the node's numbers name no app's users.
        crate::auth::caller_of(&request)?;
        Ok(Response::new((self.node_info)()))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        let app = business::app(&req.app_id, &self.keys)?;
        let user = business::user(&req.user_id)?;
        let found = self
            .hub()?
            .find_user(&app, &user)
            .await
            .map_err(business::status)?;
        Ok(Response::new(match found {
            Some(entry) => business::user_proto(entry),
            None => business::offline(user),
        }))
    }

    async fn list_online_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        self.list_users(req, false).await
    }

    async fn list_available_hosts(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        self.list_users(req, true).await
    }

    async fn list_channels(
        &self,
        request: Request<pb::ListChannelsRequest>,
    ) -> Result<Response<pb::ListChannelsResponse>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        let app = business::app(&req.app_id, &self.keys)?;
        let (size, after) = business::page(req.page_size, &req.page_token)?;
        let after = after.map(showcall_machines::ChannelName);
        let channels = self
            .hub()?
            .list_live_channels(&app, after, size)
            .await
            .map_err(business::status)?;
        let last = channels.last().map(|c| c.channel.0.clone());
        let next_page_token = business::next_token(last.as_deref(), channels.len(), size);
        Ok(Response::new(pb::ListChannelsResponse {
            channels: channels.into_iter().map(business::channel_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_channel(
        &self,
        request: Request<pb::GetChannelRequest>,
    ) -> Result<Response<pb::Channel>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        let app = business::app(&req.app_id, &self.keys)?;
        let channel = business::channel(&req.channel)?;
        match self
            .hub()?
            .find_channel(&app, &channel)
            .await
            .map_err(business::status)?
        {
            Some(entry) => Ok(Response::new(business::channel_proto(entry))),
            None => Err(Status::not_found(format!("channel {channel} is not open"))),
        }
    }

    async fn kick_user(
        &self,
        request: Request<pb::KickUserRequest>,
    ) -> Result<Response<pb::KickUserResponse>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        let app = business::app(&req.app_id, &self.keys)?;
        let channel = business::channel(&req.channel)?;
        let user = business::user(&req.user_id)?;
        let hub = self.hub()?;
        let ban = business::ban(&req, hub.now_ms())?;
        hub.kick(&app, &channel, &user, ban)
            .await
            .map_err(business::status)?;
        tracing::info!(%app, %channel, %user, ?ban, "kicked");
        Ok(Response::new(pb::KickUserResponse {
            banned_until_ms: ban.map_or(0, |b| b.until),
        }))
    }

    async fn unban_user(
        &self,
        request: Request<pb::UnbanUserRequest>,
    ) -> Result<Response<pb::UnbanUserResponse>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        let app = business::app(&req.app_id, &self.keys)?;
        let channel = business::channel(&req.channel)?;
        let user = business::user(&req.user_id)?;
        let lifted = self
            .hub()?
            .unban(&app, &channel, &user)
            .await
            .map_err(business::status)?;
        Ok(Response::new(pb::UnbanUserResponse { lifted }))
    }

    async fn get_call(
        &self,
        request: Request<pb::GetCallRequest>,
    ) -> Result<Response<pb::Call>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        let app = business::app(&req.app_id, &self.keys)?;
        let call = business::call(&req.call_id)?;
        match self
            .hub()?
            .find_call(&app, &call)
            .await
            .map_err(business::status)?
        {
            Some(entry) => Ok(Response::new(business::call_proto(entry))),
            None => Err(Status::not_found(format!("call {call} is not running"))),
        }
    }

    async fn end_call(
        &self,
        request: Request<pb::EndCallRequest>,
    ) -> Result<Response<pb::EndCallResponse>, Status> {
        let caller = crate::auth::caller_of(&request)?;
        let req = request.into_inner();
        crate::auth::authorize(&caller, &req.app_id)?;
        let app = business::app(&req.app_id, &self.keys)?;
        let call = business::call(&req.call_id)?;
        let reason = business::reason(&req.reason)?;
        self.hub()?
            .end_call(&app, &call, reason)
            .await
            .map_err(|e| match e {
                showcall_protocol::CommandError::NoSuchCall => {
                    Status::not_found(format!("call {call} is not running"))
                }
                other => business::status(other),
            })?;
        Ok(Response::new(pb::EndCallResponse {}))
    }
}

impl AdminService {
    async fn list_users(
        &self,
        req: pb::ListUsersRequest,
        hosts_only: bool,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let app = business::app(&req.app_id, &self.keys)?;
        let (size, after) = business::page(req.page_size, &req.page_token)?;
        let users = self
            .hub()?
            .list_users(&app, after.map(showcall_machines::UserId), size, hosts_only)
            .await
            .map_err(business::status)?;
        let last = users.last().map(|u| u.user.0.clone());
        let next_page_token = business::next_token(last.as_deref(), users.len(), size);
        Ok(Response::new(pb::ListUsersResponse {
            users: users.into_iter().map(business::user_proto).collect(),
            next_page_token,
        }))
    }
}
