//! Loading: the embedded objects, maps pinned by name under the pin directory (reused when
//! present, so entries survive an agent restart), and typed handles to every map.

use std::{
    ffi::CString,
    fs,
    net::IpAddr,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::Mutex,
};

use aya::{
    include_bytes_aligned,
    maps::{lpm_trie::Key, HashMap, LpmTrie, Map, MapData, PerCpuArray},
    programs::SchedClassifier,
    Ebpf, EbpfLoader,
};
use ipnet::IpNet;

use crate::{
    abi::{self, CtKey, CtValue, EndpointKey, EndpointValue, IpcacheKey, IpcacheValue},
    abi::{PolicyKey, PolicyValue, RawCounters},
    keys, Counters, DatapathError, EndpointInfo,
};

static LXC_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lxc.o"));
static NETDEV_OBJ: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netdev.o"));

/// Program names in the objects (the C function names).
pub(crate) const PROG_FROM_CONTAINER: &str = "from_container";
pub(crate) const PROG_TO_CONTAINER: &str = "to_container";
pub(crate) const PROG_FROM_NETDEV: &str = "from_netdev";

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

pub(crate) type PolicyMap = LpmTrie<MapData, PolicyKey, PolicyValue>;
pub(crate) type CtMap = HashMap<MapData, CtKey, CtValue>;

/// The loaded datapath: programs, and handles to the pinned maps.
pub struct Datapath {
    pub(crate) pin_dir: PathBuf,
    pub(crate) lxc: Ebpf,
    pub(crate) netdev: Ebpf,
    ipcache: Mutex<LpmTrie<MapData, IpcacheKey, IpcacheValue>>,
    endpoints: Mutex<HashMap<MapData, EndpointKey, EndpointValue>>,
    pub(crate) policy: Mutex<PolicyMap>,
    /// Shared with [`crate::Conntrack`] handles, so GC runs without the caller's locks.
    pub(crate) ct: std::sync::Arc<Mutex<CtMap>>,
    counters: PerCpuArray<MapData, RawCounters>,
}

/// Capacity of the node-wide policy map (entries after port-range expansion).
pub fn policy_map_capacity() -> usize {
    abi::POLICY_MAX
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into a zeroed struct we own; the path is NUL-terminated.
    #[allow(unsafe_code)]
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

fn load_object(
    object: &'static str,
    data: &[u8],
    pin_dir: &Path,
    programs: &[&'static str],
) -> Result<Ebpf, DatapathError> {
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(pin_dir)
        .load(data)
        .map_err(|e| DatapathError::Load {
            object,
            source: Box::new(e),
        })?;
    for &name in programs {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or_else(|| DatapathError::Link {
                path: pin_dir.into(),
                message: format!("program {name} missing from {object}"),
            })?
            .try_into()
            .map_err(|e| DatapathError::program(name, e))?;
        prog.load().map_err(|e| DatapathError::program(name, e))?;
    }
    Ok(ebpf)
}

fn open_pinned<T>(pin_dir: &Path, name: &'static str) -> Result<T, DatapathError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let data = MapData::from_pin(pin_dir.join(name)).map_err(|e| DatapathError::map(name, e))?;
    let map = match name {
        "pal_ipcache" | "pal_policy" => Map::LpmTrie(data),
        "pal_endpoints" => Map::HashMap(data),
        "pal_ct" => Map::LruHashMap(data),
        "pal_counters" => Map::PerCpuArray(data),
        _ => Map::RingBuf(data),
    };
    T::try_from(map).map_err(|e| DatapathError::map(name, e))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves the kernel map consistent: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Datapath {
    /// Loads the embedded objects. Maps are pinned by name in `pin_dir` (on bpffs) and reused
    /// when already there, with their entries.
    pub fn load(pin_dir: &Path) -> Result<Datapath, DatapathError> {
        fs::create_dir_all(pin_dir.join("links")).map_err(|source| DatapathError::PinDir {
            path: pin_dir.into(),
            source,
        })?;
        if !is_bpffs(pin_dir) {
            return Err(DatapathError::NotBpffs(pin_dir.into()));
        }
        let lxc = load_object(
            "lxc.o",
            LXC_OBJ,
            pin_dir,
            &[PROG_FROM_CONTAINER, PROG_TO_CONTAINER],
        )?;
        let netdev = load_object("netdev.o", NETDEV_OBJ, pin_dir, &[PROG_FROM_NETDEV])?;
        Ok(Datapath {
            pin_dir: pin_dir.into(),
            lxc,
            netdev,
            ipcache: Mutex::new(open_pinned(pin_dir, "pal_ipcache")?),
            endpoints: Mutex::new(open_pinned(pin_dir, "pal_endpoints")?),
            policy: Mutex::new(open_pinned(pin_dir, "pal_policy")?),
            ct: std::sync::Arc::new(Mutex::new(open_pinned(pin_dir, "pal_ct")?)),
            counters: open_pinned(pin_dir, "pal_counters")?,
        })
    }

    /// The pin directory this datapath uses.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Adds or replaces a local endpoint.
    pub fn set_endpoint(&self, ip: IpAddr, ep: EndpointInfo) -> Result<(), DatapathError> {
        if ep.id == 0 || u32::from(ep.id) >= abi::MAX_ENDPOINTS {
            return Err(DatapathError::EndpointId(ep.id));
        }
        let mut flags = 0;
        if ep.ingress_enforced {
            flags |= abi::EP_INGRESS_ENFORCED;
        }
        if ep.egress_enforced {
            flags |= abi::EP_EGRESS_ENFORCED;
        }
        let value = EndpointValue {
            identity: ep.identity,
            ifindex: ep.ifindex,
            id: ep.id,
            flags,
            pad: 0,
        };
        lock(&self.endpoints)
            .insert(keys::endpoint_key(ip), value, 0)
            .map_err(|e| DatapathError::map("pal_endpoints", e))
    }

    /// Removes a local endpoint (absent is fine).
    pub fn remove_endpoint(&self, ip: IpAddr) -> Result<(), DatapathError> {
        match lock(&self.endpoints).remove(&keys::endpoint_key(ip)) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(DatapathError::map("pal_endpoints", e)),
        }
    }

    /// Maps a prefix to an identity (longest prefix wins; no match = world).
    pub fn set_ipcache(&self, net: IpNet, identity: u32) -> Result<(), DatapathError> {
        let (plen, k) = keys::ipcache_key(net);
        let v = IpcacheValue { identity, pad: 0 };
        lock(&self.ipcache)
            .insert(&Key::new(plen, k), v, 0)
            .map_err(|e| DatapathError::map("pal_ipcache", e))
    }

    /// Removes a prefix (absent is fine).
    pub fn remove_ipcache(&self, net: IpNet) -> Result<(), DatapathError> {
        let (plen, k) = keys::ipcache_key(net);
        match lock(&self.ipcache).remove(&Key::new(plen, k)) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(DatapathError::map("pal_ipcache", e)),
        }
    }

    /// All ipcache entries.
    pub fn ipcache_entries(&self) -> Result<Vec<(IpNet, u32)>, DatapathError> {
        let map = lock(&self.ipcache);
        let mut out = Vec::new();
        for item in map.iter() {
            let (k, v) = item.map_err(|e| DatapathError::map("pal_ipcache", e))?;
            if let Some(net) = keys::ipcache_net(k.prefix_len(), k.data()) {
                out.push((net, v.identity));
            }
        }
        Ok(out)
    }

    /// Counters of one endpoint, summed over CPUs.
    pub fn counters(&self, endpoint: u16) -> Result<Counters, DatapathError> {
        let per_cpu = self
            .counters
            .get(&u32::from(endpoint), 0)
            .map_err(|e| DatapathError::map("pal_counters", e))?;
        let mut c = Counters::default();
        for v in per_cpu.iter() {
            c.ingress_forwarded_packets += v.ingress_fwd_packets;
            c.ingress_forwarded_bytes += v.ingress_fwd_bytes;
            c.ingress_dropped_packets += v.ingress_drop_packets;
            c.ingress_dropped_bytes += v.ingress_drop_bytes;
            c.egress_forwarded_packets += v.egress_fwd_packets;
            c.egress_forwarded_bytes += v.egress_fwd_bytes;
            c.egress_dropped_packets += v.egress_drop_packets;
            c.egress_dropped_bytes += v.egress_drop_bytes;
        }
        Ok(c)
    }
}
