//! A real in-test `FqdnLearner`: it records every call and takes a fixed time, like an agent
//! writing maps. This is the trait's contract, not a stand-in for a runnable component.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use palisade_dnsproxy::{FqdnLearner, LearnError, LearnedAnswer};

/// One learner call with when it started and finished.
#[derive(Debug, Clone)]
pub struct Call {
    /// What the proxy reported.
    pub update: LearnedAnswer,
    /// When `learn` was entered.
    pub started: Instant,
    /// When it returned.
    pub finished: Instant,
}

/// Records calls; each takes `delay`. Names starting with `fail.` are rejected and names
/// starting with `slow.` take ten times `delay` (to exercise the proxy's error paths).
pub struct RecordingLearner {
    delay: Duration,
    calls: Mutex<Vec<Call>>,
}

impl RecordingLearner {
    /// A learner whose every call takes `delay`.
    pub fn new(delay: Duration) -> Self {
        RecordingLearner {
            delay,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("learner lock").clone()
    }
}

impl FqdnLearner for RecordingLearner {
    fn learn(
        &self,
        update: LearnedAnswer,
    ) -> Pin<Box<dyn Future<Output = Result<(), LearnError>> + Send + '_>> {
        Box::pin(async move {
            let started = Instant::now();
            let slow = update.qname.starts_with("slow.");
            tokio::time::sleep(if slow { self.delay * 10 } else { self.delay }).await;
            if update.qname.starts_with("fail.") {
                return Err(LearnError::Capacity("policy map full".into()));
            }
            self.calls.lock().expect("learner lock").push(Call {
                update,
                started,
                finished: Instant::now(),
            });
            Ok(())
        })
    }
}
