//! One query from receipt to answer, shared by the UDP and TCP front ends: parse, decide on the
//! first question, reject or forward, learn, and emit the flow record.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use crate::config::{DnsProxyConfig, RejectCode};
use crate::flow::{DnsFlowRecord, Transport, Verdict};
use crate::learner::{FqdnLearner, LearnedAnswer};
use crate::mux::UdpMux;
use crate::policy::{CompiledPolicy, Decision};
use crate::refresh::LearnFilter;
use crate::server::DnsProxyStats;
use crate::upstream::Upstream;
use crate::wire::{self, rcode, Parsed, Query};

/// Everything a query handler needs, shared by all tasks.
pub struct Shared {
    /// Runtime settings.
    pub config: DnsProxyConfig,
    /// The current compiled policy.
    pub policy: watch::Receiver<Arc<CompiledPolicy>>,
    /// The agent's learner.
    pub learner: Arc<dyn FqdnLearner>,
    /// Flow records out.
    pub flows: mpsc::Sender<DnsFlowRecord>,
    /// Counters.
    pub stats: Arc<DnsProxyStats>,
    /// Long-lived upstream UDP sockets, shared by all UDP queries.
    pub mux: Arc<UdpMux>,
    /// Recent learner calls, to skip the ones that would change nothing.
    pub refresh: LearnFilter,
}

/// Where a query came from and went to.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    /// Client.
    pub src: SocketAddr,
    /// Original destination (resolver).
    pub resolver: SocketAddr,
    /// Client transport.
    pub transport: Transport,
}

/// What became of a learner call.
enum Learned {
    /// The agent already has everything in the answer.
    Skipped,
    /// Applied, after this long.
    Done(Duration),
    /// Not finished within `learn_timeout`; released anyway.
    TimedOut(Duration),
    /// The learner failed: SERVFAIL.
    Failed(Duration),
}

/// Fields of the flow record decided while handling.
struct Outcome {
    reply: Option<Vec<u8>>,
    endpoint: Option<String>,
    qname: String,
    qtype: String,
    verdict: Verdict,
    rcode: Option<u16>,
    learn_latency: Option<Duration>,
    release_latency: Option<Duration>,
}

impl Outcome {
    fn error(reply: Option<Vec<u8>>, code: Option<u16>) -> Self {
        Outcome {
            reply,
            endpoint: None,
            qname: String::new(),
            qtype: String::new(),
            verdict: Verdict::Error,
            rcode: code,
            learn_latency: None,
            release_latency: None,
        }
    }
}

impl Shared {
    /// Handles one client message; returns the answer to send, if any.
    pub async fn handle(
        &self,
        packet: &[u8],
        addrs: Addrs,
        upstream: &mut Upstream,
    ) -> Option<Vec<u8>> {
        let time = SystemTime::now();
        let start = Instant::now();
        let outcome = match wire::parse_query(packet) {
            Parsed::Drop => Outcome::error(None, None),
            Parsed::FormErr(reply) => Outcome::error(Some(reply), Some(rcode::FORMERR)),
            Parsed::Query(q) => self.handle_query(packet, &q, addrs, upstream).await,
        };
        self.finish(outcome, addrs, time, start)
    }

    /// Answers SERVFAIL without forwarding (too many queries in flight).
    pub fn overloaded(&self, packet: &[u8], addrs: Addrs) -> Option<Vec<u8>> {
        self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
        let (time, start) = (SystemTime::now(), Instant::now());
        let outcome = match wire::parse_query(packet) {
            Parsed::Query(q) => Outcome {
                qname: q.qname.clone(),
                qtype: q.qtype.clone(),
                ..Outcome::error(Some(q.error_answer(rcode::SERVFAIL)), Some(rcode::SERVFAIL))
            },
            _ => Outcome::error(None, None),
        };
        self.finish(outcome, addrs, time, start)
    }

    async fn handle_query(
        &self,
        packet: &[u8],
        q: &Query,
        addrs: Addrs,
        upstream: &mut Upstream,
    ) -> Outcome {
        // Clone the Arc so a policy update mid-query never blocks the compiler.
        let policy = self.policy.borrow().clone();
        let base = Outcome {
            reply: None,
            endpoint: None,
            qname: q.qname.clone(),
            qtype: q.qtype.clone(),
            verdict: Verdict::Error,
            rcode: None,
            learn_latency: None,
            release_latency: None,
        };
        let endpoint = match policy.decide(addrs.src.ip(), addrs.resolver, &q.qname) {
            Decision::Deny { endpoint, reason } => {
                tracing::debug!(src = %addrs.src, qname = %q.qname, reason, "DNS query denied");
                let code = match self.config.reject {
                    RejectCode::Refused => rcode::REFUSED,
                    RejectCode::NameError => rcode::NXDOMAIN,
                };
                return Outcome {
                    reply: Some(q.error_answer(code)),
                    endpoint,
                    verdict: Verdict::Refused,
                    rcode: Some(code),
                    ..base
                };
            }
            Decision::Allow { endpoint } => endpoint,
        };
        let base = Outcome {
            endpoint: Some(endpoint.clone()),
            ..base
        };
        let servfail = |base: Outcome| Outcome {
            reply: Some(q.error_answer(rcode::SERVFAIL)),
            rcode: Some(rcode::SERVFAIL),
            ..base
        };
        let answer = match upstream
            .exchange(
                packet,
                q,
                addrs.resolver,
                self.config.upstream_mark,
                self.config.upstream_timeout,
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(resolver = %addrs.resolver, qname = %q.qname, error = %e, "upstream failed");
                return servfail(base);
            }
        };
        let mut learn_latency = None;
        if answer.info.rcode == rcode::NOERROR && !answer.info.addrs.is_empty() {
            let update = LearnedAnswer {
                endpoint,
                source: addrs.src.ip(),
                qname: q.qname.clone(),
                names: answer.info.names,
                addrs: answer.info.addrs,
            };
            match self.learn(policy.revision(), update).await {
                Learned::Skipped => {}
                Learned::Done(latency) => learn_latency = Some(latency),
                Learned::TimedOut(latency) => learn_latency = Some(latency),
                Learned::Failed(latency) => {
                    return Outcome {
                        learn_latency: Some(latency),
                        release_latency: Some(answer.received.elapsed()),
                        ..servfail(base)
                    };
                }
            }
        }
        Outcome {
            reply: Some(answer.bytes),
            verdict: Verdict::Forwarded,
            rcode: Some(answer.info.rcode),
            learn_latency,
            release_latency: Some(answer.received.elapsed()),
            ..base
        }
    }

    /// Reports an answer to the learner unless the agent already has it (see [`LearnFilter`]),
    /// waiting at most `learn_timeout`.
    async fn learn(&self, revision: u64, update: LearnedAnswer) -> Learned {
        let started = Instant::now();
        if !self.refresh.needed(revision, &update, started) {
            self.stats.learn_skipped.fetch_add(1, Ordering::Relaxed);
            return Learned::Skipped;
        }
        let qname = update.qname.clone();
        // Kept for the filter only when the call succeeds; cloning is cheaper than the call.
        let copy = update.clone();
        let res = tokio::time::timeout(self.config.learn_timeout, self.learner.learn(update)).await;
        let latency = started.elapsed();
        match res {
            Ok(Ok(())) => {
                self.refresh.learned(revision, &copy, started);
                Learned::Done(latency)
            }
            Ok(Err(e)) => {
                self.stats.learn_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(qname = %qname, error = %e, "learner failed; answering SERVFAIL");
                Learned::Failed(latency)
            }
            Err(_) => {
                // Release anyway (as Cilium does), but count it: the first connection may race.
                self.stats.learn_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(qname = %qname, "learner timed out; releasing answer");
                Learned::TimedOut(latency)
            }
        }
    }

    fn finish(
        &self,
        o: Outcome,
        addrs: Addrs,
        time: SystemTime,
        start: Instant,
    ) -> Option<Vec<u8>> {
        let counter = match o.verdict {
            Verdict::Forwarded => &self.stats.forwarded,
            Verdict::Refused => &self.stats.refused,
            Verdict::Error => &self.stats.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let record = DnsFlowRecord {
            time,
            src: addrs.src,
            resolver: addrs.resolver,
            transport: addrs.transport,
            endpoint: o.endpoint,
            qname: o.qname,
            qtype: o.qtype,
            verdict: o.verdict,
            rcode: o.rcode,
            latency: start.elapsed(),
            learn_latency: o.learn_latency,
            release_latency: o.release_latency,
        };
        // Never let a slow consumer hold up DNS: drop the record and count it.
        if self.flows.try_send(record).is_err() {
            self.stats.flows_dropped.fetch_add(1, Ordering::Relaxed);
        }
        o.reply
    }
}
