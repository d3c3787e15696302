//! End-to-end tests of the transparent proxy: real namespaces, iptables TPROXY, a real upstream
//! server, real `curl` and raw sockets. Needs root (run as `cargo test -p palisade-proxy`).

mod transparent {
    pub mod lab;
    pub mod netns;
    pub mod raw;
}

use palisade_httpmatch::HttpRuleSpec;
use palisade_proxy::{EndpointL7, FlowVerdict, PeerL7, PolicySnapshot, PortL7, ProxyConfig};
use std::io::Read;
use std::net::IpAddr;
use transparent::lab::Lab;
use transparent::netns::{DEV, PROD, SERVER};
use transparent::raw::{read_response, request, send};

const PROD_ID: u32 = 1001;
const DEV_ID: u32 = 1002;
const SERVICE_ID: u32 = 2000;
const PAGE_PUBLIC: &str = "<html><body><h1>Hello from /public</h1></body></html>";

fn rules(json: &str) -> Vec<HttpRuleSpec> {
    serde_json::from_str(json).expect("rules parse")
}

fn ipcache() -> Vec<(ipnet::IpNet, u32)> {
    [(PROD, PROD_ID), (DEV, DEV_ID), (SERVER, SERVICE_ID)]
        .into_iter()
        .map(|(ip, id)| (ipnet::IpNet::from(IpAddr::V4(ip)), id))
        .collect()
}

/// The service endpoint with ingress rules on port 80.
fn service_ingress(revision: u64, peers: Vec<PeerL7>) -> PolicySnapshot {
    PolicySnapshot {
        revision,
        ipcache: ipcache(),
        endpoints: vec![EndpointL7 {
            name: "service".into(),
            ips: vec![IpAddr::V4(SERVER)],
            identity: SERVICE_ID,
            ingress: vec![PortL7 {
                port: 80,
                end_port: 0,
                peers,
            }],
            egress: vec![],
        }],
    }
}

/// S9: GET /public from env=prod.
fn s9(revision: u64) -> PolicySnapshot {
    service_ingress(
        revision,
        vec![PeerL7 {
            tls: None,
            identities: Some(vec![PROD_ID]),
            http: Some(rules(r#"[{"method":"GET","path":"/public"}]"#)),
        }],
    )
}

fn curl_status(lab: &Lab, args: &[&str]) -> (String, String) {
    let mut all = vec!["-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let out = lab.ns.curl(&all);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

/// Sends one raw request on `conn` and returns the response status.
fn ask(conn: &mut std::net::TcpStream, raw: &str) -> u16 {
    send(conn, raw);
    read_response(conn).status()
}

/// Polls `ok` every 10 ms for up to 5 s.
fn eventually(mut ok: impl FnMut() -> bool) -> bool {
    (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        ok()
    })
}

#[test]
fn s9_public_page_exact_403_and_keep_alive_after_deny() {
    let mut lab = Lab::start(ProxyConfig::default(), s9(1));
    let mut conn = lab.ns.connect(PROD);

    send(&mut conn, &request("GET", "/public", ""));
    let ok = read_response(&mut conn);
    assert_eq!(ok.status(), 200, "GET /public from prod: {ok:?}");
    assert_eq!(
        String::from_utf8_lossy(&ok.body),
        PAGE_PUBLIC,
        "the page comes from the upstream"
    );

    send(&mut conn, &request("GET", "/private", ""));
    let denied = read_response(&mut conn);
    assert!(
        denied.head.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "status line: {:?}",
        denied.head
    );
    assert_eq!(
        denied.header("content-type"),
        Some("text/plain"),
        "{denied:?}"
    );
    assert_eq!(denied.header("content-length"), Some("15"), "{denied:?}");
    assert_eq!(
        denied.body, b"Access denied\r\n",
        "cilium-envoy's deny body"
    );

    send(&mut conn, &request("GET", "/public", ""));
    assert_eq!(
        read_response(&mut conn).status(),
        200,
        "the connection stays usable after a deny"
    );

    let seen: Vec<String> = lab.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        seen,
        vec!["/public", "/public"],
        "the denied request never reached the upstream"
    );
    let upstream_peers: Vec<_> = lab.seen().iter().map(|s| s.peer).collect();
    assert_eq!(
        upstream_peers[0], upstream_peers[1],
        "both allowed requests of the keep-alive client rode one upstream connection"
    );
    assert!(
        lab.ns.marked_packets("0xa00") > 0,
        "ingress-decided upstream traffic carries mark 0xa00"
    );
    assert_eq!(
        lab.ns.marked_packets("0xb00"),
        0,
        "no egress rule decided, so no 0xb00"
    );

    let first = lab.next_flow();
    assert_eq!(
        (first.verdict, first.status),
        (FlowVerdict::Forwarded, 200),
        "{first:?}"
    );
    assert_eq!(
        (first.src_identity, first.dst_identity),
        (PROD_ID, SERVICE_ID),
        "{first:?}"
    );
    assert_eq!(
        first.dst.to_string(),
        "10.77.0.2:80",
        "original destination recorded: {first:?}"
    );
    let second = lab.next_flow();
    assert_eq!(
        (second.verdict, second.status, second.path.as_str()),
        (FlowVerdict::Denied, 403, "/private")
    );
}

#[test]
fn s10_path_anchors_methods_and_headers_with_curl() {
    let peers = vec![PeerL7 {
        tls: None,
        identities: None,
        http: Some(rules(
            r#"[{"method":"GET","path":"/path1$"},
                {"method":"PUT","path":"/path2$","headers":["X-My-Header: true"]}]"#,
        )),
    }];
    let lab = Lab::start(ProxyConfig::default(), service_ingress(1, peers));
    let url = |p: &str| format!("http://{SERVER}{p}");
    let cases: &[(&[&str], &str, &str)] = &[
        (&[], "/path1", "200"),
        (&[], "/path1x", "403"),
        (&["-X", "POST"], "/path1", "403"),
        (&["-X", "PUT", "-H", "X-My-Header: true"], "/path2", "200"),
        (&["-X", "PUT", "-H", "x-my-header: true"], "/path2", "200"),
        (&["-X", "PUT"], "/path2", "403"),
        (&["-X", "PUT", "-H", "X-My-Header: false"], "/path2", "403"),
        (&["-X", "GET", "-H", "X-My-Header: true"], "/path2", "403"),
    ];
    for (args, path, want) in cases {
        let mut all = args.to_vec();
        let u = url(path);
        all.push(&u);
        let (code, body) = curl_status(&lab, &all);
        assert_eq!(code, *want, "curl {args:?} {path}: body {body:?}");
        if *want == "403" {
            assert_eq!(body, "Access denied\r\n", "deny body for {args:?} {path}");
        }
    }
    let seen: Vec<(String, String)> = lab
        .seen()
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    let want = [("GET", "/path1"), ("PUT", "/path2"), ("PUT", "/path2")];
    assert_eq!(
        seen,
        want.map(|(m, p)| (m.to_string(), p.to_string())),
        "only allowed requests reached upstream"
    );
}

#[test]
fn path_normalization_before_matching() {
    let lab = Lab::start(ProxyConfig::default(), s9(1));
    let cases: &[(&str, &str)] = &[
        ("/public/../private", "403"),
        ("/public/%2e%2e/private", "403"),
        ("//public", "200"),
        ("/./public", "200"),
        ("/public%2F..%2Fprivate", "400"),
        ("/public%5c..%5cprivate", "400"),
    ];
    for (path, want) in cases {
        let u = format!("http://{SERVER}{path}");
        let (code, body) = curl_status(&lab, &["--path-as-is", &u]);
        assert_eq!(code, *want, "{path}: body {body:?}");
    }
    let seen: Vec<String> = lab.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        seen,
        vec!["/public", "/public"],
        "the upstream receives the normalized path"
    );
}

#[test]
fn policy_update_applies_to_next_request_on_open_connection() {
    let lab = Lab::start(ProxyConfig::default(), s9(1));
    let mut conn = lab.ns.connect(PROD);
    assert_eq!(
        ask(&mut conn, &request("GET", "/private", "")),
        403,
        "denied under revision 1"
    );

    let mut open = s9(2);
    open.endpoints[0].ingress[0].peers[0].http = Some(rules(r#"[{"method":"GET"}]"#));
    lab.update(open);
    assert_eq!(
        ask(&mut conn, &request("GET", "/private", "")),
        200,
        "allowed under revision 2, same connection"
    );

    let mut bad = s9(3);
    bad.endpoints[0].ingress[0].peers[0].http = Some(rules(r#"[{"path":"/a("}]"#));
    let applied = lab_applied_after_bad_update(&lab, bad);
    assert_eq!(
        applied, 2,
        "a snapshot with a bad regex never replaces the one in force"
    );
    assert_eq!(
        ask(&mut conn, &request("GET", "/private", "")),
        200,
        "revision 2 still enforced"
    );
}

/// Sends a snapshot that cannot compile, then a probe snapshot 4 equal to revision 2's rules;
/// returns what was applied just before the probe (must still be 2).
fn lab_applied_after_bad_update(lab: &Lab, bad: PolicySnapshot) -> u64 {
    lab.update_unchecked(bad);
    // Give the compiler a chance to (wrongly) apply it; a correct proxy stays at 2.
    std::thread::sleep(std::time::Duration::from_millis(200));
    lab.applied_now()
}

#[test]
fn pipelined_requests_answer_in_order() {
    let lab = Lab::start(ProxyConfig::default(), s9(1));
    let mut conn = lab.ns.connect(PROD);
    let both = format!(
        "{}{}{}",
        request("GET", "/public", ""),
        request("GET", "/private", ""),
        request("GET", "/public", "")
    );
    send(&mut conn, &both);
    let statuses: Vec<u16> = (0..3).map(|_| read_response(&mut conn).status()).collect();
    assert_eq!(
        statuses,
        vec![200, 403, 200],
        "pipelined responses in request order"
    );
}

#[test]
fn http2_prior_knowledge_and_grpc_deny() {
    let lab = Lab::start(ProxyConfig::default(), s9(1));
    let (code, body) = curl_status(
        &lab,
        &[
            "--http2-prior-knowledge",
            &format!("http://{SERVER}/public"),
        ],
    );
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("200", PAGE_PUBLIC),
        "h2c GET /public"
    );
    let (code, body) = curl_status(
        &lab,
        &[
            "--http2-prior-knowledge",
            &format!("http://{SERVER}/private"),
        ],
    );
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("403", "Access denied\r\n"),
        "h2c GET /private"
    );
    assert!(
        lab.seen()
            .iter()
            .all(|s| s.version == http::Version::HTTP_2),
        "HTTP/2 from the client goes upstream as HTTP/2: {:?}",
        lab.seen()
    );
    let out = lab.ns.curl(&[
        "--http2-prior-knowledge",
        "-D",
        "-",
        "-H",
        "content-type: application/grpc",
        "-X",
        "POST",
        &format!("http://{SERVER}/pkg.Service/Method"),
    ]);
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        head.starts_with("http/2 200"),
        "gRPC deny is HTTP 200: {head}"
    );
    assert!(
        head.contains("grpc-status: 7"),
        "gRPC deny carries PERMISSION_DENIED: {head}"
    );
}

#[test]
fn no_policy_for_flow_fails_closed_with_500() {
    let lab = Lab::start(
        ProxyConfig::default(),
        PolicySnapshot {
            revision: 1,
            ipcache: ipcache(),
            endpoints: vec![],
        },
    );
    let (code, _) = curl_status(&lab, &[&format!("http://{SERVER}/public")]);
    assert_eq!(code, "500", "no rule in either direction");
    // dev is not a listed peer of S9's rule: nothing covers the flow either.
    lab.update(s9(2));
    let (code, _) = curl_status(
        &lab,
        &[
            "--interface",
            &DEV.to_string(),
            &format!("http://{SERVER}/public"),
        ],
    );
    assert_eq!(code, "500", "dev has no entry on the service's port 80");
    assert!(
        lab.seen().is_empty(),
        "nothing was forwarded: {:?}",
        lab.seen()
    );
}

#[test]
fn egress_rules_decide_with_egress_mark_and_unfiltered_peers_pass() {
    let client = |http: Option<Vec<HttpRuleSpec>>| EndpointL7 {
        name: "client-prod".into(),
        ips: vec![IpAddr::V4(PROD)],
        identity: PROD_ID,
        ingress: vec![],
        egress: vec![PortL7 {
            port: 80,
            end_port: 0,
            peers: vec![PeerL7 {
                tls: None,
                identities: Some(vec![SERVICE_ID]),
                http,
            }],
        }],
    };
    let snap = PolicySnapshot {
        revision: 1,
        ipcache: ipcache(),
        endpoints: vec![client(Some(rules(
            r#"[{"method":"GET","path":"/public"}]"#,
        )))],
    };
    let lab = Lab::start(ProxyConfig::default(), snap);
    let url = |p: &str| format!("http://{SERVER}{p}");
    assert_eq!(
        curl_status(&lab, &[&url("/public")]).0,
        "200",
        "egress rule allows /public"
    );
    assert_eq!(
        curl_status(&lab, &[&url("/private")]).0,
        "403",
        "egress rule denies /private"
    );
    assert!(
        lab.ns.marked_packets("0xb00") > 0,
        "egress-decided upstream traffic carries mark 0xb00"
    );
    assert_eq!(lab.ns.marked_packets("0xa00"), 0, "no ingress rule decided");

    // An L3/L4-only allow (http: None) on the egress side plus an ingress L7 rule: ingress decides.
    let mut both = s9(2);
    both.endpoints.push(client(None));
    lab.update(both);
    assert_eq!(
        curl_status(&lab, &[&url("/public")]).0,
        "200",
        "both directions allow"
    );
    assert_eq!(
        curl_status(&lab, &[&url("/private")]).0,
        "403",
        "ingress L7 still filters"
    );
}

#[test]
fn limits_oversized_headers_and_ambiguous_framing() {
    let mut config = ProxyConfig::default();
    config.limits.max_header_bytes = 8192;
    let lab = Lab::start(config, s9(1));
    let big = format!("X-Big: {}", "a".repeat(20_000));
    let (code, _) = curl_status(&lab, &["-H", &big, &format!("http://{SERVER}/public")]);
    assert_eq!(code, "431", "curl with an oversized header");
    let mut conn = lab.ns.connect(PROD);
    send(
        &mut conn,
        &request(
            "GET",
            "/public",
            &format!("X-Big: {}\r\n", "a".repeat(20_000)),
        ),
    );
    let resp = read_response(&mut conn);
    assert_eq!(resp.status(), 431, "oversized head: {:?}", resp.head);
    // More header fields than `max_headers` (100 by default), each small.
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut conn = lab.ns.connect(PROD);
    send(&mut conn, &request("GET", "/public", &many));
    let resp = read_response(&mut conn);
    assert_eq!(
        resp.status(),
        431,
        "too many header fields: {:?}",
        resp.head
    );

    // Content-Length + Transfer-Encoding (a smuggling attempt, RFC 9112 §6.1): refused with
    // 400 and the connection closed, so neither reading of the framing reaches the upstream,
    // let alone the request hidden behind the body.
    let mut conn = lab.ns.connect(PROD);
    send(
        &mut conn,
        "GET /public HTTP/1.1\r\nHost: service\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /private HTTP/1.1\r\nHost: service\r\n\r\n",
    );
    let resp = read_response(&mut conn);
    assert_eq!(resp.status(), 400, "CL+TE: {:?}", resp.head);
    assert_eq!(
        resp.header("connection"),
        Some("close"),
        "ambiguous framing closes the connection"
    );
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "no second response: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(lab.seen().is_empty(), "nothing upstream: {:?}", lab.seen());
}

#[test]
fn slow_header_client_is_cut_off() {
    let mut config = ProxyConfig::default();
    config.limits.header_timeout = std::time::Duration::from_secs(1);
    let lab = Lab::start(config, s9(1));
    let mut conn = lab.ns.connect(PROD);
    send(&mut conn, "GET /public HTTP/1.1\r\nHost: serv");
    let mut buf = Vec::new();
    // The proxy closes (possibly after a 408); the 5 s read timeout only bounds a broken proxy.
    let n = conn
        .read_to_end(&mut buf)
        .expect("connection closed by the proxy, not by our read timeout");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        n == 0 || text.starts_with("HTTP/1.1 408"),
        "closed without forwarding: {text:?}"
    );
    assert!(lab.seen().is_empty(), "nothing forwarded");
}

#[test]
fn websocket_style_upgrade_is_tunnelled_when_allowed() {
    let lab = Lab::start(ProxyConfig::default(), s9(1));
    let mut conn = lab.ns.connect(PROD);
    send(
        &mut conn,
        &request("GET", "/public", "Connection: Upgrade\r\nUpgrade: echo\r\n"),
    );
    let resp = read_response(&mut conn);
    assert_eq!(
        resp.status(),
        101,
        "upgrade passes when the request is allowed: {:?}",
        resp.head
    );
    send(&mut conn, "ping-through-tunnel");
    let mut buf = [0u8; 19];
    conn.read_exact(&mut buf).expect("echo through the tunnel");
    assert_eq!(
        &buf, b"ping-through-tunnel",
        "bytes flow both ways after 101"
    );

    let mut conn = lab.ns.connect(PROD);
    send(
        &mut conn,
        &request(
            "GET",
            "/private",
            "Connection: Upgrade\r\nUpgrade: echo\r\n",
        ),
    );
    assert_eq!(
        read_response(&mut conn).status(),
        403,
        "a denied upgrade is a plain 403"
    );
}

#[test]
fn header_matches_actions_edit_forwarded_headers() {
    let peers = vec![PeerL7 {
        tls: None,
        identities: Some(vec![PROD_ID]),
        http: Some(rules(
            r#"[{"path":"/public","headerMatches":[
                {"name":"X-Tenant","value":"blue","mismatch":"REPLACE"},
                {"name":"X-Debug","value":"off","mismatch":"LOG"}]}]"#,
        )),
    }];
    let mut lab = Lab::start(ProxyConfig::default(), service_ingress(1, peers));
    let (code, _) = curl_status(
        &lab,
        &["-H", "X-Tenant: red", &format!("http://{SERVER}/public")],
    );
    assert_eq!(code, "200", "a mismatch with an action still allows");
    let seen = lab.seen();
    let tenant: Vec<_> = seen[0].headers.get_all("x-tenant").iter().collect();
    assert_eq!(
        tenant,
        vec!["blue"],
        "REPLACE rewrote the header before forwarding"
    );
    let flow = lab.next_flow();
    assert!(
        flow.notes.iter().any(|n| n.contains("x-debug")),
        "LOG mismatch noted in the flow: {flow:?}"
    );
}

#[test]
fn stopping_serves_the_first_request_of_an_accepted_connection() {
    let mut lab = Lab::start(ProxyConfig::default(), s9(1));
    // One connection already served a request and sits idle; two are accepted, nothing sent.
    // HTTP/1.0 goes to hyper, HTTP/1.1 stays on the relay: both must serve a first request.
    let mut idle = lab.ns.connect(PROD);
    assert_eq!(ask(&mut idle, &request("GET", "/public", "")), 200);
    let mut fresh10 = lab.ns.connect(PROD);
    let mut fresh11 = lab.ns.connect(PROD);
    // The idle one counts twice: the proxy's client side and the upstream's.
    assert!(
        eventually(|| lab.accepted() >= 4),
        "the proxy accepted all three"
    );

    lab.stop();
    let mut byte = [0u8; 1];
    assert_eq!(
        idle.read(&mut byte).expect("closed, not timed out"),
        0,
        "an idle connection closes when the proxy stops"
    );
    let http10 = "GET /public HTTP/1.0\r\nhost: service\r\n\r\n";
    assert_eq!(ask(&mut fresh10, http10), 200, "HTTP/1.0 first request");
    let http11 = request("GET", "/private", "");
    assert_eq!(ask(&mut fresh11, &http11), 403, "HTTP/1.1 first request");
}

/// A CA and a leaf for `name` signed by it: (CA PEM, leaf PEM, leaf key PEM).
fn ca_and_leaf(name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec![name.to_string()])
        .expect("leaf params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    (issuer.pem(), leaf.pem(), key.serialize_pem())
}

#[test]
fn stopping_serves_the_first_request_of_a_tls_terminated_connection() {
    use palisade_proxy::{TlsL7, TlsMaterial};
    use rustls::pki_types::pem::PemObject;
    use std::io::Write;
    const NAME: &str = "service.test";
    let (ca, cert, key) = ca_and_leaf(NAME);
    let tls = TlsL7 {
        server_names: vec![],
        terminating: Some(TlsMaterial {
            secret: "default/service-tls".into(),
            certificate: Some(cert),
            private_key: Some(key),
            trusted_ca: None,
            error: None,
        }),
        originating: None,
    };
    let snap = service_ingress(
        1,
        vec![PeerL7 {
            tls: Some(tls),
            identities: Some(vec![PROD_ID]),
            http: Some(rules(r#"[{"method":"GET","path":"/public"}]"#)),
        }],
    );
    let mut lab = Lab::start(ProxyConfig::default(), snap);

    // The handshake is done before the stop: hyper then holds a connection with no request yet.
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from_pem_slice(ca.as_bytes()).expect("CA PEM");
    roots.add(ca).expect("CA");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(NAME).expect("name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, lab.ns.connect(PROD));
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("TLS handshake with the proxy");
    }

    lab.stop();
    assert!(
        eventually(|| lab.listeners() == 1),
        "the proxy's listener closed, only the upstream's is left"
    );
    let ask = "GET /public HTTP/1.1\r\nhost: service.test\r\nconnection: close\r\n\r\n";
    tls.write_all(ask.as_bytes()).expect("request");
    let mut answer = Vec::new();
    // The proxy may close without close_notify after the answer; what arrived is what counts.
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the first request after the stop is served: {answer:?}"
    );
    assert!(answer.ends_with(PAGE_PUBLIC), "{answer:?}");
}
