//! Issue 7: the proxies run in their own process, so an agent SIGKILL and restart drops no L7
//! connection and no DNS query: a keep-alive HTTP client and a DNS loop run through the whole
//! kill–restart window and every answer is the one the policy gives.

use std::time::Duration;

use palisade_e2e::tools::wait_until;
use palisade_e2e::Lab;

const CLIENT: &str = "import http.client, sys, time
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    for path in ('/public', '/private'):
        c.request('GET', path); r = c.getresponse(); r.read()
        print(path, r.status, c.sock.getsockname()[1], flush=True)
    time.sleep(0.1)
";

#[test]
fn agent_restart_drops_no_l7_connection_or_dns_query() {
    let lab = Lab::up("arl7");
    lab.assert_tools("default/client-prod", &["python3"]);
    lab.assert_tools("default/mediabot", &["dig"]);
    lab.apply(&["s9-l7-http/allow-public-from-prod.yaml", "s7-dns/fqdn.yaml"]);

    let server = lab.ip("default/service-pod").to_string();
    let http = lab.spawn(
        "default/client-prod",
        "http-loop",
        &["python3", "-c", CLIENT, &server, "8"],
    );
    let resolver = lab.ip("kube-system/kube-dns").to_string();
    let dns_loop = format!(
        "end=$(($(date +%s)+8)); while [ $(date +%s) -lt $end ]; do \
         dig @{resolver} +tries=1 +time=2 +noall +comments api.github.com | grep -o 'status: [A-Z]*'; \
         dig @{resolver} +tries=1 +time=2 +noall +comments example.org | grep -o 'status: [A-Z]*'; sleep 0.1; done"
    );
    let dns = lab.spawn("default/mediabot", "dns-loop", &["sh", "-c", &dns_loop]);

    // Kill the agent a second into the loops, restart it a second later.
    std::thread::sleep(Duration::from_secs(1));
    let pid = lab.pid_of("run");
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let ready = lab.state_dir().join("agent.ready");
    let _ = std::fs::remove_file(&ready);
    let (bin, config) = (
        lab.bin().display().to_string(),
        lab.agent_config().display().to_string(),
    );
    lab.spawn(
        "k8s-w1",
        "agent-restarted",
        &[&bin, "run", "--config", &config],
    );
    assert!(
        wait_until(Duration::from_secs(15), || ready.exists()),
        "restarted agent ready"
    );

    let http_log = lab.log_path("http-loop");
    let dns_log = lab.log_path("dns-loop");
    assert!(
        wait_until(Duration::from_secs(12), || {
            let done = |p: &std::path::Path| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > Duration::from_millis(1500)))
            };
            done(&http_log) && done(&dns_log)
        }),
        "loops finished"
    );
    lab.kill_spawned(http);
    lab.kill_spawned(dns);

    let http_out = std::fs::read_to_string(&http_log).unwrap();
    let lines: Vec<Vec<&str>> = http_out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines.len() >= 20,
        "the HTTP loop ran through the restart: {http_out}"
    );
    let port = lines[0][2];
    for l in &lines {
        let want = if l[0] == "/public" { "200" } else { "403" };
        assert_eq!(
            l[1], want,
            "{} on the one keep-alive connection: {http_out}",
            l[0]
        );
        assert_eq!(l[2], port, "the connection was never dropped: {http_out}");
    }
    let dns_out = std::fs::read_to_string(&dns_log).unwrap();
    let answers: Vec<&str> = dns_out.lines().collect();
    assert!(
        answers.len() >= 20,
        "the DNS loop ran through the restart: {dns_out}"
    );
    for pair in answers.chunks(2) {
        assert_eq!(
            pair,
            ["status: NOERROR", "status: REFUSED"],
            "every query answered as the policy says: {dns_out}"
        );
    }
}
