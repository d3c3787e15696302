//! The agent's FQDN cache model (`palisade fqdn cache list`): per endpoint, name → IPs with an
//! expiry of `now + max(ttl, min_ttl)`, at most `max_ips_per_name` IPs per name (least recently
//! seen evicted first), persisted as JSON with an atomic write. Pure: time is passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use palisade_policy::fqdn::{normalize_name, FqdnMatcher};
use serde::{Deserialize, Serialize};

/// Cilium's `--tofqdns-endpoint-max-ip-per-hostname` default.
pub const DEFAULT_MAX_IPS_PER_NAME: usize = 1000;

/// Why the cache could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Reading, writing or renaming the file failed.
    #[error("FQDN cache file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid cache.
    #[error("FQDN cache file {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Parse error with line and column.
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct IpRecord {
    ip: IpAddr,
    /// Effective TTL in seconds (after `min_ttl`).
    ttl: u32,
    expiry: SystemTime,
    /// Last time an answer carried this IP; eviction order.
    seen: SystemTime,
}

/// One row of `fqdn cache list`: IPs of a name that share TTL and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Endpoint that looked the name up.
    pub endpoint: String,
    /// Normalized name (trailing dot).
    pub name: String,
    /// Effective TTL in seconds.
    pub ttl: u32,
    /// When these IPs expire.
    pub expiry: SystemTime,
    /// The addresses.
    pub ips: Vec<IpAddr>,
}

/// Learned name → IP associations per endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FqdnCache {
    min_ttl: u32,
    max_ips_per_name: usize,
    endpoints: BTreeMap<String, BTreeMap<String, Vec<IpRecord>>>,
}

impl FqdnCache {
    /// An empty cache; TTLs below `min_ttl` are raised to it.
    pub fn new(min_ttl: Duration) -> Self {
        Self::with_limit(min_ttl, DEFAULT_MAX_IPS_PER_NAME)
    }

    /// An empty cache keeping at most `max_ips_per_name` IPs per (endpoint, name).
    pub fn with_limit(min_ttl: Duration, max_ips_per_name: usize) -> Self {
        FqdnCache {
            min_ttl: u32::try_from(min_ttl.as_secs()).unwrap_or(u32::MAX),
            max_ips_per_name: max_ips_per_name.max(1),
            endpoints: BTreeMap::new(),
        }
    }

    /// Records that `endpoint` resolved every name in `names` to `addrs` (ip, ttl) at `now`.
    /// A known IP keeps the later expiry. Returns `(name, ip)` pairs evicted by the per-name limit.
    pub fn insert(
        &mut self,
        endpoint: &str,
        names: &[String],
        addrs: &[(IpAddr, u32)],
        now: SystemTime,
    ) -> Vec<(String, IpAddr)> {
        let mut evicted = Vec::new();
        if addrs.is_empty() {
            return evicted;
        }
        let ep = self.endpoints.entry(endpoint.to_string()).or_default();
        for name in names {
            let name = normalize_name(name);
            let list = ep.entry(name.clone()).or_default();
            for (ip, ttl) in addrs {
                let ttl = (*ttl).max(self.min_ttl);
                let expiry = now + Duration::from_secs(u64::from(ttl));
                match list.iter_mut().find(|r| r.ip == *ip) {
                    Some(r) => {
                        if expiry > r.expiry {
                            r.expiry = expiry;
                            r.ttl = ttl;
                        }
                        r.seen = r.seen.max(now);
                    }
                    None => list.push(IpRecord {
                        ip: *ip,
                        ttl,
                        expiry,
                        seen: now,
                    }),
                }
            }
            if list.len() > self.max_ips_per_name {
                // Least recently seen first, then soonest to expire.
                list.sort_by_key(|r| (r.seen, r.expiry));
                let extra = list.len() - self.max_ips_per_name;
                evicted.extend(list.drain(..extra).map(|r| (name.clone(), r.ip)));
            }
        }
        evicted
    }

    /// True when some entry's expiry is at or before `now` (a walk, nothing removed).
    pub fn has_expired(&self, now: SystemTime) -> bool {
        self.endpoints
            .values()
            .flat_map(|names| names.values())
            .any(|list| list.iter().any(|r| r.expiry <= now))
    }

    /// Removes and returns every `(endpoint, name, ip)` whose expiry is at or before `now`.
    pub fn expired(&mut self, now: SystemTime) -> Vec<(String, String, IpAddr)> {
        let mut out = Vec::new();
        for (ep, names) in &mut self.endpoints {
            for (name, list) in names.iter_mut() {
                list.retain(|r| {
                    let keep = r.expiry > now;
                    if !keep {
                        out.push((ep.clone(), name.clone(), r.ip));
                    }
                    keep
                });
            }
            names.retain(|_, l| !l.is_empty());
        }
        self.endpoints.retain(|_, n| !n.is_empty());
        out
    }

    /// Forgets an endpoint (deleted pod); returns its `(name, ip)` pairs.
    pub fn remove_endpoint(&mut self, endpoint: &str) -> Vec<(String, IpAddr)> {
        self.endpoints
            .remove(endpoint)
            .into_iter()
            .flatten()
            .flat_map(|(name, l)| l.into_iter().map(move |r| (name.clone(), r.ip)))
            .collect()
    }

    /// Rows for listing, sorted by endpoint, name, expiry.
    pub fn entries(&self) -> Vec<CacheEntry> {
        let mut out = Vec::new();
        for (ep, names) in &self.endpoints {
            for (name, list) in names {
                let mut groups: BTreeMap<(SystemTime, u32), Vec<IpAddr>> = BTreeMap::new();
                for r in list {
                    groups.entry((r.expiry, r.ttl)).or_default().push(r.ip);
                }
                for ((expiry, ttl), mut ips) in groups {
                    ips.sort();
                    out.push(CacheEntry {
                        endpoint: ep.clone(),
                        name: name.clone(),
                        ttl,
                        expiry,
                        ips,
                    });
                }
            }
        }
        out
    }

    /// Every cached IP (any endpoint) of a name the matcher selects: what a new `toFQDNs`
    /// selector must allow right away.
    pub fn ips_matching(&self, matcher: &FqdnMatcher) -> BTreeSet<IpAddr> {
        self.endpoints
            .values()
            .flat_map(|names| names.iter())
            .filter(|(name, _)| matcher.matches(name))
            .flat_map(|(_, l)| l.iter().map(|r| r.ip))
            .collect()
    }

    /// Writes the cache as JSON: temp file in the same directory, fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), CacheError> {
        let io = |source| CacheError::Io {
            path: path.to_path_buf(),
            source,
        };
        let json = serde_json::to_vec(self).map_err(|source| CacheError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads a cache written by [`FqdnCache::save`].
    pub fn load(path: &Path) -> Result<Self, CacheError> {
        let bytes = std::fs::read(path).map_err(|source| CacheError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| CacheError::Json {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
