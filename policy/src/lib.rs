//! Palisade's policy core: reads CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and
//! Kubernetes NetworkPolicy, derives security identities, and resolves what each endpoint may
//! send and receive. Pure: no tokio, no aya. The agent turns its output into eBPF map entries
//! and proxy snapshots.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod compile;
pub mod engine;
pub mod error;
pub mod fqdn;
pub mod identity;
pub mod labels;
pub mod load;
pub mod model;
pub mod ports;
pub mod resolve;
pub mod selector;
pub mod topology;
pub mod trace;
pub mod values;

pub use engine::Engine;
pub use error::{LoadError, SourceLocation, Warning};
pub use topology::Topology;
