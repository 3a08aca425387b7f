//! Questions this node asked another node, waiting for the answer: by request id, with the node asked.
//!
//! An answer completes its question ([`PendingAnswers::take`]); a node that leaves the cluster fails its
//! questions at once (`Hub::node_lost`). A node that stays but never answers (it is stuck, or dropped
//! the question) must not make this one keep its questions forever: a question is given up after
//! [`COMMAND_TIMEOUT`] — the asker's own wait — and completed UNAVAILABLE ("did not answer in time").
//! The table is swept for those as questions are added, at most once per [`SWEEP_EVERY`], so it holds
//! at most the questions of the last `COMMAND_TIMEOUT + SWEEP_EVERY`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use showcall_protocol::commands::COMMAND_TIMEOUT;
use showcall_protocol::error::CommandError;
use showcall_protocol::keys::NodeId;
use showcall_protocol::sync::lock;
// tokio's clock, so the expiry runs on virtual time in tests (paused) as timers do.
use tokio::time::Instant;

/// Completes a question with the answer's serialized `Result<T, CommandError>`.
pub(crate) type Answered = Box<dyn FnOnce(serde_json::Value) + Send>;

/// How often the table is swept for questions given up.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct Question {
    node: NodeId,
    asked: Instant,
    answered: Answered,
}

/// See the module docs.
pub(crate) struct PendingAnswers {
    questions: Mutex<HashMap<u64, Question>>,
    swept: Mutex<Instant>,
}

impl Default for PendingAnswers {
    fn default() -> Self {
        Self {
            questions: Mutex::default(),
            swept: Mutex::new(Instant::now()),
        }
    }
}

impl PendingAnswers {
    /// Waits for `node`'s answer to question `id`.
    pub(crate) fn insert(&self, id: u64, node: &NodeId, answered: Answered) {
        let question = Question {
            node: node.clone(),
            asked: Instant::now(),
            answered,
        };
        lock(&self.questions).insert(id, question);
        self.sweep();
    }

    /// The question `id`, answered now (or given up by its asker); `None` when it is not waiting.
    pub(crate) fn take(&self, id: u64) -> Option<Answered> {
        lock(&self.questions).remove(&id).map(|q| q.answered)
    }

    /// Every question `node` was asked.
    pub(crate) fn take_asked_of(&self, node: &NodeId) -> Vec<Answered> {
        let mut questions = lock(&self.questions);
        let ids: Vec<u64> = questions
            .iter()
            .filter(|(_, q)| &q.node == node)
            .map(|(id, _)| *id)
            .collect();
        ids.iter()
            .filter_map(|id| questions.remove(id).map(|q| q.answered))
            .collect()
    }

    /// How many questions wait for an answer now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.questions).len()
    }

    /// Gives up the questions asked longer than [`COMMAND_TIMEOUT`] ago (at most once per
    /// [`SWEEP_EVERY`]).
    fn sweep(&self) {
        let now = Instant::now();
        {
            let mut swept = lock(&self.swept);
            if now.duration_since(*swept) < SWEEP_EVERY {
                return;
            }
            *swept = now;
        }
        let given_up: Vec<Question> = {
            let mut questions = lock(&self.questions);
            let ids: Vec<u64> = questions
                .iter()
                .filter(|(_, q)| now.duration_since(q.asked) >= COMMAND_TIMEOUT)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| questions.remove(id)).collect()
        };
        for question in given_up {
            let node = &question.node;
            let failed: Result<(), CommandError> = Err(CommandError::Unavailable(format!(
                "node {node} did not answer in time"
            )));
            (question.answered)(
                serde_json::to_value(&failed).expect("an error is plain serde data"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn noted(into: &Arc<Mutex<Vec<serde_json::Value>>>) -> Answered {
        let into = into.clone();
        Box::new(move |value| lock(&into).push(value))
    }

    #[tokio::test(start_paused = true)]
    async fn a_question_never_answered_is_given_up_after_the_command_timeout() {
        let table = PendingAnswers::default();
        let completed = Arc::new(Mutex::new(Vec::new()));
        let b = NodeId("b".into());
        table.insert(1, &b, noted(&completed));
        tokio::time::sleep(COMMAND_TIMEOUT).await;
        // The next question sweeps the first away, answered as its asker would have been.
        table.insert(2, &b, noted(&completed));
        assert_eq!(table.len(), 1, "only the fresh question waits");
        let given_up = lock(&completed).clone();
        assert_eq!(given_up.len(), 1);
        assert!(
            given_up[0].to_string().contains("did not answer in time"),
            "{given_up:?}"
        );
        assert!(table.take(2).is_some(), "the fresh one is still answered");
    }

    #[tokio::test(start_paused = true)]
    async fn answered_questions_and_a_lost_nodes_questions_leave_the_table() {
        let table = PendingAnswers::default();
        let completed = Arc::new(Mutex::new(Vec::new()));
        let (b, c) = (NodeId("b".into()), NodeId("c".into()));
        table.insert(1, &b, noted(&completed));
        table.insert(2, &c, noted(&completed));
        table.insert(3, &c, noted(&completed));
        assert!(table.take(1).is_some());
        assert!(table.take(1).is_none(), "answered once");
        assert_eq!(table.take_asked_of(&c).len(), 2);
        assert_eq!(table.len(), 0);
    }
}
