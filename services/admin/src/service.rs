//! [`AdminService`]: the `showcall.admin.v1.Admin` implementation.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use showcall_actors::events::EventLog;
use showcall_auth::{AppKeys, TokenIssuer};
use showcall_proto::admin as pb;
use showcall_proto::admin::admin_server::Admin;
use showcall_proto::admin::{GetNodeInfoRequest, MintTokenRequest, MintTokenResponse, NodeInfo};
use tonic::{Request, Response, Status};

use crate::request::{AdminError, MintToken, mint_error};

/// The business-server API of one node.
#[derive(Clone)]
pub struct AdminService {
    /// The secrets tokens are minted with; the same set the gateway verifies against.
    keys: Arc<AppKeys>,
    /// Describes the node at the moment of asking; the node owns the numbers (sessions, calls), so it
    /// hands in a closure rather than this crate reaching into its actors.
    node_info: Arc<dyn Fn() -> NodeInfo + Send + Sync>,
    /// The business events watchers read.
    events: Arc<dyn EventLog>,
}

impl AdminService {
    /// A service minting with `keys` and answering `GetNodeInfo` with whatever `node_info` returns.
    pub fn new(
        keys: Arc<AppKeys>,
        node_info: impl Fn() -> NodeInfo + Send + Sync + 'static,
    ) -> Self {
        Self {
            keys,
            node_info: Arc::new(node_info),
            events: Arc::new(showcall_actors::events::MemoryEventLog::default()),
        }
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
        let req = MintToken::parse(request.into_inner(), &self.keys)?;
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
        let req = request.into_inner();
        if !req.app_id.is_empty() && !self.keys.contains(&req.app_id) {
            return Err(Status::invalid_argument(format!(
                "app_id: no app {:?} on this node",
                req.app_id
            )));
        }
        let events = self
            .events
            .watch(req.after_cursor)
            .map_err(crate::events::watch_status)?;
        Ok(Response::new(Box::pin(crate::events::proto_stream(
            events, req.app_id,
        ))))
    }

    async fn get_node_info(
        &self,
        _request: Request<GetNodeInfoRequest>,
    ) -> Result<Response<NodeInfo>, Status> {
        Ok(Response::new((self.node_info)()))
    }
}
