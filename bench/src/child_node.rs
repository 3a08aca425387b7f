//! A node run as a child process, for the memory benchmarks and the soak: its resident memory and open
//! files are then the node's alone, apart from the clients in this process. The process is the
//! `showcall` binary ([`node_binary`] finds it).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout};

pub(super) struct ChildNode {
    child: Child,
    pid: u32,
    /// Kept open: the node prints more after its URLs, and a closed pipe would fail its `println!`.
    _stdout: Lines<BufReader<ChildStdout>>,
    /// The signaling URL (`ws://…/signal`), as the node printed it.
    pub url: String,
    /// The business API's URL (`http://…`), as the node printed it.
    pub grpc_url: String,
    /// The health port's address (`host:port`; `/healthz`, `/metrics`).
    pub http_addr: String,
    /// Where the node's (first) media worker receives UDP, as the node printed it.
    pub media_addr: Option<std::net::SocketAddr>,
}

/// A node's resident memory (`VmRSS`) and its parts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Memory {
    pub rss_bytes: u64,
    /// `RssAnon`: the heap and stacks — what a leak makes grow. The rest is mostly `RssFile`, pages
    /// of the executable read in: it grows as code runs for the first time, up to the size of the
    /// executable, and is shared with every node run from it.
    pub anon_bytes: u64,
}

/// What a child node runs with beyond its ephemeral local ports.
#[derive(Default)]
pub(super) struct ChildOptions {
    /// More `showcall run` flags (`--node-id`, `--etcd`, …).
    pub args: Vec<String>,
    /// Environment variables (`SHOWCALL_CLUSTER_SECRET`, `RUST_LOG`, …).
    pub env: Vec<(String, String)>,
    /// Pipe the node's stderr (its logs) for [`ChildNode::take_stderr`]; otherwise it is discarded.
    pub capture_logs: bool,
    /// A command the node runs under (e.g. `heaptrack -o /tmp/node`), for a diagnosis. The readings
    /// of memory and open files are then of that command's process, not of the node.
    pub wrapper: Vec<String>,
}

/// The `showcall` node binary the child nodes run: `explicit` (`--node-bin`, `BENCH_NODE_BIN`) when
/// given, else `showcall` next to this executable: cargo builds both into one directory per profile.
pub(super) fn node_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            anyhow::bail!(
                "no node binary at {} (--node-bin, BENCH_NODE_BIN)",
                path.display()
            );
        }
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    let path = exe.with_file_name(format!("showcall{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        anyhow::bail!(
            "no node binary at {}: this benchmark runs the `showcall` node as child processes; build it \
             beside this one (`cargo build --release -p showcall-node -p showcall-bench`), or name it \
             with --node-bin or BENCH_NODE_BIN",
            path.display()
        );
    }
    Ok(path)
}

impl ChildNode {
    /// Starts `node_bin` as a node on ephemeral local ports (media too: a fixed port could clash with
    /// another node on the machine) and waits until it printed its addresses.
    pub async fn start(node_bin: &Path) -> anyhow::Result<Self> {
        Self::start_with(node_bin, ChildOptions::default()).await
    }

    /// [`start`](Self::start) with more flags, environment, and its logs captured if asked.
    pub async fn start_with(node_bin: &Path, options: ChildOptions) -> anyhow::Result<Self> {
        let exe = node_bin.to_owned();
        let (program, wrapper_args) = match options.wrapper.split_first() {
            Some((program, args)) => (
                program.into(),
                args.iter()
                    .map(Into::into)
                    .chain([exe.into_os_string()])
                    .collect(),
            ),
            None => (exe.into_os_string(), Vec::new()),
        };
        let stderr = if options.capture_logs {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        };
        let mut child = tokio::process::Command::new(program)
            .args(wrapper_args)
            .args([
                "--signal-addr",
                "127.0.0.1:0",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--media-addr",
                "127.0.0.1:0",
            ])
            .args(&options.args)
            // Every client of a benchmark connects from 127.0.0.1, and `idle` holds up to 19,000 of
            // them: the signaling caps (100 per address, 10,000 per node) would refuse most.
            .env("SHOWCALL_MAX_CONNECTIONS_PER_IP", "0")
            .env("SHOWCALL_MAX_CONNECTIONS", "100000")
            .envs(options.env)
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the node {}", node_bin.display()))?;
        let pid = child.id().context("node pid")?;
        let mut lines = BufReader::new(child.stdout.take().context("node stdout")?).lines();
        let (mut url, mut grpc_url, mut media_addr) = (None, None, None);
        // The health line is printed after the signaling and business API lines.
        let http_addr = loop {
            let line = lines
                .next_line()
                .await?
                .context("node exited before printing its addresses")?;
            let last = || line.split_whitespace().last().map(str::to_owned);
            if line.contains("signaling (WebSocket)") {
                url = last();
            } else if line.contains("media (UDP, WebRTC)") {
                media_addr = last().and_then(|a| a.parse().ok());
            } else if line.contains("business API (gRPC)") {
                grpc_url = last();
            } else if line.contains("health (HTTP)") {
                break last().and_then(|u| {
                    let rest = u.strip_prefix("http://")?;
                    Some(rest.split('/').next()?.to_owned())
                });
            }
        };
        Ok(Self {
            child,
            pid,
            _stdout: lines,
            url: url.context("node printed no signaling URL")?,
            grpc_url: grpc_url.context("node printed no business API URL")?,
            http_addr: http_addr.context("node printed no health URL")?,
            media_addr,
        })
    }

    /// One sampled value of the node's `/metrics` page (a series without labels).
    pub async fn metric(&self, name: &str) -> anyhow::Result<u64> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(&self.http_addr).await?;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http_addr
        );
        stream.write_all(request.as_bytes()).await?;
        let mut page = String::new();
        stream.read_to_string(&mut page).await?;
        page.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .with_context(|| format!("no {name} on the node's /metrics page"))
    }

    /// The node's log lines, once (when started with `capture_logs`).
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The node's resident memory, bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        Ok(self.memory()?.rss_bytes)
    }

    /// The node's resident memory and its two parts, from one read of `/proc/<pid>/status`.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let bytes = |field: &str| -> anyhow::Result<u64> {
            let kb = status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next())
                .with_context(|| format!("no {field}"))?
                .parse::<u64>()?;
            Ok(kb * 1024)
        };
        Ok(Memory {
            rss_bytes: bytes("VmRSS:")?,
            anon_bytes: bytes("RssAnon:")?,
        })
    }

    /// The node's open file descriptors (sockets included): entries of `/proc/<pid>/fd`.
    pub fn open_files(&self) -> anyhow::Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", self.pid))?.count())
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
