//! Scrapes `/metrics` over real TCP and parses the Prometheus text format.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use palisade_api::{Metrics, MetricsServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over a fresh TCP connection; returns (status line, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut raw))
        .await
        .expect("answer within 5s")
        .expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head and body");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// Sample lines `name{labels} value` → value, keyed by `name{labels}`; checks every sample
/// parses and every family has HELP and TYPE.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.push(rest.split_whitespace().next().unwrap().to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.insert(key.to_owned(), value);
    }
    for key in samples.keys() {
        let name = key.split('{').next().unwrap();
        assert!(
            typed.iter().any(|t| name.starts_with(t.as_str())),
            "sample {key} has no # TYPE"
        );
    }
    samples
}

#[tokio::test]
async fn scrape_over_tcp() {
    let metrics = Arc::new(Metrics::new().expect("metrics register"));
    metrics
        .drop_count
        .with_label_values(&["Policy denied", "ingress"])
        .inc_by(3);
    metrics.forward_count.with_label_values(&["egress"]).inc();
    metrics
        .http_requests
        .with_label_values(&["denied", "GET"])
        .inc();
    metrics.proxy_upstream_latency.observe(0.002);
    metrics
        .dns_queries
        .with_label_values(&["refused", "REFUSED"])
        .inc();
    metrics.dns_release_latency.observe(0.0004);
    metrics.dns_learn_timeouts.inc();
    metrics.fqdn_cache_ips.set(2);
    metrics.policy_resolution.observe(0.01);
    metrics.policy_revision.set(9);
    metrics.policy_import_errors.inc();
    metrics
        .bpf_map_entries
        .with_label_values(&["policy"])
        .set(12);
    metrics
        .bpf_map_capacity
        .with_label_values(&["policy"])
        .set(16384);

    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind");
    let addr = server.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(metrics.clone(), rx));

    let (status, body) = http_get(addr, "/metrics").await;
    assert!(status.contains(" 200 "), "status {status}");
    let s = parse(&body);
    let want = [
        (
            r#"palisade_drop_count_total{direction="ingress",reason="Policy denied"}"#,
            3.0,
        ),
        (r#"palisade_forward_count_total{direction="egress"}"#, 1.0),
        (
            r#"palisade_http_requests_total{method="GET",verdict="denied"}"#,
            1.0,
        ),
        ("palisade_proxy_upstream_latency_seconds_count", 1.0),
        (
            r#"palisade_dns_queries_total{rcode="REFUSED",verdict="refused"}"#,
            1.0,
        ),
        ("palisade_dns_release_latency_seconds_count", 1.0),
        ("palisade_dns_learn_timeouts_total", 1.0),
        ("palisade_fqdn_cache_ips", 2.0),
        ("palisade_policy_resolution_seconds_count", 1.0),
        ("palisade_policy_revision", 9.0),
        ("palisade_policy_import_errors_total", 1.0),
        (r#"palisade_bpf_map_entries{map="policy"}"#, 12.0),
        (r#"palisade_bpf_map_capacity{map="policy"}"#, 16384.0),
    ];
    for (key, value) in want {
        assert_eq!(s.get(key), Some(&value), "{key} in scrape:\n{body}");
    }
    let rss = s.get("palisade_agent_rss_bytes").copied().unwrap_or(0.0);
    assert!(rss > 1_000_000.0, "RSS must be read on scrape, got {rss}");
    let bucket = r#"palisade_dns_release_latency_seconds_bucket{le="0.0004"}"#;
    assert_eq!(
        s.get(bucket),
        Some(&1.0),
        "0.4 ms lands in the 0.4 ms bucket:\n{body}"
    );

    let (status, _) = http_get(addr, "/healthz").await;
    assert!(status.contains(" 200 "), "healthz status {status}");
    let (status, _) = http_get(addr, "/nope").await;
    assert!(status.contains(" 404 "), "unknown path status {status}");

    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stops on shutdown")
        .unwrap();
}
