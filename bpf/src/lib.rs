//! Palisade's eBPF datapath: the C programs under `c/` (compiled by build.rs, embedded) and
//! the loader that programs their maps. Where it sits: every packet of a pod passes the
//! programs on its host-side veth (and the node's external interface); they decide
//! allow / drop / redirect-to-proxy from the maps the agent writes through [`Datapath`].
//!
//! This is the only crate of the workspace with `unsafe` (aya `Pod` impls, statfs,
//! clock_gettime), each block commented.

#![deny(unsafe_code)]

pub mod abi;
mod attach;
mod conntrack;
mod datapath;
mod error;
mod events;
mod keys;
mod policy_sync;
mod routing;
mod testrun;
mod types;

pub use conntrack::Conntrack;
pub use datapath::{policy_map_capacity, Datapath};
pub use error::DatapathError;
pub use events::EventReader;
pub use routing::{install_proxy_routing, PROXY_ROUTE_TABLE};
pub use testrun::{TC_ACT_OK, TC_ACT_SHOT};
pub use types::{
    Counters, Direction, DropReason, EndpointInfo, Event, EventKind, Hook, PolicyEntry, SyncStats,
    Verdict,
};
