//! CPU time (user + system) read from `/proc` (Linux), for "work per CPU-second" numbers: of the whole
//! process, or of one thread (a benchmark runs the part it measures on a thread of its own so that the
//! clients sharing the process are not counted).
//!
//! `/proc` reports clock ticks of `USER_HZ`, which Linux fixes at 100 for userspace: a 10 ms resolution,
//! enough over windows of seconds. (`/proc/<tid>/schedstat` would give nanoseconds but needs scheduler
//! statistics, which some kernels, this machine's included, do not keep.)

use anyhow::Context as _;

/// Ticks per second of the `utime`/`stime` fields.
const USER_HZ: f64 = 100.0;

/// CPU seconds used so far by every thread of this process.
pub(super) fn process_seconds() -> anyhow::Result<f64> {
    stat_seconds("/proc/self/stat")
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
    let link = std::fs::read_link("/proc/thread-self").context("reading /proc/thread-self")?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected /proc/thread-self target {}", link.display()))
}

/// Ids of this process's threads whose name starts with `prefix`.
pub(super) fn threads_named(prefix: &str) -> anyhow::Result<Vec<u32>> {
    let mut tids = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        let entry = entry?;
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.starts_with(prefix)
            && let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse().ok())
        {
            tids.push(tid);
        }
    }
    Ok(tids)
}

fn stat_seconds(path: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may contain spaces; the fields after it start at `state` (field 3), so
    // utime (14) and stime (15) are the 12th and 13th after the closing parenthesis.
    let after_name = stat.rsplit_once(')').context("no ')' in stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short stat line")?.parse()?)
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / USER_HZ)
}
