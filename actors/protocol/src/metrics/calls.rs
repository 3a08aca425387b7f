//! Call metrics derived from the business events (`Hub::emit` (`showcall-runtime`)): the one place where
//! every call's progress is already reported, on the node that runs the call's actor. So in a cluster the
//! call gauges are per node (sum them in Prometheus) and a call is counted by the node owning its actor,
//! not by its parties' nodes.
//!
//! [`CallProgress`] keeps each running call's state and creation time (pure; the facade calls are in
//! [`on_event`]). A call is counted from its `CallCreated` until its `CallEnded` (which comes before its
//! actor leaves the hub), so a scrape between the two never shows a call twice or in the wrong state. A
//! call taken over from a dead node never had `CallCreated` here: the hub marks it connected when it
//! restores it ([`call_restored`]; only connected calls are taken over) and it adds no latency sample.
//!
//! Latencies are measured on the monotonic clock when each event is reported (not from the events'
//! millisecond timestamps: ringing on one node takes well under a millisecond).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use showcall_machines::CallId;

use super::{CALL_RINGING_SECONDS, CALL_SETUP_SECONDS, CALLS_ENDED_TOTAL, end_reason};
use crate::events::EventKind;

/// The state of a running call, as the `state` label of `CALLS` shows it (the caller's view).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallPhase {
    /// Created; the callee's client is not ringing yet.
    Calling,
    /// The callee's client rings.
    Ringing,
    /// Accepted; media is not flowing both ways yet.
    Connecting,
    Connected,
}

impl CallPhase {
    pub const ALL: [CallPhase; 4] = [
        CallPhase::Calling,
        CallPhase::Ringing,
        CallPhase::Connecting,
        CallPhase::Connected,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CallPhase::Calling => "calling",
            CallPhase::Ringing => "ringing",
            CallPhase::Connecting => "connecting",
            CallPhase::Connected => "connected",
        }
    }
}

/// What one business event means for the call metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The callee's client rang this long after the call was created.
    Ringing(Duration),
    /// The call connected this long after it was created.
    Setup(Duration),
    /// A call ended, for this reason.
    Ended(&'static str),
}

#[derive(Clone, Copy, Debug)]
struct Tracked {
    /// `None` once ended (until its actor is gone from the hub).
    phase: Option<CallPhase>,
    /// `None` for a call restored from its record: its setup happened on another node.
    created_at: Option<Instant>,
}

/// Every running call's phase and creation time, fed with business events (see the module docs).
#[derive(Debug, Default)]
pub struct CallProgress {
    calls: HashMap<CallId, Tracked>,
}

impl CallProgress {
    /// Takes one event (stamped `at`) into account; says what to record.
    pub fn observe(&mut self, kind: &EventKind, at: Instant) -> Option<Observation> {
        let since = |t: &Tracked| {
            t.created_at
                .map(|created| at.saturating_duration_since(created))
        };
        match kind {
            EventKind::CallCreated { call, .. } => {
                self.calls.insert(
                    call.clone(),
                    Tracked {
                        phase: Some(CallPhase::Calling),
                        created_at: Some(at),
                    },
                );
                None
            }
            EventKind::CallRinging { call } => {
                let t = self.calls.get_mut(call)?;
                t.phase = Some(CallPhase::Ringing);
                since(t).map(Observation::Ringing)
            }
            EventKind::CallAccepted { call } => {
                self.calls.get_mut(call)?.phase = Some(CallPhase::Connecting);
                None
            }
            EventKind::CallConnected { call } => {
                let t = self.calls.get_mut(call)?;
                t.phase = Some(CallPhase::Connected);
                since(t).map(Observation::Setup)
            }
            EventKind::CallEnded { record } => {
                if let Some(t) = self.calls.get_mut(&record.id) {
                    t.phase = None;
                }
                Some(Observation::Ended(end_reason(&record.cause)))
            }
            _ => None,
        }
    }

    /// A connected call restored from its record on this node (no latency samples: it was set up
    /// elsewhere). A call already known here keeps its state.
    pub fn restored(&mut self, call: &CallId) {
        self.calls.entry(call.clone()).or_insert(Tracked {
            phase: Some(CallPhase::Connected),
            created_at: None,
        });
    }

    /// Drops a call whose actor left the hub (ended, or stopped without ending, e.g. evicted).
    pub fn forget(&mut self, call: &CallId) {
        self.calls.remove(call);
    }

    /// The phase of a running call; `None` for a call not created (or restored) here, or ended.
    pub fn phase(&self, call: &CallId) -> Option<CallPhase> {
        self.calls.get(call).and_then(|t| t.phase)
    }
}

/// The process's calls. Call ids are unique across nodes, so in-process nodes can share it; each node
/// counts only the calls whose actor it runs (`Hub::calls_by_phase` in `showcall-runtime`).
static PROGRESS: LazyLock<Mutex<CallProgress>> = LazyLock::new(Mutex::default);

fn progress() -> std::sync::MutexGuard<'static, CallProgress> {
    // The map stays consistent even if a holder panicked: every update is a single insert or remove.
    PROGRESS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records what a business event means for the call metrics (called by `Hub::emit` (`showcall-runtime`)).
pub fn on_event(kind: &EventKind) {
    let Some(observation) = progress().observe(kind, Instant::now()) else {
        return;
    };
    match observation {
        Observation::Ringing(took) => {
            metrics::histogram!(CALL_RINGING_SECONDS).record(took.as_secs_f64())
        }
        Observation::Setup(took) => {
            metrics::histogram!(CALL_SETUP_SECONDS).record(took.as_secs_f64())
        }
        Observation::Ended(reason) => {
            metrics::counter!(CALLS_ENDED_TOTAL, "reason" => reason).increment(1)
        }
    }
}

/// Forgets a call whose actor left the hub (called by the hub).
pub fn call_forgotten(call: &CallId) {
    progress().forget(call);
}

/// Counts a call taken over from its record as connected (called by the hub before it starts it).
pub fn call_restored(call: &CallId) {
    progress().restored(call);
}

/// The phase `call` is in, as the call metrics saw it (`None` for a call they do not know).
pub fn progress_phase(call: &CallId) -> Option<CallPhase> {
    progress().phase(call)
}

#[cfg(test)]
mod tests {
    use showcall_machines::call::EndCause;
    use showcall_machines::{CallRecord, CallType, ChannelName, UserId};

    use super::*;

    /// `ms` milliseconds after a fixed start.
    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    fn created(call: &str) -> EventKind {
        EventKind::CallCreated {
            call: CallId::from(call),
            caller: UserId::from("viewer"),
            callee: UserId::from("host"),
            call_type: CallType::Video,
            channel: ChannelName::from("call-1"),
        }
    }

    fn ended(call: &str, cause: EndCause) -> EventKind {
        EventKind::CallEnded {
            record: CallRecord {
                id: CallId::from(call),
                channel: ChannelName::from("call-1"),
                caller: UserId::from("viewer"),
                callee: UserId::from("host"),
                call_type: CallType::Video,
                created_at: 0,
                accepted_at: None,
                connected_at: None,
                ended_at: 0,
                connected_ms: 0,
                cause,
            },
        }
    }

    #[test]
    fn a_call_walks_through_the_phases_and_reports_its_latencies() {
        let mut p = CallProgress::default();
        let t0 = Instant::now();
        let id = CallId::from("c1");
        assert_eq!(p.phase(&id), None, "not created yet: not counted");
        assert_eq!(p.observe(&created("c1"), at(t0, 1_000)), None);
        assert_eq!(p.phase(&id), Some(CallPhase::Calling));
        let rang = p.observe(&EventKind::CallRinging { call: id.clone() }, at(t0, 1_007));
        assert_eq!(rang, Some(Observation::Ringing(Duration::from_millis(7))));
        assert_eq!(p.phase(&id), Some(CallPhase::Ringing));
        assert_eq!(
            p.observe(&EventKind::CallAccepted { call: id.clone() }, at(t0, 3_000)),
            None
        );
        assert_eq!(p.phase(&id), Some(CallPhase::Connecting));
        let connected = p.observe(
            &EventKind::CallConnected { call: id.clone() },
            at(t0, 3_500),
        );
        assert_eq!(
            connected,
            Some(Observation::Setup(Duration::from_millis(2_500)))
        );
        assert_eq!(p.phase(&id), Some(CallPhase::Connected));
        let hangup = EndCause::Hangup {
            by: UserId::from("viewer"),
            reason: String::new(),
        };
        assert_eq!(
            p.observe(&ended("c1", hangup), at(t0, 9_000)),
            Some(Observation::Ended("hangup"))
        );
        assert_eq!(
            p.phase(&id),
            None,
            "ended: no longer counted, even while its actor is still in the hub"
        );
        p.forget(&id);
        assert!(p.calls.is_empty(), "gone from the hub: no longer tracked");
    }

    #[test]
    fn a_call_taken_over_from_another_node_counts_as_connected_without_latencies() {
        let mut p = CallProgress::default();
        let t0 = Instant::now();
        let id = CallId::from("restored");
        p.restored(&id);
        assert_eq!(p.phase(&id), Some(CallPhase::Connected));
        assert_eq!(
            p.observe(&EventKind::CallConnected { call: id.clone() }, at(t0, 5)),
            None,
            "no creation time here: no setup sample"
        );
        assert_eq!(
            p.observe(&ended("restored", EndCause::NodeLost), at(t0, 9)),
            Some(Observation::Ended("node_lost")),
            "its end still counts"
        );
    }

    #[test]
    fn an_event_reported_out_of_order_gives_zero_not_a_panic() {
        let mut p = CallProgress::default();
        let t0 = Instant::now();
        p.observe(&created("c2"), at(t0, 2_000));
        let rang = p.observe(
            &EventKind::CallRinging {
                call: CallId::from("c2"),
            },
            at(t0, 1_990),
        );
        assert_eq!(rang, Some(Observation::Ringing(Duration::ZERO)));
    }

    #[test]
    fn forgetting_a_call_that_stopped_without_ending_drops_it() {
        let mut p = CallProgress::default();
        let t0 = Instant::now();
        p.observe(&created("c3"), at(t0, 0));
        p.forget(&CallId::from("c3"));
        assert!(p.calls.is_empty());
    }
}
