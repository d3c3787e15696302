//! HTTP bypass attempts against the L7 proxy (issue 7), table-driven: raw request bytes are
//! written by `python3` over a plain socket inside client-prod, so malformed requests reach the
//! proxy exactly as written. Each case says what the client must see: the status code(s) and
//! whether the proxy closed the connection. Requests that must never reach the server carry a
//! `User-Agent: smuggled` marker, checked in the server's log at the end.
//!
//! Also the two Cilium CVE shapes with policies of the test's own: an L3 port range plus an L7
//! rule on one port inside it (CVE-2024-52529), and an L4-only allow for one peer next to an L7
//! rule for another (CVE-2023-30851).
//!
//! Envoy-like choices documented by the table: `%70ublic` is `/public` (percent-encoded
//! unreserved characters are decoded, as Envoy's `normalize_path` does), methods are
//! case-sensitive (`get` is not `GET`), an absolute-form target is judged by its own path and
//! authority, and a `Host` with a port is matched as sent.

use palisade_e2e::tools::{describe, stdout};
use palisade_e2e::Lab;

const PROD: &str = "default/client-prod";
const DEV: &str = "default/client-dev";
const H: &str = "Host: service-svc\r\n";

/// Sends every case (from the JSON file named by argv[1]) concurrently, one connection each, and prints one JSON line per case:
/// the status codes of the responses read, whether the peer closed, and the raw reply text.
const RUNNER: &str = r#"
import json, socket, sys, threading, time
cases = json.load(open(sys.argv[1]))
out = [None] * len(cases)
def run(i, host, port, hexreq):
    try:
        s = socket.create_connection((host, port), timeout=3)
    except Exception as e:
        out[i] = {"codes": [], "closed": True, "text": "connect: %s" % e}
        return
    try:
        s.sendall(bytes.fromhex(hexreq))
    except OSError:
        pass
    s.settimeout(0.8)
    buf, closed, deadline = b"", False, time.time() + 4
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        buf += chunk
    s.close()
    codes = [l.split(b" ")[1].decode() for l in buf.split(b"\r\n") if l.startswith(b"HTTP/1.") and len(l.split(b" ")) > 1]
    out[i] = {"codes": codes, "closed": closed, "text": buf.decode("latin-1")}
threads = [threading.Thread(target=run, args=(i, c[0], c[1], c[2])) for i, c in enumerate(cases)]
for t in threads: t.start()
for t in threads: t.join()
for o in out: print(json.dumps(o))
"#;

/// What the client saw on one connection.
#[derive(Debug)]
struct Seen {
    codes: Vec<String>,
    closed: bool,
    text: String,
}

impl Seen {
    /// `"403 200"`, with `" close"` appended when the proxy closed the connection.
    fn outcome(&self) -> String {
        let mut s = self.codes.join(" ");
        if self.closed {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str("close");
        }
        s
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs raw requests to `ip:80` from `pod`, all at once.
fn send_all(lab: &Lab, pod: &str, ip: &str, reqs: &[Vec<u8>]) -> Vec<Seen> {
    let cases: Vec<serde_json::Value> = reqs
        .iter()
        .map(|r| serde_json::json!([ip, 80, hex(r)]))
        .collect();
    // The cases go through a file: an oversized header block is too long for an argument.
    let file = lab.log_path("cases.json");
    std::fs::write(&file, serde_json::Value::Array(cases).to_string())
        .unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
    let out = lab.exec(pod, &["python3", "-c", RUNNER, &file.to_string_lossy()]);
    assert!(out.status.success(), "runner failed: {}", describe(&out));
    let seen: Vec<Seen> = stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("runner JSON line");
            Seen {
                codes: v["codes"]
                    .as_array()
                    .expect("codes")
                    .iter()
                    .map(|c| c.as_str().unwrap_or_default().to_string())
                    .collect(),
                closed: v["closed"].as_bool().unwrap_or(false),
                text: v["text"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect();
    assert_eq!(seen.len(), reqs.len(), "one result per case");
    seen
}

/// `GET <target> HTTP/1.1` with the service's Host and `extra` header lines.
fn get(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\n{H}{extra}\r\n").into_bytes()
}

/// A request written out in full.
fn raw(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// Checks a table; returns one line per mismatch, so every failing case is reported at once.
fn check_table(lab: &Lab, pod: &str, ip: &str, table: &[(&str, Vec<u8>, &str)]) -> Vec<String> {
    let reqs: Vec<Vec<u8>> = table.iter().map(|(_, r, _)| r.clone()).collect();
    let seen = send_all(lab, pod, ip, &reqs);
    let mut failures = Vec::new();
    for ((name, _, want), got) in table.iter().zip(&seen) {
        let outcome = got.outcome();
        eprintln!("{pod} {name:<48} -> {outcome:<12} (want {want})");
        if outcome != *want {
            failures.push(format!(
                "{pod} {name}: want {want:?}, got {outcome:?}; reply {:?}",
                got.text.chars().take(160).collect::<String>()
            ));
        }
    }
    failures
}

/// Extra rules on the S9 service for header and host cases (unioned with S9's rule).
const EXTRA: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: bypass-extra-rules}
spec:
  endpointSelector: {matchLabels: {app: service}}
  ingress:
  - fromEndpoints: [{matchLabels: {env: prod}}]
    toPorts:
    - ports: [{port: '80', protocol: TCP}]
      rules:
        http:
        - {method: GET, path: /hdr, headers: ['X-Token: a']}
        - {method: GET, path: /host, host: service-svc}
";

/// client-prod may reach the service (L4) and webpod's whoami only as `GET /who` for host
/// `webpod`: an egress L7 rule enforced on this node, whose server echoes the Host it got.
const EGRESS_HOST: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: prod-egress-host}
spec:
  endpointSelector: {matchLabels: {env: prod}}
  egress:
  - toEndpoints: [{matchLabels: {app: service}}]
    toPorts: [{ports: [{port: '80', protocol: TCP}]}]
  - toEndpoints: [{matchLabels: {app: webpod}}]
    toPorts:
    - ports: [{port: '80', protocol: TCP}]
      rules:
        http: [{method: GET, path: /who, host: webpod}]
";

/// CVE-2024-52529: an L3 allow on ports 1-1000 next to an L7 rule on port 80 inside the range.
const CVE_2024_52529: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cve-2024-52529}
spec:
  endpointSelector: {matchLabels: {app: service}}
  ingress:
  - fromEndpoints: [{matchLabels: {env: prod}}]
    toPorts: [{ports: [{port: '1', endPort: 1000, protocol: TCP}]}]
  - fromEndpoints: [{matchLabels: {env: prod}}]
    toPorts:
    - ports: [{port: '80', protocol: TCP}]
      rules: {http: [{method: GET, path: /public}]}
";

/// CVE-2023-30851: env=dev may use port 80 without L7; env=prod only GET /public.
const CVE_2023_30851: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cve-2023-30851}
spec:
  endpointSelector: {matchLabels: {app: service}}
  ingress:
  - fromEndpoints: [{matchLabels: {env: dev}}]
    toPorts: [{ports: [{port: '80', protocol: TCP}]}]
  - fromEndpoints: [{matchLabels: {env: prod}}]
    toPorts:
    - ports: [{port: '80', protocol: TCP}]
      rules: {http: [{method: GET, path: /public}]}
";

/// The S9 table: (case, raw request, expected outcome). One line per case.
fn s9_table() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let big = format!("X-Big: {}\r\n", "a".repeat(70 * 1024));
    let many: String = (0..120).map(|i| format!("X-{i}: v\r\n")).collect();
    let smuggled = "GET /public HTTP/1.1\r\nHost: service-svc\r\nUser-Agent: smuggled\r\n\r\n";
    vec![
        ("plain /public", get("/public", ""), "200"),
        ("plain /private", get("/private", ""), "403"),
        (
            "dot-dot up to /private",
            get("/public/../private", ""),
            "403",
        ),
        (
            "dot-dot down to /public",
            get("/private/../public", ""),
            "200",
        ),
        ("dot segment /./private", get("/./private", ""), "403"),
        ("dot segment /./public", get("/./public", ""), "200"),
        ("double slash //private", get("//private", ""), "403"),
        ("double slash //public", get("//public", ""), "200"),
        (
            "%2F encoded slash",
            get("/public%2F..%2Fprivate", ""),
            "400",
        ),
        (
            "%2f encoded slash",
            get("/public%2f..%2fprivate", ""),
            "400",
        ),
        (
            "%5C encoded backslash",
            get("/public%5C..%5Cprivate", ""),
            "400",
        ),
        ("literal backslash", get("/public\\..\\private", ""), "400"),
        (
            "%2e%2e up to /private",
            get("/public/%2e%2e/private", ""),
            "403",
        ),
        (
            "%2E%2E down to /public",
            get("/private/%2E%2E/public", ""),
            "200",
        ),
        ("%00 in path", get("/public%00", ""), "400"),
        (
            "lower-case method get",
            raw(&format!("get /public HTTP/1.1\r\n{H}\r\n")),
            "403",
        ),
        (
            "mixed-case method Get",
            raw(&format!("Get /public HTTP/1.1\r\n{H}\r\n")),
            "403",
        ),
        ("%70ublic decodes to /public", get("/%70ublic", ""), "200"),
        (
            "%70rivate decodes to /private",
            get("/%70rivate", ""),
            "403",
        ),
        ("%50UBLIC is /PUBLIC", get("/%50UBLIC", ""), "403"),
        ("query string", get("/public?x=1", ""), "403"),
        (
            "NUL in header value",
            get("/public", "X-A: a\0b\r\n"),
            "400 close",
        ),
        (
            "control byte in header value",
            get("/public", "X-A: a\x01b\r\n"),
            "400 close",
        ),
        (
            "bare CR in header value",
            get("/public", "X-A: a\rb\r\n"),
            "400 close",
        ),
        ("obs-fold", get("/public", "X-A: a\r\n b\r\n"), "400 close"),
        (
            "space before colon",
            get("/public", "X-A : b\r\n"),
            "400 close",
        ),
        (
            "duplicate Host",
            get("/public", "Host: evil\r\n"),
            "400 close",
        ),
        (
            "absolute-form /private",
            raw(&format!("GET http://evil/private HTTP/1.1\r\n{H}\r\n")),
            "403",
        ),
        (
            "absolute-form /public",
            raw(&format!("GET http://evil/public HTTP/1.1\r\n{H}\r\n")),
            "200",
        ),
        (
            "absolute-form /x/../private",
            raw(&format!(
                "GET http://service-svc/x/../private HTTP/1.1\r\n{H}\r\n"
            )),
            "403",
        ),
        (
            "Host with port /public",
            raw("GET /public HTTP/1.1\r\nHost: service-svc:80\r\n\r\n"),
            "200",
        ),
        (
            "Host with port /private",
            raw("GET /private HTTP/1.1\r\nHost: service-svc:80\r\n\r\n"),
            "403",
        ),
        // Request smuggling (RFC 9112 §6): every framing two parsers could read differently is
        // refused with 400 and the connection closed, before policy or upstream see it.
        (
            "CL+TE smuggles a GET",
            raw(&format!(
                "POST /public HTTP/1.1\r\n{H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            )),
            "400 close",
        ),
        (
            "TE+CL on an allowed GET",
            raw(&format!(
                "GET /public HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n{smuggled}"
            )),
            "400 close",
        ),
        (
            "CL+TE with CL 0",
            raw(&format!(
                "GET /public HTTP/1.1\r\n{H}Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            )),
            "400 close",
        ),
        (
            "Content-Length list of two values",
            raw(&format!(
                "GET /public HTTP/1.1\r\n{H}Content-Length: 0, 70\r\n\r\n{smuggled}"
            )),
            "400 close",
        ),
        (
            "Content-Length with a sign",
            raw(&format!(
                "GET /public HTTP/1.1\r\n{H}Content-Length: +0\r\n\r\n{smuggled}"
            )),
            "400 close",
        ),
        (
            "TE chunked twice",
            raw(&format!(
                "GET /public HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            )),
            "400 close",
        ),
        (
            "TE in an HTTP/1.0 request",
            raw(&format!(
                "GET /public HTTP/1.0\r\n{H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            )),
            "400 close",
        ),
        (
            "CL+TE after a request with a body",
            raw(&format!(
                "POST /private HTTP/1.1\r\n{H}Content-Length: 5\r\n\r\nhelloGET /public HTTP/1.1\r\n{H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            )),
            "403 400 close",
        ),
        // What the relay hands to hyper (here HTTP/1.0, Expect) is served there; a CL+TE request
        // after it on the same connection is not answered and the connection closes: nothing
        // smuggled reaches the server (hyper does not answer it with 400, though).
        (
            "CL+TE after an HTTP/1.0 keep-alive request",
            raw(&format!(
                "GET /public HTTP/1.0\r\n{H}Connection: keep-alive\r\n\r\nPOST /public HTTP/1.1\r\n{H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            )),
            "200 close",
        ),
        (
            "CL+TE after an Expect request",
            raw(&format!(
                "GET /public HTTP/1.1\r\n{H}Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhiPOST /public HTTP/1.1\r\n{H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            )),
            "100 200 close",
        ),
        (
            "same Content-Length twice is one length",
            raw(&format!(
                "GET /private HTTP/1.1\r\n{H}Content-Length: 0\r\nContent-Length: 0\r\n\r\nGET /public HTTP/1.1\r\n{H}\r\n"
            )),
            "403 200",
        ),
        (
            "two different Content-Length",
            raw(&format!(
                "GET /public HTTP/1.1\r\n{H}Content-Length: 0\r\nContent-Length: 70\r\n\r\n{smuggled}"
            )),
            "400 close",
        ),
        (
            "TE not chunked last",
            raw(&format!(
                "GET /public HTTP/1.1\r\n{H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"
            )),
            "400 close",
        ),
        (
            "TE with junk value",
            raw(&format!(
                "GET /public HTTP/1.1\r\n{H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"
            )),
            "400 close",
        ),
        (
            "keep-alive: denied then allowed",
            raw(&format!(
                "GET /private HTTP/1.1\r\n{H}\r\nGET /public HTTP/1.1\r\n{H}\r\n"
            )),
            "403 200",
        ),
        (
            "keep-alive: denied then denied",
            raw(&format!(
                "GET /private HTTP/1.1\r\n{H}\r\nGET /public/../private HTTP/1.1\r\n{H}\r\n"
            )),
            "403 403",
        ),
        (
            "denied POST with body then GET",
            raw(&format!(
                "POST /private HTTP/1.1\r\n{H}Content-Length: 5\r\n\r\nhelloGET /public HTTP/1.1\r\n{H}\r\n"
            )),
            "403 200",
        ),
        ("oversized header block", get("/public", &big), "431 close"),
        ("too many headers", get("/public", &many), "431 close"),
        (
            "header rule: single X-Token a",
            get("/hdr", "X-Token: a\r\n"),
            "200",
        ),
        (
            "header rule: X-Token a + b",
            get("/hdr", "X-Token: a\r\nX-Token: b\r\n"),
            "403",
        ),
        (
            "header rule: X-Token b + a",
            get("/hdr", "X-Token: b\r\nX-Token: a\r\n"),
            "403",
        ),
        ("header rule: missing", get("/hdr", ""), "403"),
        ("host rule: right host", get("/host", ""), "200"),
        (
            "host rule: other host",
            raw("GET /host HTTP/1.1\r\nHost: evil\r\n\r\n"),
            "403",
        ),
        (
            "host rule: host with port",
            raw("GET /host HTTP/1.1\r\nHost: service-svc:80\r\n\r\n"),
            "403",
        ),
        (
            "host rule: duplicate Host, evil last",
            get("/host", "Host: evil\r\n"),
            "400 close",
        ),
        (
            "host rule: duplicate Host, evil first",
            raw(&format!("GET /host HTTP/1.1\r\nHost: evil\r\n{H}\r\n")),
            "400 close",
        ),
        (
            "host rule: absolute-form evil",
            raw(&format!("GET http://evil/host HTTP/1.1\r\n{H}\r\n")),
            "403",
        ),
    ]
}

/// `curl --http2-prior-knowledge` status for a path sent as is.
fn h2_status(lab: &Lab, extra: &[&str], path: &str) -> String {
    let url = format!("http://service-svc{path}");
    let mut cmd = vec![
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        "2",
        "--http2-prior-knowledge",
        "--path-as-is",
    ];
    cmd.extend(extra);
    cmd.push(&url);
    stdout(&lab.exec(PROD, &cmd)).trim().to_string()
}

#[test]
fn http_bypass_attempts_are_denied() {
    let lab = Lab::up("byh");
    lab.assert_tools(PROD, &["python3", "curl"]);
    lab.assert_tools(DEV, &["curl"]);
    lab.apply(&["s9-l7-http/allow-public-from-prod.yaml"]);
    lab.apply_yaml("bypass-extra-rules.yaml", EXTRA);
    let svc = lab.ip("default/service-pod").to_string();
    let mut failures = check_table(&lab, PROD, &svc, &s9_table());

    // HTTP/2 with prior knowledge: the same normalization applies to `:path`.
    let h2: &[(&[&str], &str, &str)] = &[
        (&[], "/public", "200"),
        (&[], "/public/../private", "403"),
        (&[], "/public/%2e%2e/private", "403"),
        (&[], "//private", "403"),
        (&[], "/public%2F..%2Fprivate", "400"),
        (&["-X", "get"], "/public", "403"),
        (&["-H", "Host: evil"], "/private", "403"),
    ];
    for (extra, path, want) in h2 {
        let got = h2_status(&lab, extra, path);
        eprintln!("h2 {extra:?} {path} -> {got} (want {want})");
        if got != *want {
            failures.push(format!("h2 {extra:?} {path}: want {want}, got {got}"));
        }
    }

    // No smuggled request ever reached the server.
    let log_path = lab
        .state_dir()
        .join("logs")
        .join(format!("{}.http-80.log", lab.netns("default/service-pod")));
    let log = std::fs::read_to_string(&log_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", log_path.display()));
    let smuggled: Vec<&str> = log.lines().filter(|l| l.contains("smuggled")).collect();
    if !smuggled.is_empty() {
        failures.push(format!(
            "smuggled requests reached the server: {smuggled:?}"
        ));
    }

    // Host seen by policy = Host seen by the server: an egress host rule towards webpod's whoami,
    // which echoes the Host it received. Whatever the proxy answers, `evil` must never arrive.
    lab.apply_yaml("prod-egress-host.yaml", EGRESS_HOST);
    let web = lab.ip("default/webpod").to_string();
    let host_cases = [
        (
            "whoami: right host",
            raw("GET /who HTTP/1.1\r\nHost: webpod\r\n\r\n"),
        ),
        (
            "whoami: absolute-form webpod, Host evil",
            raw("GET http://webpod/who HTTP/1.1\r\nHost: evil\r\n\r\n"),
        ),
        (
            "whoami: duplicate Host, evil last",
            raw("GET /who HTTP/1.1\r\nHost: webpod\r\nHost: evil\r\n\r\n"),
        ),
        (
            "whoami: duplicate Host, evil first",
            raw("GET /who HTTP/1.1\r\nHost: evil\r\nHost: webpod\r\n\r\n"),
        ),
    ];
    let reqs: Vec<Vec<u8>> = host_cases.iter().map(|(_, r)| r.clone()).collect();
    let seen = send_all(&lab, PROD, &web, &reqs);
    assert_eq!(
        seen[0].codes,
        ["200"],
        "whoami with the allowed host: {:?}",
        seen[0].text
    );
    for ((name, _), got) in host_cases.iter().zip(&seen) {
        eprintln!("{name:<48} -> {}", got.outcome());
        let served = got.codes.first().is_some_and(|c| c == "200");
        if served && got.text.contains("Host: evil") {
            failures.push(format!(
                "{name}: allowed for host webpod but the server got `Host: evil`: {:?}",
                got.text
            ));
        }
    }
    lab.remove("prod-egress-host.yaml");
    lab.remove("bypass-extra-rules.yaml");
    lab.remove("s9-l7-http/allow-public-from-prod.yaml");

    // CVE-2024-52529: the L3 port range does not switch off L7 on port 80.
    lab.apply_yaml("cve-2024-52529.yaml", CVE_2024_52529);
    let cve1 = [
        ("CVE-2024-52529 /public", get("/public", ""), "200"),
        ("CVE-2024-52529 /private", get("/private", ""), "403"),
    ];
    failures.extend(check_table(&lab, PROD, &svc, &cve1));
    lab.remove("cve-2024-52529.yaml");

    // CVE-2023-30851: dev's L4-only allow does not widen prod's L7 rule.
    lab.apply_yaml("cve-2023-30851.yaml", CVE_2023_30851);
    let prod_cases = [
        ("CVE-2023-30851 prod /public", get("/public", ""), "200"),
        ("CVE-2023-30851 prod /private", get("/private", ""), "403"),
    ];
    failures.extend(check_table(&lab, PROD, &svc, &prod_cases));
    let dev_cases = [("CVE-2023-30851 dev /private", get("/private", ""), "200")];
    failures.extend(check_table(&lab, DEV, &svc, &dev_cases));

    assert!(
        failures.is_empty(),
        "{} bypass case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
