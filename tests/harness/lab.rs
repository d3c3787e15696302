//! [`Lab`]: one scenario cluster for one test binary, removed on drop.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::paths;
use crate::tools::{self, describe, poll, run, stdout, strip_ansi, tail};

/// How long a policy change may take to be applied (the agent polls its inputs every second).
const APPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running scenario lab: namespaces `pe2e-<tag>-…`, the agent watching an empty policy
/// directory of its own. Dropping it runs `palisade lab down`, kills the processes the test
/// started and removes the policy directory.
pub struct Lab {
    bin: PathBuf,
    state_dir: PathBuf,
    prefix: String,
    /// The test's own files: `policies/` (watched by the agent) and logs of spawned processes.
    work: PathBuf,
    policies: PathBuf,
    /// Processes started by the test (listeners, a restarted agent): killed on drop.
    children: Mutex<Vec<Child>>,
}

impl Lab {
    /// Brings up the scenario cluster of `config/topology.yaml` under `tag` and waits until the
    /// agent has applied its first revision. Leftovers of an earlier crashed run with the same
    /// tag are removed first.
    ///
    /// `lab down` also removes namespaces by prefix, so no tag may be another tag followed by
    /// `-…` (`ops` would remove the namespaces of `ops-cli`); tags are unique across the suite.
    pub fn up(tag: &str) -> Lab {
        let bin = paths::palisade_bin();
        let work =
            std::env::temp_dir().join(format!("{}-{}", paths::lab_name(tag), std::process::id()));
        let lab = Lab {
            state_dir: PathBuf::from(format!("/run/palisade-{}", paths::lab_name(tag))),
            prefix: format!("{}-", paths::lab_name(tag)),
            policies: work.join("policies"),
            work,
            bin,
            children: Mutex::new(Vec::new()),
        };
        // The guard exists before anything is built, so a failing `up` is cleaned too.
        lab.down();
        std::fs::create_dir_all(&lab.policies)
            .unwrap_or_else(|e| panic!("creating {}: {e}", lab.policies.display()));
        let out = run(lab
            .palisade()
            .arg("lab")
            .arg("up")
            .arg(paths::topology())
            .arg("--policies")
            .arg(&lab.policies)
            .args(lab.lab_args()));
        assert!(
            out.status.success(),
            "lab up failed: {}\nagent log tail:\n{}",
            describe(&out),
            tail(&lab.agent_log(), 20)
        );
        let first = lab.wait_revision(0);
        eprintln!("[{tag}] lab up, agent at revision {first}");
        lab
    }

    /// The lab's state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The namespace prefix (`pe2e-<tag>-`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The directory the agent watches.
    pub fn policies_dir(&self) -> &Path {
        &self.policies
    }

    /// The agent's API socket.
    pub fn socket(&self) -> PathBuf {
        self.state_dir.join("palisade.sock")
    }

    /// The agent's config file as the lab wrote it.
    pub fn agent_config(&self) -> PathBuf {
        self.state_dir.join("palisade.yaml")
    }

    /// Pid of this lab's `palisade run` (`what` = "run") or `palisade proxy` (`what` =
    /// "proxy"), found by its command line (the lab's config path is unique to the lab).
    pub fn pid_of(&self, what: &str) -> i32 {
        let pattern = format!("{what} --config {}", self.agent_config().display());
        let out = Command::new("pgrep")
            .args(["-f", &pattern])
            .output()
            .expect("run pgrep");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_else(|| panic!("no process matches {pattern:?}"))
            .trim()
            .parse()
            .expect("pgrep prints a pid")
    }

    /// The `palisade` binary under test.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A `palisade` command.
    pub fn palisade(&self) -> Command {
        Command::new(&self.bin)
    }

    fn lab_args(&self) -> [String; 4] {
        [
            "--state-dir".into(),
            self.state_dir.to_string_lossy().into_owned(),
            "--prefix".into(),
            self.prefix.clone(),
        ]
    }

    /// The revision in the agent's ready file, if it has written one.
    pub fn revision(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.state_dir.join("agent.ready")).ok()?;
        // The agent writes the file in place: an empty read is a write in progress.
        text.trim().parse().ok()
    }

    /// Waits until the ready file holds a revision above `before`; returns it.
    pub fn wait_revision(&self, before: u64) -> u64 {
        poll(APPLY_TIMEOUT, || self.revision().filter(|r| *r > before)).unwrap_or_else(|| {
            panic!(
                "agent revision did not advance past {before} within {APPLY_TIMEOUT:?}; \
                 agent log tail:\n{}",
                tail(&self.agent_log(), 25)
            )
        })
    }

    /// The agent's log without colours.
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("agent.log"))
            .map(|t| strip_ansi(&t))
            .unwrap_or_default()
    }

    /// Waits until the agent log contains `needle` (after byte `from` of the log); returns the
    /// matching line.
    pub fn wait_log(&self, from: usize, needle: &str) -> String {
        poll(APPLY_TIMEOUT, || {
            let log = self.agent_log();
            log.get(from..)?
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            panic!(
                "agent log never showed {needle:?}; tail:\n{}",
                tail(&self.agent_log(), 25)
            )
        })
    }

    /// The agent's `policy applied` log line of `revision` as key → value (`written`,
    /// `deleted`, `touched`, …); panics when there is none.
    pub fn applied(&self, revision: u64) -> std::collections::BTreeMap<String, String> {
        let needle = format!("revision={revision} ");
        let log = self.agent_log();
        let line = log
            .lines()
            .rfind(|l| l.contains("policy applied") && l.contains(&needle))
            .unwrap_or_else(|| {
                panic!(
                    "no `policy applied` line for revision {revision}:\n{}",
                    tail(&log, 25)
                )
            });
        parse_fields(line)
    }

    /// Copies scenario policies (`config/policies/<rel>`) into the watched directory and waits
    /// until the agent has applied all of them.
    pub fn apply(&self, rels: &[&str]) {
        let before = self.revision().unwrap_or(0);
        let mut written = Vec::new();
        for rel in rels {
            let text = std::fs::read_to_string(paths::scenario_policy(rel))
                .unwrap_or_else(|e| panic!("reading scenario policy {rel}: {e}"));
            written.push(self.write_policy(&flat_name(rel), &text));
        }
        let now = self.wait_sources(before, &written, true);
        eprintln!("applied {rels:?} (revision {now})");
    }

    /// Writes a policy of the test's own as `name` and waits until it is applied.
    pub fn apply_yaml(&self, name: &str, yaml: &str) {
        let before = self.revision().unwrap_or(0);
        let path = self.write_policy(name, yaml);
        let now = self.wait_sources(before, &[path], true);
        eprintln!("applied own policy {name} (revision {now})");
    }

    /// Waits for a revision above `before` whose policies come (`present`) or no longer come
    /// from each of `files`, and which the ready file shows as applied. The agent polls its
    /// inputs, so one poll may see only some of several files written in a row.
    fn wait_sources(&self, before: u64, files: &[PathBuf], present: bool) -> u64 {
        let prefixes: Vec<String> = files.iter().map(|f| format!("{}:", f.display())).collect();
        poll(APPLY_TIMEOUT, || {
            let out = self.cli(&["policy", "get", "-o", "json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let rev = v["revision"].as_u64().filter(|r| *r > before)?;
            let sources: Vec<&str> = v["policies"]
                .as_array()?
                .iter()
                .filter_map(|p| p["source"].as_str())
                .collect();
            let done = prefixes
                .iter()
                .all(|f| sources.iter().any(|s| s.starts_with(f.as_str())) == present);
            (done && self.revision()? >= rev).then_some(rev)
        })
        .unwrap_or_else(|| {
            panic!(
                "agent did not apply {} {files:?} within {APPLY_TIMEOUT:?}; agent log tail:\n{}",
                if present {
                    "the addition of"
                } else {
                    "the removal of"
                },
                tail(&self.agent_log(), 25)
            )
        })
    }

    /// Writes `name` into the watched directory atomically (hidden temp file, then rename, as
    /// the agent skips dot files), without waiting.
    pub fn write_policy(&self, name: &str, text: &str) -> PathBuf {
        let path = self.policies.join(name);
        let tmp = self.policies.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
        std::fs::rename(&tmp, &path)
            .unwrap_or_else(|e| panic!("renaming to {}: {e}", path.display()));
        path
    }

    /// Removes a policy (a scenario path as given to [`Lab::apply`], or an own name) and waits
    /// until the agent has applied the removal.
    pub fn remove(&self, file: &str) {
        let before = self.revision().unwrap_or(0);
        let path = self.policies.join(flat_name(file));
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
        let now = self.wait_sources(before, &[path], false);
        eprintln!("removed {file} (revision {now})");
    }

    /// Runs `cmd` in a pod (`NS/POD` or `POD` of default), node or external host.
    pub fn exec(&self, member: &str, cmd: &[&str]) -> Output {
        run(self
            .palisade()
            .args(["lab", "exec"])
            .args(self.lab_args())
            .arg(member)
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null()))
    }

    /// Asserts that each tool is on the PATH inside `member`: a missing `curl` must fail the
    /// suite, not make every "times out" check pass.
    pub fn assert_tools(&self, member: &str, tools: &[&str]) {
        for tool in tools {
            let out = self.exec(member, &["sh", "-c", &format!("command -v {tool}")]);
            assert!(
                out.status.success(),
                "{tool} is not installed (checked in {member}): {}",
                describe(&out)
            );
        }
    }

    /// `curl -s -m 1 URL` from `member`: exit code and body.
    pub fn curl(&self, member: &str, url: &str) -> (i32, String) {
        let out = self.exec(member, &["curl", "-s", "-m", "1", url]);
        let code = tools::code(&out);
        eprintln!("curl {member} -> {url}: exit {code}");
        (code, stdout(&out))
    }

    /// `ping -c 1 -W 1 IP` from `member`: whether a reply came back.
    pub fn ping(&self, member: &str, ip: &str) -> bool {
        let out = self.exec(member, &["ping", "-n", "-c", "1", "-W", "1", ip]);
        let ok = out.status.success();
        eprintln!(
            "ping {member} -> {ip}: {}",
            if ok { "reply" } else { "no reply" }
        );
        ok
    }

    /// A live CLI command against this lab's agent (`--socket` appended).
    pub fn cli(&self, args: &[&str]) -> Output {
        run(self
            .palisade()
            .args(args)
            .arg("--socket")
            .arg(self.socket()))
    }

    /// A live CLI command with `-o json`, parsed; panics when it fails.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.cli(&all);
        assert!(out.status.success(), "palisade {all:?}: {}", describe(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("palisade {all:?} printed no JSON ({e}): {}", stdout(&out)))
    }

    /// Sets (`k=v`) or removes (`k-`) a pod label with `palisade lab label`.
    pub fn label(&self, pod: &str, kv: &str) {
        let out = run(self
            .palisade()
            .args(["lab", "label"])
            .args(self.lab_args())
            .args([pod, kv]));
        assert!(
            out.status.success(),
            "lab label {pod} {kv}: {}",
            describe(&out)
        );
    }

    /// The lab's state file (members, processes).
    pub fn state(&self) -> serde_json::Value {
        let path = self.state_dir.join("state.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
    }

    fn member(&self, name: &str) -> serde_json::Value {
        let state = self.state();
        let candidates = if name.contains('/') {
            vec![name.to_string()]
        } else {
            vec![format!("default/{name}"), name.to_string()]
        };
        candidates
            .iter()
            .find_map(|n| {
                state["members"]
                    .as_array()?
                    .iter()
                    .find(|m| m["name"] == n.as_str())
                    .cloned()
            })
            .unwrap_or_else(|| panic!("no lab member {name}"))
    }

    /// The first IPv4 address of a member.
    pub fn ip(&self, name: &str) -> Ipv4Addr {
        self.member(name)["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|ip| ip.as_str()?.parse().ok())
            .unwrap_or_else(|| panic!("lab member {name} has no IPv4 address"))
    }

    /// The network namespace of a member.
    pub fn netns(&self, name: &str) -> String {
        self.member(name)["netns"]
            .as_str()
            .unwrap_or_else(|| panic!("lab member {name} has no netns"))
            .to_string()
    }

    /// Starts `cmd` in the network namespace of `member` in the background (output to
    /// [`Lab::log_path`]`(log)`); it is killed when the lab drops.
    pub fn spawn(&self, member: &str, log: &str, cmd: &[&str]) -> u32 {
        let path = self.log_path(log);
        let file = std::fs::File::create(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        let err = file.try_clone().expect("log file handle");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns(member)))
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?} in {member}: {e}"));
        let pid = child.id();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        pid
    }

    /// Where the log `name` of a spawned process goes (the test's own directory: `lab down`
    /// removes only the files the lab made).
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// Kills (SIGKILL) and reaps a process started with [`Lab::spawn`].
    pub fn kill_spawned(&self, pid: u32) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = children.iter().position(|c| c.id() == pid) {
            let mut child = children.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn down(&self) {
        let out = run(self.palisade().args(["lab", "down"]).args(self.lab_args()));
        if !out.status.success() {
            eprintln!("lab down {}: {}", self.prefix, describe(&out));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "agent log tail ({}):\n{}",
                self.prefix,
                tail(&self.agent_log(), 30)
            );
        }
        for mut child in self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.down();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// The file name a scenario policy gets in the watched directory: its path with `/` → `--`,
/// because two scenarios ship files with the same name (`s6-fqdn/fqdn.yaml`, `s7-dns/fqdn.yaml`).
fn flat_name(rel: &str) -> String {
    rel.replace('/', "--")
}

/// `key=value` fields of a tracing line; a `{…}` value may hold spaces.
fn parse_fields(line: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        let after = &rest[eq + 1..];
        let end = if after.starts_with('{') {
            after.find('}').map_or(after.len(), |i| i + 1)
        } else {
            after.find(' ').unwrap_or(after.len())
        };
        out.insert(key, after[..end].to_string());
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_an_applied_line() {
        let line = "2026-11-28T07:56:02Z  INFO policy applied revision=3 endpoints=12 written=2 \
                    deleted=0 touched={\"default/a\", \"default/b\"} ipcache_writes=1";
        let f = parse_fields(line);
        assert_eq!(f["revision"], "3");
        assert_eq!(f["written"], "2");
        assert_eq!(f["touched"], "{\"default/a\", \"default/b\"}");
        assert_eq!(f["ipcache_writes"], "1");
    }
}
