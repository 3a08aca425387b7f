//! Inline runs: an actor's run started while a task handles a message runs **on that task**, after
//! the message's own work, instead of as a task of its own.
//!
//! A ring crosses several actors (the caller's, the call's, the callee's), each of which used to start
//! the next one's run as a new task. Every such hop is a task switch, often a wake-up of the other
//! core — on the ring's critical path it was most of what a setup cost beyond moving its frames (see
//! BENCHMARKS `ringing`). Inside [`within`], [`start`] queues a run in the task's own little executor
//! instead of spawning it: the gateway's connection task that read a `call` runs the caller's step,
//! which starts the call, whose first step rings the callee, whose step pushes `calling` to the
//! callee's connection — one task from the caller's frame to the callee's outbox, as a bare relay.
//!
//! A run's step that hands a connection frames (a callee's `calling`, pushed by its user actor) is
//! followed by a yield when more runs are waiting: the task goes to the back of its worker's queue, so
//! the connection's task, just woken, writes the frames before this task goes on with the ring's other
//! steps (the caller's events, the call's bookkeeping). Without it the woken connection waited for this
//! task's whole turn, the caller's own answer write included: at a hundred rings a second on one node,
//! the callee's frames were ready ≈ 100 µs after the caller's `call` was read but written ≈ 270 µs
//! after it; with the yield, ≈ 130 µs (BENCHMARKS `ringing`, 2026-12-07).
//!
//! What does not change: each actor still handles its messages one at a time and in order (its registry
//! slot says whether a run has it; a run drains the slot's queue), so where a run executes is invisible
//! to the actors. Runs queued in one scope are polled concurrently, as tasks would be: one that waits
//! (a node-link answer, the business server) does not hold up the others. When the scope's own future
//! is done, runs still waiting move to a task of their own and go on there (also when the scope is
//! dropped before it is done), so nothing started is lost. A run that panics is caught here and logged;
//! it does not take the task it ran on (a client's connection) with it — the run's own guard cleans up
//! what it held, as it would after a panic in a task of its own.
//!
//! Outside a scope (a timer firing, a restored actor), [`start`] spawns a task, which is a scope too.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};

/// A run: a future that drains one actor's queue.
pub type Run = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

tokio::task_local! {
    /// Runs started in the current scope and not yet taken by its executor.
    static STARTED: RefCell<Vec<Run>>;
}

/// Starts `run`: on the current task if it is inside [`within`], else as a task of its own.
pub fn start(run: impl Future<Output = ()> + Send + 'static) {
    let mut run = Some(Box::pin(run) as Run);
    let queued = STARTED.try_with(|started| {
        if let Some(run) = run.take() {
            started.borrow_mut().push(run);
        }
    });
    if queued.is_err()
        && let Some(run) = run
    {
        spawn(vec![run]);
    }
}

/// Runs `work` with a scope around it: the runs it starts (and the runs those start) run on this task.
/// Returns once `work` is done and no started run can make progress without waiting; runs still waiting
/// then go on as a task.
pub async fn within<F: Future>(work: F) -> F::Output {
    STARTED
        .scope(
            RefCell::new(Vec::new()),
            Scope {
                work: Box::pin(work),
                output: None,
                runs: FuturesUnordered::new(),
            },
        )
        .await
}

/// The runs left over, as a task (a scope of their own).
fn spawn(runs: Vec<Run>) {
    let mut set = FuturesUnordered::new();
    set.extend(runs.into_iter().map(caught));
    tokio::spawn(within(async move { while set.next().await.is_some() {} }));
}

/// A run whose panic is logged here instead of unwinding into the task it runs on.
fn caught(run: Run) -> Run {
    Box::pin(AssertUnwindSafe(run).catch_unwind().map(|outcome| {
        if outcome.is_err() {
            tracing::error!("an actor's run panicked");
        }
    }))
}

struct Scope<F: Future> {
    work: Pin<Box<F>>,
    output: Option<F::Output>,
    runs: FuturesUnordered<Run>,
}

impl<F: Future> Scope<F> {
    /// Moves the runs started since the last call into the executor; `true` if there were any.
    fn take_started(&mut self) -> bool {
        let started = STARTED.with(|started| std::mem::take(&mut *started.borrow_mut()));
        let any = !started.is_empty();
        self.runs.extend(started.into_iter().map(caught));
        any
    }
}

// Nothing in `Scope` is pinned structurally: `work` is boxed, the rest is moved freely.
impl<F: Future> Unpin for Scope<F> {}

impl<F: Future> Future for Scope<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        // A mark left by a push outside this scope is not this scope's to act on.
        showcall_protocol::inbox::take_handed_frames();
        loop {
            if this.output.is_none()
                && let Poll::Ready(output) = this.work.as_mut().poll(cx)
            {
                this.output = Some(output);
            }
            this.take_started();
            let more = match this.runs.poll_next_unpin(cx) {
                // A run finished: others may have been started or woken meanwhile.
                Poll::Ready(Some(())) => true,
                Poll::Ready(None) | Poll::Pending => this.take_started(),
            };
            if more {
                // A connection was handed frames and there is more to do here: let it write first.
                if showcall_protocol::inbox::take_handed_frames() {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                continue;
            }
            let Some(output) = this.output.take() else {
                return Poll::Pending;
            };
            let waiting: Vec<Run> = std::mem::take(&mut this.runs).into_iter().collect();
            if !waiting.is_empty() {
                spawn(waiting);
            }
            return Poll::Ready(output);
        }
    }
}

impl<F: Future> Drop for Scope<F> {
    fn drop(&mut self) {
        // Dropped before done (its task was cancelled): the runs it had go on elsewhere. Runs started
        // but not yet taken stay in the task-local, which is gone with the scope: take them too.
        let mut waiting: Vec<Run> = std::mem::take(&mut self.runs).into_iter().collect();
        if let Ok(started) = STARTED.try_with(|started| std::mem::take(&mut *started.borrow_mut()))
        {
            waiting.extend(started);
        }
        if !waiting.is_empty() && tokio::runtime::Handle::try_current().is_ok() {
            spawn(waiting);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use showcall_machines::user::CloseReason;
    use showcall_protocol::Outbound;
    use tokio::sync::oneshot;

    use super::*;

    fn log() -> Arc<Mutex<Vec<&'static str>>> {
        Arc::new(Mutex::new(Vec::new()))
    }

    #[tokio::test]
    async fn runs_started_in_a_scope_run_on_its_task_before_it_returns() {
        tokio::spawn(runs_started_in_a_scope_run_on_its_task())
            .await
            .unwrap();
    }

    async fn runs_started_in_a_scope_run_on_its_task() {
        let seen = log();
        let task = tokio::task::id();
        let (s1, s2) = (seen.clone(), seen.clone());
        within(async move {
            start(async move {
                assert_eq!(tokio::task::id(), task);
                s1.lock().unwrap().push("first");
                start(async move {
                    assert_eq!(tokio::task::id(), task);
                    s2.lock().unwrap().push("started by the first");
                });
            });
        })
        .await;
        assert_eq!(*seen.lock().unwrap(), ["first", "started by the first"]);
    }

    #[tokio::test]
    async fn the_scope_waits_for_its_work_while_its_runs_answer_it() {
        // The scope's work waits for an answer that a run it started gives: the run must be polled
        // while the work waits, or this never ends.
        let (tx, rx) = oneshot::channel();
        let answer = within(async move {
            start(async move {
                let _ = tx.send(42);
            });
            rx.await.unwrap()
        })
        .await;
        assert_eq!(answer, 42);
    }

    #[tokio::test]
    async fn a_run_still_waiting_when_the_work_is_done_goes_on_as_a_task() {
        tokio::spawn(a_run_still_waiting_goes_on_as_a_task())
            .await
            .unwrap();
    }

    async fn a_run_still_waiting_goes_on_as_a_task() {
        let (go, wait) = oneshot::channel::<()>();
        let (done, finished) = oneshot::channel();
        let task = tokio::task::id();
        within(async move {
            start(async move {
                wait.await.unwrap();
                let _ = done.send(tokio::task::id());
            });
        })
        .await;
        go.send(()).unwrap();
        assert_ne!(finished.await.unwrap(), task);
    }

    #[tokio::test]
    async fn a_run_that_panics_does_not_take_the_scope_with_it() {
        let seen = log();
        let s = seen.clone();
        within(async move {
            start(async { panic!("a run's bug") });
            start(async move { s.lock().unwrap().push("the next run") });
        })
        .await;
        assert_eq!(*seen.lock().unwrap(), ["the next run"]);
    }

    #[tokio::test]
    async fn a_connection_handed_frames_writes_before_the_scope_goes_on() {
        tokio::spawn(handed_frames_are_written_first())
            .await
            .unwrap();
    }

    async fn handed_frames_are_written_first() {
        let seen = log();
        let (inbox, mut receiver) = showcall_protocol::connection_inbox(4);
        let s = seen.clone();
        // The connection's task, queued on this (single-threaded) runtime before the scope's push.
        let connection = tokio::spawn(async move {
            receiver.recv().await.unwrap();
            s.lock().unwrap().push("the connection took its frame");
        });
        let s = seen.clone();
        within(async move {
            start(async move {
                let frame = Outbound::Close(CloseReason::LoggedOut);
                inbox.push(frame).unwrap();
                // The next step of the ring, which the connection's write should not wait for.
                start(async move { s.lock().unwrap().push("the scope went on") });
            });
        })
        .await;
        connection.await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            ["the connection took its frame", "the scope went on"]
        );
    }

    #[tokio::test]
    async fn outside_a_scope_a_run_is_a_task() {
        let (done, finished) = oneshot::channel();
        start(async move {
            let _ = done.send(());
        });
        finished.await.unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_scope_hands_its_runs_to_a_task() {
        let (go, wait) = oneshot::channel::<()>();
        let (done, finished) = oneshot::channel();
        let scope = within(async move {
            start(async move {
                wait.await.unwrap();
                let _ = done.send(());
            });
            std::future::pending::<()>().await
        });
        // Polled once (the run is started and waits), then dropped.
        let mut scope = Box::pin(scope);
        let pending =
            std::future::poll_fn(|cx| Poll::Ready(scope.as_mut().poll(cx).is_pending())).await;
        assert!(pending);
        drop(scope);
        go.send(()).unwrap();
        finished.await.unwrap();
    }
}
