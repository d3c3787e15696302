//! `palisade.yaml`: where the topology and policies are, where the agent pins, listens and
//! reports readiness. Relative paths are relative to the config file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

/// The agent's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Topology file (nodes, pods, services, externals).
    pub topology: PathBuf,
    /// Policy files or directories, watched for changes.
    #[serde(deserialize_with = "one_or_many")]
    pub policies: Vec<PathBuf>,
    /// Written once the first policy is applied, then rewritten with every revision.
    #[serde(default)]
    pub ready_file: Option<PathBuf>,
    /// Unix socket of the local API.
    #[serde(default = "default_socket")]
    pub api_socket: PathBuf,
    /// bpffs directory for pinned maps and links.
    #[serde(default = "default_pin_dir")]
    pub bpf_pin_dir: PathBuf,
    /// Prometheus endpoint; empty string disables it.
    #[serde(default = "default_metrics")]
    pub metrics_address: String,
    /// Log filter (`info`, `debug`, `palisade=debug`); `RUST_LOG` wins.
    #[serde(default = "default_log")]
    pub log_level: String,
    /// Let the node reach local pods whatever their ingress policy (Cilium's allow-localhost).
    #[serde(default = "yes")]
    pub allow_localhost: bool,
    /// The HTTP proxy.
    #[serde(default)]
    pub proxy: ProxySection,
    /// The DNS proxy.
    #[serde(default)]
    pub dns_proxy: DnsSection,
    /// Where learned FQDN addresses are persisted.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// TLS secrets referenced by `terminatingTLS` / `originatingTLS`.
    #[serde(default)]
    pub tls: TlsSection,
    /// The file this was read from, for error messages.
    #[serde(skip)]
    pub source: PathBuf,
}

/// Where the TLS secrets of policies come from in standalone mode (no Kubernetes API). Files
/// are re-read when they change; a secret a policy names but this section lacks makes that
/// port fail closed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsSection {
    /// Secrets as items → files (Cilium's item names: `tls.crt`, `tls.key`, `ca.crt`).
    #[serde(default)]
    pub secrets: Vec<SecretFiles>,
    /// A directory laid out `<namespace>/<name>/<item>` (like a mounted Kubernetes secret);
    /// secrets listed in `secrets` take precedence.
    #[serde(default)]
    pub secrets_dir: Option<PathBuf>,
}

/// One secret and the files of its items.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretFiles {
    /// Namespace (`default` when omitted).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Item name → PEM file.
    pub items: std::collections::BTreeMap<String, PathBuf>,
}

fn default_namespace() -> String {
    "default".into()
}

/// HTTP proxy settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxySection {
    /// Transparent listener port.
    #[serde(default = "http_port")]
    pub http_port: u16,
    /// `external` (default): the proxies run as `palisade proxy`, their own process, started by
    /// the agent when not running, so agent restarts drop no L7 connection or DNS query;
    /// `embedded`: inside the agent.
    #[serde(default = "external")]
    pub mode: ProxyMode,
    /// Time to receive a request's headers before the connection is closed (slowloris).
    #[serde(default = "ms_10s")]
    pub header_timeout_ms: u64,
    /// Largest request head in bytes (larger gets 431).
    #[serde(default = "max_header_bytes")]
    pub max_header_bytes: usize,
    /// Concurrent client connections.
    #[serde(default = "max_connections")]
    pub max_connections: usize,
    /// Time to connect upstream.
    #[serde(default = "ms_5s")]
    pub connect_timeout_ms: u64,
}

/// Where the proxies run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProxyMode {
    /// Their own process (`palisade proxy`).
    External,
    /// Inside the agent.
    Embedded,
}

fn external() -> ProxyMode {
    ProxyMode::External
}

impl Default for ProxySection {
    fn default() -> Self {
        ProxySection {
            http_port: http_port(),
            mode: ProxyMode::External,
            header_timeout_ms: ms_10s(),
            max_header_bytes: max_header_bytes(),
            max_connections: max_connections(),
            connect_timeout_ms: ms_5s(),
        }
    }
}

/// DNS proxy settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsSection {
    /// Transparent listener port (UDP and TCP).
    #[serde(default = "dns_port")]
    pub port: u16,
    /// `refused` (default, as Cilium) or `nameError`.
    #[serde(default = "refused")]
    pub reject_code: String,
    /// Minimum time a learned address stays allowed, in seconds (Cilium: 0).
    #[serde(default)]
    pub min_ttl: u32,
    /// Addresses kept per name; the oldest are evicted first (Cilium: 1000).
    #[serde(default = "max_ips")]
    pub max_ips_per_name: usize,
    /// How long an answer waits for the maps to be written, in milliseconds.
    #[serde(default = "learn_timeout")]
    pub learn_timeout_ms: u64,
    /// Queries in flight at once; more get SERVFAIL at once.
    #[serde(default = "max_in_flight")]
    pub max_in_flight: usize,
    /// Time to wait for the upstream resolver (then SERVFAIL).
    #[serde(default = "ms_5s")]
    pub upstream_timeout_ms: u64,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection {
            port: dns_port(),
            reject_code: refused(),
            min_ttl: 0,
            max_ips_per_name: max_ips(),
            learn_timeout_ms: learn_timeout(),
            max_in_flight: max_in_flight(),
            upstream_timeout_ms: ms_5s(),
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::One(p) => vec![p],
        Raw::Many(v) => v,
    })
}

fn default_socket() -> PathBuf {
    PathBuf::from(palisade_api::DEFAULT_SOCKET)
}
fn default_pin_dir() -> PathBuf {
    PathBuf::from("/sys/fs/bpf/palisade")
}
fn default_metrics() -> String {
    "0.0.0.0:9962".into()
}
fn default_log() -> String {
    "info".into()
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/run/palisade")
}
fn yes() -> bool {
    true
}
fn http_port() -> u16 {
    15001
}
fn dns_port() -> u16 {
    15053
}
fn refused() -> String {
    "refused".into()
}
fn max_ips() -> usize {
    1000
}
fn learn_timeout() -> u64 {
    1000
}
fn ms_10s() -> u64 {
    10_000
}
fn ms_5s() -> u64 {
    5_000
}
fn max_header_bytes() -> usize {
    60 * 1024
}
fn max_connections() -> usize {
    10_000
}
fn max_in_flight() -> usize {
    1024
}

impl Config {
    /// Reads, validates and resolves relative paths.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut c: Config = serde_yaml_ng::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            anyhow::anyhow!("{}{at}: {e}", path.display())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut c.topology);
        c.policies.iter_mut().for_each(abs);
        if let Some(r) = c.ready_file.as_mut() {
            abs(r);
        }
        abs(&mut c.api_socket);
        abs(&mut c.state_dir);
        if let Some(d) = c.tls.secrets_dir.as_mut() {
            abs(d);
        }
        c.tls
            .secrets
            .iter_mut()
            .flat_map(|s| s.items.values_mut())
            .for_each(abs);
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in c.tls.secrets.iter().enumerate() {
            if s.name.is_empty() || s.items.is_empty() {
                anyhow::bail!(
                    "{}: tls.secrets[{i}]: a secret needs a `name` and at least one item",
                    path.display()
                );
            }
            if !seen.insert((s.namespace.clone(), s.name.clone())) {
                anyhow::bail!(
                    "{}: tls.secrets[{i}]: secret {}/{} is listed twice",
                    path.display(),
                    s.namespace,
                    s.name
                );
            }
        }
        c.source = path.to_path_buf();
        c.metrics_addr()?;
        if !matches!(c.dns_proxy.reject_code.as_str(), "refused" | "nameError") {
            anyhow::bail!(
                "{}: dnsProxy.rejectCode: expected `refused` or `nameError`, got {:?}",
                path.display(),
                c.dns_proxy.reject_code
            );
        }
        Ok(c)
    }

    /// The HTTP proxy's settings.
    pub fn http_proxy(&self) -> palisade_proxy::ProxyConfig {
        let p = &self.proxy;
        palisade_proxy::ProxyConfig {
            listen: ([0, 0, 0, 0], p.http_port).into(),
            transparent: true,
            limits: palisade_proxy::Limits {
                header_timeout: Duration::from_millis(p.header_timeout_ms),
                max_header_bytes: p.max_header_bytes,
                max_connections: p.max_connections,
                connect_timeout: Duration::from_millis(p.connect_timeout_ms),
                ..palisade_proxy::Limits::default()
            },
            ..palisade_proxy::ProxyConfig::default()
        }
    }

    /// The DNS proxy's settings.
    pub fn dns_proxy(&self) -> palisade_dnsproxy::DnsProxyConfig {
        let d = &self.dns_proxy;
        palisade_dnsproxy::DnsProxyConfig {
            listen_port: d.port,
            reject: if d.reject_code == "nameError" {
                palisade_dnsproxy::RejectCode::NameError
            } else {
                palisade_dnsproxy::RejectCode::Refused
            },
            learn_timeout: Duration::from_millis(d.learn_timeout_ms),
            upstream_timeout: Duration::from_millis(d.upstream_timeout_ms),
            max_in_flight: d.max_in_flight,
            ..palisade_dnsproxy::DnsProxyConfig::default()
        }
    }

    /// The metrics address, `None` when disabled.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>> {
        if self.metrics_address.is_empty() {
            return Ok(None);
        }
        let a = self.metrics_address.parse().with_context(|| {
            format!("metricsAddress: invalid address {:?}", self.metrics_address)
        })?;
        Ok(Some(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("palisade.yaml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path).inspect(|c| assert_eq!(c.source, path))
    }

    #[test]
    fn shipped_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/palisade.yaml");
        let c = Config::load(&path).expect("config/palisade.yaml");
        assert!(c.tls.secrets.is_empty() && c.tls.secrets_dir.is_none());
    }

    #[test]
    fn tls_secrets_resolve_paths_and_bad_ones_name_the_field() {
        let c = load(
            "topology: t.yaml\npolicies: p\ntls:\n  secretsDir: secrets\n  secrets:\n  - name: web\n    items: {tls.crt: certs/web.crt}\n",
        )
        .expect("valid");
        let s = &c.tls.secrets[0];
        assert_eq!(s.namespace, "default");
        assert!(s.items["tls.crt"].is_absolute() && s.items["tls.crt"].ends_with("certs/web.crt"));
        assert!(c.tls.secrets_dir.as_ref().unwrap().is_absolute());

        let cases = [
            ("  secrets:\n  - {name: web, items: {}}\n", "tls.secrets[0]: a secret needs"),
            (
                "  secrets:\n  - {name: web, items: {a: x}}\n  - {namespace: default, name: web, items: {a: y}}\n",
                "tls.secrets[1]: secret default/web is listed twice",
            ),
            ("  secrets:\n  - {name: web, item: {a: x}}\n", "unknown field `item`"),
        ];
        for (tls, want) in cases {
            let err = load(&format!("topology: t.yaml\npolicies: p\ntls:\n{tls}"))
                .expect_err(want)
                .to_string();
            assert!(err.contains("palisade.yaml") && err.contains(want), "{err}");
        }
    }
}
