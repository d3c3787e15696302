//! Programming one endpoint's policy: expand the desired entries into trie keys, diff against
//! the kernel map, check capacity before touching anything, then write changed keys and
//! delete stale ones (writes first, so a key that stays never disappears in between).

use std::collections::BTreeMap;

use aya::maps::lpm_trie::Key;

use crate::{
    abi::PolicyValue,
    datapath::{lock, PolicyMap},
    keys::{self, TrieKey},
    policy_map_capacity, Datapath, DatapathError, PolicyEntry, SyncStats,
};

fn read_all(map: &PolicyMap) -> Result<Vec<(TrieKey, PolicyValue)>, DatapathError> {
    let mut out = Vec::new();
    for item in map.iter() {
        let (k, v) = item.map_err(|e| DatapathError::map("pal_policy", e))?;
        out.push(((k.prefix_len(), k.data()), v));
    }
    Ok(out)
}

impl Datapath {
    /// Makes the map hold exactly `entries` for `endpoint`. Refuses (writing nothing) when the
    /// result would not fit the map.
    pub fn sync_policy(
        &self,
        endpoint: u16,
        entries: &[PolicyEntry],
    ) -> Result<SyncStats, DatapathError> {
        let desired: BTreeMap<TrieKey, PolicyValue> = keys::expand(endpoint, entries)?
            .into_iter()
            .map(|((plen, k), v)| ((plen, k), keys::value_of(plen, v)))
            .collect();
        let mut map = lock(&self.policy);
        let all = read_all(&map)?;
        let others = all
            .iter()
            .filter(|((_, k), _)| k.endpoint != endpoint)
            .count();
        let needed = others + desired.len();
        if needed > policy_map_capacity() {
            return Err(DatapathError::PolicyCapacity {
                needed,
                capacity: policy_map_capacity(),
            });
        }
        let current: BTreeMap<TrieKey, PolicyValue> = all
            .into_iter()
            .filter(|((_, k), _)| k.endpoint == endpoint)
            .collect();
        let mut stats = SyncStats::default();
        for (key, value) in &desired {
            if current.get(key) == Some(value) {
                stats.unchanged += 1;
                continue;
            }
            map.insert(&Key::new(key.0, key.1), *value, 0)
                .map_err(|e| DatapathError::map("pal_policy", e))?;
            stats.written += 1;
        }
        for key in current.keys().filter(|k| !desired.contains_key(k)) {
            match map.remove(&Key::new(key.0, key.1)) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => stats.deleted += 1,
                Err(e) => return Err(DatapathError::map("pal_policy", e)),
            }
        }
        Ok(stats)
    }

    /// The entries stored for `endpoint`, one per prefix block, decoded from the kernel map.
    pub fn policy_entries(&self, endpoint: u16) -> Result<Vec<PolicyEntry>, DatapathError> {
        let map = lock(&self.policy);
        Ok(read_all(&map)?
            .into_iter()
            .filter(|((_, k), _)| k.endpoint == endpoint)
            .map(|((plen, k), v)| keys::decode(plen, &k, &v))
            .collect())
    }

    /// Number of entries in the policy map over all endpoints.
    pub fn policy_map_len(&self) -> Result<usize, DatapathError> {
        Ok(read_all(&lock(&self.policy))?.len())
    }
}
