//! Open-loop load: operations started on a fixed schedule (`rate` per second for `seconds`), whatever
//! the system under test is doing, each measured from the time it was *scheduled* — so a server that
//! falls behind shows its queueing in the latency instead of slowing the load down (no coordinated
//! omission).
//!
//! A pacer on a thread of its own (a tokio timer rounds every deadline up to the next millisecond, which
//! at 1,000 operations per second would be most of a relay's latency) releases operation `k` at
//! `start + k / rate`. A pool of workers, each owning one client (a caller/callee pair, a relay pair),
//! takes the released operations in order; when every worker is busy, an operation waits for the first
//! free one, and that wait is part of its latency. An operation that fails or takes over
//! [`OP_TIMEOUT`] is counted (`failed`) and stops its worker. How late the clients were in sending (`send_lag`:
//! sent − scheduled) is reported beside it: when it grows, the clients, not the server, fell behind.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Mutex, mpsc};

use super::report::{histogram, progress};

/// A fixed rate for a fixed time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    /// Operations started per second.
    pub(super) rate: u32,
    /// How long the schedule runs.
    pub(super) seconds: u64,
}

impl Schedule {
    /// How many operations the schedule starts.
    pub(super) fn total(&self) -> u64 {
        u64::from(self.rate) * self.seconds
    }

    /// When operation `k` is due, counted from the start.
    fn due(&self, k: u64) -> Duration {
        Duration::from_nanos(k * 1_000_000_000 / u64::from(self.rate.max(1)))
    }
}

/// How long one operation may take before it counts as failed (its worker stops).
const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// How a worker ended: every operation done (its client back), or at a failed one; what it measured.
enum Worker<C> {
    Done(C, Measured),
    Failed(Measured, anyhow::Error),
}

/// One worker's histograms (see [`OpenLoop`]).
struct Measured {
    latency: Histogram<u64>,
    send_lag: Histogram<u64>,
    also_latency: Histogram<u64>,
}

/// What a worker's operation reports: when it put its first frame on the wire, and when it got the
/// answer the latency is taken at (it may go on afterwards: a reject, a wait for the next state).
pub(super) struct Timing {
    pub(super) sent: Instant,
    pub(super) answered: Instant,
    /// A second answer the operation timed, measured from the same scheduled time (a ring: the
    /// caller's own answer, beside the callee's `calling` in `answered`).
    pub(super) also_answered: Option<Instant>,
}

/// What an open-loop run measured.
pub(super) struct OpenLoop {
    /// Scheduled → answered, in microseconds.
    pub(super) latency: Histogram<u64>,
    /// Scheduled → sent, in microseconds: the clients' own lag.
    pub(super) send_lag: Histogram<u64>,
    /// Scheduled → the operation's second answer ([`Timing::also_answered`]), in microseconds.
    pub(super) also_latency: Histogram<u64>,
    /// Operations answered per second (≈ the rate when the clients kept up and nothing failed).
    pub(super) achieved_per_sec: f64,
    /// Operations that failed or timed out ([`OP_TIMEOUT`]), each stopping its worker.
    pub(super) failed: Vec<String>,
}

/// Runs `schedule` over `clients` (one worker each); `op` carries out one operation with a client and
/// hands the client back with its timing. Returns the measures and the clients.
pub(super) async fn run<C, F, Fut>(
    clients: Vec<C>,
    schedule: Schedule,
    what: &str,
    op: F,
) -> anyhow::Result<(OpenLoop, Vec<C>)>
where
    C: Send + 'static,
    F: Fn(C) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<(C, Timing)>> + Send,
{
    let total = schedule.total();
    let bar = progress(total, what);
    // Released operations: their scheduled instants, in order.
    let (release, released) = mpsc::unbounded_channel::<Instant>();
    let released = Arc::new(Mutex::new(released));
    // A little ahead, so the workers are parked on the queue when the first operation is due.
    let start = Instant::now() + Duration::from_millis(50);
    let pacer = std::thread::Builder::new()
        .name("open-loop-pacer".into())
        .spawn(move || {
            for k in 0..total {
                let due = start + schedule.due(k);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if release.send(due).is_err() {
                    break;
                }
            }
        })?;

    let mut workers = tokio::task::JoinSet::new();
    for client in clients {
        let released = released.clone();
        let op = op.clone();
        let bar = bar.clone();
        workers.spawn(async move {
            let mut measured = Measured {
                latency: histogram(),
                send_lag: histogram(),
                also_latency: histogram(),
            };
            let mut client = client;
            loop {
                // The lock is held only while waiting for the next release: operations go to the
                // workers in order.
                let Some(due) = released.lock().await.recv().await else {
                    break;
                };
                bar.inc(1);
                let (back, timing) = match tokio::time::timeout(OP_TIMEOUT, op(client)).await {
                    Ok(Ok(done)) => done,
                    // The client's state is unknown (or it is gone with the future): this worker
                    // stops, the others go on.
                    Ok(Err(e)) => return Ok(Worker::Failed(measured, e)),
                    Err(_) => {
                        let e = anyhow::anyhow!("an operation took over {OP_TIMEOUT:?}");
                        return Ok(Worker::Failed(measured, e));
                    }
                };
                client = back;
                let since_due = |at: Instant| micros(at.saturating_duration_since(due));
                measured.latency.record(since_due(timing.answered))?;
                measured.send_lag.record(since_due(timing.sent))?;
                if let Some(also) = timing.also_answered {
                    measured.also_latency.record(since_due(also))?;
                }
            }
            anyhow::Ok(Worker::Done(client, measured))
        });
    }
    let mut measured = OpenLoop {
        latency: histogram(),
        send_lag: histogram(),
        also_latency: histogram(),
        achieved_per_sec: 0.0,
        failed: Vec::new(),
    };
    let mut clients = Vec::new();
    while let Some(done) = workers.join_next().await {
        let worker = match done?? {
            Worker::Done(client, worker) => {
                clients.push(client);
                worker
            }
            Worker::Failed(worker, e) => {
                eprintln!("open loop: an operation failed, its worker stops: {e:#}");
                measured.failed.push(format!("{e:#}"));
                worker
            }
        };
        measured.latency.add(worker.latency)?;
        measured.send_lag.add(worker.send_lag)?;
        measured.also_latency.add(worker.also_latency)?;
    }
    let ran = start.elapsed();
    pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacer panicked"))?;
    bar.finish();
    measured.achieved_per_sec = measured.latency.len() as f64 / ran.as_secs_f64();
    Ok((measured, clients))
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

impl OpenLoop {
    /// Adds what another run of the same kind measured (a later slice of an interleaved measurement):
    /// its samples join these, and the achieved rate is the mean over the slices.
    pub(super) fn absorb(&mut self, other: OpenLoop, slices_before: u32) -> anyhow::Result<()> {
        self.latency.add(&other.latency)?;
        self.send_lag.add(&other.send_lag)?;
        self.also_latency.add(&other.also_latency)?;
        let n = f64::from(slices_before);
        self.achieved_per_sec = (self.achieved_per_sec * n + other.achieved_per_sec) / (n + 1.0);
        self.failed.extend(other.failed);
        Ok(())
    }

    /// The result JSON's view: latency percentiles (scheduled → answered), the clients' send lag, the
    /// rate achieved.
    pub(super) fn json(&self) -> serde_json::Value {
        let mut v = super::report::percentiles(&self.latency);
        v["send_lag"] = super::report::percentiles(&self.send_lag);
        v["achieved_per_sec"] = serde_json::json!(self.achieved_per_sec);
        v["failed"] = serde_json::json!(self.failed.len());
        if let Some(first) = self.failed.first() {
            v["first_failure"] = serde_json::json!(first);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_due_evenly_over_the_schedule() {
        let s = Schedule {
            rate: 1_000,
            seconds: 20,
        };
        assert_eq!(s.total(), 20_000);
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), Duration::from_millis(1));
        assert_eq!(s.due(19_999), Duration::from_millis(19_999));
        let third = Schedule {
            rate: 3,
            seconds: 1,
        };
        assert_eq!(third.due(1), Duration::from_nanos(333_333_333));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn latency_counts_from_the_schedule_when_every_worker_is_busy() {
        // One worker, each operation 20 ms, 100 per second for one second: the worker falls behind by
        // 10 ms per operation, and the latency (from the schedule) shows it; the achieved rate drops.
        let schedule = Schedule {
            rate: 100,
            seconds: 1,
        };
        let (measured, clients) = run(vec![()], schedule, "test", |()| async {
            let sent = Instant::now();
            tokio::time::sleep(Duration::from_millis(20)).await;
            // A second answer, as soon as the operation was sent: counted from the schedule too.
            Ok((
                (),
                Timing {
                    sent,
                    answered: Instant::now(),
                    also_answered: Some(sent),
                },
            ))
        })
        .await
        .unwrap();
        assert_eq!(clients.len(), 1);
        assert_eq!(measured.latency.len(), 100);
        // The last one was due at 990 ms and answered after 100 × 20 ms = 2 s.
        assert!(
            measured.latency.max() > 900_000,
            "{}",
            measured.latency.max()
        );
        assert!(measured.send_lag.max() > 900_000);
        assert_eq!(measured.also_latency.len(), 100);
        assert!(measured.also_latency.max() > 900_000);
        assert!(measured.achieved_per_sec < 60.0);
        assert!(measured.failed.is_empty());
    }

    #[test]
    fn slices_absorbed_measure_together() {
        let slice = |latency_us: u64, achieved: f64, failed: &[&str]| {
            let mut latency = histogram();
            latency.record(latency_us).unwrap();
            let mut also_latency = histogram();
            also_latency.record(latency_us + 1).unwrap();
            OpenLoop {
                latency,
                send_lag: histogram(),
                also_latency,
                achieved_per_sec: achieved,
                failed: failed.iter().map(|f| f.to_string()).collect(),
            }
        };
        let mut all = slice(100, 1_000.0, &[]);
        all.absorb(slice(300, 900.0, &["late"]), 1).unwrap();
        all.absorb(slice(200, 800.0, &[]), 2).unwrap();
        assert_eq!(all.latency.len(), 3);
        assert_eq!(all.latency.max(), 300);
        assert_eq!(all.also_latency.len(), 3);
        assert_eq!(all.also_latency.max(), 301);
        assert!((all.achieved_per_sec - 900.0).abs() < 1e-9);
        assert_eq!(all.failed, vec!["late".to_owned()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_operation_stops_its_worker_and_is_counted() {
        let schedule = Schedule {
            rate: 100,
            seconds: 1,
        };
        // Worker 0 fails at once; worker 1 does every operation.
        let (measured, clients) = run(vec![0, 1], schedule, "test", |c| async move {
            anyhow::ensure!(c == 1, "worker {c} fails");
            let now = Instant::now();
            Ok((
                c,
                Timing {
                    sent: now,
                    answered: now,
                    also_answered: None,
                },
            ))
        })
        .await
        .unwrap();
        assert_eq!(clients, vec![1]);
        assert_eq!(measured.failed, vec!["worker 0 fails".to_owned()]);
        assert_eq!(measured.latency.len(), 99);
    }
}
