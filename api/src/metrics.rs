//! Prometheus metrics of the agent, on their own registry, served as text on `/metrics`.
//!
//! The agent holds one `Arc<Metrics>` and updates the public fields directly
//! (`metrics.drop_count.with_label_values(&["Policy denied", "ingress"]).inc()`).

mod server;

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use self::server::{serve_metrics, MetricsServer, DEFAULT_METRICS_ADDR};

/// Every metric the agent exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `palisade_drop_count_total{reason,direction}`: packets dropped by the datapath.
    pub drop_count: IntCounterVec,
    /// `palisade_forward_count_total{direction}`: flows the datapath forwarded.
    pub forward_count: IntCounterVec,
    /// `palisade_http_requests_total{verdict,method}`: requests seen by the HTTP proxy.
    pub http_requests: IntCounterVec,
    /// `palisade_proxy_upstream_latency_seconds`: time to the upstream's response head.
    pub proxy_upstream_latency: Histogram,
    /// `palisade_dns_queries_total{verdict,rcode}`: queries seen by the DNS proxy.
    pub dns_queries: IntCounterVec,
    /// `palisade_dns_release_latency_seconds`: upstream answer → maps written → released.
    pub dns_release_latency: Histogram,
    /// `palisade_dns_learn_timeouts_total`: answers released before the agent confirmed.
    pub dns_learn_timeouts: IntCounter,
    /// `palisade_fqdn_learn_batches_total{path}`: batches of learned answers with something new,
    /// by how the agent applied them (`ipcache`: identities known, ipcache writes alone; `full`:
    /// a full policy apply).
    pub fqdn_learn_batches: IntCounterVec,
    /// `palisade_fqdn_cache_ips`: addresses currently learned from DNS.
    pub fqdn_cache_ips: IntGauge,
    /// `palisade_policy_resolution_seconds`: time to resolve policy for all endpoints.
    pub policy_resolution: Histogram,
    /// `palisade_policy_revision`: revision of the enforced policy repository.
    pub policy_revision: IntGauge,
    /// `palisade_policy_import_errors_total`: policy files or documents rejected.
    pub policy_import_errors: IntCounter,
    /// `palisade_bpf_map_entries{map}`: entries in each eBPF map.
    pub bpf_map_entries: IntGaugeVec,
    /// `palisade_bpf_map_capacity{map}`: max entries of each eBPF map.
    pub bpf_map_capacity: IntGaugeVec,
    /// `palisade_agent_rss_bytes`: resident memory of the agent, refreshed on every scrape.
    pub agent_rss_bytes: IntGauge,
}

impl Metrics {
    /// Creates every metric on a fresh registry.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let histogram = |name: &str, help: &str, start: f64, count: usize| {
            let opts =
                HistogramOpts::new(name, help).buckets(exponential_buckets(start, 2.0, count)?);
            let h = Histogram::with_opts(opts)?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        Ok(Metrics {
            drop_count: counter_vec(
                "palisade_drop_count_total",
                "Packets dropped by the datapath",
                &["reason", "direction"],
            )?,
            forward_count: counter_vec(
                "palisade_forward_count_total",
                "Flows forwarded by the datapath",
                &["direction"],
            )?,
            http_requests: counter_vec(
                "palisade_http_requests_total",
                "HTTP requests handled by the L7 proxy",
                &["verdict", "method"],
            )?,
            // 100 µs .. ~13 s
            proxy_upstream_latency: histogram(
                "palisade_proxy_upstream_latency_seconds",
                "Time from forwarding a request upstream to its response head",
                0.0001,
                18,
            )?,
            dns_queries: counter_vec(
                "palisade_dns_queries_total",
                "DNS queries handled by the DNS proxy",
                &["verdict", "rcode"],
            )?,
            // 25 µs .. ~3 s: this is the latency the DNS proxy adds to every allowed answer.
            dns_release_latency: histogram(
                "palisade_dns_release_latency_seconds",
                "Upstream DNS answer received to maps written and answer released",
                0.000025,
                18,
            )?,
            dns_learn_timeouts: counter(
                "palisade_dns_learn_timeouts_total",
                "DNS answers released after the learn timeout without agent confirmation",
            )?,
            fqdn_learn_batches: counter_vec(
                "palisade_fqdn_learn_batches_total",
                "Batches of learned DNS answers with new addresses, by how they were applied",
                &["path"],
            )?,
            fqdn_cache_ips: gauge("palisade_fqdn_cache_ips", "Addresses learned from DNS")?,
            // 10 µs .. ~10 s
            policy_resolution: histogram(
                "palisade_policy_resolution_seconds",
                "Time to resolve policy into map entries",
                0.00001,
                21,
            )?,
            policy_revision: gauge("palisade_policy_revision", "Enforced policy revision")?,
            policy_import_errors: counter(
                "palisade_policy_import_errors_total",
                "Policy documents rejected on import",
            )?,
            bpf_map_entries: gauge_vec(
                "palisade_bpf_map_entries",
                "Entries in each eBPF map",
                &["map"],
            )?,
            bpf_map_capacity: gauge_vec(
                "palisade_bpf_map_capacity",
                "Capacity (max entries) of each eBPF map",
                &["map"],
            )?,
            agent_rss_bytes: gauge("palisade_agent_rss_bytes", "Resident memory of the agent")?,
            registry,
        })
    }

    /// The registry, to register extra collectors on.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Refreshes scrape-time gauges and encodes everything in the Prometheus text format.
    pub fn render(&self) -> String {
        if let Some(rss) = read_rss_bytes() {
            self.agent_rss_bytes.set(rss);
        }
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Resident set size of this process.
///
/// `/proc/self/statm` counts pages and the page size needs `sysconf` (unsafe FFI, which this
/// crate forbids), so read the same counter in kB from `/proc/self/status`.
fn read_rss_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
