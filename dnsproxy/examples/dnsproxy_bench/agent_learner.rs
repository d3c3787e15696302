//! The agent's learn path (`agent/src/run/agent.rs`, `Agent::learn`) without the eBPF map writes,
//! which need the datapath: on the learn thread ([`GroupCommit`]), under one lock, check the answer against the
//! learned names, insert it into an [`FqdnCache`]; when it holds a new address, rebuild the
//! learned names and re-resolve the policy of the lab topology (`lab/topologies/scenarios.yaml`
//! with a `toFQDNs` + DNS-rule policy, as the agent's `apply` does) and ask a writer thread for
//! the cache file (write-behind, fsync, coalesced); a repeat only marks the cache dirty, written
//! once a second. Answers arriving while one applies are applied together, as in the agent. The
//! answer is released when `learn` returns, before the file is written.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use palisade_dnsproxy::{FqdnCache, FqdnLearner, GroupCommit, LearnError, LearnedAnswer};
use palisade_policy::cluster::LearnedNames;
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
    topology: Topology,
    policies: Vec<LoadedPolicy>,
    alloc: Allocator,
    dirty: bool,
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

    /// The agent's `apply` up to (not including) the map writes.
    fn resolve(&mut self) {
        let mut learned = LearnedNames::new();
        for e in self.cache.entries() {
            learned.entry(e.name).or_default().extend(e.ips);
        }
        self.learned = learned;
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
            topology,
            policies,
            alloc: Allocator::new(),
            dirty: false,
        }));
        state.lock().expect("fresh lock").resolve();
        let (save, rx) = sync_channel::<()>(1);
        let (writer, path) = (state.clone(), dir.join("fqdn-cache.json"));
        std::thread::spawn(move || {
            while rx.recv().is_ok() {
                let copy = lock(&writer).cache.clone();
                copy.save(&path).expect("writing the cache file");
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
    let mut changed = false;
    for u in &items {
        let new = s.is_new(&u.names, &u.addrs);
        let evicted = s
            .cache
            .insert(&u.endpoint, &u.names, &u.addrs, SystemTime::now());
        if new {
            for n in &u.names {
                let known = s.learned.entry(n.clone()).or_default();
                known.extend(u.addrs.iter().map(|(ip, _)| *ip));
            }
        }
        changed |= new || !evicted.is_empty();
    }
    if changed {
        s.resolve();
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
