//! A node run as a child process, for the memory benchmarks: its resident memory is then the node's
//! alone, apart from the clients in this process.

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

pub(super) struct ChildNode {
    child: Child,
    pid: u32,
    /// Kept open: the node prints more after its URL, and a closed pipe would fail its `println!`.
    _stdout: Lines<BufReader<ChildStdout>>,
    /// The signaling URL (`ws://…/signal`), as the node printed it.
    pub url: String,
}

impl ChildNode {
    /// Starts this executable as a node on ephemeral local ports (media too: a fixed port could clash
    /// with another node on the machine) and waits until it prints its signaling URL.
    pub async fn start() -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
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
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the node")?;
        let pid = child.id().context("node pid")?;
        let mut lines = BufReader::new(child.stdout.take().context("node stdout")?).lines();
        let url = loop {
            let line = lines
                .next_line()
                .await?
                .context("node exited before printing its address")?;
            if let Some(u) = line.split_whitespace().find(|w| w.starts_with("ws://")) {
                break u.to_owned();
            }
        };
        Ok(Self {
            child,
            pid,
            _stdout: lines,
            url,
        })
    }

    /// The node's resident memory, bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .context("no VmRSS")?
            .parse::<u64>()?;
        Ok(kb * 1024)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
