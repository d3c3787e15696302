//! Userspace side of connection tracking: garbage collection of expired entries (the datapath
//! ignores them already; this frees the slots) and "is this address still in use".

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::{
    abi::CtKey,
    datapath::{lock, CtMap},
    keys, Datapath, DatapathError,
};

/// Now on the clock bpf_ktime_get_ns() uses.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0, "CLOCK_MONOTONIC is always available");
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

fn live_entries(map: &CtMap, now: u64) -> (Vec<CtKey>, Vec<CtKey>) {
    let (mut live, mut expired) = (Vec::new(), Vec::new());
    // Entries may vanish (LRU) while we iterate: skip errors of single keys.
    for (k, v) in map.iter().flatten() {
        if v.expires_ns > now {
            live.push(k);
        } else {
            expired.push(k);
        }
    }
    (live, expired)
}

/// A handle on the conntrack map alone, usable without whatever lock guards the [`Datapath`]
/// (the agent's state lock): a walk over a large table then delays nothing else.
#[derive(Clone)]
pub struct Conntrack(Arc<Mutex<CtMap>>);

impl Conntrack {
    /// Removes expired conntrack entries; returns how many.
    pub fn gc(&self) -> Result<usize, DatapathError> {
        let mut map = lock(&self.0);
        let (_, expired) = live_entries(&map, monotonic_ns());
        let mut removed = 0;
        for k in expired {
            match map.remove(&k) {
                Ok(()) => removed += 1,
                Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(DatapathError::map("pal_ct", e)),
            }
        }
        Ok(removed)
    }

    /// Every address that is either end of a live flow (one walk over the table).
    pub fn live_addrs(&self) -> Result<HashSet<IpAddr>, DatapathError> {
        let (live, _) = live_entries(&lock(&self.0), monotonic_ns());
        Ok(live
            .iter()
            .flat_map(|k| {
                let family = u32::from(k.family);
                [
                    keys::addr_from(family, k.saddr),
                    keys::addr_from(family, k.daddr),
                ]
            })
            .collect())
    }
}

impl Datapath {
    /// A handle on the conntrack map that outlives borrows of the datapath.
    pub fn conntrack(&self) -> Conntrack {
        Conntrack(self.ct.clone())
    }

    /// Removes expired conntrack entries; returns how many.
    pub fn conntrack_gc(&self) -> Result<usize, DatapathError> {
        self.conntrack().gc()
    }

    /// Whether a live flow has `ip` as either end (used before expiring an FQDN address).
    pub fn has_conntrack_to(&self, ip: IpAddr) -> Result<bool, DatapathError> {
        let (family, addr) = keys::addr_bytes(ip);
        let map = lock(&self.ct);
        let (live, _) = live_entries(&map, monotonic_ns());
        Ok(live
            .iter()
            .any(|k| u32::from(k.family) == family && (k.saddr == addr || k.daddr == addr)))
    }

    /// Number of live conntrack entries.
    pub fn conntrack_live(&self) -> Result<usize, DatapathError> {
        Ok(live_entries(&lock(&self.ct), monotonic_ns()).0.len())
    }
}
