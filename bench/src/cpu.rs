//! CPU time (user + system) read from `/proc` (Linux), for "work per CPU-second" numbers: of the whole
//! process, or of one thread (a benchmark runs the part it measures on a thread of its own so that the
//! clients sharing the process are not counted).
//!
//! `/proc` reports clock ticks of `USER_HZ`, which Linux fixes at 100 for userspace: a 10 ms resolution,
//! enough over windows of seconds. (`/proc/<tid>/schedstat` would give nanoseconds but needs scheduler
//! statistics, which some kernels, this machine's included, do not keep.)

use anyhow::Context as _;

/// CPU seconds used so far by every thread of this process.
pub(super) fn process_seconds() -> anyhow::Result<f64> {
    stat_seconds("/proc/self/stat")
}

/// CPU seconds used so far by every thread of process `pid` (a child node).
pub(super) fn pid_seconds(pid: u32) -> anyhow::Result<f64> {
    stat_seconds(&format!("/proc/{pid}/stat"))
}

/// CPU seconds used so far by thread `tid` of this process.
pub(super) fn thread_seconds(tid: u32) -> anyhow::Result<f64> {
    stat_seconds(&format!("/proc/self/task/{tid}/stat"))
}

/// How many times thread `tid` has blocked so far (`voluntary_ctxt_switches`): for an event loop, its
/// wake-ups.
pub(super) fn thread_wakeups(tid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/self/task/{tid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .context("no voluntary_ctxt_switches")?
        .trim()
        .parse()
        .context("voluntary_ctxt_switches")
}

/// The calling thread's id (what [`thread_seconds`] takes): `/proc/thread-self` links to
/// `<pid>/task/<tid>`.
pub(super) fn current_thread_id() -> anyhow::Result<u32> {
    showcall_media::cpu::current_thread_id().context("no /proc/thread-self")
}

fn stat_seconds(path: &str) -> anyhow::Result<f64> {
    showcall_media::cpu::stat_cpu(path)
        .map(|d| d.as_secs_f64())
        .with_context(|| format!("reading {path}"))
}
