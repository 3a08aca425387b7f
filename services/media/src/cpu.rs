//! CPU time of threads, read from `/proc` (Linux): what each router worker reports of itself, and what
//! the benchmarks read of other threads.
//!
//! `/proc` reports clock ticks of `USER_HZ`, which Linux fixes at 100 for userspace: a 10 ms resolution,
//! enough for counters read over seconds. Elsewhere (no `/proc`) the time reads as unknown.

use std::time::Duration;

/// Ticks per second of the `utime`/`stime` fields.
const USER_HZ: u64 = 100;

/// CPU time (user + system) of the calling thread so far.
pub fn current_thread() -> Option<Duration> {
    stat_cpu("/proc/thread-self/stat")
}

/// The calling thread's id (`/proc/thread-self` links to `<pid>/task/<tid>`).
pub fn current_thread_id() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// CPU time (user + system) so far of the thread or process whose `stat` file is at `path`
/// (`/proc/self/stat`, `/proc/self/task/<tid>/stat`).
pub fn stat_cpu(path: &str) -> Option<Duration> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

fn parse_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) may contain spaces; the fields after it start at `state` (field 3), so
    // utime (14) and stime (15) are the 12th and 13th after the closing parenthesis.
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_plus_system_ticks() {
        let stat = "42 (media worker) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0";
        assert_eq!(parse_stat(stat), Some(Duration::from_millis(1750)));
        assert_eq!(parse_stat("42 (x) S 1"), None);
    }

    #[test]
    fn this_thread_has_a_cpu_time() {
        assert!(current_thread().is_some());
    }
}
