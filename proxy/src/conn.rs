//! State of one client connection: its two ends, the flow it resolved under the current
//! policy, and its own HTTP/1.1 upstream connections. Lives as long as the client connection.

use crate::policy::{CompiledPolicy, FlowPolicy};
use crate::tls::TlsOrigin;
use crate::upstream::{H1Upstream, Marks};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The two ends of one client connection: peer, and the original destination.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ends {
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
}

/// One accepted client connection.
#[derive(Debug)]
pub(crate) struct ClientConn {
    pub(crate) ends: Ends,
    /// Dedicated upstream connections (HTTP/1.1 only).
    pub(crate) h1: H1Upstream,
    /// HTTP/2 requests may use the shared cleartext HTTP/2 pools; false once TLS is involved
    /// (a terminated client's ALPN says nothing about the server), so they go over `h1`.
    pub(crate) h2_pool: bool,
    /// The flow resolved under the policy generation it names; identities, the endpoint and the
    /// port entries of a connection only change with the policy.
    flow: Mutex<Option<Arc<FlowPolicy>>>,
}

impl ClientConn {
    /// A connection whose flow is already resolved, with TLS upstream when `origin` is set;
    /// `plain` when no TLS is involved on either side.
    pub(crate) fn with_flow(
        ends: Ends,
        marks: Marks,
        connect_timeout: Duration,
        origin: Option<TlsOrigin>,
        plain: bool,
        flow: Arc<FlowPolicy>,
    ) -> ClientConn {
        ClientConn {
            ends,
            h1: H1Upstream::new(ends.dst, marks, connect_timeout, origin),
            h2_pool: plain,
            flow: Mutex::new(Some(flow)),
        }
    }

    /// The rules for this connection's flow under `policy`, resolved once per policy.
    pub(crate) fn flow(&self, policy: &CompiledPolicy) -> Arc<FlowPolicy> {
        let mut cached = self.flow.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some(flow) if flow.generation == policy.generation => flow.clone(),
            _ => {
                let flow = Arc::new(policy.flow(self.ends.src, self.ends.dst));
                *cached = Some(flow.clone());
                flow
            }
        }
    }
}
