//! The agent's state and its one operation, `apply`: inputs → identities → resolution → kernel
//! maps → proxy snapshots. Everything that changes policy (a file edit, a relabel, a learned DNS
//! answer, an expired one) goes through `apply`, one revision at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use palisade_api::{FlowEvent, Metrics};
use palisade_bpf::{Conntrack, Datapath};
use palisade_dnsproxy::{DnsSnapshot, FqdnCache, GroupCommit};
use palisade_policy::cluster::LearnedNames;
use palisade_policy::fqdn::normalize_name;
use palisade_policy::identity::Allocator;
use palisade_policy::resolve::{EndpointPolicy, ResolveOptions};
use palisade_policy::Engine;
use palisade_proxy::PolicySnapshot;
use tokio::sync::{broadcast, watch};

use super::datapath_sync::{self, Applied, DesiredEndpoint, ProxyPorts};
use super::fqdn_persist::FqdnWriter;
use super::inputs::Inputs;
use super::learn_fast::{self, Fast};
use super::secrets::Secrets;
use super::snapshots;
use crate::config::Config;

/// Shared by every task of the agent.
pub struct Agent {
    /// Configuration.
    pub config: Config,
    /// Mutable state; every change happens under this lock.
    pub inner: Mutex<Inner>,
    /// Flow events for `monitor`.
    pub flows: broadcast::Sender<FlowEvent>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Snapshots for the HTTP proxy.
    pub http_snapshots: watch::Sender<Arc<PolicySnapshot>>,
    /// Snapshots for the DNS proxy.
    pub dns_snapshots: watch::Sender<Arc<DnsSnapshot>>,
    /// Proxy ports used in redirect entries.
    pub ports: ProxyPorts,
    /// True when the proxies run as their own process: a revision is ready once they ACK it.
    pub external_proxy: bool,
    /// Writes the FQDN cache file off the learn path.
    pub fqdn_writer: FqdnWriter,
    /// The conntrack map, walked by GC and expiry without the state lock.
    conntrack: Conntrack,
    /// Learned answers waiting for the state lock, applied in batches.
    learn_queue: GroupCommit<LearnItem, Result<(), String>>,
}

/// One learned answer: endpoint, CNAME chain, addresses with TTLs.
type LearnItem = (String, Vec<String>, Vec<(std::net::IpAddr, u32)>);

/// The state behind the lock.
pub struct Inner {
    /// Files on disk with their last good contents.
    pub inputs: Inputs,
    /// Identity numbers, stable for the agent's lifetime.
    pub alloc: Allocator,
    /// The revision in force.
    pub engine: Option<Engine>,
    /// Resolved local endpoint policies of the revision in force.
    pub resolved: BTreeMap<String, Arc<EndpointPolicy>>,
    /// Revision number.
    pub revision: u64,
    /// The kernel datapath.
    pub datapath: Datapath,
    /// What the kernel holds.
    pub applied: Applied,
    /// Datapath endpoint ids by endpoint name (persisted).
    pub endpoint_ids: BTreeMap<String, u16>,
    /// Learned DNS answers per endpoint (persisted).
    pub fqdn: FqdnCache,
    /// Last apply error.
    pub last_error: Option<String>,
    /// Learned-name TTL refreshes not yet handed to the writer.
    pub fqdn_dirty: bool,
    /// Names → addresses of `fqdn`, kept in step with it so a DNS answer costs a lookup, not
    /// a walk over the whole cache.
    pub learned: LearnedNames,
    /// `learned` the other way round: address → names (for `learn_fast`).
    pub names_by_ip: std::collections::HashMap<std::net::IpAddr, BTreeSet<String>>,
    /// The revision's compiled `toFQDNs` selectors (for `learn_fast`).
    pub fqdn_matchers: Arc<Vec<palisade_policy::fqdn::FqdnMatcher>>,
    /// Endpoint name by address, for naming flows.
    pub endpoint_by_ip: std::collections::HashMap<std::net::IpAddr, String>,
}

impl Inner {
    /// Names → addresses learned by every endpoint.
    pub fn learned(&self) -> LearnedNames {
        self.learned.clone()
    }

    /// Rebuilds `learned` from the cache after the cache changed.
    fn refresh_learned(&mut self) {
        self.learned = LearnedNames::new();
        self.names_by_ip.clear();
        for e in self.fqdn.entries() {
            let name = normalize_name(&e.name);
            for ip in e.ips {
                self.add_learned(&name, ip);
            }
        }
    }

    /// Records that `name` (normalized) resolved to `ip`.
    fn add_learned(&mut self, name: &str, ip: std::net::IpAddr) {
        self.learned.entry(name.to_string()).or_default().insert(ip);
        self.names_by_ip
            .entry(ip)
            .or_default()
            .insert(name.to_string());
    }

    /// True when an answer carries an address not yet learned for one of its names.
    fn is_new(&self, names: &[String], addrs: &[(std::net::IpAddr, u32)]) -> bool {
        names.iter().any(|n| {
            let known = self.learned.get(&normalize_name(n));
            addrs
                .iter()
                .any(|(ip, _)| !known.is_some_and(|s| s.contains(ip)))
        })
    }
}

fn ids_path(config: &Config) -> PathBuf {
    config.state_dir.join("endpoint-ids.json")
}

/// Path of the persisted FQDN cache.
pub fn fqdn_path(config: &Config) -> PathBuf {
    config.state_dir.join("fqdn-cache.json")
}

impl Agent {
    /// Opens the datapath (adopting pinned maps) and restores persisted state.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Arc<Agent>> {
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("creating {}", config.state_dir.display()))?;
        ensure_bpffs(&config.bpf_pin_dir)?;
        let datapath = Datapath::load(&config.bpf_pin_dir).context("loading the eBPF datapath")?;
        palisade_bpf::install_proxy_routing().context("installing proxy policy routing")?;
        let mut applied = Applied::default();
        // Adopt what a previous agent left in the kernel: nothing is flushed and re-added.
        for (net, id) in datapath.ipcache_entries().unwrap_or_default() {
            applied.ipcache.insert(net, id);
        }
        let endpoint_ids = std::fs::read(ids_path(&config))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let min_ttl = std::time::Duration::from_secs(config.dns_proxy.min_ttl.into());
        let fqdn = FqdnCache::load(&fqdn_path(&config))
            .unwrap_or_else(|_| FqdnCache::with_limit(min_ttl, config.dns_proxy.max_ips_per_name));
        let mut inner = Inner {
            inputs: Inputs::new(
                config.topology.clone(),
                config.policies.clone(),
                Secrets::new(config.tls.clone(), config.source.clone()),
            ),
            alloc: Allocator::new(),
            engine: None,
            resolved: BTreeMap::new(),
            revision: 0,
            datapath,
            applied,
            endpoint_ids,
            fqdn,
            last_error: None,
            endpoint_by_ip: Default::default(),
            fqdn_dirty: false,
            learned: LearnedNames::new(),
            names_by_ip: Default::default(),
            fqdn_matchers: Arc::default(),
        };
        inner.refresh_learned();
        let conntrack = inner.datapath.conntrack();
        let external_proxy = config.proxy.mode == crate::config::ProxyMode::External;
        let ports = ProxyPorts {
            http: config.proxy.http_port,
            dns: config.dns_proxy.port,
        };
        Ok(Arc::new_cyclic(|agent| Agent {
            config,
            inner: Mutex::new(inner),
            flows: broadcast::channel(4096).0,
            metrics,
            http_snapshots: watch::channel(Arc::new(PolicySnapshot::default())).0,
            dns_snapshots: watch::channel(Arc::new(DnsSnapshot::default())).0,
            ports,
            external_proxy,
            fqdn_writer: FqdnWriter::spawn(agent.clone()),
            conntrack,
            learn_queue: GroupCommit::spawn("palisade-learn", {
                let agent = agent.clone();
                move |items| match agent.upgrade() {
                    Some(a) => a.learn_batch(items),
                    None => Err("the agent is stopping".into()),
                }
            }),
        }))
    }

    /// Locks the state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads inputs; applies a new revision when they changed (or when `force`).
    pub fn reload(&self, force: bool) {
        let mut inner = self.lock();
        let changed = inner.inputs.reload();
        for e in inner.inputs.errors.clone() {
            tracing::error!("invalid input, last good version stays in force: {e}");
            self.metrics.policy_import_errors.inc();
            inner.last_error = Some(e);
        }
        for w in inner.inputs.warnings.clone() {
            tracing::warn!("{w}");
        }
        if changed || force || inner.engine.is_none() {
            if let Err(e) = self.apply(&mut inner) {
                tracing::error!("policy not applied, previous revision stays in force: {e:#}");
                inner.last_error = Some(format!("{e:#}"));
            }
        }
    }

    /// Computes and applies a revision from the inputs and learned names in force.
    pub fn apply(&self, inner: &mut Inner) -> Result<()> {
        let Some(topology) = inner.inputs.topology().cloned() else {
            anyhow::bail!("no valid topology yet");
        };
        let started = Instant::now();
        let learned = inner.learned();
        let opts = ResolveOptions {
            allow_localhost: self.config.allow_localhost,
        };
        let engine = Engine::new(
            topology,
            inner.inputs.policies(),
            &learned,
            inner.alloc.clone(),
            opts,
        );
        let resolved = engine.local_policies();
        self.metrics
            .policy_resolution
            .observe(started.elapsed().as_secs_f64());

        let mut desired = BTreeMap::new();
        for (name, policy) in &resolved {
            let ep = &engine.state.endpoints[name];
            let Some(ifname) = ep.host_interface.clone() else {
                tracing::debug!("{name}: no host interface in the topology, not enforced here");
                continue;
            };
            let id = endpoint_id(&mut inner.endpoint_ids, name);
            desired.insert(
                name.clone(),
                DesiredEndpoint {
                    id,
                    ifname,
                    ips: ep.ips.clone(),
                    identity: ep.identity,
                    ingress: policy.ingress.enforced,
                    egress: policy.egress.enforced,
                    entries: datapath_sync::endpoint_entries(policy, self.ports),
                },
            );
        }
        let external = engine
            .topology
            .local_node()
            .and_then(|n| n.external_interface.clone());
        let stats = datapath_sync::apply(
            &mut inner.datapath,
            &mut inner.applied,
            &engine.state.ipcache,
            &desired,
            external.as_deref(),
        )?;
        inner.revision += 1;
        let revision = inner.revision;
        tracing::info!(
            revision,
            endpoints = desired.len(),
            written = stats.written,
            deleted = stats.deleted,
            touched = ?stats.endpoints_touched,
            ipcache_writes = stats.ipcache_writes,
            apply_ms = started.elapsed().as_secs_f64() * 1000.0,
            "policy applied"
        );
        self.http_snapshots
            .send_replace(Arc::new(snapshots::http_snapshot(
                revision,
                &engine.state,
                &resolved,
                &inner.inputs.secrets,
            )));
        self.dns_snapshots
            .send_replace(Arc::new(snapshots::dns_snapshot(
                revision,
                &engine.state,
                &resolved,
            )));
        self.metrics.policy_revision.set(revision as i64);
        if let Ok(len) = inner.datapath.policy_map_len() {
            let capacity = palisade_bpf::policy_map_capacity();
            if len * 10 > capacity * 9 {
                tracing::warn!(
                    len,
                    capacity,
                    "policy map is over 90% full; a revision that does not fit will be refused"
                );
            }
            self.metrics
                .bpf_map_entries
                .with_label_values(&["policy"])
                .set(len as i64);
        }
        self.metrics
            .bpf_map_capacity
            .with_label_values(&["policy"])
            .set(palisade_bpf::policy_map_capacity() as i64);
        let ids: BTreeSet<u32> = engine.state.in_use.clone();
        inner.alloc = engine.alloc.clone();
        inner.alloc.retain(&ids);
        inner.resolved = resolved;
        inner.endpoint_by_ip = engine
            .state
            .endpoints
            .values()
            .flat_map(|e| e.ips.iter().map(|ip| (*ip, e.name.clone())))
            .collect();
        inner.fqdn_matchers = learn_fast::compile_matchers(&engine);
        inner.engine = Some(engine);
        inner.last_error = None;
        persist(&ids_path(&self.config), &inner.endpoint_ids);
        self.revision_written(revision);
        Ok(())
    }

    /// The maps hold `revision`; with embedded proxies it is ready everywhere.
    pub(super) fn revision_written(&self, revision: u64) {
        if !self.external_proxy {
            self.write_ready(revision);
        }
    }

    /// The proxy process enforces `revision`: the revision is now ready everywhere.
    pub fn proxy_applied(&self, revision: u64) {
        if revision > 0 && revision == self.lock().revision {
            self.write_ready(revision);
        }
    }

    fn write_ready(&self, revision: u64) {
        if let Some(ready) = &self.config.ready_file {
            let tmp = ready.with_extension("tmp");
            if std::fs::write(&tmp, format!("{revision}\n")).is_ok() {
                let _ = std::fs::rename(&tmp, ready);
            }
        }
    }

    /// Stores learned addresses and applies them; returns once the maps are written. Answers
    /// that arrive while an apply runs are applied together by the next one (`GroupCommit`, on a
    /// thread of its own). The cache file is written behind (see `fqdn_persist`): the answer need
    /// not wait for the disk.
    pub async fn learn(
        &self,
        endpoint: &str,
        names: &[String],
        addrs: &[(std::net::IpAddr, u32)],
    ) -> Result<()> {
        let item = (endpoint.to_string(), names.to_vec(), addrs.to_vec());
        match self.learn_queue.submit(item).await {
            Some(r) => r.map_err(anyhow::Error::msg),
            None => anyhow::bail!("the learn thread is not running"),
        }
    }

    /// Applies a batch of learned answers (on the learn thread).
    fn learn_batch(&self, items: Vec<LearnItem>) -> Result<(), String> {
        let mut inner = self.lock();
        self.learn_all(&mut inner, items)
    }

    fn learn_all(&self, inner: &mut Inner, items: Vec<LearnItem>) -> Result<(), String> {
        let (mut changed, mut evictions) = (false, false);
        let mut new_ips = std::collections::BTreeSet::new();
        for (endpoint, names, addrs) in &items {
            let new = inner.is_new(names, addrs);
            let evicted = inner.fqdn.insert(endpoint, names, addrs, SystemTime::now());
            if !evicted.is_empty() {
                inner.refresh_learned();
            } else if new {
                // What `insert` just added, without a walk over the cache: every name of the
                // chain gets every address.
                for n in names {
                    let n = normalize_name(n);
                    for (ip, _) in addrs {
                        inner.add_learned(&n, *ip);
                    }
                }
            }
            if new {
                new_ips.extend(addrs.iter().map(|(ip, _)| *ip));
            }
            evictions |= !evicted.is_empty();
            changed |= new || !evicted.is_empty();
        }
        if !changed {
            // A TTL refresh of known addresses: persisted by the next housekeeping tick, not
            // with a write per answer.
            inner.fqdn_dirty = true;
            return Ok(());
        }
        let n = inner.names_by_ip.len();
        self.metrics.fqdn_cache_ips.set(n as i64);
        let fast = if evictions {
            Fast::NotApplicable
        } else {
            self.learn_fast(inner, &new_ips)
                .map_err(|e| format!("{e:#}"))?
        };
        let path = match fast {
            Fast::Done => "ipcache",
            Fast::NotApplicable => "full",
        };
        self.metrics
            .fqdn_learn_batches
            .with_label_values(&[path])
            .inc();
        if let Fast::NotApplicable = fast {
            self.apply(inner).map_err(|e| format!("{e:#}"))?;
        }
        // New addresses go to disk right away (a restart soon after keeps them), but not
        // before the answers are released.
        inner.fqdn_dirty = false;
        self.fqdn_writer.request();
        Ok(())
    }

    /// Persists TTL refreshes that `learn` left for later (off this thread).
    pub fn save_fqdns_if_dirty(&self) {
        let dirty = std::mem::take(&mut self.lock().fqdn_dirty);
        if dirty {
            self.fqdn_writer.request();
        }
    }

    /// Writes the cache now (at shutdown).
    pub fn save_fqdns_now(&self) {
        self.fqdn_writer.save_now(self);
    }

    /// Removes expired learned addresses that no open connection uses. The conntrack walk runs
    /// without the state lock, so a DNS answer waiting for `learn` is never held up by it.
    pub fn expire_fqdns(&self) {
        let now = SystemTime::now();
        if !self.lock().fqdn.has_expired(now) {
            return;
        }
        let in_use = self.conntrack.live_addrs().unwrap_or_else(|e| {
            tracing::warn!("reading conntrack before FQDN expiry: {e}");
            Default::default()
        });
        let mut inner = self.lock();
        let expired = inner.fqdn.expired(now);
        let mut removed = 0;
        for (endpoint, name, ip) in expired {
            // Cilium keeps an address while a connection uses it.
            if in_use.contains(&ip) {
                inner.fqdn.insert(&endpoint, &[name], &[(ip, 1)], now);
            } else {
                removed += 1;
            }
        }
        // Expired addresses kept for open connections were re-inserted above.
        inner.refresh_learned();
        if removed > 0 {
            if let Err(e) = self.apply(&mut inner) {
                tracing::error!("applying FQDN expiry: {e:#}");
            }
        }
        let n = inner.names_by_ip.len();
        drop(inner);
        self.metrics.fqdn_cache_ips.set(n as i64);
        self.fqdn_writer.request();
    }

    /// Removes expired conntrack entries, without the state lock.
    pub fn conntrack_gc(&self) {
        if let Err(e) = self.conntrack.gc() {
            tracing::debug!("conntrack GC: {e}");
        }
    }
}

/// Mounts bpffs at /sys/fs/bpf when the pin directory lives there and nothing is mounted (fresh
/// machines often lack it); pins on plain sysfs would fail.
fn ensure_bpffs(pin_dir: &std::path::Path) -> Result<()> {
    let root = std::path::Path::new("/sys/fs/bpf");
    if !pin_dir.starts_with(root) {
        return Ok(());
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts.lines().any(|l| {
        l.split_whitespace().nth(1) == Some("/sys/fs/bpf")
            && l.split_whitespace().nth(2) == Some("bpf")
    }) {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()
        .context("running mount")?;
    anyhow::ensure!(status.success(), "mounting bpffs at /sys/fs/bpf failed");
    tracing::info!("mounted bpffs at /sys/fs/bpf");
    Ok(())
}

fn endpoint_id(ids: &mut BTreeMap<String, u16>, name: &str) -> u16 {
    if let Some(id) = ids.get(name) {
        return *id;
    }
    let used: BTreeSet<u16> = ids.values().copied().collect();
    let id = (1..u16::MAX)
        .find(|i| !used.contains(i))
        .unwrap_or(u16::MAX);
    ids.insert(name.to_string(), id);
    id
}

fn persist<T: serde::Serialize>(path: &std::path::Path, value: &T) {
    let tmp = path.with_extension("tmp");
    if let Ok(bytes) = serde_json::to_vec_pretty(value) {
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}
