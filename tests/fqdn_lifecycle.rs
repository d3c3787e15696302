//! The life of a learned FQDN address (issue 5), on mediabot in a small lab of its own: DNS
//! over TCP is filtered like UDP, wildcard patterns, CNAME chains learned for the asked name,
//! TTL expiry closing new connections, the learned cache surviving an agent restart, no
//! first-connection drop for 200 fresh names, and a fresh agent starting with nothing learned.
//!
//! The scenario topology has one DNS TTL and no CNAMEs, so each test writes its own small
//! topology and brings it up with [`FqdnLab`] (the shared harness only builds
//! `config/topology.yaml`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use palisade_e2e::paths;
use palisade_e2e::tools::{code, describe, poll, run, stdout, strip_ansi, tail};
use serde_json::Value;

/// One lab at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const BOT: &str = "default/mediabot";
const API_IP: &str = "203.0.113.10";
const SUPPORT_IP: &str = "203.0.113.11";
const APEX_IP: &str = "203.0.113.12";
/// `alias.palisade.test` is a CNAME of api.github.com in every topology of this file.
const ALIAS: &str = "alias.palisade.test";
/// Fresh names `n0.example.test` … served by one external host with one address each.
const FRESH_NAMES: usize = 200;
/// How long a policy change may take (the agent polls its inputs every second).
const APPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// The address of fresh name `i`: 198.51.100.1 … 198.51.100.200.
fn fresh_ip(i: usize) -> String {
    format!("198.51.100.{}", i + 1)
}

/// One node (the local one), the resolver, mediabot, and external hosts for api, support and
/// the apex github.com, plus one host owning every fresh name's address; answers carry `ttl`.
fn topology(ttl: u32) -> String {
    let mut bulk_ips = String::new();
    let mut hosts = String::new();
    for i in 0..FRESH_NAMES {
        let ip = fresh_ip(i);
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(bulk_ips, "{sep}{ip}");
        let _ = writeln!(hosts, "    n{i}.example.test: [{ip}]");
    }
    format!(
        r#"cluster: default
nodes:
- name: k8s-w1
  ips: [192.168.10.101]
  local: true
  labels: {{kubernetes.io/hostname: k8s-w1}}
namespaces:
- name: default
  labels: {{kubernetes.io/metadata.name: default}}
- name: kube-system
  labels: {{kubernetes.io/metadata.name: kube-system}}
pods:
- name: kube-dns
  namespace: kube-system
  node: k8s-w1
  serviceAccount: coredns
  labels: {{k8s-app: kube-dns}}
  serve: [{{kind: dns}}]
- name: mediabot
  node: k8s-w1
  labels: {{org: empire, class: mediabot}}
services:
- name: kube-dns
  namespace: kube-system
  labels: {{k8s-app: kube-dns}}
  selector: {{k8s-app: kube-dns}}
  ports: [{{port: 53, protocol: UDP}}, {{port: 53, protocol: TCP}}]
externals:
- name: api.github.com
  ips: [{API_IP}]
  serve: [{{kind: http}}]
- name: support.github.com
  ips: [{SUPPORT_IP}]
  serve: [{{kind: http}}]
- name: github.com
  ips: [{APEX_IP}]
  serve: [{{kind: http}}]
- name: bulk.example.test
  ips: [{bulk_ips}]
  serve: [{{kind: http}}]
dns:
  ttl: {ttl}
  cnames: {{{ALIAS}: api.github.com}}
  hosts:
{hosts}"#
    )
}

/// S6/S7's policy for mediabot with its own `toFQDNs` list and DNS rules (flow YAML lists).
fn fqdn_policy(to_fqdns: &str, dns_rules: &str) -> String {
    format!(
        r#"apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata: {{name: fqdn}}
spec:
  endpointSelector: {{matchLabels: {{org: empire, class: mediabot}}}}
  egress:
  - toFQDNs: {to_fqdns}
  - toEndpoints:
    - matchLabels: {{"k8s:io.kubernetes.pod.namespace": kube-system, "k8s:k8s-app": kube-dns}}
    toPorts:
    - ports: [{{port: "53", protocol: ANY}}]
      rules:
        dns: {dns_rules}
"#
    )
}

/// A lab built from [`topology`], removed on drop (also when the test panics): namespaces
/// `pe2e-<tag>-…`, state under `/run/palisade-pe2e-<tag>` (`pe2e` is `$PALISADE_E2E_PREFIX` when set).
struct FqdnLab {
    bin: PathBuf,
    state_dir: PathBuf,
    prefix: String,
    work: PathBuf,
    policies: PathBuf,
    /// Processes the test started (a restarted agent): killed on drop.
    children: Vec<Child>,
}

impl FqdnLab {
    fn up(tag: &str, ttl: u32) -> FqdnLab {
        let work =
            std::env::temp_dir().join(format!("{}-{}", paths::lab_name(tag), std::process::id()));
        let lab = FqdnLab {
            bin: paths::palisade_bin(),
            state_dir: PathBuf::from(format!("/run/palisade-{}", paths::lab_name(tag))),
            prefix: format!("{}-", paths::lab_name(tag)),
            policies: work.join("policies"),
            work,
            children: Vec::new(),
        };
        // The guard exists before anything is built, so a failing `up` is cleaned too.
        lab.down();
        std::fs::create_dir_all(&lab.policies)
            .unwrap_or_else(|e| panic!("creating {}: {e}", lab.policies.display()));
        let topo = lab.work.join("topology.yaml");
        std::fs::write(&topo, topology(ttl))
            .unwrap_or_else(|e| panic!("writing {}: {e}", topo.display()));
        let out = run(Command::new(&lab.bin)
            .args(["lab", "up"])
            .arg(&topo)
            .arg("--policies")
            .arg(&lab.policies)
            .args(lab.lab_args()));
        assert!(
            out.status.success(),
            "lab up failed: {}\nagent log tail:\n{}",
            describe(&out),
            tail(&lab.agent_log(), 20)
        );
        let rev = lab.wait_revision(0);
        eprintln!("[{tag}] lab up (dns ttl {ttl}), agent at revision {rev}");
        lab
    }

    fn lab_args(&self) -> [String; 4] {
        [
            "--state-dir".into(),
            self.state_dir.to_string_lossy().into_owned(),
            "--prefix".into(),
            self.prefix.clone(),
        ]
    }

    fn socket(&self) -> PathBuf {
        self.state_dir.join("palisade.sock")
    }

    fn ready_file(&self) -> PathBuf {
        self.state_dir.join("agent.ready")
    }

    fn revision(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.ready_file()).ok()?;
        text.trim().parse().ok()
    }

    fn wait_revision(&self, before: u64) -> u64 {
        poll(APPLY_TIMEOUT, || self.revision().filter(|r| *r > before)).unwrap_or_else(|| {
            panic!(
                "agent revision did not advance past {before} within {APPLY_TIMEOUT:?}; log:\n{}",
                tail(&self.agent_log(), 25)
            )
        })
    }

    fn agent_log(&self) -> String {
        read_log(&self.state_dir.join("agent.log"))
    }

    /// Writes the policy `name` (atomically: the agent skips dot files) and waits until the
    /// agent applied it.
    fn apply_yaml(&self, name: &str, yaml: &str) {
        let before = self.revision().unwrap_or(0);
        let tmp = self.policies.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
        std::fs::rename(&tmp, self.policies.join(name))
            .unwrap_or_else(|e| panic!("placing policy {name}: {e}"));
        let now = self.wait_revision(before);
        eprintln!("applied {name} (revision {now})");
    }

    fn exec(&self, member: &str, cmd: &[&str]) -> Output {
        run(Command::new(&self.bin)
            .args(["lab", "exec"])
            .args(self.lab_args())
            .arg(member)
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null()))
    }

    fn assert_tools(&self, member: &str, tools: &[&str]) {
        for tool in tools {
            let out = self.exec(member, &["sh", "-c", &format!("command -v {tool}")]);
            assert!(
                out.status.success(),
                "{tool} is not installed (checked in {member}): {}",
                describe(&out)
            );
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        run(Command::new(&self.bin)
            .args(args)
            .arg("--socket")
            .arg(self.socket()))
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.cli(&all);
        assert!(out.status.success(), "palisade {all:?}: {}", describe(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("palisade {all:?} printed no JSON ({e}): {}", stdout(&out)))
    }

    /// Addresses `fqdn cache list` holds for `name` (any endpoint).
    fn cached(&self, name: &str) -> BTreeSet<String> {
        let cache = self.cli_json(&["fqdn", "cache", "list"]);
        cache
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["name"].as_str().unwrap_or_default().trim_end_matches('.') == name)
            .flat_map(|e| e["ips"].as_array().cloned().unwrap_or_default())
            .filter_map(|ip| ip.as_str().map(str::to_string))
            .collect()
    }

    /// `curl http://NAME/` from mediabot: exit code and HTTP status (`-m` seconds).
    fn curl_name(&self, name: &str, max: &str) -> (i32, String) {
        let url = format!("http://{name}/");
        let out = self.exec(
            BOT,
            &[
                "curl",
                "-sS",
                "-m",
                max,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ],
        );
        eprintln!("curl {name}: exit {} {}", code(&out), stdout(&out));
        (code(&out), stdout(&out))
    }

    /// A new connection to `ip` for `name` without any DNS query (`curl --resolve`).
    fn curl_pinned(&self, name: &str, ip: &str) -> (i32, String) {
        let resolve = format!("{name}:80:{ip}");
        let url = format!("http://{name}/");
        let out = self.exec(
            BOT,
            &[
                "curl",
                "-sS",
                "-m",
                "1",
                "--resolve",
                &resolve,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &url,
            ],
        );
        eprintln!(
            "curl --resolve {resolve}: exit {} {}",
            code(&out),
            stdout(&out)
        );
        (code(&out), stdout(&out))
    }

    /// `dig [+tcp] NAME` from mediabot: its output and how long it took.
    fn dig(&self, extra: &[&str], name: &str) -> (String, Duration) {
        let mut cmd = vec!["dig", "+tries=1", "+time=3"];
        cmd.extend(extra);
        cmd.push(name);
        let started = Instant::now();
        let out = self.exec(BOT, &cmd);
        (stdout(&out), started.elapsed())
    }

    fn agent_pid(&self) -> u32 {
        let path = self.state_dir.join("state.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let state: Value = serde_json::from_str(&text).expect("lab state is JSON");
        state["processes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["role"] == "agent")
            .and_then(|p| p["pid"].as_u64())
            .unwrap_or_else(|| panic!("no agent in the lab state: {state}")) as u32
    }

    /// SIGKILLs the lab's agent and starts a new one with the same config in the node's
    /// network namespace (only that namespace: bpffs stays visible), as a child of the test.
    /// Returns the new agent's log file once it is ready and its API answers.
    fn restart_agent(&mut self) -> PathBuf {
        let pid = self.agent_pid();
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -KILL {pid}");
        poll(Duration::from_secs(5), || (!alive(pid)).then_some(()))
            .unwrap_or_else(|| panic!("agent {pid} still alive after SIGKILL"));
        let _ = std::fs::remove_file(self.ready_file());
        let log = self.work.join("agent-restarted.log");
        let file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = file.try_clone().expect("log handle");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}k8s-w1", self.prefix))
            .arg(&self.bin)
            .arg("run")
            .arg("--config")
            .arg(self.state_dir.join("palisade.yaml"))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("restarting the agent: {e}"));
        self.children.push(child);
        poll(Duration::from_secs(20), || {
            self.ready_file().exists().then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "restarted agent never became ready; log:\n{}",
                tail(&read_log(&log), 25)
            )
        });
        poll(Duration::from_secs(5), || {
            self.cli(&["status"]).status.success().then_some(())
        })
        .unwrap_or_else(|| panic!("restarted agent's API; log:\n{}", tail(&read_log(&log), 25)));
        log
    }

    /// The Prometheus text of the agent, scraped inside the local node's namespace.
    fn metrics(&self) -> String {
        let out = self.exec(
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

    fn down(&self) {
        let out = run(Command::new(&self.bin)
            .args(["lab", "down"])
            .args(self.lab_args()));
        if !out.status.success() {
            eprintln!("lab down {}: {}", self.prefix, describe(&out));
        }
    }
}

impl Drop for FqdnLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "agent log tail ({}):\n{}",
                self.prefix,
                tail(&self.agent_log(), 30)
            );
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.down();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn read_log(path: &Path) -> String {
    strip_ansi(&std::fs::read_to_string(path).unwrap_or_default())
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or_default()
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Sum of the policy drops (`palisade_drop_count_total` with a `Policy denied…` reason).
fn policy_drops(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("palisade_drop_count_total{") && l.contains("reason=\"Policy denied")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[test]
fn dns_over_tcp_and_wildcard_patterns() {
    let _one = serial();
    let lab = FqdnLab::up("fqdn-wild", 60);
    lab.assert_tools(BOT, &["curl", "dig"]);

    // `*.github.com` allows every subdomain's learned address, not the apex.
    lab.apply_yaml(
        "fqdn.yaml",
        &fqdn_policy(
            r#"[{matchPattern: "*.github.com"}]"#,
            r#"[{matchPattern: "*"}]"#,
        ),
    );
    for name in ["api.github.com", "support.github.com"] {
        let (rc, status) = lab.curl_name(name, "2");
        assert_eq!(
            (rc, status.as_str()),
            (0, "200"),
            "{name} matches *.github.com"
        );
    }
    let (rc, _) = lab.curl_name("github.com", "1");
    assert_eq!(
        rc, 28,
        "github.com resolves but is not under *.github.com: must time out"
    );
    let (rc, _) = lab.curl_pinned("github.com", APEX_IP);
    assert_eq!(rc, 28, "the apex's address is never allowed");

    // DNS rules `*.github.com`, asked over TCP: allowed names answered, others REFUSED at once.
    lab.apply_yaml(
        "fqdn.yaml",
        &fqdn_policy(
            r#"[{matchPattern: "*.github.com"}]"#,
            r#"[{matchPattern: "*.github.com"}]"#,
        ),
    );
    for (name, ip) in [
        ("api.github.com", API_IP),
        ("support.github.com", SUPPORT_IP),
    ] {
        let (text, _) = lab.dig(&["+tcp"], name);
        assert!(
            text.contains("status: NOERROR") && text.contains(ip),
            "dig +tcp {name}: NOERROR with {ip}: {text}"
        );
    }
    for name in ["github.com", "example.org"] {
        let (text, took) = lab.dig(&["+tcp"], name);
        assert!(
            text.contains("status: REFUSED"),
            "dig +tcp {name} must be REFUSED by the proxy: {text}"
        );
        // Not a speed goal: a dropped query would take dig's whole +time=3 and print no status.
        assert!(
            took < Duration::from_secs(3),
            "REFUSED comes at once ({took:?})"
        );
    }
    let (text, _) = lab.dig(&[], "example.org");
    assert!(text.contains("status: REFUSED"), "over UDP too: {text}");
}

#[test]
fn cname_chain_is_learned_for_the_asked_name() {
    let _one = serial();
    let lab = FqdnLab::up("fqdn-cname", 60);
    lab.assert_tools(BOT, &["curl", "dig"]);
    lab.apply_yaml(
        "fqdn.yaml",
        &fqdn_policy(
            &format!(r#"[{{matchName: "{ALIAS}"}}]"#),
            r#"[{matchPattern: "*"}]"#,
        ),
    );
    let (rc, status) = lab.curl_pinned(ALIAS, API_IP);
    assert_eq!(
        rc, 28,
        "before any lookup the target's address is not allowed ({status})"
    );
    // The first try must work: the address behind the chain is in the maps before the answer.
    let (rc, status) = lab.curl_name(ALIAS, "2");
    assert_eq!(
        (rc, status.as_str()),
        (0, "200"),
        "curl {ALIAS} (CNAME → api.github.com) on the first try"
    );
    let cached = lab.cached(ALIAS);
    assert!(
        cached.contains(API_IP),
        "the chain's address is learned for the asked name {ALIAS}: {cached:?}"
    );
    let (text, _) = lab.dig(&[], ALIAS);
    assert!(
        text.contains("CNAME") && text.contains(API_IP),
        "the pod sees the whole chain: {text}"
    );
}

#[test]
fn ttl_expiry_closes_new_connections() {
    let _one = serial();
    let lab = FqdnLab::up("fqdn-ttl", 2);
    lab.assert_tools(BOT, &["curl", "dig"]);
    lab.apply_yaml(
        "fqdn.yaml",
        &fqdn_policy(
            r#"[{matchName: "api.github.com"}, {matchName: "support.github.com"}]"#,
            r#"[{matchPattern: "*"}]"#,
        ),
    );
    // support.github.com: only looked up; api.github.com: looked up and connected to.
    let (text, _) = lab.dig(&["+short"], "support.github.com");
    let answered = Instant::now();
    assert!(text.contains(SUPPORT_IP), "dig support.github.com: {text}");
    assert!(
        lab.cached("support.github.com").contains(SUPPORT_IP),
        "the answer is learned"
    );
    let (rc, status) = lab.curl_name("api.github.com", "2");
    assert_eq!(
        (rc, status.as_str()),
        (0, "200"),
        "after the answer the address is allowed"
    );
    let connected = Instant::now();

    // TTL 2 s, expiry checked every second: gone within 2 s + 5 s.
    poll(
        Duration::from_secs(7).saturating_sub(answered.elapsed()),
        || (!lab.cached("support.github.com").contains(SUPPORT_IP)).then_some(()),
    )
    .unwrap_or_else(|| {
        panic!(
            "support.github.com's address still cached {:?} after its 2 s TTL",
            answered.elapsed()
        )
    });
    let closed = poll(Duration::from_secs(3), || {
        (lab.curl_pinned("support.github.com", SUPPORT_IP).0 == 28).then_some(())
    });
    assert!(
        closed.is_some(),
        "a new connection to the expired address (no DNS query) must time out"
    );

    // An address in use is kept (as Cilium does) until its connection is gone: the datapath
    // holds a closed TCP flow 10 s, so 2 s TTL + 10 s + 5 s.
    poll(
        Duration::from_secs(17).saturating_sub(connected.elapsed()),
        || (!lab.cached("api.github.com").contains(API_IP)).then_some(()),
    )
    .unwrap_or_else(|| {
        panic!(
            "api.github.com's address still cached {:?} after its connection closed",
            connected.elapsed()
        )
    });
    let closed = poll(Duration::from_secs(3), || {
        (lab.curl_pinned("api.github.com", API_IP).0 == 28).then_some(())
    });
    assert!(
        closed.is_some(),
        "a new connection to api.github.com's expired address must time out"
    );
    // A new lookup allows it again.
    let (rc, status) = lab.curl_name("api.github.com", "2");
    assert_eq!(
        (rc, status.as_str()),
        (0, "200"),
        "a fresh answer allows the address again"
    );
}

#[test]
fn learned_addresses_survive_an_agent_restart() {
    let _one = serial();
    let mut lab = FqdnLab::up("fqdn-rst", 60);
    lab.assert_tools(BOT, &["curl"]);
    lab.apply_yaml(
        "fqdn.yaml",
        &fqdn_policy(
            r#"[{matchName: "api.github.com"}]"#,
            r#"[{matchPattern: "*"}]"#,
        ),
    );
    let (rc, status) = lab.curl_name("api.github.com", "2");
    assert_eq!(
        (rc, status.as_str()),
        (0, "200"),
        "curl api.github.com learns it"
    );
    assert!(
        lab.cached("api.github.com").contains(API_IP),
        "learned before the restart"
    );

    let log = lab.restart_agent();
    let text = read_log(&log);
    let first = text
        .lines()
        .find(|l| l.contains("policy applied"))
        .unwrap_or_else(|| panic!("no `policy applied` in the restarted agent's log:\n{text}"));
    assert!(
        first.contains(" deleted=0 "),
        "the restarted agent keeps the learned address's entries: {first}"
    );
    let cached = lab.cached("api.github.com");
    assert!(
        cached.contains(API_IP),
        "fqdn cache list still holds api.github.com after the restart: {cached:?}"
    );
    let (rc, status) = lab.curl_pinned("api.github.com", API_IP);
    assert_eq!(
        (rc, status.as_str()),
        (0, "200"),
        "a new connection to the learned address, without a new DNS query"
    );
    let (rc, _) = lab.curl_pinned("support.github.com", SUPPORT_IP);
    assert_eq!(rc, 28, "an address never learned still times out");
}

#[test]
fn fresh_names_connect_on_the_first_try() {
    let _one = serial();
    let lab = FqdnLab::up("fqdn-race", 60);
    lab.assert_tools(BOT, &["curl"]);
    lab.assert_tools("k8s-w1", &["curl"]);
    lab.apply_yaml(
        "fqdn.yaml",
        &fqdn_policy(
            r#"[{matchPattern: "*.example.test"}]"#,
            r#"[{matchPattern: "*"}]"#,
        ),
    );
    let (rc, _) = lab.curl_pinned("n0.example.test", &fresh_ip(0));
    assert_eq!(rc, 28, "no fresh address is allowed before its lookup");
    let drops_before = policy_drops(&lab.metrics());

    // Each name is resolved and connected to at once; a drop of the first SYN would show as a
    // policy drop even when curl's retransmit then succeeds.
    let script = format!(
        "for i in $(seq 0 {}); do curl -s -m 2 -o /dev/null -w '%{{http_code}}\\n' \
         http://n$i.example.test/; done",
        FRESH_NAMES - 1
    );
    let started = Instant::now();
    let out = lab.exec(BOT, &["sh", "-c", &script]);
    eprintln!("{FRESH_NAMES} fresh names in {:?}", started.elapsed());
    let codes: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    let failed: Vec<(usize, &String)> = codes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.as_str() != "200")
        .collect();
    assert_eq!(
        codes.len(),
        FRESH_NAMES,
        "one status per name: {}",
        describe(&out)
    );
    assert!(
        failed.is_empty(),
        "every fresh name answers 200 on the first try; failed (index, status): {failed:?}"
    );
    let drops_after = policy_drops(&lab.metrics());
    assert_eq!(
        drops_after, drops_before,
        "no packet of the {FRESH_NAMES} first connections was dropped by policy"
    );
    let cache = lab.cli_json(&["fqdn", "cache", "list"]);
    let learned = cache
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["name"]
                .as_str()
                .unwrap_or_default()
                .ends_with(".example.test.")
        })
        .count();
    assert_eq!(learned, FRESH_NAMES, "every fresh name is in the cache");
    // The first fresh address needs a new identity (a full apply); the others get the same one
    // and take the agent's ipcache-only path, still before their answer is released.
    let metrics = lab.metrics();
    assert!(
        learn_batches(&metrics, "ipcache") > 0.0,
        "fresh addresses with a known identity skip the full apply:\n{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("palisade_fqdn_learn_batches_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `palisade_fqdn_learn_batches_total{path="…"}`.
fn learn_batches(metrics: &str, path: &str) -> f64 {
    let prefix = format!("palisade_fqdn_learn_batches_total{{path=\"{path}\"}} ");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix)?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_fresh_agent_has_learned_nothing() {
    let _one = serial();
    // A first lab learns a name and goes away...
    {
        let lab = FqdnLab::up("fqdn-old", 60);
        lab.apply_yaml(
            "fqdn.yaml",
            &fqdn_policy(
                r#"[{matchName: "api.github.com"}]"#,
                r#"[{matchPattern: "*"}]"#,
            ),
        );
        let (rc, _) = lab.curl_name("api.github.com", "2");
        assert_eq!(rc, 0, "the first lab learns api.github.com");
    }
    // ...a new lab's agent must not start with what another agent learned.
    let lab = FqdnLab::up("fqdn-new", 60);
    let cache = lab.cli_json(&["fqdn", "cache", "list"]);
    assert_eq!(
        cache,
        Value::Array(Vec::new()),
        "a fresh lab's agent has learned nothing yet"
    );
    let status = lab.cli_json(&["status"]);
    assert_eq!(
        status["fqdn_names"].as_u64(),
        Some(0),
        "status counts no FQDN names: {status}"
    );
}
