//! The HTTP/1.1 upstream of a client connection, seen from a real upstream server: one upstream
//! connection per client connection and mark, reused across requests, reopened after the
//! upstream closes it, and a separate one when a policy change switches the mark. Needs root.

// Shared with `transparent.rs`; each test binary uses a different part of the harness.
#[allow(dead_code)]
mod transparent {
    pub mod lab;
    pub mod netns;
    pub mod raw;
}

use palisade_httpmatch::HttpRuleSpec;
use palisade_proxy::{EndpointL7, PeerL7, PolicySnapshot, PortL7, ProxyConfig};
use std::net::{IpAddr, SocketAddr};
use transparent::lab::Lab;
use transparent::netns::{PROD, SERVER};
use transparent::raw::{read_response, request, send};

const PROD_ID: u32 = 1001;
const SERVICE_ID: u32 = 2000;

fn get_public() -> Vec<HttpRuleSpec> {
    serde_json::from_str(r#"[{"method":"GET","path":"/public"}]"#).expect("rules parse")
}

fn port80(peer: u32) -> Vec<PortL7> {
    vec![PortL7 {
        port: 80,
        end_port: 0,
        peers: vec![PeerL7 {
            tls: None,
            identities: Some(vec![peer]),
            http: Some(get_public()),
        }],
    }]
}

/// The service's ingress rule (mark 0xa00), plus the prod client's egress rule (0xb00) when
/// `egress` is set.
fn snapshot(revision: u64, egress: bool) -> PolicySnapshot {
    let mut endpoints = vec![EndpointL7 {
        name: "service".into(),
        ips: vec![IpAddr::V4(SERVER)],
        identity: SERVICE_ID,
        ingress: port80(PROD_ID),
        egress: vec![],
    }];
    if egress {
        endpoints.push(EndpointL7 {
            name: "client-prod".into(),
            ips: vec![IpAddr::V4(PROD)],
            identity: PROD_ID,
            ingress: vec![],
            egress: port80(SERVICE_ID),
        });
    }
    PolicySnapshot {
        revision,
        ipcache: [(PROD, PROD_ID), (SERVER, SERVICE_ID)]
            .into_iter()
            .map(|(ip, id)| (ipnet::IpNet::from(IpAddr::V4(ip)), id))
            .collect(),
        endpoints,
    }
}

/// Sends one request on `conn` and returns its status.
fn status(conn: &mut std::net::TcpStream, path: &str, extra: &str) -> u16 {
    send(conn, &request("GET", path, extra));
    read_response(conn).status()
}

/// Upstream source addresses of the requests the upstream saw, in order.
fn peers(lab: &Lab) -> Vec<SocketAddr> {
    lab.seen().iter().map(|s| s.peer).collect()
}

#[test]
fn one_upstream_connection_per_client_connection_reused_across_requests() {
    let lab = Lab::start(ProxyConfig::default(), snapshot(1, false));
    let mut first = lab.ns.connect(PROD);
    for _ in 0..3 {
        assert_eq!(status(&mut first, "/public", ""), 200, "allowed");
    }
    assert_eq!(status(&mut first, "/private", ""), 403, "denied");
    assert_eq!(
        status(&mut first, "/public", ""),
        200,
        "allowed after a deny"
    );
    let mut second = lab.ns.connect(PROD);
    assert_eq!(status(&mut second, "/public", ""), 200, "second client");
    assert_eq!(status(&mut first, "/public", ""), 200, "first client again");

    let p = peers(&lab);
    assert_eq!(
        p.len(),
        6,
        "every allowed request reached the upstream: {p:?}"
    );
    assert!(
        p[..4].iter().all(|a| *a == p[0]) && p[5] == p[0],
        "the first client's requests share one upstream connection: {p:?}"
    );
    assert_ne!(
        p[4], p[0],
        "another client connection gets its own upstream connection: {p:?}"
    );
}

#[test]
fn upstream_close_is_followed_by_a_fresh_connection() {
    let lab = Lab::start(ProxyConfig::default(), snapshot(1, false));
    let mut conn = lab.ns.connect(PROD);
    assert_eq!(status(&mut conn, "/public", ""), 200, "before the close");
    send(&mut conn, &request("GET", "/public", "X-Close: 1\r\n"));
    let closing = read_response(&mut conn);
    assert_eq!(closing.status(), 200, "the closing answer is relayed");
    assert_eq!(
        closing.header("connection"),
        None,
        "the upstream's Connection: close is hop-by-hop and stays upstream"
    );
    // The client connection survives the upstream's close; the proxy reconnects.
    for _ in 0..2 {
        assert_eq!(status(&mut conn, "/public", ""), 200, "after the close");
    }
    let p = peers(&lab);
    assert_eq!(p.len(), 4, "{p:?}");
    assert_eq!(
        p[0], p[1],
        "same connection until the upstream closed it: {p:?}"
    );
    assert_ne!(
        p[2], p[1],
        "a new upstream connection after the close: {p:?}"
    );
    assert_eq!(p[3], p[2], "and that one is reused: {p:?}");
}

#[test]
fn a_mark_change_uses_a_separate_upstream_connection() {
    let lab = Lab::start(ProxyConfig::default(), snapshot(1, false));
    let mut conn = lab.ns.connect(PROD);
    assert_eq!(status(&mut conn, "/public", ""), 200, "ingress rule only");
    let (a0, b0) = (
        lab.ns.marked_packets("0xa00"),
        lab.ns.marked_packets("0xb00"),
    );
    assert!(
        a0 > 0 && b0 == 0,
        "ingress-decided traffic is 0xa00 only ({a0}, {b0})"
    );

    // Same client connection; an egress rule now applies too, so the mark becomes 0xb00.
    lab.update(snapshot(2, true));
    assert_eq!(status(&mut conn, "/public", ""), 200, "both rules allow");
    let (a1, b1) = (
        lab.ns.marked_packets("0xa00"),
        lab.ns.marked_packets("0xb00"),
    );
    assert!(
        b1 > 0,
        "the egress-decided request left with 0xb00 ({a1}, {b1})"
    );

    // Back to ingress only: the 0xa00 connection is still there and is reused.
    lab.update(snapshot(3, false));
    assert_eq!(
        status(&mut conn, "/public", ""),
        200,
        "ingress rule only again"
    );
    assert_eq!(
        lab.ns.marked_packets("0xb00"),
        b1,
        "nothing more with 0xb00 once the egress rule is gone"
    );
    let p = peers(&lab);
    assert_eq!(p.len(), 3, "{p:?}");
    assert_ne!(
        p[1], p[0],
        "0xb00 traffic never rides the 0xa00 connection: {p:?}"
    );
    assert_eq!(p[2], p[0], "each mark keeps its own connection: {p:?}");
}
