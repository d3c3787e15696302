//! Runs the DNS proxy with a one-endpoint policy, for `bench/dns.sh`. Meant to be started with
//! `ip netns exec <node> ...` where TPROXY already steers port 53 to `--port`.
//!
//! Usage: `dnsproxy_bench <port> <pod-ip> <resolver-cidr> <pattern> <seconds>`; exits after
//! `<seconds>` and prints the proxy's counters.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use palisade_dnsproxy::{
    BoundDnsProxy, DnsPeer, DnsPortRule, DnsProxyConfig, DnsSnapshot, EndpointDns, FqdnLearner,
    LearnError, LearnedAnswer,
};
use palisade_policy::fqdn::FqdnSelector;
use tokio::sync::{mpsc, watch};

/// Accepts every update at once: the bench measures the proxy, not an agent.
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

fn arg(i: usize) -> String {
    std::env::args().nth(i).unwrap_or_else(|| {
        panic!("usage: dnsproxy_bench <port> <pod-ip> <resolver-cidr> <pattern> <seconds>")
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
    let (flow_tx, mut flow_rx) = mpsc::channel(65_536);
    tokio::spawn(async move { while flow_rx.recv().await.is_some() {} });
    let bound = BoundDnsProxy::bind(config).expect("bind");
    let stats = bound.stats();
    println!("listening on {port}");
    bound
        .serve(
            snap_rx,
            Arc::new(InstantLearner),
            flow_tx,
            tokio::time::sleep(Duration::from_secs(seconds)),
        )
        .await
        .expect("serve");
    println!(
        "queries={} forwarded={} refused={} errors={} overloaded={}",
        stats.queries.load(Ordering::Relaxed),
        stats.forwarded.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
        stats.overloaded.load(Ordering::Relaxed),
    );
}
