//! A signaling connection's inbox: where its user actor (or, for a session whose actor lives on another
//! node, this node's relay of that node's pushes) puts what the client is to receive, and where the
//! connection's task takes it from to write to the socket — the connection's *outbox*, seen from the
//! client.
//!
//! **Bounded, and never waited on.** A push that finds the inbox full drops what it pushed and marks
//! the inbox *overflowed*; the connection's task sees that at once (even while it is stuck writing to
//! a socket the client stopped reading) and closes the connection as a slow consumer. So an actor
//! pushing a live room's events to thousands of sessions never stalls behind one client that stopped
//! reading, and the node never holds more than `capacity` events for it. Dropping events is safe only
//! because the connection is closed right after: the session goes into its grace period as on any lost
//! connection, and a client that logs in again resumes it (the snapshot carries the current call).
//!
//! Frames waiting in inboxes are counted in [`crate::metrics::SIGNALING_OUTBOX_FRAMES`].

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::commands::Outbound;

/// The receiving end of an answer or a sink is gone (the requester gave up, the connection closed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the receiver is gone")]
pub struct Gone;
use crate::metrics;

/// A new inbox holding at most `capacity` events (at least 1).
pub fn connection_inbox(capacity: usize) -> (ConnectionInbox, InboxReceiver) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    let overflow = Arc::new(Overflow::default());
    (
        ConnectionInbox {
            tx,
            overflow: overflow.clone(),
        },
        InboxReceiver {
            rx,
            overflow,
            capacity,
        },
    )
}

thread_local! {
    /// Set by a push that queued frames for a connection; read and cleared by [`take_handed_frames`].
    static HANDED_FRAMES: Cell<bool> = const { Cell::new(false) };
}

/// Whether a push on this thread queued frames for a connection since the last call; clears the mark.
///
/// A task running several actors' steps in a row (an inline scope, `showcall_actors::inline_runs`)
/// asks after each step: when a connection was just handed frames, the task yields, so that
/// connection's task writes them before the scope goes on with the other steps — a callee's
/// `calling` goes out ahead of the rest of the ring's work instead of after it.
pub fn take_handed_frames() -> bool {
    HANDED_FRAMES.with(|h| h.replace(false))
}

/// The pushing half, held by the user actor (and by the hub's relay of remote sessions).
#[derive(Clone, Debug)]
pub struct ConnectionInbox {
    tx: mpsc::Sender<Outbound>,
    overflow: Arc<Overflow>,
}

/// Set once by the push that found the inbox full; the connection's task waits on it.
#[derive(Debug, Default)]
struct Overflow {
    happened: AtomicBool,
    /// `notify_one` keeps a permit when nobody waits yet, so the mark is never missed.
    notify: Notify,
}

impl ConnectionInbox {
    /// Queues `outbound` for the client without waiting. `Err(Gone)` when the connection is gone, or
    /// when the inbox is full: then `outbound` is dropped and the connection is marked for closing (it
    /// will not deliver anything more).
    pub fn push(&self, outbound: Outbound) -> Result<(), Gone> {
        // Counted before it can be received, so the gauge never goes below zero.
        metrics::outbox_frames(1.0);
        match self.tx.try_send(outbound) {
            Ok(()) => {
                HANDED_FRAMES.with(|h| h.set(true));
                Ok(())
            }
            Err(e) => {
                metrics::outbox_frames(-1.0);
                if let mpsc::error::TrySendError::Full(_) = e
                    && !self.overflow.happened.swap(true, Ordering::AcqRel)
                {
                    self.overflow.notify.notify_one();
                }
                Err(Gone)
            }
        }
    }

    /// Whether both are handles on the same connection's inbox.
    pub fn same_inbox(&self, other: &ConnectionInbox) -> bool {
        self.tx.same_channel(&other.tx)
    }
}

/// The connection task's half.
#[derive(Debug)]
pub struct InboxReceiver {
    rx: mpsc::Receiver<Outbound>,
    overflow: Arc<Overflow>,
    capacity: usize,
}

impl InboxReceiver {
    /// The next event, in push order; `None` once every pushing handle is gone.
    pub async fn recv(&mut self) -> Option<Outbound> {
        let next = self.rx.recv().await;
        if next.is_some() {
            metrics::outbox_frames(-1.0);
        }
        next
    }

    /// The next event if one is waiting, without waiting for one: what the connection's task writes
    /// in the same batch as the frame it is writing (one socket write for a step's events).
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let next = self.rx.try_recv().ok();
        if next.is_some() {
            metrics::outbox_frames(-1.0);
        }
        next
    }

    /// What tells the connection's task that a push found the inbox full; a handle of its own, so the
    /// task can wait on it while it receives from (or writes what it received).
    pub fn overflow(&self) -> OverflowSignal {
        OverflowSignal(self.overflow.clone())
    }

    /// How many events the inbox holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// See [`InboxReceiver::overflow`].
#[derive(Clone, Debug)]
pub struct OverflowSignal(Arc<Overflow>);

impl OverflowSignal {
    /// Completes once a push found the inbox full (at once if one already did). Cancel-safe.
    pub async fn happened(&self) {
        loop {
            if self.0.happened.load(Ordering::Acquire) {
                return;
            }
            self.0.notify.notified().await;
        }
    }
}

impl Drop for InboxReceiver {
    fn drop(&mut self) {
        // What is left will never be written: take it out of the gauge.
        self.rx.close();
        while self.rx.try_recv().is_ok() {
            metrics::outbox_frames(-1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use showcall_machines::user::CloseReason;

    use super::*;

    fn event() -> Outbound {
        Outbound::Close(CloseReason::LoggedOut)
    }

    #[tokio::test]
    async fn a_push_to_a_full_inbox_is_refused_and_marks_it_overflowed() {
        let (inbox, mut receiver) = connection_inbox(2);
        assert_eq!(inbox.push(event()), Ok(()));
        assert_eq!(inbox.push(event()), Ok(()));
        assert_eq!(
            inbox.push(event()),
            Err(Gone),
            "the third push finds it full"
        );
        // The mark holds however often it is asked for, and whatever is still queued.
        receiver.overflow().happened().await;
        receiver.overflow().happened().await;
        assert!(receiver.recv().await.is_some());
    }

    #[tokio::test]
    async fn an_inbox_that_keeps_up_never_overflows() {
        let (inbox, mut receiver) = connection_inbox(1);
        for _ in 0..10 {
            assert_eq!(inbox.push(event()), Ok(()));
            assert!(receiver.recv().await.is_some());
        }
        assert!(!receiver.overflow.happened.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn what_waits_is_taken_without_waiting_in_push_order_and_nothing_more() {
        let (inbox, mut receiver) = connection_inbox(4);
        assert!(receiver.try_recv().is_none(), "nothing pushed yet");
        assert_eq!(inbox.push(Outbound::Close(CloseReason::LoggedOut)), Ok(()));
        assert_eq!(inbox.push(Outbound::Close(CloseReason::Replaced)), Ok(()));
        assert!(matches!(
            receiver.try_recv(),
            Some(Outbound::Close(CloseReason::LoggedOut))
        ));
        assert!(matches!(
            receiver.try_recv(),
            Some(Outbound::Close(CloseReason::Replaced))
        ));
        assert!(receiver.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_push_after_the_connection_ended_is_gone() {
        let (inbox, receiver) = connection_inbox(4);
        drop(receiver);
        assert_eq!(inbox.push(event()), Err(Gone));
    }
}
