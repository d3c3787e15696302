//! Calling the agent's learner: blocking (the answer waits, bounded by `learn_timeout`) or in
//! the background (a refresh of addresses already in the maps; see [`crate::refresh`]).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::handler::Shared;
use crate::inflight::{Ended, Join};
use crate::learner::LearnedAnswer;

/// What became of a blocking learner call.
pub enum Learned {
    /// Applied, after this long.
    Done(Duration),
    /// Not finished within `learn_timeout`; released anyway.
    TimedOut(Duration),
    /// The learner failed: SERVFAIL.
    Failed(Duration),
}

impl Shared {
    /// Calls the learner (or joins a running call covering `update`) and waits at most
    /// `learn_timeout`.
    pub(crate) async fn learn_blocking(&self, update: LearnedAnswer) -> Learned {
        let started = Instant::now();
        let limit = self.config.learn_timeout;
        let lead = match self.inflight.join(&update) {
            Join::Lead(lead) => lead,
            Join::Follow(mut rx) => {
                self.stats.learn_joined.fetch_add(1, Ordering::Relaxed);
                let ended = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
                let ended = match ended {
                    Ok(Ok(v)) => v.unwrap_or(Ended::TimedOut),
                    _ => Ended::TimedOut,
                };
                return self.ended(&update.qname, ended, started.elapsed());
            }
        };
        // Kept for the filter only when the call succeeds; cloning is cheaper than the call.
        let copy = update.clone();
        let res = tokio::time::timeout(limit, self.learner.learn(update)).await;
        let ended = match res {
            Ok(Ok(())) => {
                self.refresh.learned(&copy, started);
                Ended::Learned
            }
            Ok(Err(e)) => {
                tracing::warn!(qname = %copy.qname, error = %e, "learner failed; answering SERVFAIL");
                Ended::Failed
            }
            Err(_) => Ended::TimedOut,
        };
        lead.finish(ended);
        self.ended(&copy.qname, ended, started.elapsed())
    }

    /// Counts and logs how a call (made or joined) ended for one answer.
    fn ended(&self, qname: &str, ended: Ended, latency: Duration) -> Learned {
        match ended {
            Ended::Learned => Learned::Done(latency),
            Ended::Failed => {
                self.stats.learn_errors.fetch_add(1, Ordering::Relaxed);
                Learned::Failed(latency)
            }
            Ended::TimedOut => {
                // Release anyway (as Cilium does), but count it: the first connection may race.
                self.stats.learn_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(qname = %qname, "learner timed out; releasing answer");
                Learned::TimedOut(latency)
            }
        }
    }

    /// Extends the agent's expiries for addresses it already has, without holding the answer.
    pub(crate) fn refresh_in_background(&self, update: LearnedAnswer) {
        let (learner, filter) = (self.learner.clone(), self.refresh.clone());
        let (limit, stats) = (self.config.learn_timeout, self.stats.clone());
        stats.learn_refreshes.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let started = Instant::now();
            match tokio::time::timeout(limit, learner.learn(update.clone())).await {
                Ok(Ok(())) => filter.learned(&update, started),
                _ => {
                    stats.learn_errors.fetch_add(1, Ordering::Relaxed);
                    filter.failed(&update);
                }
            }
        });
    }
}
