//! Real cluster parts for tests: an etcd server (Debian's `etcd`) on ephemeral ports with a temporary
//! data dir, and `showcall` node processes joined through it — each a real process the test can SIGKILL.
//!
//! Readiness is read from the processes' own output (etcd's "ready to serve client requests", the node's
//! printed endpoints), never assumed after a sleep.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use showcall_proto::admin::admin_client::AdminClient;
use showcall_proto::admin::{GetNodeInfoRequest, NodeInfo};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

static DIRS_MADE: AtomicU32 = AtomicU32::new(0);

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("bound address").port()
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "showcall-{what}-{}-{}",
        std::process::id(),
        DIRS_MADE.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Sends a signal to a process (SIGKILL, SIGSTOP, SIGCONT).
fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Reads a child's output lines until one satisfies `done` (returned), then keeps draining the rest in
/// the background so the child never blocks on a full pipe. Panics with what was read if the output ends.
async fn read_until(
    output: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    what: &str,
    mut done: impl FnMut(&str) -> bool,
) -> Vec<String> {
    let mut lines = BufReader::new(output).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let finished = done(&line);
                seen.push(line);
                if finished {
                    break;
                }
            }
            _ => panic!("{what} ended before it was ready:\n{}", seen.join("\n")),
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    seen
}

/// A real etcd server.
pub struct Etcd {
    child: Child,
    pub url: String,
    dir: PathBuf,
}

impl Etcd {
    pub async fn start() -> Etcd {
        let dir = temp_dir("etcd");
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut child = Command::new("etcd")
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("etcd starts (Debian package etcd-server; ./scripts/test installs it)");
        let stderr = child.stderr.take().expect("piped");
        read_until(stderr, "etcd", |l| {
            l.contains("ready to serve client requests")
        })
        .await;
        Etcd { child, url, dir }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("etcd is running")
    }

    /// Freezes etcd (SIGSTOP): connections stay open but nothing answers, as in a network partition.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// Lets a paused etcd go on (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `showcall` binary of this workspace, built (or found fresh) once per test process.
///
/// Always asks cargo, so a binary left from older sources is never run; the path comes from cargo's
/// own report, so it is right whatever target and build directories are configured.
fn showcall_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            let output = std::process::Command::new(env!("CARGO"))
                .args([
                    "build",
                    "-p",
                    "showcall-node",
                    "--bin",
                    "showcall",
                    "--message-format=json-render-diagnostics",
                ])
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("cargo runs");
            assert!(
                output.status.success(),
                "building the showcall binary failed"
            );
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter(|message| message["reason"] == "compiler-artifact")
                .filter(|message| message["target"]["name"] == "showcall")
                .find_map(|message| message["executable"].as_str().map(PathBuf::from))
                .expect("cargo reports the showcall executable")
        })
        .clone()
}

/// One `showcall run` process joined to the cluster.
pub struct NodeProcess {
    pub id: String,
    child: Child,
    pub signal_url: String,
    pub grpc_url: String,
    /// Where `/healthz` and `/metrics` listen.
    pub http_addr: std::net::SocketAddr,
    pub output: Vec<String>,
}

/// How a node process is started.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub lease_ttl: &'static str,
    pub partitions: u32,
    /// More environment for the process (`SHOWCALL_OTLP_ENDPOINT`, `OTEL_BSP_SCHEDULE_DELAY`, ...).
    pub env: Vec<(String, String)>,
    /// The node announces the URL clients reach its signaling at (`signal_public_url`, on a port picked
    /// free here), so logins that follow their session are sent to it.
    pub announce_signal_url: bool,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            lease_ttl: "2s",
            partitions: 64,
            env: Vec::new(),
            announce_signal_url: false,
        }
    }
}

impl NodeProcess {
    /// Starts a node and waits until it has joined (it prints its endpoints after registering).
    pub async fn start(etcd: &Etcd, id: &str, options: &NodeOptions) -> NodeProcess {
        match Self::try_start(etcd, id, options).await {
            Ok(node) => node,
            Err(output) => panic!("node {id} did not start:\n{output}"),
        }
    }

    /// Starts a node with a TOML config file of `config` (for what only the file sets, like `apps`) and
    /// waits until it has joined.
    pub async fn start_with_config(
        etcd: &Etcd,
        id: &str,
        options: &NodeOptions,
        config: &str,
    ) -> NodeProcess {
        let path = temp_dir("config").join("showcall.toml");
        std::fs::write(&path, config).expect("config file written");
        let started = Self::try_start_configured(etcd, id, options, Some(&path)).await;
        // Read at start-up only.
        let _ = std::fs::remove_dir_all(path.parent().expect("in its own dir"));
        started.unwrap_or_else(|output| panic!("node {id} did not start:\n{output}"))
    }

    /// Starts a node; `Err` with its output when it exits before joining.
    pub async fn try_start(
        etcd: &Etcd,
        id: &str,
        options: &NodeOptions,
    ) -> Result<NodeProcess, String> {
        Self::try_start_configured(etcd, id, options, None).await
    }

    async fn try_start_configured(
        etcd: &Etcd,
        id: &str,
        options: &NodeOptions,
        config: Option<&Path>,
    ) -> Result<NodeProcess, String> {
        let mut command = Command::new(showcall_binary());
        if let Some(path) = config {
            command.env("SHOWCALL_CONFIG", path);
        }
        let signal_addr = match options.announce_signal_url {
            true => {
                let addr = format!("127.0.0.1:{}", free_port());
                command.env("SHOWCALL_SIGNAL_PUBLIC_URL", format!("ws://{addr}/signal"));
                addr
            }
            false => "127.0.0.1:0".to_owned(),
        };
        let mut child = command
            .arg("run")
            .args(["--node-id", id])
            .args(["--signal-addr", &signal_addr])
            .args(["--grpc-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(["--media-addr", "127.0.0.1:0"])
            .args(["--etcd", &etcd.url])
            .env("SHOWCALL_CLUSTER_SECRET", CLUSTER_SECRET)
            .env("SHOWCALL_LEASE_TTL", options.lease_ttl)
            .env("SHOWCALL_PARTITIONS", options.partitions.to_string())
            .env("RUST_LOG", "warn")
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("showcall starts");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        // TEST_NODE_LOGS=<dir> keeps every node's log in `<dir>/<node id>.log` (appended
        // across restarts), for reading what the nodes did in a failed run.
        let mut keep = std::env::var_os("TEST_NODE_LOGS").map(|dir| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(std::path::Path::new(&dir).join(format!("{id}.log")))
                .expect("node log file opens")
        });
        let errors = tokio::spawn(async move {
            use std::io::Write as _;
            let mut lines = BufReader::new(stderr).lines();
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(file) = &mut keep {
                    let _ = writeln!(file, "{line}");
                }
                if seen.len() < 200 {
                    seen.push(line);
                }
            }
            seen
        });
        let mut lines = BufReader::new(stdout).lines();
        let mut output = Vec::new();
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    let done = line.contains("health (HTTP)");
                    output.push(line);
                    if done {
                        break;
                    }
                }
                _ => {
                    let _ = child.wait().await;
                    let stderr = errors.await.unwrap_or_default();
                    return Err(format!("{}\n{}", output.join("\n"), stderr.join("\n")));
                }
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let find = |label: &str| {
            output
                .iter()
                .find(|l| l.contains(label))
                .and_then(|l| l.split_whitespace().last())
                .unwrap_or_else(|| panic!("node printed no {label}: {output:?}"))
                .to_owned()
        };
        let signal_url = find("signaling (WebSocket)");
        let grpc_url = find("business API (gRPC)");
        let health = find("health (HTTP)");
        let http_addr = health
            .trim_start_matches("http://")
            .trim_end_matches("/healthz")
            .parse()
            .unwrap_or_else(|_| panic!("a health URL: {health}"));
        Ok(NodeProcess {
            id: id.to_owned(),
            child,
            signal_url,
            grpc_url,
            http_addr,
            output,
        })
    }

    /// A demo-app token for `uid` with every grant (nodes run with the built-in demo app).
    pub fn token(&self, uid: &str) -> String {
        let keys = showcall_node::config::NodeConfig::default().app_keys();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        showcall_auth::TokenIssuer::mint(
            &keys,
            showcall_node::config::DEMO_APP_ID,
            uid,
            Duration::from_secs(3600),
            crate::full_grants(),
            now,
        )
        .expect("valid token arguments")
        .0
    }

    /// `GetNodeInfo`, or `None` when the node does not answer (killed, or not serving gRPC).
    pub async fn info(&self) -> Option<NodeInfo> {
        let channel = crate::admin::grpc_channel(&self.grpc_url).await.ok()?;
        let credentials = showcall_admin::AdminCredentials::new(
            showcall_node::config::DEMO_API_KEY,
            showcall_node::config::DEMO_API_SECRET,
        );
        let mut client = AdminClient::with_interceptor(channel, credentials);
        client
            .get_node_info(GetNodeInfoRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    /// A demo-app user logged in through this node's gateway (Rust SDK).
    pub async fn user(&self, id: &str) -> crate::sdk_helpers::SdkUser {
        crate::sdk_helpers::SdkUser::login_at(&self.signal_url, DEMO_APP, id, &self.token(id)).await
    }

    /// A user logged in through this node and prepared for calls.
    pub async fn prepared_user(&self, id: &str) -> crate::sdk_helpers::SdkUser {
        let user = self.user(id).await;
        user.api
            .prepare_for_call(showcall_sdk::PrepareConfig::default())
            .await
            .expect("prepare accepted");
        user
    }

    /// Logs `id` in through this node until it works (UNAVAILABLE while its partition has no owner).
    pub async fn log_in_again(&self, id: &str) -> showcall_sdk::SignalClient {
        eventually(
            "the user can log in again",
            Duration::from_secs(60),
            async || {
                let signal = showcall_sdk::SignalClient::connect(&self.signal_url)
                    .await
                    .map_err(|e| e.to_string())?;
                signal
                    .login(&self.token(id))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(signal)
            },
        )
        .await
    }

    /// SIGSTOP: the node freezes (a long GC or VM stall); its lease runs out if it stays frozen.
    pub fn pause(&self) {
        signal(self.child.id().expect("node is running"), "STOP");
    }

    /// SIGCONT: the frozen node runs again.
    pub fn resume(&self) {
        signal(self.child.id().expect("node is running"), "CONT");
    }

    /// SIGTERM (what an orchestrator sends to stop a pod), then waits for the process to exit; returns
    /// its exit status and how long the exit took. The wait is guarded: a node still running after
    /// [`EXIT_GUARD`] fails the test (a node must exit by itself, bounded).
    pub async fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let asked = Instant::now();
        signal(self.child.id().expect("node is running"), "TERM");
        let status = tokio::time::timeout(EXIT_GUARD, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("node {} still runs {EXIT_GUARD:?} after SIGTERM", self.id))
            .expect("the node process can be waited for");
        (status, asked.elapsed())
    }

    /// SIGKILL: the node stops at once, without leaving the cluster.
    pub async fn kill(mut self) {
        signal(self.child.id().expect("node is running"), "KILL");
        let _ = self.child.wait().await;
    }
}

/// Where every actor (and partition) is served now, as `actor/<key>` / `partition <n>` → node id;
/// panics if one is served by two nodes at once. Nodes that do not answer are skipped.
///
/// Nodes are asked one after another, so a handoff between two answers can show a moving actor on both
/// (its old node answered before it stopped serving, its new node after it started). A double is
/// therefore checked again, asking the two nodes in the opposite order: a handoff cannot show twice that
/// way (the old node stops before the new one starts), two nodes really serving it at once would.
pub async fn homes(nodes: &[&NodeProcess]) -> std::collections::HashMap<String, String> {
    async fn ask(node: &NodeProcess) -> Vec<String> {
        node.info()
            .await
            .map(|info| {
                info.partitions
                    .iter()
                    .map(|p| format!("partition {p}"))
                    .chain(info.active_actors)
                    .collect()
            })
            .unwrap_or_default()
    }
    let mut home = std::collections::HashMap::new();
    for node in nodes {
        for thing in ask(node).await {
            if let Some(other) = home.insert(thing.clone(), node.id.clone()) {
                let first = nodes
                    .iter()
                    .find(|n| n.id == other)
                    .expect("a node asked before");
                let again_here = ask(node).await.contains(&thing);
                let again_there = ask(first).await.contains(&thing);
                assert!(
                    !(again_here && again_there),
                    "{thing} is served by {other} and {} at once",
                    node.id
                );
                if !again_here {
                    home.insert(thing, other);
                }
            }
        }
    }
    home
}

/// How long a SIGTERMed node may take to exit before the test calls it hung.
pub const EXIT_GUARD: Duration = Duration::from_secs(30);

/// The partitions each node serves now, by node id (a node that does not answer serves none).
pub async fn shares(nodes: &[&NodeProcess]) -> std::collections::BTreeMap<String, Vec<u32>> {
    let mut by_node = std::collections::BTreeMap::new();
    for node in nodes {
        let served = node.info().await.map(|i| i.partitions).unwrap_or_default();
        by_node.insert(node.id.clone(), served);
    }
    by_node
}

/// The partition of a demo-app user's actor key.
pub fn user_partition(user: &str, partitions: u32) -> u32 {
    let key =
        showcall_protocol::ActorKey::User(showcall_protocol::AppId(DEMO_APP.into()), user.into());
    showcall_cluster::partition_of(&key, partitions)
}

/// The first `<prefix>-<n>` whose user partition is in `partitions`.
pub fn user_in(prefix: &str, partitions: &[u32], count: u32) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}"))
        .find(|id| partitions.contains(&user_partition(id, count)))
        .expect("some id hashes into the partitions")
}

/// The tag a node's id gives its call channels (`call-<hex>@<tag>`).
pub fn node_tag(node: &NodeProcess) -> String {
    showcall_cluster::view::node_tag(&showcall_protocol::NodeId(node.id.clone()))
}

/// Connects a call from `caller` to `callee` (both prepared) whose call actor's partition and call
/// channel's node tag `accept` takes: calls placed elsewhere are cancelled and placed again. The parties
/// join the call channel without media (connected on both joins). Returns the call id.
pub async fn connected_call_where(
    caller: &mut crate::sdk_helpers::SdkUser,
    callee: &mut crate::sdk_helpers::SdkUser,
    partitions: u32,
    accept: impl Fn(u32, &str) -> bool,
) -> String {
    use showcall_sdk::{CallState, CallStateReason, CallType};
    for _ in 0..100 {
        let created = caller
            .api
            .call(&callee.id, CallType::Video, Default::default())
            .await
            .expect("call placed");
        let call_key = showcall_protocol::ActorKey::Call(
            showcall_protocol::AppId(DEMO_APP.into()),
            created.call_id.as_str().into(),
        );
        let partition = showcall_cluster::partition_of(&call_key, partitions);
        let tag = created
            .channel
            .rsplit_once('@')
            .map(|(_, tag)| tag.to_owned())
            .unwrap_or_default();
        callee
            .wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
            .await;
        if !accept(partition, &tag) {
            caller.api.cancel_call().await.expect("cancelled");
            caller
                .wait_state(CallState::Prepared, CallStateReason::LocalCancelled)
                .await;
            callee
                .wait_state(CallState::Prepared, CallStateReason::RemoteCancelled)
                .await;
            continue;
        }
        callee.api.accept(&caller.id).await.expect("accepted");
        caller.api.join_call_channel().await.expect("caller joins");
        callee.api.join_call_channel().await.expect("callee joins");
        caller.wait_call(crate::sdk_helpers::is_connected).await;
        callee.wait_call(crate::sdk_helpers::is_connected).await;
        return created.call_id;
    }
    panic!("no call of 100 landed where wanted");
}

/// A client whose node closed its connection with 1012 ("service restart") does what an app does: it
/// reconnects through `node` and logs in again within grace. Panics unless the session resumed; returns
/// the call it resumed into, if any.
pub async fn resume_at(
    user: &mut crate::sdk_helpers::SdkUser,
    node: &NodeProcess,
) -> Option<String> {
    use showcall_sdk::Recorded;
    user.wait_signal(|r| matches!(r, Recorded::SignalDisconnected { .. }))
        .await;
    user.signal
        .reconnect_to(&node.signal_url)
        .await
        .expect("another node accepts the connection");
    // "Try again" while the session's partition moves (the restarted node takes its share back).
    let login = eventually(
        "the session logs in again",
        Duration::from_secs(30),
        async || match user.signal.login(&node.token(&user.id)).await {
            Err(showcall_sdk::SdkError::Refused {
                code: showcall_sdk::ErrorCode::Unavailable,
                message,
            }) => Err(message),
            other => Ok(other.expect("the session logs in again")),
        },
    )
    .await;
    assert!(login.resumed, "{} resumed its session: {login:?}", user.id);
    login.call.map(|c| c.call_id)
}

/// Polls `probe` until it returns `Some`, failing with the last observation after `limit` (a guard
/// against a hang, not a timing assertion: the tests print how long convergence took).
pub async fn eventually<T, O: std::fmt::Debug>(
    what: &str,
    limit: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, O>,
) -> T {
    let started = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(observed) => {
                assert!(
                    started.elapsed() < limit,
                    "{what}: not reached within {limit:?}; last seen: {observed:#?}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The app every node runs (the built-in demo app).
pub const DEMO_APP: &str = showcall_node::config::DEMO_APP_ID;

/// The secret the harness's cluster members share (`SHOWCALL_CLUSTER_SECRET`).
pub const CLUSTER_SECRET: &str = "test-cluster-secret-0123456789";

/// How many times `user` was told that `call` ended.
pub fn call_endings(user: &crate::sdk_helpers::SdkUser, call: &str) -> usize {
    use showcall_sdk::{CallState, Recorded};
    user.rec
        .seen()
        .iter()
        .filter(|r| matches!(r, Recorded::State { state: CallState::Prepared, info, .. } if info.call_id == call))
        .count()
}

/// Starts nodes `ids` on `etcd` and waits until they share every partition.
pub async fn start_converged(etcd: &Etcd, ids: &[&str], options: &NodeOptions) -> Vec<NodeProcess> {
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(NodeProcess::start(etcd, id, options).await);
    }
    wait_converged(&nodes.iter().collect::<Vec<_>>(), options.partitions).await;
    nodes
}

/// Waits until the nodes have settled: each serves exactly its rendezvous share of `partitions` among
/// them (so none is still handing partitions over), and together they serve all of them.
pub async fn wait_converged(nodes: &[&NodeProcess], partitions: u32) {
    let live: std::collections::BTreeSet<showcall_protocol::NodeId> = nodes
        .iter()
        .map(|n| showcall_protocol::NodeId(n.id.clone()))
        .collect();
    eventually(
        "the nodes serve their rendezvous shares",
        Duration::from_secs(60),
        async || {
            let mut all = std::collections::BTreeSet::new();
            let mut off = Vec::new();
            for node in nodes {
                let mut served = node.info().await.map(|i| i.partitions).unwrap_or_default();
                served.sort_unstable();
                let share: Vec<u32> = (0..partitions)
                    .filter(|p| {
                        showcall_cluster::rendezvous::target(*p, &live).map(|n| n.0.as_str())
                            == Some(node.id.as_str())
                    })
                    .collect();
                if served != share {
                    off.push((node.id.clone(), served.len(), share.len()));
                }
                all.extend(served);
            }
            if all.len() == partitions as usize && off.is_empty() {
                Ok(())
            } else {
                Err(off)
            }
        },
    )
    .await;
}

/// The node a channel of the demo app runs on now (a live room's origin), asking each of `nodes`.
pub async fn origin_of(nodes: &[&NodeProcess], channel: &str) -> Option<String> {
    let actor = format!("channel/{DEMO_APP}/{channel}");
    for node in nodes {
        let info = node.info().await?;
        if info.active_actors.contains(&actor) {
            return Some(node.id.clone());
        }
    }
    None
}

/// Media sessions a node's router holds now (every path), from its metrics.
pub async fn media_sessions(node: &NodeProcess) -> f64 {
    let page = crate::prometheus::scrape(node.http_addr).await;
    ["udp", "tcp", "relay"]
        .iter()
        .map(|path| page.get(&format!("showcall_media_sessions{{path=\"{path}\"}}")))
        .sum()
}

/// The media sessions `node` announces in its node info in etcd (what other nodes choose edges by);
/// `None` while it announces no media.
pub async fn announced_media_sessions(etcd: &Etcd, node: &str) -> Option<u64> {
    let mut client = etcd_client::Client::connect([etcd.url.as_str()], None)
        .await
        .expect("etcd reachable");
    let suffix = format!("nodes/{node}");
    let got = client
        .get("", Some(etcd_client::GetOptions::new().with_all_keys()))
        .await
        .expect("etcd answers");
    let kv = got
        .kvs()
        .iter()
        .find(|kv| kv.key().ends_with(suffix.as_bytes()))?;
    let info: serde_json::Value = serde_json::from_slice(kv.value()).ok()?;
    info["media"]["sessions"].as_u64()
}
