//! The process's open-file budget, set once at start: every client holds a socket, so a node runs out
//! of descriptors long before it runs out of CPU under the usual soft limit of 1,024.
//!
//! - **The soft limit is raised to the hard limit** (as Go's runtime and most servers do): the operator
//!   sets the ceiling (`LimitNOFILE=` in systemd, `ulimit -Hn`, the container runtime's `nofile`), and
//!   the node uses all of it instead of refusing connections at the login shell's default.
//! - **The descriptor table is grown once, now, to [`PRESIZE_CAP`] slots at most.** Linux grows a
//!   process's table by doubling when a descriptor past its end is opened; in a multi-threaded
//!   process that waits for an RCU grace period (10–30 ms here) while holding up every other thread
//!   opening a descriptor. A node crossing 1,024, 2,048, … connections would stall an accept (and the
//!   calls behind it on that runtime thread) at each crossing. Growing it before serving costs one
//!   wait at start and at most 512 KiB of kernel memory. (`showcall-bench cluster` measured it: the
//!   first round after the relay's sockets moved a crossing into it was 10–25 ms slower at p99;
//!   BENCHMARKS.md, `cluster` Run 16.)

use std::os::fd::{AsFd, IntoRawFd};
use std::sync::OnceLock;

use nix::fcntl::{FcntlArg, fcntl};
use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The largest descriptor table grown ahead (slots; 8 bytes each). Past it the table still grows on
/// demand, rarely: each doubling then serves tens of thousands more connections.
pub const PRESIZE_CAP: u64 = 65_536;

/// What [`prepare`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit before (the inherited one).
    pub inherited: u64,
    /// The soft limit now (the hard limit, unless raising it failed).
    pub limit: u64,
    /// Descriptor slots the table was grown to hold (0: it could not be grown).
    pub presized: u64,
}

/// Raises the soft limit and grows the descriptor table (once per process; later calls return the
/// first call's result). Failures are logged and leave things as they were: the node still runs.
pub fn prepare() -> OpenFiles {
    static DONE: OnceLock<OpenFiles> = OnceLock::new();
    *DONE.get_or_init(|| {
        let done = raise_and_presize();
        tracing::info!(
            inherited = done.inherited,
            limit = done.limit,
            presized = done.presized,
            "open files"
        );
        done
    })
}

fn raise_and_presize() -> OpenFiles {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "reading the open-files limit failed");
            return OpenFiles {
                inherited: 0,
                limit: 0,
                presized: 0,
            };
        }
    };
    let limit = if hard > soft {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "raising the open-files limit failed");
                soft
            }
        }
    } else {
        soft
    };
    OpenFiles {
        inherited: soft,
        limit,
        presized: presize(limit.min(PRESIZE_CAP)),
    }
}

/// Grows the table to hold `slots` descriptors: a duplicate of standard input placed at the last slot
/// (the kernel sizes the table to hold it), then closed (the table never shrinks). 0 when it failed.
fn presize(slots: u64) -> u64 {
    let Some(last) = slots.checked_sub(1).and_then(|l| i32::try_from(l).ok()) else {
        return 0;
    };
    let placed = fcntl(std::io::stdin().as_fd(), FcntlArg::F_DUPFD_CLOEXEC(last));
    match placed {
        Ok(fd) => {
            // The duplicate is ours alone: nothing else knows its number.
            let _ = nix::unistd::close(fd.into_raw_fd());
            slots
        }
        Err(e) => {
            tracing::warn!(error = %e, slots, "growing the descriptor table failed");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit the node runs with is the hard limit, and the table holds a descriptor at the top of
    /// the pre-sized range: opening one there is what the kernel would otherwise have to grow for.
    #[test]
    fn the_limit_is_raised_to_the_hard_limit_and_the_table_is_grown() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("limits readable");
        let done = prepare();
        assert_eq!(done.limit, hard);
        assert_eq!(
            getrlimit(Resource::RLIMIT_NOFILE).expect("readable").0,
            hard
        );
        assert_eq!(done.presized, hard.min(PRESIZE_CAP));
        assert_eq!(prepare(), done, "a second call changes nothing");
        let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
        let fd_table_size: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("FDSize in /proc/self/status");
        assert!(
            fd_table_size >= done.presized,
            "FDSize {fd_table_size} < {}",
            done.presized
        );
    }
}
