//! Issue 7: a proxy upgrade hands its listening sockets over without refusing new connections.
//! `palisade proxy --upgrade` takes the running proxy's listeners and policy while a client
//! opens a new HTTP connection for every request and DNS queries run over UDP and TCP; every
//! request gets the answer the policy gives, the old process drains and exits, and the agent
//! then drives the new one.

use std::time::Duration;

use palisade_e2e::tools::wait_until;
use palisade_e2e::Lab;

/// Seconds the client loops run; the upgrade happens inside this window.
const LOOP_SECS: u64 = 8;

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// Waits until a spawned loop's log has not changed for a while (the loop ended).
fn wait_quiet(lab: &Lab, names: &[&str]) {
    let logs: Vec<_> = names.iter().map(|n| lab.log_path(n)).collect();
    let quiet = || {
        logs.iter().all(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > Duration::from_millis(1500)))
        })
    };
    assert!(
        wait_until(Duration::from_secs(LOOP_SECS + 10), quiet),
        "client loops finished"
    );
}

#[test]
fn proxy_upgrade_refuses_no_connection_and_drops_no_query() {
    let lab = Lab::up("pupg");
    lab.assert_tools("default/client-prod", &["curl"]);
    lab.assert_tools("default/mediabot", &["dig"]);
    lab.apply(&["s9-l7-http/allow-public-from-prod.yaml", "s7-dns/fqdn.yaml"]);

    let server = lab.ip("default/service-pod").to_string();
    // A new TCP connection per request: each one is accepted by whichever process listens.
    let http_loop = format!(
        "end=$(($(date +%s)+{LOOP_SECS})); while [ $(date +%s) -lt $end ]; do \
         for p in public private; do \
         echo $p $(curl -s -o /dev/null -w '%{{http_code}}' --max-time 3 http://{server}/$p); \
         done; done"
    );
    let resolver = lab.ip("kube-system/kube-dns").to_string();
    let dns_loop = |tcp: &str| {
        format!(
            "end=$(($(date +%s)+{LOOP_SECS})); while [ $(date +%s) -lt $end ]; do \
             for n in api.github.com example.org; do \
             echo $n $(dig @{resolver} {tcp} +tries=1 +time=2 +noall +comments $n | grep -o 'status: [A-Z]*'); \
             done; done"
        )
    };
    let old = lab.pid_of("proxy");
    let loops = [
        lab.spawn(
            "default/client-prod",
            "http-loop",
            &["sh", "-c", &http_loop],
        ),
        lab.spawn(
            "default/mediabot",
            "dns-udp-loop",
            &["sh", "-c", &dns_loop("")],
        ),
        lab.spawn(
            "default/mediabot",
            "dns-tcp-loop",
            &["sh", "-c", &dns_loop("+tcp")],
        ),
    ];

    std::thread::sleep(Duration::from_secs(2));
    let (bin, config) = (
        lab.bin().display().to_string(),
        lab.agent_config().display().to_string(),
    );
    lab.spawn(
        "k8s-w1",
        "proxy-upgraded",
        &[&bin, "proxy", "--config", &config, "--upgrade"],
    );
    assert!(
        wait_until(Duration::from_secs(15), || !alive(old)),
        "the old proxy process drained and exited; new proxy log:\n{}",
        std::fs::read_to_string(lab.log_path("proxy-upgraded")).unwrap_or_default()
    );

    wait_quiet(&lab, &["http-loop", "dns-udp-loop", "dns-tcp-loop"]);
    for pid in loops {
        lab.kill_spawned(pid);
    }
    let http = std::fs::read_to_string(lab.log_path("http-loop")).unwrap();
    let lines: Vec<&str> = http.lines().collect();
    assert!(
        lines.len() >= 40,
        "the HTTP loop ran through the upgrade: {http}"
    );
    for line in &lines {
        let want = if line.starts_with("public ") {
            "public 200"
        } else {
            "private 403"
        };
        assert_eq!(*line, want, "every new connection answered: {http}");
    }
    for log in ["dns-udp-loop", "dns-tcp-loop"] {
        let dns = std::fs::read_to_string(lab.log_path(log)).unwrap();
        let answers: Vec<&str> = dns.lines().collect();
        assert!(answers.len() >= 20, "{log} ran through the upgrade: {dns}");
        for a in &answers {
            let want = if a.starts_with("api.github.com ") {
                "api.github.com status: NOERROR"
            } else {
                "example.org status: REFUSED"
            };
            assert_eq!(*a, want, "{log}: every query answered: {dns}");
        }
    }

    // The agent reconnected to the new process: a revision is only reported ready once the
    // proxy acknowledged it, and the new proxy enforces the new rules.
    let new = lab.pid_of("proxy");
    assert_ne!(new, old, "the upgraded process serves");
    let swapped = std::fs::read_to_string(palisade_e2e::paths::scenario_policy(
        "s9-l7-http/allow-public-from-prod.yaml",
    ))
    .unwrap()
    .replace("\"/public\"", "\"/private\"");
    lab.apply_yaml("allow-private-from-prod.yaml", &swapped);
    lab.remove("s9-l7-http/allow-public-from-prod.yaml");
    let (code, body) = lab.curl("default/client-prod", &format!("http://{server}/public"));
    assert_eq!(
        (code, body.as_str()),
        (0, "Access denied\r\n"),
        "the new proxy enforces the agent's newest policy"
    );
    let (code, _) = lab.curl("default/client-prod", &format!("http://{server}/private"));
    assert_eq!(code, 0);
}
