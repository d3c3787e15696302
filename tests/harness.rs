//! End-to-end harness: a [`Lab`] guard that brings up the scenario cluster of
//! `config/topology.yaml` with the real `palisade` binary (namespaces as nodes and pods, the
//! agent with its eBPF datapath in node k8s-w1), feeds it policy files, runs real `curl`,
//! `ping` and `dig` in pods, and tears everything down on drop, also when a test panics.
//!
//! Every lab has its own tag: namespaces `pe2e-<tag>-…`, state under `/run/palisade-pe2e-<tag>` (`pe2e` is `$PALISADE_E2E_PREFIX` when set),
//! so test binaries never meet each other or a developer's lab.
#![forbid(unsafe_code)]

#[path = "harness/lab.rs"]
mod lab;
#[path = "harness/paths.rs"]
pub mod paths;
#[path = "harness/tools.rs"]
pub mod tools;

pub use lab::Lab;
