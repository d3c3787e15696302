//! Transparent HTTP L7 policy proxy: the cilium-envoy replacement.
//!
//! On the data path it sits after the eBPF redirect: TC assigns a pod's TCP flow to this
//! proxy's `IP_TRANSPARENT` listener, so the accepted socket's local address is the original
//! destination. Per request the proxy looks up identities and the L7 rules of both ends in the
//! latest compiled [`PolicySnapshot`], normalizes the path, matches with `palisade-httpmatch`,
//! then answers 403 or forwards to the original destination from a socket marked
//! `0xa00`/`0xb00`, and emits an [`HttpFlowRecord`].
//!
//! The proxy never touches eBPF maps: it only reads snapshots from a `watch` channel and writes
//! flow records to an `mpsc` channel, so it can run in-process or in its own process.
#![forbid(unsafe_code)]

mod config;
mod conn;
mod drain;
mod error;
mod flow;
mod h1;
mod handler;
mod hop;
mod ipcache;
mod policy;
mod response;
mod rewind;
mod server;
mod snapshot;
mod tls;
mod upstream;

pub use config::{Limits, ProxyConfig};
pub use error::{CompileError, ProxyError};
pub use flow::{FlowVerdict, HttpFlowRecord};
#[doc(hidden)]
pub use h1::{fuzz_chunked, fuzz_request_head, fuzz_response_head};
pub use server::{run, Proxy};
pub use snapshot::{EndpointL7, PeerL7, PolicySnapshot, PortL7, TlsL7, TlsMaterial};
pub use tls::{check_material, TlsConfigError, TlsRole};
