//! Coalescing learner calls that are already running: while the agent learns an answer for
//! (source, endpoint, qname), another answer with the same CNAME chain and no address beyond it
//! waits for that call's result instead of making its own. A burst of identical queries for a
//! new name (a pod starting, a retry storm) then costs the agent one call, not one per query.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::learner::LearnedAnswer;

/// How a learner call ended, as seen by those waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Applied.
    Learned,
    /// The learner returned an error.
    Failed,
    /// Not finished within `learn_timeout` (or abandoned).
    TimedOut,
}

type Key = (IpAddr, String, String);

struct Running {
    id: u64,
    names: Vec<String>,
    addrs: Vec<IpAddr>,
    tx: watch::Sender<Option<Ended>>,
}

/// Learner calls in progress.
#[derive(Default)]
pub struct InFlight {
    calls: Mutex<(u64, HashMap<Key, Vec<Running>>)>,
}

/// What [`InFlight::join`] decided.
pub enum Join<'a> {
    /// Make the call; report how it ended through the guard.
    Lead(Lead<'a>),
    /// A running call covers this answer: wait for it.
    Follow(watch::Receiver<Option<Ended>>),
}

/// The caller's duty to report; dropping it unreported tells followers [`Ended::TimedOut`].
pub struct Lead<'a> {
    owner: &'a InFlight,
    key: Key,
    id: u64,
}

impl InFlight {
    /// Leads a call for `update`, or follows a running one whose answer covers it.
    pub fn join(&self, update: &LearnedAnswer) -> Join<'_> {
        let key = (update.source, update.endpoint.clone(), update.qname.clone());
        let mut calls = self.lock();
        let running = calls.1.entry(key.clone()).or_default();
        let covering = running.iter().find(|r| {
            r.names == update.names && update.addrs.iter().all(|(ip, _)| r.addrs.contains(ip))
        });
        if let Some(r) = covering {
            return Join::Follow(r.tx.subscribe());
        }
        let (tx, _) = watch::channel(None);
        calls.0 += 1;
        let id = calls.0;
        calls.1.entry(key.clone()).or_default().push(Running {
            id,
            names: update.names.clone(),
            addrs: update.addrs.iter().map(|(ip, _)| *ip).collect(),
            tx,
        });
        Join::Lead(Lead {
            owner: self,
            key,
            id,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<Key, Vec<Running>>)> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Lead<'_> {
    /// Tells the followers how the call ended.
    pub fn finish(self, ended: Ended) {
        self.end(ended);
    }

    fn end(&self, ended: Ended) {
        let mut calls = self.owner.lock();
        let Some(running) = calls.1.get_mut(&self.key) else {
            return;
        };
        if let Some(i) = running.iter().position(|r| r.id == self.id) {
            let r = running.swap_remove(i);
            r.tx.send_replace(Some(ended));
        }
        if running.is_empty() {
            calls.1.remove(&self.key);
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        // No-op when finish() already removed the entry.
        self.end(Ended::TimedOut);
    }
}

#[cfg(test)]
#[path = "inflight_tests.rs"]
mod tests;
