//! S9 (L7 HTTP) and S10 (L7 headers) through the transparent HTTP proxy: allowed requests get
//! the page, denied ones cilium-envoy's exact 403 (`Access denied\r\n`, 15 bytes, text/plain),
//! peers not allowed at L3 time out without reaching the proxy.

use std::sync::{Mutex, MutexGuard};

use palisade_e2e::tools::{code, describe, stderr, stdout};
use palisade_e2e::Lab;

/// One lab at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// An HTTP exchange seen by curl: exit code, status line, headers (lowercased names) and body.
struct Reply {
    code: i32,
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    stderr: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `curl -sS -i -m 1 [extra…] URL` from `pod`.
fn request(lab: &Lab, pod: &str, extra: &[&str], url: &str) -> Reply {
    let mut cmd = vec!["curl", "-sS", "-i", "-m", "1"];
    cmd.extend(extra);
    cmd.push(url);
    let out = lab.exec(pod, &cmd);
    let raw = out.stdout.clone();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    let (head, body) = match split {
        Some((h, b)) => (
            String::from_utf8_lossy(&raw[..h]).into_owned(),
            raw[b..].to_vec(),
        ),
        None => (String::from_utf8_lossy(&raw).into_owned(), Vec::new()),
    };
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    eprintln!("{pod} {extra:?} {url}: exit {} {status:?}", code(&out));
    Reply {
        code: code(&out),
        status,
        headers,
        body,
        stderr: stderr(&out),
    }
}

fn assert_page(r: &Reply, path: &str, what: &str) {
    assert_eq!(r.code, 0, "{what}: exit {} ({})", r.code, r.stderr);
    assert!(
        r.status.ends_with(" 200 OK"),
        "{what}: status {:?}",
        r.status
    );
    let page = format!("<html><body><h1>Hello from {path}</h1></body></html>");
    assert!(
        String::from_utf8_lossy(&r.body).contains(&page),
        "{what}: the page, got {:?}",
        String::from_utf8_lossy(&r.body)
    );
}

fn assert_envoy_403(r: &Reply, what: &str) {
    assert_eq!(r.code, 0, "{what}: curl exit {} ({})", r.code, r.stderr);
    assert_eq!(r.status, "HTTP/1.1 403 Forbidden", "{what}: status line");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain"),
        "{what}: content-type"
    );
    assert_eq!(r.body, b"Access denied\r\n", "{what}: body (15 bytes)");
    assert_eq!(
        r.header("content-length"),
        Some("15"),
        "{what}: content-length"
    );
}

#[test]
fn s9_l7_http_public_from_prod() {
    let _one = serial();
    let lab = Lab::up("s9");
    for pod in ["default/client-prod", "default/client-dev"] {
        lab.assert_tools(pod, &["curl"]);
    }
    for pod in ["default/client-prod", "default/client-dev"] {
        for path in ["/public", "/private"] {
            let r = request(&lab, pod, &[], &format!("http://service-svc{path}"));
            assert_page(&r, path, &format!("{pod} {path} before the policy"));
        }
    }
    lab.apply(&["s9-l7-http/allow-public-from-prod.yaml"]);
    let r = request(
        &lab,
        "default/client-prod",
        &[],
        "http://service-svc/public",
    );
    assert_page(&r, "/public", "client-prod GET /public");
    let r = request(
        &lab,
        "default/client-prod",
        &[],
        "http://service-svc/private",
    );
    assert_envoy_403(&r, "client-prod GET /private");
    for path in ["/public", "/private"] {
        let r = request(
            &lab,
            "default/client-dev",
            &[],
            &format!("http://service-svc{path}"),
        );
        assert_eq!(
            r.code, 28,
            "client-dev {path} is dropped at L3: exit {} {:?}",
            r.code, r.stderr
        );
        assert!(
            r.stderr.contains("Connection timed out"),
            "client-dev {path}: {:?}",
            r.stderr
        );
    }
    // The live trace agrees with what the proxy did.
    let out = lab.cli(&[
        "policy",
        "trace",
        "--from",
        "default/client-prod",
        "--to",
        "default/service-pod",
        "--dport",
        "80/TCP",
        "--http-method",
        "GET",
        "--http-path",
        "/private",
    ]);
    assert!(
        stdout(&out).trim_end().ends_with("Final verdict: DENIED"),
        "live trace of GET /private: {}",
        describe(&out)
    );
}

#[test]
fn s10_l7_methods_paths_and_headers() {
    let _one = serial();
    let lab = Lab::up("s10");
    let pod = "default/client-prod";
    lab.assert_tools(pod, &["curl"]);
    let base = format!("http://{}", lab.ip("default/myservice"));
    lab.apply(&["s10-l7-headers/l7-rule.yaml"]);

    let r = request(&lab, pod, &[], &format!("{base}/path1"));
    assert_page(&r, "/path1", "GET /path1");
    let put_hdr = ["-X", "PUT", "-H", "X-My-Header: true"];
    let r = request(&lab, pod, &put_hdr, &format!("{base}/path2"));
    assert_page(&r, "/path2", "PUT /path2 with X-My-Header: true");

    let r = request(&lab, pod, &["-X", "PUT"], &format!("{base}/path2"));
    assert_envoy_403(&r, "PUT /path2 without the header");
    let r = request(
        &lab,
        pod,
        &["-X", "PUT", "-H", "X-My-Header: false"],
        &format!("{base}/path2"),
    );
    assert_envoy_403(&r, "PUT /path2 with X-My-Header: false");
    let r = request(&lab, pod, &[], &format!("{base}/path2"));
    assert_envoy_403(&r, "GET /path2");
    let r = request(&lab, pod, &["-X", "POST"], &format!("{base}/path1"));
    assert_envoy_403(&r, "POST /path1");
    let r = request(&lab, pod, &[], &format!("{base}/path1/more"));
    assert_envoy_403(&r, "GET /path1/more (the path is anchored)");
}
