//! What the soak reads from each node: from `/proc` (resident memory, open files, CPU time) and from
//! the business API's `GetNodeInfo` (sessions, calls, actors), authenticated with the demo API key.

use std::time::Duration;

use showcall_admin::AdminCredentials;
use showcall_node::config::{DEMO_API_KEY, DEMO_API_SECRET};
use showcall_proto::admin::admin_client::AdminClient;
use showcall_proto::admin::{GetNodeInfoRequest, NodeInfo};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::super::child_node::ChildNode;
use super::super::cpu;

/// How long one `GetNodeInfo` may take before the reading is left empty (a node too busy to answer is
/// itself a finding, not a reason to stop the soak).
const INFO_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type Admin = AdminClient<InterceptedService<Channel, AdminCredentials>>;

/// A business API client for the node at `grpc_url`, signing with the demo app's API key.
pub(crate) async fn admin(grpc_url: &str) -> anyhow::Result<Admin> {
    let channel = Channel::from_shared(grpc_url.to_owned())?.connect().await?;
    Ok(AdminClient::with_interceptor(
        channel,
        AdminCredentials::new(DEMO_API_KEY, DEMO_API_SECRET),
    ))
}

/// `GetNodeInfo`, or `None` when the node did not answer in time.
pub(crate) async fn node_info(admin: &mut Admin) -> Option<NodeInfo> {
    tokio::time::timeout(INFO_TIMEOUT, admin.get_node_info(GetNodeInfoRequest {}))
        .await
        .ok()?
        .ok()
        .map(|r| r.into_inner())
}

/// One node at one instant.
#[derive(Debug, Clone)]
pub(super) struct NodeSample {
    pub rss_bytes: u64,
    /// The anonymous part of `rss_bytes` (heap, stacks), without the executable's pages.
    pub anon_bytes: u64,
    pub open_files: usize,
    /// CPU seconds the node used since it started.
    pub cpu_seconds: f64,
    /// `None` when `GetNodeInfo` did not answer.
    pub info: Option<Counts>,
}

/// The node's own count of what lives on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Counts {
    pub users_online: u64,
    pub calls_active: u64,
    /// Every actor active on the node, by name (`user/<app>/<id>`, `call/-/<id>`, `channel/<app>/<name>`).
    pub actors: Vec<String>,
}

impl Counts {
    /// How many actors of a kind (`user`, `call`, `channel`).
    pub fn actors_of(&self, kind: &str) -> usize {
        self.actors
            .iter()
            .filter(|a| a.split('/').next() == Some(kind))
            .count()
    }
}

pub(super) async fn sample(node: &ChildNode, admin: &mut Admin) -> anyhow::Result<NodeSample> {
    let info = node_info(admin).await.map(|i| Counts {
        users_online: i.users_online,
        calls_active: i.calls_active,
        actors: i.active_actors,
    });
    let memory = node.memory()?;
    Ok(NodeSample {
        rss_bytes: memory.rss_bytes,
        anon_bytes: memory.anon_bytes,
        open_files: node.open_files()?,
        cpu_seconds: cpu::pid_seconds(node.pid())?,
        info,
    })
}
