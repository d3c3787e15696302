//! Skipping learner calls that would change nothing in the agent.
//!
//! The agent's learn (cache insert, map writes when something is new, cache file written) is
//! the slowest step of an allowed query, yet under load nearly every answer repeats one learned
//! a moment ago. An answer skips the learner when, for its (endpoint, qname):
//! - the learner succeeded for it less than `interval` ago under the same policy revision,
//! - with the same CNAME chain, and
//! - every address in the answer was in that call with an expiry at most `interval` earlier than
//!   this answer's (`now + ttl`).
//!
//! So a new address, a new name in the chain, a longer TTL, a policy change (endpoints may have
//! been removed with their learned names) or `interval` passing always reaches the agent. The
//! agent's expiries (`now + max(ttl, min_ttl)`) lag by at most `interval`: a name in use is
//! refreshed at least once per `interval`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::learner::LearnedAnswer;

/// Most (endpoint, name) pairs remembered; past it the memory starts over (more calls, no harm).
const MAX_ENTRIES: usize = 65_536;

struct Seen {
    at: Instant,
    names: Vec<String>,
    /// Address and `at + ttl`.
    expiries: Vec<(IpAddr, Instant)>,
}

#[derive(Default)]
struct State {
    revision: u64,
    entries: usize,
    /// endpoint → qname → last successful learn.
    seen: HashMap<String, HashMap<String, Seen>>,
}

/// Remembers recent successful learner calls (see the module doc for the rule).
pub struct LearnFilter {
    interval: Duration,
    state: Mutex<State>,
}

impl LearnFilter {
    /// A filter that lets a repeat through at least once per `interval` (zero: never skips).
    pub fn new(interval: Duration) -> Self {
        LearnFilter {
            interval,
            state: Mutex::default(),
        }
    }

    /// True when `update` must go to the learner; false when the agent would change nothing.
    pub fn needed(&self, revision: u64, update: &LearnedAnswer, now: Instant) -> bool {
        if self.interval.is_zero() {
            return true;
        }
        let mut state = self.lock();
        if state.revision != revision {
            return true;
        }
        let Some(seen) = state
            .seen
            .get_mut(&update.endpoint)
            .and_then(|names| names.get_mut(&update.qname))
        else {
            return true;
        };
        if now.saturating_duration_since(seen.at) >= self.interval || seen.names != update.names {
            return true;
        }
        let covered = |ip: &IpAddr, ttl: u32| {
            let wanted = now + Duration::from_secs(u64::from(ttl));
            seen.expiries
                .iter()
                .any(|(known, expiry)| known == ip && *expiry + self.interval >= wanted)
        };
        !update.addrs.iter().all(|(ip, ttl)| covered(ip, *ttl))
    }

    /// Records that the learner applied `update` (called at `now`, under `revision`).
    pub fn learned(&self, revision: u64, update: &LearnedAnswer, now: Instant) {
        if self.interval.is_zero() {
            return;
        }
        let mut state = self.lock();
        if state.revision != revision || state.entries >= MAX_ENTRIES {
            state.seen.clear();
            state.entries = 0;
            state.revision = revision;
        }
        let seen = Seen {
            at: now,
            names: update.names.clone(),
            expiries: update
                .addrs
                .iter()
                .map(|(ip, ttl)| (*ip, now + Duration::from_secs(u64::from(*ttl))))
                .collect(),
        };
        let names = state.seen.entry(update.endpoint.clone()).or_default();
        let added = names.insert(update.qname.clone(), seen).is_none();
        if added {
            state.entries += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[path = "refresh_tests.rs"]
mod tests;
