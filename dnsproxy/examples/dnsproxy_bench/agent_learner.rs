//! The agent's learn path (`agent/src/run/agent.rs`, `Agent::learn`) without the eBPF map writes,
//! which need the datapath: on the learn thread ([`GroupCommit`]), under one lock, check the answer against the
//! learned names, insert it into an [`FqdnCache`]; when it holds a new address, rebuild the
//! learned names; when every new address gets an FQDN identity already in use, only put it in the
//! ipcache (the agent's `learn_fast`; the agent also writes that one map entry and rebuilds the
//! proxies' snapshots), else re-resolve the policy of the lab topology
//! (`lab/topologies/scenarios.yaml` with a `toFQDNs` + DNS-rule policy, as the agent's `apply`
//! does); then ask a writer thread for
//! the cache file (write-behind, fsync, at most once a second); a repeat only marks the cache dirty, written
//! once a second. Answers arriving while one applies are applied together, as in the agent. The
//! answer is released when `learn` returns, before the file is written.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use palisade_dnsproxy::{FqdnCache, FqdnLearner, GroupCommit, LearnError, LearnedAnswer};
use palisade_policy::cluster::{fqdn_identity_labels, fqdn_label_key, LearnedNames};
use palisade_policy::fqdn::FqdnMatcher;
use palisade_policy::identity::Allocator;
use palisade_policy::load::{parse_str, LoadedPolicy};
use palisade_policy::resolve::ResolveOptions;
use palisade_policy::{Engine, Topology};

/// The bench pod's policy: the names `pattern` selects, DNS to kube-dns inspected.
fn policy_yaml(pattern: &str) -> String {
    format!(
        r#"apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata: {{name: fqdn}}
spec:
  endpointSelector: {{matchLabels: {{org: empire, class: mediabot}}}}
  egress:
  - toFQDNs: [{{matchPattern: "{pattern}"}}]
  - toEndpoints:
    - matchLabels: {{"k8s:io.kubernetes.pod.namespace": kube-system, "k8s:k8s-app": kube-dns}}
    toPorts:
    - ports: [{{port: "53", protocol: ANY}}]
      rules:
        dns: [{{matchPattern: "{pattern}"}}]
"#
    )
}

struct State {
    cache: FqdnCache,
    learned: LearnedNames,
    names_by_ip: HashMap<IpAddr, BTreeSet<String>>,
    topology: Topology,
    policies: Vec<LoadedPolicy>,
    alloc: Allocator,
    engine: Option<Engine>,
    matchers: Vec<FqdnMatcher>,
    dirty: bool,
    /// Batches with something new, and those that needed a full resolve.
    batches: (u64, u64),
}

impl State {
    fn is_new(&self, names: &[String], addrs: &[(std::net::IpAddr, u32)]) -> bool {
        names.iter().any(|n| {
            let known = self.learned.get(n);
            addrs
                .iter()
                .any(|(ip, _)| !known.is_some_and(|s| s.contains(ip)))
        })
    }

    fn add_learned(&mut self, name: &str, ip: IpAddr) {
        self.learned.entry(name.to_string()).or_default().insert(ip);
        let names = self.names_by_ip.entry(ip).or_default();
        names.insert(name.to_string());
    }

    /// The agent's `apply` up to (not including) the map writes.
    fn resolve(&mut self) {
        self.learned = LearnedNames::new();
        self.names_by_ip.clear();
        for e in self.cache.entries() {
            for ip in e.ips {
                self.add_learned(&e.name, ip);
            }
        }
        let engine = Engine::new(
            self.topology.clone(),
            self.policies.clone(),
            &self.learned,
            self.alloc.clone(),
            ResolveOptions::default(),
        );
        let resolved = engine.local_policies();
        assert!(
            !resolved.is_empty(),
            "the bench topology has local endpoints"
        );
        self.alloc = engine.alloc.clone();
        self.matchers = engine
            .compiled
            .inputs
            .fqdn_selectors
            .iter()
            .filter_map(|s| s.compile().ok())
            .collect();
        self.engine = Some(engine);
    }

    /// The agent's `learn_fast` without the map write and snapshots: true when every address
    /// in `ips` keeps its identity or gets one already in use.
    fn learn_fast(&mut self, ips: &BTreeSet<IpAddr>) -> bool {
        let Some(engine) = self.engine.as_mut() else {
            return false;
        };
        let matchers = &self.matchers;
        let mut writes = Vec::new();
        for ip in ips {
            let names = self.names_by_ip.get(ip);
            let keys: BTreeSet<String> = matchers
                .iter()
                .filter(|m| names.is_some_and(|names| names.iter().any(|n| m.matches(n))))
                .map(|m| fqdn_label_key(m.selector()))
                .collect();
            let want = if keys.is_empty() {
                None
            } else {
                let labels = fqdn_identity_labels(*ip, &keys, &engine.compiled.inputs.cidrs);
                match self.alloc.find(&labels) {
                    Some(id) if engine.state.in_use.contains(&id) => Some(id),
                    _ => return false,
                }
            };
            let net = IpNet::from(*ip);
            let have = engine.state.ipcache.get(&net).copied();
            match (want, have) {
                _ if want == have => {}
                (Some(id), None) => writes.push((net, id)),
                _ => return false,
            }
        }
        engine.state.ipcache.extend(writes);
        true
    }
}

/// See the file doc.
pub struct AgentLikeLearner {
    state: Arc<Mutex<State>>,
    save: SyncSender<()>,
    queue: GroupCommit<LearnedAnswer, ()>,
}

impl AgentLikeLearner {
    /// Loads the topology from `topology`, writes the cache file to `dir`.
    pub fn new(topology: &Path, pattern: &str, dir: &Path) -> Arc<Self> {
        let topology = Topology::load(topology).expect("bench topology");
        let policies = parse_str(&policy_yaml(pattern), Path::new("bench-policy.yaml"))
            .expect("bench policy")
            .policies;
        let state = Arc::new(Mutex::new(State {
            cache: FqdnCache::new(Duration::ZERO),
            learned: LearnedNames::new(),
            names_by_ip: HashMap::new(),
            topology,
            policies,
            alloc: Allocator::new(),
            engine: None,
            matchers: Vec::new(),
            dirty: false,
            batches: (0, 0),
        }));
        state.lock().expect("fresh lock").resolve();
        let (save, rx) = sync_channel::<()>(1);
        let (writer, path) = (state.clone(), dir.join("fqdn-cache.json"));
        std::thread::spawn(move || {
            // As the agent's fqdn_persist: at most one write a second, requests coalesced.
            while rx.recv().is_ok() {
                let started = std::time::Instant::now();
                let copy = lock(&writer).cache.clone();
                copy.save(&path).expect("writing the cache file");
                let pause = Duration::from_secs(1).saturating_sub(started.elapsed());
                std::thread::sleep(pause);
            }
        });
        let (applier, saver) = (state.clone(), save.clone());
        let queue = GroupCommit::spawn("bench-learn", move |items| {
            learn_all(&mut lock(&applier), items, &saver)
        });
        let learner = Arc::new(AgentLikeLearner { state, save, queue });
        let ticker = learner.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if std::mem::take(&mut lock(&ticker.state).dirty) {
                    let _ = ticker.save.try_send(());
                }
            }
        });
        learner
    }
}

impl AgentLikeLearner {
    /// `learner: N calls, B batches with new addresses, F of them with a full resolve`.
    pub fn report(&self, calls: usize) -> String {
        let (b, f) = lock(&self.state).batches;
        format!("learner: {calls} calls, {b} batches with new addresses, {f} of them re-resolved")
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FqdnLearner for AgentLikeLearner {
    fn learn(
        &self,
        update: LearnedAnswer,
    ) -> Pin<Box<dyn Future<Output = Result<(), LearnError>> + Send + '_>> {
        Box::pin(async move {
            self.queue
                .submit(update)
                .await
                .ok_or_else(|| LearnError::Failed("the learn thread is gone".into()))
        })
    }
}

/// The agent's `learn_all`: insert every answer, one resolve when something was new.
fn learn_all(s: &mut State, items: Vec<LearnedAnswer>, save: &SyncSender<()>) {
    let (mut changed, mut evictions) = (false, false);
    let mut new_ips = BTreeSet::new();
    for u in &items {
        let new = s.is_new(&u.names, &u.addrs);
        let evicted = s
            .cache
            .insert(&u.endpoint, &u.names, &u.addrs, SystemTime::now());
        if new {
            for n in &u.names {
                for (ip, _) in &u.addrs {
                    s.add_learned(n, *ip);
                }
            }
            new_ips.extend(u.addrs.iter().map(|(ip, _)| *ip));
        }
        evictions |= !evicted.is_empty();
        changed |= new || !evicted.is_empty();
    }
    if changed {
        s.batches.0 += 1;
        if evictions || !s.learn_fast(&new_ips) {
            s.batches.1 += 1;
            s.resolve();
        }
        s.dirty = false;
        let _ = save.try_send(());
    } else {
        s.dirty = true;
    }
}

/// Where the bench finds the lab topology (the repository root is the working directory).
pub fn default_topology() -> PathBuf {
    PathBuf::from("lab/topologies/scenarios.yaml")
}
