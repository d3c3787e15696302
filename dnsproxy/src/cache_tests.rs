//! Unit tests of the FQDN cache model: TTLs, expiry, eviction, listing and persistence.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use palisade_policy::fqdn::FqdnSelector;

use super::*;

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

#[test]
fn ttl_raised_to_min_and_expiry() {
    let mut c = FqdnCache::new(Duration::from_secs(60));
    c.insert(
        "pod",
        &names(&["API.github.com"]),
        &[(ip("10.0.0.1"), 5), (ip("10.0.0.2"), 120)],
        t(0),
    );
    let e = c.entries();
    assert_eq!(e.len(), 2, "two rows (different expiry): {e:?}");
    assert_eq!(
        (e[0].name.as_str(), e[0].ttl, e[0].expiry),
        ("api.github.com.", 60, t(60))
    );
    assert_eq!((e[1].ttl, e[1].expiry), (120, t(120)));
    assert!(c.expired(t(59)).is_empty(), "nothing expires early");
    assert_eq!(
        c.expired(t(60)),
        vec![("pod".into(), "api.github.com.".into(), ip("10.0.0.1"))]
    );
    assert_eq!(c.expired(t(200)).len(), 1);
    assert!(c.entries().is_empty(), "empty after all expired");
}

#[test]
fn later_expiry_wins() {
    let mut c = FqdnCache::new(Duration::ZERO);
    c.insert("pod", &names(&["a.com"]), &[(ip("1.1.1.1"), 100)], t(0));
    c.insert("pod", &names(&["a.com"]), &[(ip("1.1.1.1"), 10)], t(5));
    assert_eq!(
        c.entries()[0].expiry,
        t(100),
        "a shorter TTL later does not shorten"
    );
    c.insert("pod", &names(&["a.com"]), &[(ip("1.1.1.1"), 300)], t(10));
    assert_eq!(c.entries()[0].expiry, t(310));
}

#[test]
fn chain_names_all_get_the_addresses() {
    let mut c = FqdnCache::new(Duration::ZERO);
    c.insert(
        "pod",
        &names(&["www.a.com.", "edge.cdn.net."]),
        &[(ip("192.0.2.7"), 30)],
        t(0),
    );
    let rows: Vec<_> = c.entries().into_iter().map(|e| (e.name, e.ips)).collect();
    assert_eq!(
        rows,
        vec![
            ("edge.cdn.net.".to_string(), vec![ip("192.0.2.7")]),
            ("www.a.com.".to_string(), vec![ip("192.0.2.7")])
        ]
    );
    let m = FqdnSelector::pattern("*.cdn.net")
        .compile()
        .expect("pattern");
    assert_eq!(
        c.ips_matching(&m).into_iter().collect::<Vec<_>>(),
        vec![ip("192.0.2.7")]
    );
}

#[test]
fn oldest_evicted_past_limit() {
    let mut c = FqdnCache::with_limit(Duration::ZERO, 3);
    for (i, s) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
        c.insert("pod", &names(&["a.com"]), &[(ip(s), 100)], t(i as u64));
    }
    // Refresh .1 so .2 becomes the least recently seen.
    c.insert("pod", &names(&["a.com"]), &[(ip("10.0.0.1"), 100)], t(10));
    let evicted = c.insert("pod", &names(&["a.com"]), &[(ip("10.0.0.4"), 100)], t(11));
    assert_eq!(evicted, vec![("a.com.".to_string(), ip("10.0.0.2"))]);
    let all: Vec<IpAddr> = c.entries().into_iter().flat_map(|e| e.ips).collect();
    assert_eq!(all.len(), 3, "limit kept: {all:?}");
    assert!(!all.contains(&ip("10.0.0.2")));
}

#[test]
fn endpoints_are_separate() {
    let mut c = FqdnCache::new(Duration::ZERO);
    c.insert("a", &names(&["x.com"]), &[(ip("1.0.0.1"), 10)], t(0));
    c.insert("b", &names(&["x.com"]), &[(ip("1.0.0.2"), 10)], t(0));
    assert_eq!(
        c.remove_endpoint("a"),
        vec![("x.com.".to_string(), ip("1.0.0.1"))]
    );
    let rest = c.entries();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].endpoint, "b");
}

#[test]
fn save_load_roundtrip_atomic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fqdn-cache.json");
    let mut c = FqdnCache::new(Duration::from_secs(30));
    c.insert(
        "pod",
        &names(&["api.github.com"]),
        &[(ip("10.99.0.10"), 5), (ip("::1"), 50)],
        t(0),
    );
    c.save(&path).expect("save");
    c.save(&path).expect("save over an existing file");
    let loaded = FqdnCache::load(&path).expect("load");
    assert_eq!(loaded, c, "roundtrip");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(leftovers.len(), 1, "no temp file left behind");
    std::fs::write(&path, b"{\"bogus\": 1}").expect("write");
    assert!(
        matches!(FqdnCache::load(&path), Err(CacheError::Json { .. })),
        "bad file rejected"
    );
    assert!(matches!(
        FqdnCache::load(&dir.path().join("missing")),
        Err(CacheError::Io { .. })
    ));
}
