//! The listener: transparent bind, the policy compiler task, the accept loop with a connection
//! limit; plain connections are served by [`crate::h1`] (HTTP/1.1 relay, hyper for the rest),
//! TLS ones by [`crate::tls`], TLS-originating ones by hyper.

use crate::conn::{ClientConn, Ends};
use crate::drain;
use crate::h1::Shared;
use crate::handler::Handler;
use crate::policy::CompiledPolicy;
use crate::tls::{FlowTls, TlsOrigin, TlsServe};
use crate::upstream::{H2Pools, Marks};
use crate::{HttpFlowRecord, PolicySnapshot, ProxyConfig, ProxyError};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{Domain, Protocol, Socket, Type};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

/// Smallest request-head buffer hyper accepts.
const HYPER_MIN_BUF: usize = 8192;
/// hyper's header-count limit when none is set.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// A bound, not yet serving proxy. Bind first to learn the address (port 0 in tests).
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    listener: TcpListener,
    local_addr: SocketAddr,
    applied_tx: watch::Sender<u64>,
}

/// Binds and serves until `shutdown` completes; see [`Proxy::serve`].
pub async fn run(
    config: ProxyConfig,
    snapshots: watch::Receiver<Arc<PolicySnapshot>>,
    flows: mpsc::Sender<HttpFlowRecord>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ProxyError> {
    Proxy::bind(config)?.serve(snapshots, flows, shutdown).await
}

impl Proxy {
    /// Creates the listener (`IP_TRANSPARENT` before `bind` when configured). Must be called
    /// inside a Tokio runtime.
    pub fn bind(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        let addr = config.listen;
        let err = |op| move |source| ProxyError::Listen { addr, op, source };
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(err("socket"))?;
        socket
            .set_reuse_address(true)
            .map_err(err("SO_REUSEADDR"))?;
        if config.transparent {
            socket
                .set_ip_transparent(true)
                .map_err(err("IP_TRANSPARENT"))?;
        }
        socket.bind(&addr.into()).map_err(err("bind"))?;
        socket.listen(1024).map_err(err("listen"))?;
        Proxy::from_listener(config, socket.into())
    }

    /// Serves on a listener bound elsewhere: the one a previous proxy process handed over on an
    /// upgrade (the same kernel socket, so no connection is refused meanwhile).
    pub fn from_listener(
        config: ProxyConfig,
        listener: std::net::TcpListener,
    ) -> Result<Proxy, ProxyError> {
        let addr = config.listen;
        let err = |op| move |source| ProxyError::Listen { addr, op, source };
        listener.set_nonblocking(true).map_err(err("O_NONBLOCK"))?;
        let listener = TcpListener::from_std(listener).map_err(err("register"))?;
        let local_addr = listener.local_addr().map_err(err("getsockname"))?;
        let (applied_tx, _) = watch::channel(0);
        Ok(Proxy {
            config,
            listener,
            local_addr,
            applied_tx,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A second descriptor of the listening socket, to hand over to a new proxy process.
    pub fn listener_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        std::os::fd::AsFd::as_fd(&self.listener).try_clone_to_owned()
    }

    /// Revision of the snapshot currently enforced (0 before the first one compiles). A snapshot
    /// that fails to compile is logged and never replaces the one in force.
    pub fn applied_revision(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// Serves connections until `shutdown` completes, then gives open connections
    /// `limits.drain_timeout` to finish. Flow records are dropped when `flows` is full.
    pub async fn serve(
        self,
        snapshots: watch::Receiver<Arc<PolicySnapshot>>,
        flows: mpsc::Sender<HttpFlowRecord>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ProxyError> {
        let Proxy {
            config,
            listener,
            local_addr,
            applied_tx,
        } = self;
        // The snapshot in hand (one handed over by an upgraded-from process) is compiled before
        // the first accept: compiled later, the first requests met an empty policy (500).
        let first = snapshots.borrow().clone();
        let first = CompiledPolicy::compile(&first).unwrap_or_default();
        let (policy_tx, policy_rx) = watch::channel(Arc::new(first));
        let compiler = tokio::spawn(compile_loop(snapshots, policy_tx, applied_tx));
        let marks = Marks {
            ingress: config.upstream_mark_ingress,
            egress: config.upstream_mark_egress,
        };
        let handler = Arc::new(Handler {
            policy: policy_rx,
            h2: H2Pools::new(marks, &config.limits),
            flows,
            listen: local_addr,
        });
        let builder = http_builder(&config);
        let (closing_tx, closing) = watch::channel(false);
        let shared = Arc::new(Shared {
            handler: handler.clone(),
            hyper: builder.clone(),
            limits: config.limits.clone(),
            marks,
            closing: closing.clone(),
        });
        let permits = Arc::new(Semaphore::new(config.limits.max_connections.max(1)));
        tracing::info!(%local_addr, transparent = config.transparent, "HTTP proxy listening");
        let mut shutdown = std::pin::pin!(shutdown);
        let result = loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
                () = &mut shutdown => break Ok(()),
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) if is_transient(&e) => {
                        tracing::warn!(error = %e, "accept failed");
                        // Out of descriptors/buffers returns at once: back off instead of spinning.
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                    Err(e) => break Err(ProxyError::Accept(e)),
                },
                () = &mut shutdown => break Ok(()),
            };
            // Transparent sockets report the original destination as their local address.
            let Ok(dst) = stream.local_addr() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let ends = Ends { src: peer, dst };
            // The flow's TLS settings decide how the connection is served; the connection keeps
            // the flow resolved here until the policy changes.
            let flow = Arc::new(handler.policy.borrow().flow(peer, dst));
            let client = match &flow.tls {
                FlowTls::Plain => {
                    let conn = crate::h1::serve(stream, ends, flow, shared.clone());
                    tokio::spawn(async move {
                        conn.await;
                        drop(permit);
                    });
                    continue;
                }
                FlowTls::Originate(Ok(origin)) => {
                    let origin = TlsOrigin::new(origin.clone(), None, dst.ip());
                    let timeout = config.limits.connect_timeout;
                    ClientConn::with_flow(ends, marks, timeout, Some(origin), false, flow.clone())
                }
                FlowTls::Originate(Err(e)) => {
                    tracing::debug!(%peer, %dst, "connection reset: {e}");
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    continue;
                }
                FlowTls::Tls(_) => {
                    let ctx = TlsServe {
                        handler: handler.clone(),
                        builder: builder.clone(),
                        marks,
                        hello_timeout: config.limits.header_timeout,
                        connect_timeout: config.limits.connect_timeout,
                        closing: closing.clone(),
                    };
                    tokio::spawn(async move {
                        crate::tls::serve(stream, ends, flow, ctx).await;
                        drop(permit);
                    });
                    continue;
                }
            };
            let client = Arc::new(client);
            let conn = drain::serve_hyper(
                &builder,
                stream,
                handler.clone(),
                client,
                closing.clone(),
                config.limits.header_timeout,
            );
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, %peer, "connection ended with error");
                }
                drop(permit);
            });
        };
        compiler.abort();
        drop(listener);
        closing_tx.send_replace(true);
        // Every connection (relayed or hyper's) finishes the request it is on, or its first
        // one, then closes: every permit back = every connection done.
        let all = u32::try_from(config.limits.max_connections.max(1)).unwrap_or(u32::MAX);
        let drained = async {
            let _ = permits.acquire_many(all).await;
        };
        if tokio::time::timeout(config.limits.drain_timeout, drained)
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the drain timeout");
        }
        result
    }
}

/// HTTP/1.1 and HTTP/2 server settings from the limits.
pub(crate) fn http_builder(config: &ProxyConfig) -> auto::Builder<TokioExecutor> {
    let limits = &config.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut http1 = builder.http1();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(HYPER_MIN_BUF))
        // Pipelining works without `pipeline_flush`; with it hyper 1.12 closes without
        // flushing the 431 it wrote for an oversized head.
        .keep_alive(true);
    // hyper's own limit is 100 on a stack array; an explicit limit costs a heap array filled on
    // every request head, so only set it when it differs.
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        http1.max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Compiles each new snapshot on a blocking thread and publishes it; bad snapshots are logged
/// and skipped, so the last good policy stays in force.
async fn compile_loop(
    mut snapshots: watch::Receiver<Arc<PolicySnapshot>>,
    policy_tx: watch::Sender<Arc<CompiledPolicy>>,
    applied_tx: watch::Sender<u64>,
) {
    loop {
        let snap = snapshots.borrow_and_update().clone();
        match tokio::task::spawn_blocking(move || CompiledPolicy::compile(&snap)).await {
            Ok(Ok(compiled)) => {
                let revision = compiled.revision;
                policy_tx.send_replace(Arc::new(compiled));
                applied_tx.send_replace(revision);
                tracing::debug!(revision, "HTTP policy applied");
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "HTTP policy rejected; keeping the previous one")
            }
            Err(e) => tracing::error!(error = %e, "HTTP policy compiler panicked"),
        }
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

/// Accept errors that concern one connection or a momentary shortage, not the listener.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock | OutOfMemory
    ) || e
        .raw_os_error()
        .is_some_and(|c| c == 24 || c == 23 || c == 105)
}
