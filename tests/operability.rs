//! Operability (issue 6): what an operator sees of a running agent. `monitor -o json` streams
//! the L7 403 and the datapath drop of S9 with both identities and its filters narrow the
//! stream; `status`, `policy get`, `endpoint get`, `bpf policy get`, `identity get` and
//! `fqdn cache list` describe what is enforced; the Prometheus counters move by exactly the
//! requests and queries driven; the API refuses a caller that is not root.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_e2e::tools::{code, describe, poll, stderr, stdout};
use palisade_e2e::Lab;
use serde_json::Value;

/// One lab at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const PROD: &str = "default/client-prod";
const DEV: &str = "default/client-dev";
const SERVICE: &str = "default/service-pod";
const BOT: &str = "default/mediabot";
const S9: &str = "s9-l7-http/allow-public-from-prod.yaml";

/// `palisade monitor --socket … -o json [filters]` in the background, its stdout in a file of
/// the test's directory; killed when dropped.
struct Monitor {
    what: String,
    out: PathBuf,
    child: Child,
}

impl Monitor {
    fn start(lab: &Lab, log: &str, filters: &[&str]) -> Monitor {
        let out = lab.log_path(log);
        let file = File::create(&out).unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
        let err = file.try_clone().expect("monitor log handle");
        let child = Command::new(lab.bin())
            .arg("monitor")
            .arg("--socket")
            .arg(lab.socket())
            .args(["-o", "json"])
            .args(filters)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting palisade monitor {filters:?}: {e}"));
        Monitor {
            what: format!("monitor {filters:?}"),
            out,
            child,
        }
    }

    /// Events printed so far (a line not yet complete is skipped; anything else that is not
    /// JSON fails the test: `-o json` prints one event a line).
    fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        complete
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: not a JSON event ({e}): {l:?}", self.what))
            })
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Identity numbers of endpoints by name, from `endpoint list -o json`.
fn identities(lab: &Lab) -> BTreeMap<String, u32> {
    let list = lab.cli_json(&["endpoint", "list"]);
    list.as_array()
        .unwrap_or_else(|| panic!("endpoint list is not an array: {list}"))
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("endpoint name").to_string();
            let id = e["security_identity"].as_u64().expect("identity") as u32;
            (name, id)
        })
        .collect()
}

/// `curl -sS -m 2 -o /dev/null -w %{http_code} URL` from `pod`: exit code and status code.
fn http(lab: &Lab, pod: &str, url: &str) -> (i32, String) {
    let out = lab.exec(
        pod,
        &[
            "curl",
            "-sS",
            "-m",
            "2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
    );
    (code(&out), stdout(&out))
}

/// client-prod GET /private (403 from the proxy) and client-dev GET /public (dropped).
fn drive_denials(lab: &Lab) {
    let (rc, status) = http(lab, PROD, "http://service-svc/private");
    assert_eq!(
        (rc, status.as_str()),
        (0, "403"),
        "client-prod /private gets the proxy's 403"
    );
    let out = lab.exec(
        DEV,
        &["curl", "-sS", "-m", "1", "http://service-svc/public"],
    );
    assert_eq!(
        code(&out),
        28,
        "client-dev is dropped at L3: {}",
        describe(&out)
    );
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn id(v: &Value) -> u32 {
    v.as_u64().unwrap_or(u64::MAX) as u32
}

/// The L7 event of client-prod's denied GET /private.
fn is_l7_denial(ev: &Value, prod: u32, service: u32) -> bool {
    s(&ev["kind"]) == "l7-http"
        && s(&ev["verdict"]) == "DENIED"
        && s(&ev["summary"]).contains("/private")
        && s(&ev["summary"]).contains("403")
        && id(&ev["src_identity"]) == prod
        && id(&ev["dst_identity"]) == service
}

/// The datapath drop of client-dev's connection to service-pod:80.
fn is_dev_drop(ev: &Value, dev: u32, service: u32) -> bool {
    s(&ev["kind"]) == "drop"
        && s(&ev["verdict"]) == "DROPPED"
        && s(&ev["dst"]).ends_with(":80")
        && id(&ev["src_identity"]) == dev
        && id(&ev["dst_identity"]) == service
}

#[test]
fn monitor_streams_l7_denials_and_drops_with_filters() {
    let _one = serial();
    let lab = Lab::up("ops-mon");
    for pod in [PROD, DEV] {
        lab.assert_tools(pod, &["curl"]);
    }
    lab.apply(&[S9]);
    let ids = identities(&lab);
    let (prod, dev, service) = (ids[PROD], ids[DEV], ids[SERVICE]);
    let service_ip = lab.ip(SERVICE).to_string();
    let dev_ip = lab.ip(DEV).to_string();

    let all = Monitor::start(&lab, "monitor-all.json", &[]);
    let l7 = Monitor::start(&lab, "monitor-l7.json", &["--type", "l7"]);
    let dropped = Monitor::start(&lab, "monitor-dropped.json", &["--verdict", "DROPPED"]);
    let by_service = Monitor::start(&lab, "monitor-service.json", &["--endpoint", SERVICE]);
    let by_dev = Monitor::start(&lab, "monitor-dev.json", &["--endpoint", DEV]);
    let monitors = [&all, &l7, &dropped, &by_service, &by_dev];

    // A monitor sees only what happens after it connected: drive rounds until every stream has
    // shown something, then one more round that all of them see whole.
    let mut rounds = 0;
    loop {
        drive_denials(&lab);
        rounds += 1;
        let connected = poll(Duration::from_secs(2), || {
            monitors
                .iter()
                .all(|m| !m.events().is_empty())
                .then_some(())
        });
        if connected.is_some() {
            break;
        }
        assert!(
            rounds < 5,
            "monitors still silent after {rounds} rounds: {:?}",
            monitors
                .iter()
                .filter(|m| m.events().is_empty())
                .map(|m| &m.what)
                .collect::<Vec<_>>()
        );
    }
    drive_denials(&lab);
    // Events of the last round arrive within the datapath's 20 ms poll and the proxy's channel.
    poll(Duration::from_secs(3), || {
        let evs = all.events();
        (evs.iter().any(|e| is_l7_denial(e, prod, service))
            && evs.iter().any(|e| is_dev_drop(e, dev, service)))
        .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the unfiltered monitor lacks the L7 403 of client-prod (identities {prod} → \
             {service}) or the drop of client-dev ({dev} → {service}): {:#?}",
            all.events()
        )
    });

    // Every filter both keeps what it should and removes what it should.
    let mut problems = Vec::new();
    let l7_evs = l7.events();
    if !l7_evs.iter().all(|e| s(&e["kind"]) == "l7-http") {
        problems.push(format!("--type l7 let other kinds through: {l7_evs:#?}"));
    }
    if !l7_evs.iter().any(|e| is_l7_denial(e, prod, service)) {
        problems.push(format!("--type l7 lacks the 403: {l7_evs:#?}"));
    }
    let dropped_evs = dropped.events();
    if !dropped_evs.iter().all(|e| s(&e["verdict"]) == "DROPPED") {
        problems.push(format!(
            "--verdict DROPPED let other verdicts through: {dropped_evs:#?}"
        ));
    }
    if !dropped_evs.iter().any(|e| is_dev_drop(e, dev, service)) {
        problems.push(format!(
            "--verdict DROPPED lacks client-dev's drop: {dropped_evs:#?}"
        ));
    }
    let relates = |e: &Value, name: &str, ip: &str| {
        s(&e["endpoint"]) == name
            || [&e["src"], &e["dst"]].iter().any(|a| {
                let a = s(a);
                a == name || a.starts_with(&format!("{name}:")) || a.starts_with(&format!("{ip}:"))
            })
    };
    let service_evs = by_service.events();
    if !service_evs.iter().all(|e| relates(e, SERVICE, &service_ip)) {
        problems.push(format!(
            "--endpoint {SERVICE} let unrelated events through: {service_evs:#?}"
        ));
    }
    if !service_evs.iter().any(|e| is_dev_drop(e, dev, service)) {
        problems.push(format!(
            "--endpoint {SERVICE} lacks the drop at its ingress: {service_evs:#?}"
        ));
    }
    if !service_evs.iter().any(|e| is_l7_denial(e, prod, service)) {
        problems.push(format!(
            "--endpoint {SERVICE} lacks the L7 403 its ingress policy produced: {service_evs:#?}"
        ));
    }
    let dev_evs = by_dev.events();
    if !dev_evs.iter().all(|e| relates(e, DEV, &dev_ip)) {
        problems.push(format!(
            "--endpoint {DEV} let unrelated events through: {dev_evs:#?}"
        ));
    }
    if !dev_evs.iter().any(|e| is_dev_drop(e, dev, service)) {
        problems.push(format!(
            "--endpoint {DEV} lacks the drop of its own connection attempt: {dev_evs:#?}"
        ));
    }
    assert!(
        problems.is_empty(),
        "monitor filters:\n{}",
        problems.join("\n")
    );
}

#[test]
fn status_policy_endpoint_bpf_identity_and_fqdn_views() {
    let _one = serial();
    let lab = Lab::up("ops-cli");
    lab.assert_tools(BOT, &["curl"]);
    lab.apply(&[S9]);
    let revision = lab.revision().expect("ready file");

    // status: the enforced revision and the interfaces with TC programs.
    let st = lab.cli_json(&["status"]);
    assert_eq!(
        st["policy_revision"].as_u64(),
        Some(revision),
        "status shows the revision in force: {st}"
    );
    let ifaces: Vec<&str> = st["datapath"]["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    let topo = lab.state_dir().join("topology.yaml");
    let topo = std::fs::read_to_string(&topo)
        .unwrap_or_else(|e| panic!("reading {}: {e}", topo.display()));
    assert!(
        ifaces.iter().any(|i| i.starts_with("lxc")) && ifaces.iter().all(|i| topo.contains(i)),
        "status lists the pods' host-side interfaces of the lab: {ifaces:?}"
    );
    let out = lab.cli(&["status"]);
    assert!(
        out.status.success() && stdout(&out).contains(&format!("revision {revision}")),
        "status table shows the revision: {}",
        describe(&out)
    );

    // policy get: the loaded policy with the file and line it came from.
    let pols = lab.cli_json(&["policy", "get"]);
    assert_eq!(pols["revision"].as_u64(), Some(revision), "{pols}");
    let list = pols["policies"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "exactly S9's policy is loaded: {pols}");
    assert_eq!(s(&list[0]["name"]), "allow-public-from-prod", "{pols}");
    assert_eq!(s(&list[0]["namespace"]), "default", "{pols}");
    let source = s(&list[0]["source"]);
    let file = lab
        .policies_dir()
        .join("s9-l7-http--allow-public-from-prod.yaml");
    assert!(
        source.starts_with(&format!("{}:1", file.display())),
        "policy source is file:line of the watched file: {source}"
    );

    // endpoint get: ingress enforced, a redirect on TCP 80 for client-prod's identity.
    let ids = identities(&lab);
    let prod = ids[PROD];
    let ep = lab.cli_json(&["endpoint", "get", SERVICE]);
    assert_eq!(
        ep["ingress"]["enforced"],
        Value::Bool(true),
        "service-pod ingress is enforced: {ep}"
    );
    let redirect = |e: &&Value| {
        s(&e["verdict"]) == "redirect"
            && e["port"].as_u64() == Some(80)
            && s(&e["proto"]) == "TCP"
            && e["proxy_port"].as_u64() == Some(15001)
            && (id(&e["identity"]) == prod || id(&e["identity"]) == 0)
    };
    let entries = ep["ingress"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let want = entries.iter().find(redirect).unwrap_or_else(|| {
        panic!("no ingress redirect TCP 80 → 15001 for identity {prod} (or any): {ep}")
    });
    assert!(
        want["policies"]
            .to_string()
            .contains("allow-public-from-prod"),
        "the redirect names the policy it comes from: {want}"
    );

    // bpf policy get: the kernel holds the same redirect, in the ingress direction.
    let bpf = lab.cli_json(&["bpf", "policy", "get", SERVICE]);
    let kernel = bpf.as_array().cloned().unwrap_or_default();
    let ingress_redirect = kernel
        .iter()
        .filter(|e| s(&e["direction"]).eq_ignore_ascii_case("ingress"))
        .find(redirect);
    assert!(
        ingress_redirect.is_some(),
        "kernel entries hold the ingress redirect TCP 80 → 15001 for {prod}: {bpf}"
    );
    let resolved_redirects = entries.iter().filter(|e| s(&e["verdict"]) == "redirect");
    let kernel_redirects = kernel.iter().filter(|e| s(&e["verdict"]) == "redirect");
    assert_eq!(
        resolved_redirects.count(),
        kernel_redirects.count(),
        "as many redirects in the kernel as resolved: resolved {ep}\nkernel {bpf}"
    );

    // identity get: the labels of client-prod's identity.
    let ident = lab.cli_json(&["identity", "get", &prod.to_string()]);
    assert_eq!(id(&ident["id"]), prod, "{ident}");
    let labels = ident["labels"].to_string();
    assert!(
        labels.contains("k8s:env=prod")
            && labels.contains("k8s:io.kubernetes.pod.namespace=default"),
        "identity {prod} carries client-prod's security labels: {ident}"
    );
    let out = lab.cli(&["identity", "get", "4000000"]);
    assert!(
        !out.status.success(),
        "an unknown identity is an error: {}",
        describe(&out)
    );

    // fqdn cache list after S6: api.github.com with its address, refreshed by this lookup.
    lab.apply(&["s6-fqdn/fqdn.yaml"]);
    let asked = now_unix();
    let out = lab.exec(
        BOT,
        &["curl", "-sS", "-I", "-m", "2", "http://api.github.com/"],
    );
    assert_eq!(code(&out), 0, "S6 curl api.github.com: {}", describe(&out));
    let cache = lab.cli_json(&["fqdn", "cache", "list"]);
    let entry = cache
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| s(&e["name"]).trim_end_matches('.') == "api.github.com")
        .unwrap_or_else(|| panic!("fqdn cache lacks api.github.com: {cache}"));
    assert_eq!(s(&entry["endpoint"]), BOT, "{entry}");
    assert!(
        entry["ips"].to_string().contains("\"203.0.113.10\""),
        "api.github.com → 203.0.113.10: {entry}"
    );
    let expires = entry["expires_unix"].as_u64().unwrap_or(0);
    let ttl = entry["ttl"].as_u64().unwrap_or(0);
    assert!(
        ttl > 0 && expires + 1 >= asked + ttl,
        "the entry comes from this lookup (expires {expires}, ttl {ttl}, asked at {asked}): \
         {entry}"
    );
    let out = lab.cli(&["fqdn", "cache", "list"]);
    let text = stdout(&out);
    assert!(
        text.contains("api.github.com") && text.contains("203.0.113.10"),
        "fqdn cache table: {}",
        describe(&out)
    );
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The metrics text of the agent, scraped inside the local node's namespace.
fn scrape(lab: &Lab) -> String {
    let out = lab.exec(
        "k8s-w1",
        &["curl", "-sS", "-m", "2", "http://127.0.0.1:9962/metrics"],
    );
    assert!(
        out.status.success(),
        "scraping /metrics: {}",
        describe(&out)
    );
    stdout(&out)
}

/// Sum of the samples of `name` whose labels include every pair of `labels` (0 when none).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            if metric != name {
                return None;
            }
            let set = rest.trim_end_matches('}');
            let has_all = labels
                .iter()
                .all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            has_all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The counters this test drives, by a readable key.
fn counters(text: &str) -> BTreeMap<&'static str, f64> {
    let http = |v| {
        sample(
            text,
            "palisade_http_requests_total",
            &[("verdict", v), ("method", "GET")],
        )
    };
    // The DNS proxy labels rcodes as hubble does ("No Error", "Query Refused").
    let dns = |v, rcode| {
        sample(
            text,
            "palisade_dns_queries_total",
            &[("verdict", v), ("rcode", rcode)],
        )
    };
    BTreeMap::from([
        ("http forwarded", http("forwarded")),
        ("http denied", http("denied")),
        ("dns forwarded", dns("forwarded", "No Error")),
        ("dns refused", dns("refused", "Query Refused")),
        (
            "drops policy",
            sample(
                text,
                "palisade_drop_count_total",
                &[("reason", "Policy denied"), ("direction", "ingress")],
            ),
        ),
    ])
}

#[test]
fn metrics_count_exactly_what_was_driven() {
    const N_ALLOWED: usize = 3;
    const M_DENIED: usize = 2;
    const K_ANSWERED: usize = 3;
    const J_REFUSED: usize = 2;
    let _one = serial();
    let lab = Lab::up("ops-met");
    lab.assert_tools("k8s-w1", &["curl"]);
    lab.assert_tools(BOT, &["dig"]);
    lab.apply(&[S9, "s7-dns/fqdn.yaml"]);
    let revision = lab.revision().expect("ready file");
    let before_text = scrape(&lab);
    assert_eq!(
        sample(&before_text, "palisade_policy_revision", &[]),
        revision as f64,
        "palisade_policy_revision is the revision in force"
    );
    let before = counters(&before_text);

    for _ in 0..N_ALLOWED {
        let (rc, status) = http(&lab, PROD, "http://service-svc/public");
        assert_eq!((rc, status.as_str()), (0, "200"), "client-prod GET /public");
    }
    for _ in 0..M_DENIED {
        let (rc, status) = http(&lab, PROD, "http://service-svc/private");
        assert_eq!(
            (rc, status.as_str()),
            (0, "403"),
            "client-prod GET /private"
        );
    }
    // dig asks exactly one A question, without the search list, and retries nothing.
    let dig = |name: &str| {
        let out = lab.exec(BOT, &["dig", "+tries=1", "+time=2", name]);
        stdout(&out)
    };
    for _ in 0..K_ANSWERED {
        let text = dig("api.github.com");
        assert!(
            text.contains("status: NOERROR"),
            "dig api.github.com: {text}"
        );
    }
    for _ in 0..J_REFUSED {
        let text = dig("example.org");
        assert!(text.contains("status: REFUSED"), "dig example.org: {text}");
    }
    let out = lab.exec(
        DEV,
        &["curl", "-sS", "-m", "1", "http://service-svc/public"],
    );
    assert_eq!(code(&out), 28, "client-dev is dropped: {}", describe(&out));

    let want = BTreeMap::from([
        ("http forwarded", N_ALLOWED as f64),
        ("http denied", M_DENIED as f64),
        ("dns forwarded", K_ANSWERED as f64),
        ("dns refused", J_REFUSED as f64),
    ]);
    let delta = |after: &BTreeMap<&'static str, f64>| -> BTreeMap<&'static str, f64> {
        want.keys().map(|k| (*k, after[k] - before[k])).collect()
    };
    // Flow records reach the counters asynchronously: wait until they got there, then scrape
    // once more so that a late extra increment would show too.
    let settled = poll(Duration::from_secs(3), || {
        let d = delta(&counters(&scrape(&lab)));
        want.iter().all(|(k, v)| d[k] >= *v).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let after_text = scrape(&lab);
    let after = counters(&after_text);
    assert_eq!(
        delta(&after),
        want,
        "counters moved by exactly the requests and queries driven (settled: {})",
        settled.is_some()
    );
    assert!(
        after["drops policy"] > before["drops policy"],
        "palisade_drop_count_total{{reason=\"Policy denied\",direction=\"ingress\"}} grew after \
         client-dev's attempt: {} → {}",
        before["drops policy"],
        after["drops policy"]
    );
    assert_eq!(
        sample(&after_text, "palisade_policy_revision", &[]),
        lab.revision().expect("ready file") as f64,
        "palisade_policy_revision still the revision in force"
    );
    // Pods' own IPv6 link control (MLD reports from link-local addresses) is not spoofing.
    assert_eq!(
        sample(
            &after_text,
            "palisade_drop_count_total",
            &[("reason", "Source address not the endpoint's")]
        ),
        0.0,
        "no spoofed-source drops in a lab where no pod spoofs:\n{after_text}"
    );
}

#[test]
fn api_refuses_a_caller_that_is_not_root() {
    let _one = serial();
    let lab = Lab::up("ops-uid");
    let out = lab.cli(&["status"]);
    assert!(out.status.success(), "root may: {}", describe(&out));
    let out = palisade_e2e::tools::run(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(lab.bin())
            .arg("status")
            .arg("--socket")
            .arg(lab.socket()),
    );
    assert!(
        !out.status.success(),
        "uid 65534 must be refused: {}",
        describe(&out)
    );
    // The refusal must come from palisade about its socket, not from setpriv failing to start it.
    let err = stderr(&out).to_ascii_lowercase();
    let socket = lab.socket().to_string_lossy().to_ascii_lowercase();
    assert!(
        err.contains("must be root") || (err.contains("permission") && err.contains(&socket)),
        "the refusal says why (root / permission): {}",
        describe(&out)
    );
    assert!(
        !stdout(&out).contains("revision"),
        "nothing of the agent's state leaks: {}",
        describe(&out)
    );
}
