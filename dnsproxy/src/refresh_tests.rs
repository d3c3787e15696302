//! When an answer must wait for the learner, may skip it, or refreshes in the background.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::snapshot::{DnsSnapshot, EndpointDns};

const POD: &str = "10.0.1.5";
const SECOND: Duration = Duration::from_secs(1);

fn policy(revision: u64, endpoint: &str) -> CompiledPolicy {
    CompiledPolicy::compile(&DnsSnapshot {
        revision,
        ipcache: vec![],
        endpoints: vec![EndpointDns {
            name: endpoint.into(),
            ips: vec![POD.parse().expect("ip")],
            identity: 256,
            rules: vec![],
        }],
    })
}

fn update(addrs: &[(&str, u32)]) -> LearnedAnswer {
    LearnedAnswer {
        endpoint: "default/pod".into(),
        source: POD.parse().expect("ip"),
        qname: "api.github.com.".into(),
        names: vec!["api.github.com.".into()],
        addrs: addrs
            .iter()
            .map(|(ip, ttl)| (ip.parse::<IpAddr>().expect("ip"), *ttl))
            .collect(),
    }
}

#[test]
fn repeats_skip_new_facts_block() {
    let f = LearnFilter::new(SECOND);
    let p = policy(1, "default/pod");
    let t0 = Instant::now();
    let u = update(&[("10.99.0.10", 300)]);
    assert_eq!(f.check(&p, &u, t0), Need::Block, "first answer");
    f.learned(&u, t0);
    let t = t0 + Duration::from_millis(100);
    assert_eq!(f.check(&p, &u, t), Need::Skip, "same answer a moment later");
    assert_eq!(
        f.check(&p, &update(&[("10.99.0.10", 250)]), t),
        Need::Skip,
        "a shorter TTL changes nothing"
    );
    assert_eq!(
        f.check(&p, &update(&[("10.99.0.10", 300), ("10.99.0.11", 300)]), t),
        Need::Block,
        "a new address"
    );
    let mut chain = u.clone();
    chain.names.push("target.github.com.".into());
    assert_eq!(f.check(&p, &chain, t), Need::Block, "another CNAME chain");
    let mut other = u.clone();
    other.qname = "www.github.com.".into();
    other.names = vec!["www.github.com.".into()];
    assert_eq!(f.check(&p, &other, t), Need::Block, "another name");
}

#[test]
fn refresh_runs_once_per_interval_in_the_background() {
    let f = LearnFilter::new(SECOND);
    let p = policy(1, "default/pod");
    let t0 = Instant::now();
    let u = update(&[("10.99.0.10", 300)]);
    f.learned(&u, t0);
    let later = t0 + SECOND;
    assert_eq!(f.check(&p, &u, later), Need::Refresh, "interval passed");
    assert_eq!(
        f.check(&p, &u, later),
        Need::Skip,
        "one refresh at a time per name"
    );
    f.failed(&u);
    assert_eq!(
        f.check(&p, &u, later),
        Need::Refresh,
        "a failed refresh is retried"
    );
    f.learned(&u, later);
    assert_eq!(f.check(&p, &u, later), Need::Skip, "refreshed");
    let t = later + Duration::from_millis(10);
    assert_eq!(
        f.check(&p, &update(&[("10.99.0.10", 600)]), t),
        Need::Refresh,
        "a TTL moving the expiry by more than the interval"
    );
}

#[test]
fn nearly_expired_address_blocks() {
    let f = LearnFilter::new(SECOND);
    let p = policy(1, "default/pod");
    let t0 = Instant::now();
    let u = update(&[("10.99.0.10", 2)]);
    f.learned(&u, t0);
    assert_eq!(
        f.check(&p, &u, t0 + Duration::from_millis(500)),
        Need::Skip,
        "1.5 s left"
    );
    assert_eq!(
        f.check(&p, &u, t0 + Duration::from_millis(1500)),
        Need::Block,
        "under a second left: the agent may drop it"
    );
    let long = LearnFilter::new(Duration::from_secs(60));
    long.learned(&u, t0);
    assert_eq!(
        long.check(&p, &u, t0 + Duration::from_millis(500)),
        Need::Skip,
        "a long interval does not make short TTLs block"
    );
}

#[test]
fn endpoint_change_forgets_and_zero_interval_never_skips() {
    let f = LearnFilter::new(SECOND);
    let t0 = Instant::now();
    let u = update(&[("10.99.0.10", 300)]);
    f.learned(&u, t0);
    assert_eq!(f.check(&policy(1, "default/pod"), &u, t0), Need::Skip);
    assert_eq!(
        f.check(&policy(2, "default/pod"), &u, t0),
        Need::Skip,
        "a new revision with the same endpoint at that address keeps it"
    );
    assert_eq!(
        f.check(&policy(3, "default/other"), &u, t0),
        Need::Block,
        "the address now belongs to another endpoint: forgotten"
    );
    assert_eq!(
        f.check(&policy(4, "default/pod"), &u, t0),
        Need::Block,
        "and stays forgotten"
    );

    let never = LearnFilter::new(Duration::ZERO);
    never.learned(&u, t0);
    assert_eq!(
        never.check(&policy(1, "default/pod"), &u, t0),
        Need::Block,
        "learn_refresh 0 calls the learner for every answer"
    );
}
