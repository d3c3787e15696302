//! TLS on redirected ports (Cilium's `serverNames`, `terminatingTLS`, `originatingTLS`).
//!
//! A connection whose flow has TLS settings is classified once, when accepted ([`FlowTls`]):
//! the proxy reads the ClientHello without answering it, checks the SNI, then either relays
//! the raw bytes to the original destination or terminates TLS with the configured
//! certificate and serves the decrypted HTTP through the same handler as plain HTTP
//! (re-encrypting upstream when `originatingTLS` is set). Anything it cannot handle is reset.

mod config;
mod flow;
mod originate;
mod serve;
mod sni;

pub(crate) use config::CompiledTls;
pub use config::{check_material, TlsConfigError, TlsRole};
pub(crate) use flow::FlowTls;
pub(crate) use originate::TlsOrigin;
pub(crate) use serve::{serve, TlsServe};
