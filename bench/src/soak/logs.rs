//! A child node's log lines, tallied as they arrive: every line is kept in a file (for reading what a
//! node did after a run), ERROR and WARN lines are counted, the first errors kept word for word and the
//! warnings grouped by message.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::ChildStderr;

/// How many error lines are kept word for word.
const KEPT_ERRORS: usize = 20;

/// What one node logged so far.
#[derive(Debug, Default, Clone)]
pub(super) struct LogTally {
    pub errors: u64,
    pub warnings: u64,
    /// The first [`KEPT_ERRORS`] error lines.
    pub first_errors: Vec<String>,
    /// Warnings by message (the line without its timestamp and fields): which ones, how often.
    pub warning_kinds: BTreeMap<String, u64>,
}

/// Reads `stderr` to its end in a task of its own, appending every line to `file`; the tally is
/// readable at any time.
pub(super) fn tally(stderr: ChildStderr, file: &Path) -> anyhow::Result<Arc<Mutex<LogTally>>> {
    let tally = Arc::new(Mutex::new(LogTally::default()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    let shared = tally.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line = strip_ansi(&line);
            let _ = writeln!(out, "{line}");
            // Written as they come, so the file is readable while the soak runs.
            let _ = out.flush();
            let mut tally = shared.lock().expect("log tally lock");
            match level(&line) {
                Some("ERROR") => {
                    tally.errors += 1;
                    if tally.first_errors.len() < KEPT_ERRORS {
                        tally.first_errors.push(line.clone());
                    }
                }
                Some("WARN") => {
                    tally.warnings += 1;
                    *tally.warning_kinds.entry(message(&line)).or_default() += 1;
                }
                _ => {}
            }
        }
    });
    Ok(tally)
}

/// The level of a `tracing` fmt line: `<timestamp> <LEVEL> <target>: <message> <fields>`.
fn level(line: &str) -> Option<&str> {
    line.split_whitespace()
        .nth(1)
        .filter(|l| matches!(*l, "ERROR" | "WARN" | "INFO" | "DEBUG" | "TRACE"))
}

/// The target and message of a log line, without its timestamp, level and `key=value` fields, so that
/// the same warning about different users counts as one kind.
fn message(line: &str) -> String {
    let words: Vec<&str> = line
        .split_whitespace()
        .skip(2)
        .take_while(|w| !w.contains('='))
        .collect();
    let mut message = words.join(" ");
    message.truncate(160);
    message
}

/// Removes terminal colour codes (`ESC [ … m`), in case the node colours its logs.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_level_and_the_message_of_a_fmt_line() {
        let line = "2026-12-05T10:00:00.123456Z  WARN showcall_node: node link refused: not a cluster member peer=n2 err=x";
        assert_eq!(level(line), Some("WARN"));
        assert_eq!(
            message(line),
            "showcall_node: node link refused: not a cluster member"
        );
        assert_eq!(level("  at src/lib.rs:12"), None);
    }

    #[test]
    fn strips_colour_codes() {
        let coloured = "\u{1b}[2m2026-12-05T10:00:00Z\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m x: y";
        assert_eq!(level(&strip_ansi(coloured)), Some("ERROR"));
    }
}
