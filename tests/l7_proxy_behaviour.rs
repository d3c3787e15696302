//! The HTTP proxy's behaviour in the lab, beyond S9/S10: methods, path normalization, HTTP/2
//! with prior knowledge, a policy change applied to the next request of an open keep-alive
//! connection, L7 enforcement surviving the agent (the proxies are their own process), and
//! fail-closed when the proxies are gone.

use palisade_e2e::tools::{code, stdout};
use palisade_e2e::Lab;

const URL: &str = "http://service-svc";

/// `curl` printing only the status code (000 when no HTTP answer came).
fn status(lab: &Lab, pod: &str, extra: &[&str], url: &str) -> String {
    let mut cmd = vec![
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        "2",
    ];
    cmd.extend(extra);
    cmd.push(url);
    stdout(&lab.exec(pod, &cmd)).trim().to_string()
}

#[test]
fn l7_proxy_behaviour_in_the_lab() {
    let lab = Lab::up("l7b");
    lab.assert_tools("default/client-prod", &["curl"]);
    lab.apply(&["s9-l7-http/allow-public-from-prod.yaml"]);
    let prod = "default/client-prod";

    // Table: (curl args, path, expected status). One line per case.
    let cases: &[(&[&str], &str, &str)] = &[
        (&[], "/public", "200"),
        (&[], "/private", "403"),
        (&["-X", "POST"], "/public", "403"),
        (&["-X", "HEAD", "-I"], "/public", "403"),
        (&["--path-as-is"], "/public/../private", "403"),
        (&["--path-as-is"], "/private/../public", "200"),
        (&["--path-as-is"], "//public", "200"),
        (&["--path-as-is"], "/./public", "200"),
        (&[], "/public?x=1", "403"),
        (&[], "/PUBLIC", "403"),
        (&["--http2-prior-knowledge"], "/public", "200"),
        (&["--http2-prior-knowledge"], "/private", "403"),
    ];
    for (extra, path, want) in cases {
        let got = status(&lab, prod, extra, &format!("{URL}{path}"));
        assert_eq!(&got, want, "client-prod {extra:?} {path}");
    }

    // Keep-alive: three requests on one connection, a deny in the middle does not close it.
    let out = lab.exec(
        prod,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            "-m",
            "2",
            &format!("{URL}/private"),
            &format!("{URL}/public"),
            &format!("{URL}/private"),
        ],
    );
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        ["403 1", "200 0", "403 0"],
        "one keep-alive connection: {lines:?}"
    );

    let open_up = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: allow-public-from-prod}\nspec:\n  endpointSelector: {matchLabels: {app: service}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {env: prod}}]\n    toPorts:\n    - ports: [{port: '80', protocol: TCP}]\n      rules:\n        http: [{method: GET, path: /public}, {method: GET, path: /private}]\n";
    // A policy change applies to the next request of an open keep-alive connection: a client
    // sends one request, waits for a marker file, then sends the next on the same socket.
    let marker = lab.log_path("policy-changed");
    let client = format!(
        "import http.client, os, time\n\
         c = http.client.HTTPConnection('{}', 80, timeout=5)\n\
         def get():\n    c.request('GET', '/private'); r = c.getresponse(); r.read(); print(r.status, c.sock.getsockname()[1], flush=True)\n\
         get()\n\
         deadline = time.time() + 10\n\
         while not os.path.exists('{}') and time.time() < deadline: time.sleep(0.05)\n\
         get()\n",
        lab.ip("default/service-pod"),
        marker.display()
    );
    let pid = lab.spawn(prod, "keepalive", &["python3", "-c", &client]);
    let log_path = lab.log_path("keepalive");
    let wait_lines = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.lines().count() >= n || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let first = wait_lines(1);
    lab.apply_yaml("allow-public-from-prod.yaml", open_up);
    std::fs::write(&marker, b"").unwrap();
    let log = wait_lines(2);
    lab.kill_spawned(pid);
    let lines: Vec<Vec<&str>> = log
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 2, "two answers: {log:?} (first: {first:?})");
    assert_eq!(lines[0][0], "403", "before the change: {log:?}");
    assert_eq!(
        lines[1][0], "200",
        "after the change, same connection: {log:?}"
    );
    assert_eq!(
        lines[0][1], lines[1][1],
        "both requests on one connection: {log:?}"
    );

    // The proxies run in their own process: killing the agent leaves L7 enforcement running.
    let kill = |pid: i32| {
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    kill(lab.pid_of("run"));
    assert_eq!(
        status(&lab, prod, &[], &format!("{URL}/public")),
        "200",
        "agent down: proxy still serves"
    );
    assert_eq!(
        status(&lab, prod, &[], &format!("{URL}/nothing")),
        "403",
        "agent down: proxy still denies"
    );

    // Fail closed: with the proxy process gone too, redirected flows never bypass to the
    // server; L3/L4 verdicts stay in the kernel.
    kill(lab.pid_of("proxy"));
    let out = lab.exec(
        prod,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "2",
            &format!("{URL}/public"),
        ],
    );
    assert_ne!(
        code(&out),
        0,
        "with the proxy down the request must fail, got HTTP {}",
        stdout(&out)
    );
    let dev = lab.exec(
        "default/client-dev",
        &["curl", "-s", "-m", "1", &format!("{URL}/public")],
    );
    assert_eq!(code(&dev), 28, "L3 drop persists without the agent");
}
