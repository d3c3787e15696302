//! Runs the DNS proxy with a one-endpoint policy, for `bench/dns.sh`. Meant to be started with
//! `ip netns exec <node> ...` where TPROXY already steers port 53 to `--port`.
//!
//! Usage: `dnsproxy_bench <port> <pod-ip> <resolver-cidr> <pattern> <seconds> <state-dir>`; exits
//! after `<seconds>` (or on SIGTERM) and prints the proxy's counters and the answer → release latencies.
//!
//! The learner does what the agent's does, minus the eBPF map writes (those need the datapath):
//! see `agent_learner.rs`. `DNS_BENCH_LEARNER=instant` swaps in one that returns at once.

mod agent_learner;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use palisade_dnsproxy::{
    BoundDnsProxy, DnsFlowRecord, DnsPeer, DnsPortRule, DnsProxyConfig, DnsSnapshot, EndpointDns,
    FqdnLearner, LearnError, LearnedAnswer,
};
use palisade_policy::fqdn::FqdnSelector;
use tokio::sync::{mpsc, watch};

/// The allocator of the `palisade` binary, so the bench measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Accepts every update at once (`DNS_BENCH_LEARNER=instant`): the proxy's own cost alone.
struct InstantLearner;

impl FqdnLearner for InstantLearner {
    fn learn(
        &self,
        _update: LearnedAnswer,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), LearnError>> + Send + '_>>
    {
        Box::pin(async { Ok(()) })
    }
}

/// Completes after `limit` or on SIGTERM, whichever comes first.
async fn stop_after(limit: Duration) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::time::sleep(limit) => {}
        _ = term.recv() => {}
    }
}

/// User + system CPU seconds of this process, from `/proc/self/stat` (100 ticks per second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after_comm
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of the file are the 12th and 13th after the command name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

fn percentiles(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e3;
    format!("p50={:.3}ms p99={:.3}ms n={}", at(0.5), at(0.99), v.len())
}

fn arg(i: usize) -> String {
    std::env::args().nth(i).unwrap_or_else(|| {
        panic!("usage: dnsproxy_bench <port> <pod-ip> <resolver-cidr> <pattern> <seconds> <dir>")
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let port: u16 = arg(1).parse().expect("port");
    let seconds: u64 = arg(5).parse().expect("seconds");
    let snap = DnsSnapshot {
        revision: 1,
        ipcache: vec![(arg(3).parse().expect("resolver cidr"), 300)],
        endpoints: vec![EndpointDns {
            name: "bench/pod".into(),
            ips: vec![arg(2).parse().expect("pod ip")],
            identity: 256,
            rules: vec![DnsPortRule {
                port: 53,
                peers: vec![DnsPeer {
                    identities: Some(vec![300]),
                    patterns: Some(vec![FqdnSelector::pattern(&arg(4))]),
                }],
            }],
        }],
    };
    let config = DnsProxyConfig {
        listen_port: port,
        ..DnsProxyConfig::default()
    };
    let (_snap_tx, snap_rx) = watch::channel(Arc::new(snap));
    let (flow_tx, mut flow_rx) = mpsc::channel::<DnsFlowRecord>(65_536);
    let collector = tokio::spawn(async move {
        let (mut release, mut waited, mut learn) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(r) = flow_rx.recv().await {
            release.extend(r.release_latency);
            if r.learn_latency.is_some() {
                waited.extend(r.release_latency);
            }
            learn.extend(r.learn_latency);
        }
        (release, waited, learn)
    });
    let agent_like = match std::env::var("DNS_BENCH_LEARNER").as_deref() {
        Ok("instant") => None,
        _ => Some(agent_learner::AgentLikeLearner::new(
            &agent_learner::default_topology(),
            &arg(4),
            &PathBuf::from(arg(6)),
        )),
    };
    let learner: Arc<dyn FqdnLearner> = match &agent_like {
        Some(l) => l.clone(),
        None => Arc::new(InstantLearner),
    };
    let bound = BoundDnsProxy::bind(config).expect("bind");
    let stats = bound.stats();
    println!("listening on {port}");
    bound
        .serve(
            snap_rx,
            learner,
            flow_tx,
            stop_after(Duration::from_secs(seconds)),
        )
        .await
        .expect("serve");
    let (release, waited, learn) = collector.await.expect("collector");
    let forwarded = stats.forwarded.load(Ordering::Relaxed).max(1);
    println!(
        "proxy cpu: {:.1} us per forwarded query (user+system, whole process)",
        cpu_seconds() * 1e6 / forwarded as f64
    );
    if let Some(l) = &agent_like {
        println!("{}", l.report(learn.len()));
    }
    println!("waited {}", percentiles(waited.clone()));
    println!(
        "answer->release: all answers {}; answers that waited for the learner {}; \
         learner calls {}",
        percentiles(release),
        percentiles(waited),
        percentiles(learn)
    );
    println!(
        "queries={} forwarded={} refused={} errors={} overloaded={} learn_skipped={} \
         learn_refreshes={} learn_joined={} learn_timeouts={} upstream_mismatched={}",
        stats.queries.load(Ordering::Relaxed),
        stats.forwarded.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
        stats.overloaded.load(Ordering::Relaxed),
        stats.learn_skipped.load(Ordering::Relaxed),
        stats.learn_refreshes.load(Ordering::Relaxed),
        stats.learn_joined.load(Ordering::Relaxed),
        stats.learn_timeouts.load(Ordering::Relaxed),
        stats.upstream_mismatched.load(Ordering::Relaxed),
    );
}
