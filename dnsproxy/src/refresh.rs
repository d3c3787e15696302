//! Deciding whether an allowed answer must wait for the learner.
//!
//! The agent's learn (a hop to its learn thread, cache insert, map writes when something is new)
//! is the slowest step of an allowed query, yet under load nearly every answer repeats one
//! learned a moment ago. Per (source IP, endpoint, qname) the filter remembers the last
//! successful learn and classifies each answer:
//! - [`Need::Block`]: something the maps may lack: first answer, another CNAME chain, a new
//!   address, or a known address whose learned expiry is less than `MARGIN` (1 s) away. The
//!   answer waits for the learner, as before.
//! - [`Need::Refresh`]: every address is in the maps for at least `MARGIN` more, but the last
//!   learn is `interval` old or the answer's TTL would move an expiry by more than `interval`.
//!   The answer is released at once and the learner is called in the background (one call per
//!   name at a time), so the agent's cache still sees every refresh, at most `interval` late.
//! - [`Need::Skip`]: the agent would change nothing worth a call.
//!
//! When the policy revision changes, entries of sources that are no longer that endpoint are
//! dropped (a deleted endpoint's learned names are removed by the agent).

use foldhash::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::learner::LearnedAnswer;
use crate::policy::CompiledPolicy;

/// A known address whose learned expiry is closer than this blocks: the agent may be about to
/// drop it (its expiry is at least the learned one: `max(ttl, min_ttl)`).
const MARGIN: Duration = Duration::from_secs(1);

/// Most names remembered; past it the memory starts over (more blocking calls, no harm).
const MAX_ENTRIES: usize = 65_536;

/// What to do with the learner for one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Call the learner and hold the answer until it returns.
    Block,
    /// Release the answer now; call the learner in the background.
    Refresh,
    /// Release the answer now; no call.
    Skip,
}

struct Seen {
    at: Instant,
    names: Vec<String>,
    /// Address and `at + ttl`.
    expiries: Vec<(IpAddr, Instant)>,
    /// A background refresh is running.
    refreshing: bool,
}

#[derive(Default)]
struct State {
    revision: u64,
    entries: usize,
    /// source → endpoint → qname → last successful learn (nested, so a lookup borrows its keys).
    seen: HashMap<IpAddr, HashMap<String, HashMap<String, Seen>>>,
}

/// An answer as [`LearnFilter::check`] sees it: borrowed, so classifying allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct AnswerRef<'a> {
    /// The endpoint's source address.
    pub source: IpAddr,
    /// Name of the endpoint that asked.
    pub endpoint: &'a str,
    /// The question's name, normalized.
    pub qname: &'a str,
    /// `qname` followed by the CNAME chain.
    pub names: &'a [String],
    /// Addresses of the chain with their TTLs.
    pub addrs: &'a [(IpAddr, u32)],
}

impl<'a> From<&'a LearnedAnswer> for AnswerRef<'a> {
    fn from(u: &'a LearnedAnswer) -> Self {
        AnswerRef {
            source: u.source,
            endpoint: &u.endpoint,
            qname: &u.qname,
            names: &u.names,
            addrs: &u.addrs,
        }
    }
}

/// Remembers recent successful learner calls (see the module doc for the rules).
pub struct LearnFilter {
    interval: Duration,
    state: Mutex<State>,
}

impl LearnFilter {
    /// A filter with refresh interval `interval` (zero: every answer blocks on the learner).
    pub fn new(interval: Duration) -> Self {
        LearnFilter {
            interval,
            state: Mutex::default(),
        }
    }

    /// Classifies `update` under `policy` at `now`; a [`Need::Refresh`] is marked as running
    /// until [`LearnFilter::learned`] or [`LearnFilter::failed`].
    pub fn check<'a>(
        &self,
        policy: &CompiledPolicy,
        update: impl Into<AnswerRef<'a>>,
        now: Instant,
    ) -> Need {
        if self.interval.is_zero() {
            return Need::Block;
        }
        let update = update.into();
        let mut state = self.lock();
        if state.revision != policy.revision() {
            state.revision = policy.revision();
            state.seen.retain(|ip, endpoints| {
                endpoints.retain(|ep, _| policy.endpoint_at(*ip) == Some(ep.as_str()));
                !endpoints.is_empty()
            });
            state.entries = state
                .seen
                .values()
                .flat_map(HashMap::values)
                .map(HashMap::len)
                .sum();
        }
        let Some(seen) = state
            .seen
            .get_mut(&update.source)
            .and_then(|endpoints| endpoints.get_mut(update.endpoint))
            .and_then(|names| names.get_mut(update.qname))
        else {
            return Need::Block;
        };
        if seen.names != update.names {
            return Need::Block;
        }
        let mut refresh = now.saturating_duration_since(seen.at) >= self.interval;
        for (ip, ttl) in update.addrs {
            let Some((_, known)) = seen.expiries.iter().find(|(k, _)| k == ip) else {
                return Need::Block;
            };
            if *known < now + MARGIN {
                return Need::Block; // the agent may drop it soon, or already has
            }
            refresh |= now + Duration::from_secs(u64::from(*ttl)) > *known + self.interval;
        }
        if refresh && !seen.refreshing {
            seen.refreshing = true;
            Need::Refresh
        } else {
            Need::Skip
        }
    }

    /// Records that the learner applied `update` (the call started at `now`).
    pub fn learned(&self, update: &LearnedAnswer, now: Instant) {
        if self.interval.is_zero() {
            return;
        }
        let mut state = self.lock();
        if state.entries >= MAX_ENTRIES {
            state.seen.clear();
            state.entries = 0;
        }
        let seen = Seen {
            at: now,
            names: update.names.clone(),
            expiries: update
                .addrs
                .iter()
                .map(|(ip, ttl)| (*ip, now + Duration::from_secs(u64::from(*ttl))))
                .collect(),
            refreshing: false,
        };
        let added = state
            .seen
            .entry(update.source)
            .or_default()
            .entry(update.endpoint.clone())
            .or_default()
            .insert(update.qname.clone(), seen)
            .is_none();
        if added {
            state.entries += 1;
        }
    }

    /// A background refresh of `update` failed or timed out: the next repeat tries again.
    pub fn failed(&self, update: &LearnedAnswer) {
        let mut state = self.lock();
        if let Some(seen) = state
            .seen
            .get_mut(&update.source)
            .and_then(|endpoints| endpoints.get_mut(&update.endpoint))
            .and_then(|names| names.get_mut(&update.qname))
        {
            seen.refreshing = false;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
#[path = "refresh_tests.rs"]
mod tests;
