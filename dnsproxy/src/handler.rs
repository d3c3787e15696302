//! One query from receipt to answer, shared by the UDP and TCP front ends, in steps that need no
//! task of their own: [`Shared::begin`] parses and decides on the first question (REFUSED /
//! FORMERR finished at once), [`Shared::answered`] decodes the upstream answer and either
//! releases it or hands it to the learner ([`Shared::release_after_learn`]); every end emits the
//! flow record. The UDP front end runs them from its socket loops; TCP awaits them in order.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::config::{DnsProxyConfig, RejectCode};
use crate::flow::{DnsFlowRecord, Transport, Verdict};
use crate::flow_out::FlowOut;
use crate::inflight::InFlight;
use crate::learner::{FqdnLearner, LearnedAnswer};
use crate::learning::Learned;
use crate::mux::UdpMux;
use crate::policy::{CompiledPolicy, Decision};
use crate::refresh::{AnswerRef, LearnFilter, Need};
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
    /// Flow records out (batched).
    pub flows: FlowOut,
    /// Counters.
    pub stats: Arc<DnsProxyStats>,
    /// Long-lived upstream UDP sockets, shared by all UDP queries.
    pub mux: Arc<UdpMux>,
    /// Recent learner calls: which answers must wait for the learner.
    pub refresh: Arc<LearnFilter>,
    /// Learner calls running now, joined by answers they cover.
    pub inflight: InFlight,
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

/// Fields of the flow record decided while handling.
struct Outcome {
    reply: Option<Vec<u8>>,
    endpoint: Option<String>,
    qname: String,
    qtype: Cow<'static, str>,
    verdict: Verdict,
    rcode: Option<u16>,
    learn_latency: Option<Duration>,
    /// When the upstream answer arrived, if one did.
    received: Option<Instant>,
}

impl Outcome {
    fn error(reply: Option<Vec<u8>>, code: Option<u16>) -> Self {
        Outcome {
            reply,
            endpoint: None,
            qname: String::new(),
            qtype: Cow::Borrowed(""),
            verdict: Verdict::Error,
            rcode: code,
            learn_latency: None,
            received: None,
        }
    }
}

/// When a query (or a batch of them) was read: wall time for the flow record, monotonic time
/// for its latency. The UDP front end reads the clock once per batch.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    /// Wall-clock time.
    pub time: SystemTime,
    /// Monotonic time.
    pub at: Instant,
}

impl Stamp {
    /// The current time.
    pub fn now() -> Self {
        Stamp {
            time: SystemTime::now(),
            at: Instant::now(),
        }
    }
}

/// A query the policy allows, on its way to the resolver.
pub struct Forward {
    /// The client's query.
    pub query: Query,
    /// Client and resolver.
    pub addrs: Addrs,
    policy: Arc<CompiledPolicy>,
    endpoint: String,
    time: SystemTime,
    start: Instant,
}

/// What [`Shared::begin`] decided.
pub enum Begin {
    /// Finished (refused, malformed): send this, if anything.
    Reply(Option<Vec<u8>>),
    /// Allowed: forward `query.raw()` to the resolver.
    Forward(Box<Forward>),
}

/// An answer waiting for the learner before release.
pub struct Learning {
    fwd: Box<Forward>,
    bytes: Vec<u8>,
    rcode: u16,
    update: LearnedAnswer,
    received: Instant,
}

/// What [`Shared::answered`] decided.
pub enum Release {
    /// Send this now.
    Now(Option<Vec<u8>>),
    /// Send what [`Shared::release_after_learn`] returns.
    AfterLearn(Box<Learning>),
}

impl Shared {
    /// Parses and decides on a query read at `read`; refusals and malformed queries are
    /// finished here.
    pub fn begin(&self, packet: &[u8], addrs: Addrs, read: Stamp) -> Begin {
        let Stamp { time, at: start } = read;
        let q = match wire::parse_query(packet) {
            Parsed::Query(q) => q,
            Parsed::Drop => {
                return Begin::Reply(self.finish(Outcome::error(None, None), addrs, time, start))
            }
            Parsed::FormErr(reply) => {
                let o = Outcome::error(Some(reply), Some(rcode::FORMERR));
                return Begin::Reply(self.finish(o, addrs, time, start));
            }
        };
        // Clone the Arc so a policy update mid-query never blocks the compiler.
        let policy = self.policy.borrow().clone();
        match policy.decide(addrs.src.ip(), addrs.resolver, &q.qname) {
            Decision::Deny { endpoint, reason } => {
                tracing::debug!(src = %addrs.src, qname = %q.qname, reason, "DNS query denied");
                let code = match self.config.reject {
                    RejectCode::Refused => rcode::REFUSED,
                    RejectCode::NameError => rcode::NXDOMAIN,
                };
                let o = Outcome {
                    reply: Some(q.error_answer(code)),
                    endpoint,
                    verdict: Verdict::Refused,
                    ..base(&q, Some(code))
                };
                Begin::Reply(self.finish(o, addrs, time, start))
            }
            Decision::Allow { endpoint } => Begin::Forward(Box::new(Forward {
                query: q,
                addrs,
                policy,
                endpoint,
                time,
                start,
            })),
        }
    }

    /// The resolver did not answer (or could not be reached): SERVFAIL.
    pub fn upstream_failed(&self, fwd: Box<Forward>, e: &io::Error) -> Option<Vec<u8>> {
        tracing::debug!(resolver = %fwd.addrs.resolver, qname = %fwd.query.qname, error = %e,
            "upstream failed");
        self.servfail(fwd, None, None)
    }

    /// Decodes a matched answer; releases it unless the maps may lack one of its addresses.
    pub fn answered(&self, fwd: Box<Forward>, bytes: Vec<u8>, received: Instant) -> Release {
        let Some(info) = wire::answer_of(&fwd.query.qname, &bytes) else {
            // A NOERROR answer whose records do not decode cannot be learned: not released.
            let e = io::Error::new(io::ErrorKind::InvalidData, "answer does not decode");
            return Release::Now(self.upstream_failed(fwd, &e));
        };
        if info.rcode == rcode::NOERROR && !info.addrs.is_empty() {
            let seen = AnswerRef {
                source: fwd.addrs.src.ip(),
                endpoint: &fwd.endpoint,
                qname: &fwd.query.qname,
                names: &info.names,
                addrs: &info.addrs,
            };
            // The answer's arrival is "now" closely enough for a margin of a second, and saves
            // reading the clock again per answer.
            let need = self.refresh.check(&fwd.policy, seen, received);
            if need != Need::Block {
                self.stats.learn_skipped.fetch_add(1, Ordering::Relaxed);
            }
            // Only an answer that calls the learner needs an update of its own.
            let update = || LearnedAnswer {
                endpoint: fwd.endpoint.clone(),
                source: fwd.addrs.src.ip(),
                qname: fwd.query.qname.clone(),
                names: info.names,
                addrs: info.addrs,
            };
            match need {
                Need::Block => {
                    let update = update();
                    return Release::AfterLearn(Box::new(Learning {
                        fwd,
                        bytes,
                        rcode: info.rcode,
                        update,
                        received,
                    }));
                }
                Need::Refresh => self.refresh_in_background(update()),
                Need::Skip => {}
            }
        }
        Release::Now(self.forwarded(fwd, bytes, info.rcode, None, received))
    }

    /// Waits for the learner (at most `learn_timeout`), then releases the answer (SERVFAIL if
    /// the learner failed).
    pub async fn release_after_learn(&self, l: Box<Learning>) -> Option<Vec<u8>> {
        let Learning {
            fwd,
            bytes,
            rcode,
            update,
            received,
        } = *l;
        match self.learn_blocking(update).await {
            Learned::Failed(latency) => self.servfail(fwd, Some(latency), Some(received)),
            Learned::Done(latency) | Learned::TimedOut(latency) => {
                self.forwarded(fwd, bytes, rcode, Some(latency), received)
            }
        }
    }

    /// Handles one client message start to end (the TCP front end); returns the answer to send.
    pub async fn handle(
        &self,
        packet: &[u8],
        addrs: Addrs,
        upstream: &mut Upstream,
    ) -> Option<Vec<u8>> {
        let fwd = match self.begin(packet, addrs, Stamp::now()) {
            Begin::Reply(r) => return r,
            Begin::Forward(f) => f,
        };
        let answer = upstream
            .exchange(
                &fwd.query,
                addrs.resolver,
                self.config.upstream_mark,
                self.config.upstream_timeout,
            )
            .await;
        match answer {
            Err(e) => self.upstream_failed(fwd, &e),
            Ok((bytes, received)) => match self.answered(fwd, bytes, received.into_std()) {
                Release::Now(r) => r,
                Release::AfterLearn(l) => self.release_after_learn(l).await,
            },
        }
    }

    /// Answers SERVFAIL without forwarding a query read at `read` (too many queries in flight).
    pub fn overloaded(&self, packet: &[u8], addrs: Addrs, read: Stamp) -> Option<Vec<u8>> {
        self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
        let Stamp { time, at: start } = read;
        let outcome = match wire::parse_query(packet) {
            Parsed::Query(q) => Outcome {
                reply: Some(q.error_answer(rcode::SERVFAIL)),
                ..base(&q, Some(rcode::SERVFAIL))
            },
            _ => Outcome::error(None, None),
        };
        self.finish(outcome, addrs, time, start)
    }

    /// Releases the resolver's answer.
    fn forwarded(
        &self,
        fwd: Box<Forward>,
        bytes: Vec<u8>,
        code: u16,
        learn_latency: Option<Duration>,
        received: Instant,
    ) -> Option<Vec<u8>> {
        let verdict = Verdict::Forwarded;
        self.release(fwd, bytes, verdict, code, learn_latency, Some(received))
    }

    /// Answers SERVFAIL in place of the resolver's answer.
    fn servfail(
        &self,
        fwd: Box<Forward>,
        learn_latency: Option<Duration>,
        received: Option<Instant>,
    ) -> Option<Vec<u8>> {
        let reply = fwd.query.error_answer(rcode::SERVFAIL);
        let (verdict, code) = (Verdict::Error, rcode::SERVFAIL);
        self.release(fwd, reply, verdict, code, learn_latency, received)
    }

    /// Sends `reply` for a forwarded query (whose answer arrived at `received`, if one did);
    /// the query's strings move into the flow record.
    fn release(
        &self,
        fwd: Box<Forward>,
        reply: Vec<u8>,
        verdict: Verdict,
        code: u16,
        learn_latency: Option<Duration>,
        received: Option<Instant>,
    ) -> Option<Vec<u8>> {
        let Forward {
            query,
            addrs,
            endpoint,
            time,
            start,
            ..
        } = *fwd;
        let o = Outcome {
            reply: Some(reply),
            endpoint: Some(endpoint),
            verdict,
            learn_latency,
            received,
            qname: query.qname,
            qtype: query.qtype,
            rcode: Some(code),
        };
        self.finish(o, addrs, time, start)
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
        // The one clock read of the query's end: total and release latency both end here.
        let now = Instant::now();
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
            latency: now.saturating_duration_since(start),
            learn_latency: o.learn_latency,
            release_latency: o.received.map(|r| now.saturating_duration_since(r)),
        };
        self.flows.push(record);
        o.reply
    }
}

/// An error outcome carrying the query's name and type.
fn base(q: &Query, code: Option<u16>) -> Outcome {
    Outcome {
        qname: q.qname.clone(),
        qtype: q.qtype.clone(),
        ..Outcome::error(None, code)
    }
}
