//! A network namespace joined to this one by a veth pair: a second machine on a wire of its own, for
//! tests that need a client whose only way out is a chosen address (no netem or firewall rules here).
//!
//! Inside, the client sees its own loopback and one link, `inside_ip` ↔ `outside_ip`. What listens on
//! `outside_ip` in this namespace it can reach; what listens only on 127.0.0.1 here it cannot (its
//! 127.0.0.1 is its own, where nothing listens: UDP is answered ICMP port-unreachable and TCP with a
//! reset — a network that lets only chosen ports out, as far as the client can tell).
//!
//! Needs root (`ip netns`, `ip link`); [`IsolatedHost::create`](crate::netns::IsolatedHost::create) panics saying so otherwise.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static MADE: AtomicU32 = AtomicU32::new(0);

pub struct IsolatedHost {
    /// The namespace's name, for `ip netns exec`.
    pub name: String,
    /// The address of this namespace's end of the link: what the client can reach.
    pub outside_ip: Ipv4Addr,
    /// The client's address inside.
    pub inside_ip: Ipv4Addr,
}

impl IsolatedHost {
    /// A new namespace with its link up. Names and the /30 subnet come from the process id and a counter,
    /// so concurrent tests (and test processes) do not collide.
    pub fn create() -> Self {
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("sc{pid}n{n}");
        // 10.200.0.0/14 split into /30s by (pid, n).
        let slot = (pid.wrapping_mul(8).wrapping_add(n)) % (1 << 16);
        let base = Ipv4Addr::new(
            10,
            200 + (slot >> 14) as u8,
            ((slot >> 6) & 0xff) as u8,
            ((slot & 0x3f) * 4) as u8,
        );
        let [a, b, c, d] = base.octets();
        let outside_ip = Ipv4Addr::new(a, b, c, d + 1);
        let inside_ip = Ipv4Addr::new(a, b, c, d + 2);
        let (outside, inside) = (format!("{name}o"), format!("{name}i"));
        let host = IsolatedHost {
            name: name.clone(),
            outside_ip,
            inside_ip,
        };
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ]);
        ip(&["link", "set", &inside, "netns", &name]);
        ip(&["addr", "add", &format!("{outside_ip}/30"), "dev", &outside]);
        ip(&["link", "set", &outside, "up"]);
        host.exec_ip(&["addr", "add", &format!("{inside_ip}/30"), "dev", &inside]);
        host.exec_ip(&["link", "set", &inside, "up"]);
        host.exec_ip(&["link", "set", "lo", "up"]);
        host
    }

    /// One more address on this side of the link, `10.199.<n>.1`-ish and unique per host, with a route
    /// to it from inside: a second server address the client reaches over the same link, which
    /// [`take_address_away`](Self::take_address_away) can make unreachable while the first stays up.
    pub fn add_outside_address(&self) -> Ipv4Addr {
        let [_, b, c, d] = self.outside_ip.octets();
        let extra = Ipv4Addr::new(10, 199 - (b - 200), c, d);
        self.give_address_back(extra);
        self.exec_ip(&[
            "route",
            "add",
            &format!("{extra}/32"),
            "via",
            &self.outside_ip.to_string(),
        ]);
        extra
    }

    /// Removes `address` from this side: what listens on it stops being reachable (its sockets stay open
    /// and work again once it is back) — a path that goes dead, as when a network drops under a client.
    pub fn take_address_away(&self, address: Ipv4Addr) {
        ip(&[
            "addr",
            "del",
            &format!("{address}/32"),
            "dev",
            &format!("{}o", self.name),
        ]);
    }

    /// Puts `address` back on this side (or adds it the first time).
    pub fn give_address_back(&self, address: Ipv4Addr) {
        ip(&[
            "addr",
            "add",
            &format!("{address}/32"),
            "dev",
            &format!("{}o", self.name),
        ]);
    }

    /// `program args…` run inside the namespace.
    pub fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `task` on a thread of its own that has joined the namespace, in a runtime of its own: every
    /// socket it opens is inside (a client of the isolated machine), while the rest of the test runs
    /// outside. Resolves with the task's output (panics in the task fail the test).
    pub async fn run_inside<F, Fut, T>(&self, task: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        let namespace = std::fs::File::open(format!("/var/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("open the namespace {}: {e}", self.name));
        let thread = std::thread::spawn(move || {
            nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("join the network namespace");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime inside the namespace")
                .block_on(task())
        });
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(output)) => output,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the namespace thread's waiter failed: {e}"),
        }
    }

    fn exec_ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for IsolatedHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the veth pair, and with it ours.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {} — the namespace tests need root",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The media-path tests' world: a client machine ([`IsolatedHost`]) and a node whose signaling listens on
/// the link's first address and its media (one worker) on a second one, which [`kill`](Self::kill)
/// takes away — the media path dies, signaling goes on — and [`revive`](Self::revive) gives back.
pub struct MediaPathThatDies {
    pub network: IsolatedHost,
    pub media_ip: Ipv4Addr,
    pub node: crate::TestNode,
}

impl MediaPathThatDies {
    pub async fn start() -> Self {
        let network = IsolatedHost::create();
        let media_ip = network.add_outside_address();
        let outside = network.outside_ip;
        let node = crate::TestNode::start_with(|config| {
            config.signal_addr = std::net::SocketAddr::from((outside, 0));
            config.media_addr = std::net::SocketAddr::from((media_ip, 0));
            config.media_workers = 1;
        })
        .await;
        Self {
            network,
            media_ip,
            node,
        }
    }

    /// The media path dies: its address is gone.
    pub fn kill(&self) {
        self.network.take_address_away(self.media_ip);
    }

    /// The media path is back.
    pub fn revive(&self) {
        self.network.give_address_back(self.media_ip);
    }
}
