//! Palisade's transparent DNS proxy: sits on the DNS path between a pod and its resolver.
//!
//! ```text
//! pod → resolver:53 ─(TC sk_assign or iptables TPROXY)→ this proxy (0.0.0.0:15053, UDP + TCP)
//!   header + first question read raw, vs the endpoint's `rules.dns` for that resolver
//!   ├─ no match → REFUSED (or NXDOMAIN) at once, question echoed
//!   └─ match    → the client's bytes forwarded to the original resolver, only the ID rewritten,
//!                  over a few long-lived sockets marked 0xb00 (UDP: `mux`; TCP: per connection)
//!                  answer (same ID and question, else dropped) → A/AAAA along the CNAME chain
//!                  → new to the agent? FqdnLearner::learn awaited : released at once (`refresh`)
//!                  → answer released to the pod from the resolver's own address
//! ```
//!
//! The UDP path runs on a thread of its own (`udp_thread`) without a task per query: the listener
//! loop decides and sends, the upstream readers release; only answers that wait for the learner
//! get a task. Datagrams move in batches (`batch`: `recvmmsg`/`sendmmsg`), answers are read from
//! the wire without decoding the message (`records`), and flow records leave in batches
//! (`flow_out`).
//!
//! Policy arrives as [`DnsSnapshot`]s over a `tokio::sync::watch` channel; per-query records go
//! out as [`DnsFlowRecord`]s over `tokio::sync::mpsc`. The proxy never touches eBPF maps: the agent
//! implements [`FqdnLearner`]. [`FqdnCache`] is the agent's name → IP cache model.
#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod error;
pub mod flow;
pub mod group_commit;
pub mod learner;
pub mod policy;
pub mod server;
pub mod snapshot;
pub mod wire;

mod batch;
mod drain;
mod flow_out;
mod handler;
mod inflight;
mod learning;
mod mux;
mod question;
mod records;
mod refresh;
mod sockets;
mod tcp;
mod udp;
mod udp_thread;
mod upstream;

pub use cache::{CacheEntry, CacheError, FqdnCache};
pub use config::{DnsProxyConfig, RejectCode};
pub use error::DnsProxyError;
pub use flow::{DnsFlowRecord, Transport, Verdict};
pub use group_commit::GroupCommit;
pub use learner::{FqdnLearner, LearnError, LearnedAnswer};
pub use policy::{CompiledPolicy, Decision};
pub use server::{run, BoundDnsProxy, DnsProxyStats};
pub use snapshot::{DnsPeer, DnsPortRule, DnsSnapshot, EndpointDns};
