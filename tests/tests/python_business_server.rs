//! The README's Python business server (`examples/python/business_server.py`, grpcio) runs as a child
//! process against a real node, the way an app developer would run it: it mints the host's and the
//! viewer's tokens, which the SDK users log in with; it follows the seed's flow (host live, paid call,
//! hangup) on `WatchEvents`; it prints the call's billing line and exits. A second run has its stream cut
//! by a real TCP relay mid-call and must resume after the last cursor it handled, billing the call once.
//!
//! Its Python comes from `scripts/python-env` (the venv `scripts/test` prepares, made here when missing),
//! so `cargo nextest` alone runs these tests too. Every wait is for one of the script's JSON lines or an
//! SDK callback, bounded by the harness deadline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use showcall_sdk::{CallState, CallStateReason, CallType, ChannelRole, PrepareConfig};
use showcall_tests::sdk_helpers::SdkUser;
use showcall_tests::{DEADLINE, TestNode};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::watch;

const PRICE_PER_MINUTE: u64 = 30;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_owned()
}

/// The venv's python, made by `scripts/python-env` if missing (the first time, pip installs the pinned
/// requirements: no deadline, it depends on the network, not on showcall).
async fn python() -> PathBuf {
    let out = Command::new(repo_root().join("scripts/python-env"))
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("scripts/python-env runs");
    assert!(out.status.success(), "scripts/python-env failed");
    let path = String::from_utf8(out.stdout).expect("a utf-8 path");
    PathBuf::from(path.trim())
}

/// The example running as a child process, read one JSON line at a time.
struct BusinessServer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// Every line read so far, for failure messages and for checks over what came before.
    seen: Vec<Value>,
}

impl BusinessServer {
    async fn start(grpc_addr: SocketAddr, extra: &[&str]) -> BusinessServer {
        Self::start_with_stderr(grpc_addr, extra, Stdio::inherit()).await
    }

    /// Everything the example wrote to its (piped) stderr, once it has exited.
    async fn stderr_text(&mut self) -> String {
        let mut stderr = String::new();
        tokio::io::AsyncReadExt::read_to_string(
            self.child.stderr.as_mut().expect("stderr is piped"),
            &mut stderr,
        )
        .await
        .expect("stderr readable");
        stderr
    }

    async fn start_with_stderr(
        grpc_addr: SocketAddr,
        extra: &[&str],
        stderr: Stdio,
    ) -> BusinessServer {
        let mut child = Command::new(python().await)
            .arg(repo_root().join("examples/python/business_server.py"))
            .args(["--addr", &grpc_addr.to_string()])
            .args(["--price-per-minute", &PRICE_PER_MINUTE.to_string()])
            .args(["--exit-after-calls", "1"])
            .args(extra)
            // A proxy from the environment must not sit between the example and the local node.
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("grpc_proxy")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("the venv's python starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        BusinessServer {
            child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// The next line the example prints; panics with what it printed so far if it ends or hangs.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(DEADLINE, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no line within {DEADLINE:?}; printed: {:#?}", self.seen))
            .expect("stdout readable")
            .unwrap_or_else(|| panic!("the example exited; printed: {:#?}", self.seen));
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        self.seen.push(value.clone());
        value
    }

    /// The next line of this type (earlier lines of other types are skipped, and kept in `seen`).
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let line = self.next().await;
            if line["type"] == kind {
                return line;
            }
        }
    }

    /// Waits for the example to exit on its own; returns whether it succeeded.
    async fn exit_success(&mut self) -> bool {
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("still running; printed: {:#?}", self.seen))
            .expect("wait for the child");
        // Anything it printed after the lines waited for.
        while let Ok(Some(line)) = self.lines.next_line().await {
            self.seen.push(Value::String(line));
        }
        status.success()
    }

    /// The token the example minted for `user`.
    async fn token_for(&mut self, user: &str) -> String {
        let line = self.next_of("token").await;
        assert_eq!(line["user_id"], user, "tokens come host first, then viewer");
        assert_eq!(line["channel"], "host_live");
        line["token"].as_str().expect("a token string").to_owned()
    }
}

/// Logs in the host and the viewer with the example's tokens (the host goes live in its room), then the
/// viewer calls the host, who accepts; both join the call channel. Returns them and the call id.
async fn paid_call(node: &TestNode, server: &mut BusinessServer) -> (SdkUser, SdkUser, String) {
    let host_token = server.token_for("host").await;
    let viewer_token = server.token_for("viewer").await;
    let watching = server.next_of("watching").await;
    assert_eq!(watching["after_cursor"], Value::Null, "from now on");

    let mut host = SdkUser::login_with_token(node, "host", &host_token).await;
    let mut viewer = SdkUser::login_with_token(node, "viewer", &viewer_token).await;
    for user in [&host, &viewer] {
        user.api
            .prepare_for_call(PrepareConfig::default())
            .await
            .expect("prepared");
    }
    host.join("host_live", ChannelRole::Broadcaster).await;
    let joined = server.next_of("member_joined").await;
    assert_eq!(
        (&joined["channel"], &joined["user_id"], &joined["seed_code"]),
        (&"host_live".into(), &"host".into(), &103.into()),
        "the host went live"
    );

    let created = viewer
        .api
        .call("host", CallType::Video, HashMap::new())
        .await
        .expect("call placed");
    host.wait_state(CallState::Calling, CallStateReason::RemoteVideoCall)
        .await;
    host.api.accept("viewer").await.expect("accepted");
    viewer.api.join_call_channel().await.expect("viewer joins");
    host.api.join_call_channel().await.expect("host joins");
    for user in [&mut viewer, &mut host] {
        user.wait_state(CallState::Connected, CallStateReason::BothJoined)
            .await;
    }
    server.next_of("call_connected").await;
    (host, viewer, created.call_id)
}

/// The viewer hangs up; both sides see the call end.
async fn hang_up(host: &mut SdkUser, viewer: &mut SdkUser) {
    viewer.api.hangup("host", "bye").await.expect("hangup");
    viewer
        .wait_state(CallState::Prepared, CallStateReason::LocalHangup)
        .await;
    host.wait_state(CallState::Prepared, CallStateReason::RemoteHangup)
        .await;
}

/// The billing line is the viewer's hung-up call, priced per started minute.
fn assert_billed(billing: &Value, call_id: &str) {
    assert_eq!(billing["call_id"], call_id, "{billing}");
    assert_eq!(billing["caller"], "viewer");
    assert_eq!(billing["callee"], "host");
    assert_eq!(billing["end_reason"], "hangup");
    assert_eq!(billing["ended_by"], "viewer");
    let seconds = billing["connected_seconds"].as_f64().expect("seconds");
    // The call lasted well under a minute: one started minute, unless it ended in the same millisecond.
    let minutes = if seconds > 0.0 { 1 } else { 0 };
    assert!(seconds < 60.0, "{billing}");
    assert_eq!(billing["price"], minutes * PRICE_PER_MINUTE, "{billing}");
}

#[tokio::test]
async fn the_python_business_server_hands_out_tokens_and_bills_the_call() {
    let node = TestNode::start().await;
    let mut server = BusinessServer::start(node.handle.grpc_addr, &["--app-id", "demo"]).await;
    let (mut host, mut viewer, call_id) = paid_call(&node, &mut server).await;

    hang_up(&mut host, &mut viewer).await;
    let billing = server.next_of("billing").await;
    assert_billed(&billing, &call_id);
    assert!(server.exit_success().await, "--exit-after-calls 1 exits 0");
}

/// A TCP relay to the node that the test can cut (dropping every connection, refusing new ones) and
/// reopen: a network failure between the business server and the node, on real sockets.
struct Relay {
    addr: SocketAddr,
    /// True while the relay is cut.
    cut: watch::Sender<bool>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound address");
        let (cut, is_cut) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((mut downstream, _)) = listener.accept().await {
                if *is_cut.borrow() {
                    continue; // dropped: refused while cut
                }
                let mut is_cut = is_cut.clone();
                tokio::spawn(async move {
                    let mut up = TcpStream::connect(upstream).await.expect("node reachable");
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut downstream, &mut up) => {}
                        _ = is_cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Relay { addr, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

#[tokio::test]
async fn the_python_business_server_resumes_after_its_last_cursor_when_the_stream_drops() {
    let node = TestNode::start().await;
    let relay = Relay::start(node.handle.grpc_addr).await;
    let mut server =
        BusinessServer::start(relay.addr, &["--app-id", "demo", "--retry-seconds", "0.2"]).await;
    let (mut host, mut viewer, call_id) = paid_call(&node, &mut server).await;

    // The network fails mid-call; the call ends while the business server cannot hear of it.
    relay.set_cut(true);
    let dropped = server.next_of("stream_dropped").await;
    let last_handled = server
        .seen
        .iter()
        .filter_map(|line| line["cursor"].as_u64())
        .next_back()
        .expect("events were handled");
    assert_eq!(dropped["after_cursor"], last_handled, "{dropped}");
    hang_up(&mut host, &mut viewer).await;

    // Back: it watches again after the last event it handled, and gets the billing record from there.
    relay.set_cut(false);
    let resumed = server.next_of("watching").await;
    assert_eq!(resumed["after_cursor"], last_handled, "{resumed}");
    let resumed_at = server.seen.len();
    let billing = server.next_of("billing").await;
    assert_billed(&billing, &call_id);
    assert!(server.exit_success().await, "--exit-after-calls 1 exits 0");

    // Nothing handled twice: every event after the resume is newer than the last one handled before.
    for line in &server.seen[resumed_at..] {
        if let Some(cursor) = line["cursor"].as_u64() {
            assert!(cursor > last_handled, "replayed {line}");
        }
    }
}

#[tokio::test]
async fn the_python_business_server_stops_with_the_refusal_for_another_apps_id() {
    let node = TestNode::start().await;
    let mut server = BusinessServer::start_with_stderr(
        node.handle.grpc_addr,
        &["--app-id", "no-such-app"],
        Stdio::piped(),
    )
    .await;
    // The demo key acts for the demo app only.
    assert!(!server.exit_success().await, "a refused app is an error");
    assert!(server.seen.is_empty(), "no token minted: {:?}", server.seen);
    let stderr = server.stderr_text().await;
    assert!(
        stderr.contains("PERMISSION_DENIED") && stderr.contains("no-such-app"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_python_business_server_stops_with_the_refusal_for_an_unknown_api_key() {
    let node = TestNode::start().await;
    let mut server = BusinessServer::start_with_stderr(
        node.handle.grpc_addr,
        &["--app-id", "demo", "--api-key", "not-a-key"],
        Stdio::piped(),
    )
    .await;
    assert!(
        !server.exit_success().await,
        "a refused credential is an error"
    );
    assert!(server.seen.is_empty(), "no token minted: {:?}", server.seen);
    let stderr = server.stderr_text().await;
    assert!(
        stderr.contains("UNAUTHENTICATED") && stderr.contains("unknown API key"),
        "{stderr}"
    );
}
