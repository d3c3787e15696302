//! Learned addresses without a full apply. Nearly every new address of a DNS answer gets an FQDN
//! identity that already exists: the same `toFQDNs` selectors select its names as some address
//! learned before (a name's next address, another name under the same pattern). Every policy
//! entry naming that identity is then in the maps already, so the address needs one ipcache
//! write and new proxy snapshots, not a re-resolution of every endpoint's policy.
//!
//! The identity is computed exactly as `ClusterState::build` would
//! (`cluster::fqdn_identity_labels`: the keys of the selectors matching the address's names and
//! the policy CIDRs containing it). Anything else falls back to the full apply: an identity not
//! allocated or not in use (its policy entries do not exist yet), an address whose identity would
//! change, an address with a non-FQDN ipcache entry (pod, node, CIDR), evictions.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use ipnet::IpNet;
use palisade_policy::cluster::{fqdn_identity_labels, fqdn_label_key};
use palisade_policy::fqdn::FqdnMatcher;

use super::agent::{Agent, Inner};
use super::snapshots;

/// What the fast path did.
pub enum Fast {
    /// Applied (possibly nothing to write): no full apply needed.
    Done,
    /// Needs the full apply.
    NotApplicable,
}

/// The identity the full apply would give `ip`, with `None` for the world (no entry); `Err(())`
/// when only the full apply can tell (the identity is not allocated or not in use).
fn identity_of(inner: &Inner, matchers: &[FqdnMatcher], ip: IpAddr) -> Result<Option<u32>, ()> {
    let engine = inner.engine.as_ref().ok_or(())?;
    let names = inner.names_by_ip.get(&ip);
    let keys: BTreeSet<String> = matchers
        .iter()
        .filter(|m| names.is_some_and(|names| names.iter().any(|n| m.matches(n))))
        .map(|m| fqdn_label_key(m.selector()))
        .collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let labels = fqdn_identity_labels(ip, &keys, &engine.compiled.inputs.cidrs);
    let id = inner.alloc.find(&labels).ok_or(())?;
    if !engine.state.in_use.contains(&id) {
        return Err(());
    }
    Ok(Some(id))
}

/// Compiles the revision's `toFQDNs` selectors, as `ClusterState::build` does (kept in `Inner`
/// so a learned answer does not compile regexes).
pub fn compile_matchers(engine: &palisade_policy::Engine) -> Arc<Vec<FqdnMatcher>> {
    Arc::new(
        engine
            .compiled
            .inputs
            .fqdn_selectors
            .iter()
            .filter_map(|s| s.compile().ok())
            .collect(),
    )
}

impl Agent {
    /// Applies the new addresses `ips` (already in `inner.learned`) with ipcache writes alone,
    /// when that is what the full apply would do (see the file doc).
    pub(super) fn learn_fast(&self, inner: &mut Inner, ips: &BTreeSet<IpAddr>) -> Result<Fast> {
        let Some(engine) = inner.engine.as_ref() else {
            return Ok(Fast::NotApplicable);
        };
        let matchers = inner.fqdn_matchers.clone();
        let mut writes = Vec::new();
        for ip in ips {
            let net = IpNet::from(*ip);
            let have = engine.state.ipcache.get(&net).copied();
            let Ok(want) = identity_of(inner, &matchers, *ip) else {
                return Ok(Fast::NotApplicable);
            };
            match (want, have) {
                _ if want == have => {}
                (Some(id), None) => writes.push((net, id)),
                // The address changes identity or leaves one: entries may come and go.
                _ => return Ok(Fast::NotApplicable),
            }
        }
        if writes.is_empty() {
            return Ok(Fast::Done);
        }
        for (net, id) in &writes {
            inner
                .datapath
                .set_ipcache(*net, *id)
                .with_context(|| format!("ipcache {net} → {id}"))?;
            inner.applied.ipcache.insert(*net, *id);
        }
        let Some(engine) = inner.engine.as_mut() else {
            return Ok(Fast::NotApplicable);
        };
        engine.state.ipcache.extend(writes.iter().copied());
        inner.revision += 1;
        let revision = inner.revision;
        let engine = inner.engine.as_ref().context("engine just used")?;
        self.http_snapshots
            .send_replace(Arc::new(snapshots::http_snapshot(
                revision,
                &engine.state,
                &inner.resolved,
                &inner.inputs.secrets,
            )));
        self.dns_snapshots
            .send_replace(Arc::new(snapshots::dns_snapshot(
                revision,
                &engine.state,
                &inner.resolved,
            )));
        self.metrics.policy_revision.set(revision as i64);
        tracing::debug!(
            revision,
            ipcache_writes = writes.len(),
            "learned addresses applied with ipcache writes alone"
        );
        self.revision_written(revision);
        Ok(Fast::Done)
    }
}
