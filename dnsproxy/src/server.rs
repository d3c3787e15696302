//! Binding the listeners and serving until shutdown; the policy compiler task; counters.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::config::DnsProxyConfig;
use crate::error::DnsProxyError;
use crate::flow::DnsFlowRecord;
use crate::flow_out::{FlowOut, FLUSH};
use crate::handler::Shared;
use crate::inflight::InFlight;
use crate::learner::FqdnLearner;
use crate::mux::UdpMux;
use crate::policy::CompiledPolicy;
use crate::refresh::LearnFilter;
use crate::snapshot::DnsSnapshot;
use crate::udp_thread::UdpThread;
use crate::{drain, sockets, tcp};

/// Counters of the running proxy (read them with `load(Ordering::Relaxed)`).
#[derive(Debug, Default)]
pub struct DnsProxyStats {
    /// Messages received (UDP datagrams and TCP frames).
    pub queries: AtomicU64,
    /// Queries forwarded and answered by the resolver.
    pub forwarded: AtomicU64,
    /// Queries denied by policy.
    pub refused: AtomicU64,
    /// Malformed, upstream failure, learner failure or overload.
    pub errors: AtomicU64,
    /// Answers released because the learner did not finish within `learn_timeout`.
    pub learn_timeouts: AtomicU64,
    /// Learner returned an error (answer turned into SERVFAIL).
    pub learn_errors: AtomicU64,
    /// Answers released without waiting for the learner: the maps already held every address
    /// (see [`DnsProxyConfig::learn_refresh`]).
    pub learn_skipped: AtomicU64,
    /// Background learner calls that only extend expiries of addresses already in the maps.
    pub learn_refreshes: AtomicU64,
    /// Answers that waited for a learner call already running for the same name and addresses
    /// instead of making their own.
    pub learn_joined: AtomicU64,
    /// Upstream UDP datagrams dropped: no pending query with that ID and first question
    /// (late answers after a timeout, or spoofing attempts).
    pub upstream_mismatched: Arc<AtomicU64>,
    /// Queries answered SERVFAIL because `max_in_flight` was reached.
    pub overloaded: AtomicU64,
    /// Flow records dropped because the channel was full.
    pub flows_dropped: AtomicU64,
}

/// The proxy with its listeners bound, not yet serving (lets callers learn the ports).
pub struct BoundDnsProxy {
    config: DnsProxyConfig,
    udp: UdpSocket,
    tcp: TcpListener,
    stats: Arc<DnsProxyStats>,
}

impl BoundDnsProxy {
    /// Binds the transparent UDP and TCP listeners on `0.0.0.0:listen_port`. With port 0 the TCP
    /// listener takes the port the UDP one got.
    pub fn bind(config: DnsProxyConfig) -> Result<Self, DnsProxyError> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.listen_port));
        let udp = sockets::udp_listener(addr).map_err(|source| DnsProxyError::Bind {
            proto: "udp",
            addr,
            source,
        })?;
        let addr = udp.local_addr().map_err(|source| DnsProxyError::Bind {
            proto: "udp",
            addr,
            source,
        })?;
        let tcp = sockets::tcp_listener(addr).map_err(|source| DnsProxyError::Bind {
            proto: "tcp",
            addr,
            source,
        })?;
        Ok(BoundDnsProxy {
            config,
            udp,
            tcp,
            stats: Arc::default(),
        })
    }

    /// Serves on listeners bound elsewhere: the ones a previous proxy process handed over on an
    /// upgrade (the same kernel sockets, so no query is lost meanwhile).
    pub fn from_sockets(
        config: DnsProxyConfig,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
    ) -> Result<Self, DnsProxyError> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.listen_port));
        let register = |proto| {
            move |source| DnsProxyError::Bind {
                proto,
                addr,
                source,
            }
        };
        udp.set_nonblocking(true).map_err(register("udp"))?;
        tcp.set_nonblocking(true).map_err(register("tcp"))?;
        Ok(BoundDnsProxy {
            config,
            udp: UdpSocket::from_std(udp).map_err(register("udp"))?,
            tcp: TcpListener::from_std(tcp).map_err(register("tcp"))?,
            stats: Arc::default(),
        })
    }

    /// Second descriptors of the UDP and TCP listeners, to hand over to a new proxy process.
    pub fn listener_fds(&self) -> std::io::Result<(OwnedFd, OwnedFd)> {
        Ok((
            self.udp.as_fd().try_clone_to_owned()?,
            self.tcp.as_fd().try_clone_to_owned()?,
        ))
    }

    /// The port both listeners are bound to.
    pub fn port(&self) -> u16 {
        self.udp.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Counters, shared with the running proxy.
    pub fn stats(&self) -> Arc<DnsProxyStats> {
        self.stats.clone()
    }

    /// Serves until `shutdown` completes, then stops reading the listeners and lets the queries
    /// in flight finish (bounded by the upstream and learn timeouts).
    pub async fn serve(
        self,
        snapshots: watch::Receiver<Arc<DnsSnapshot>>,
        learner: Arc<dyn FqdnLearner>,
        flows: mpsc::Sender<DnsFlowRecord>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), DnsProxyError> {
        let policy = spawn_compiler(snapshots);
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            policy: policy.rx,
            learner,
            flows: FlowOut::new(flows, self.stats.clone()),
            stats: self.stats.clone(),
            mux: Arc::new(UdpMux::new(
                self.config.upstream_mark,
                self.stats.upstream_mismatched.clone(),
            )),
            refresh: Arc::new(LearnFilter::new(self.config.learn_refresh)),
            inflight: InFlight::default(),
        });
        let limit = Arc::new(Semaphore::new(self.config.max_in_flight.max(1)));
        let mut udp =
            UdpThread::spawn(self.udp, shared.clone(), limit.clone()).map_err(|source| {
                DnsProxyError::Serve {
                    proto: "udp",
                    source,
                }
            })?;
        let (stop_tcp, tcp_stopped) = watch::channel(false);
        let tcp = tcp::serve(self.tcp, shared.clone(), limit.clone(), async move {
            let mut rx = tcp_stopped;
            let _ = rx.wait_for(|s| *s).await;
        });
        let mut tcp = std::pin::pin!(tcp);
        let flusher = shared.clone();
        let flusher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH);
            loop {
                tick.tick().await;
                flusher.flows.flush();
            }
        });
        tracing::info!(port = self.config.listen_port, "DNS proxy serving");
        let result = tokio::select! {
            r = &mut udp.failed => Err(DnsProxyError::Serve {
                proto: "udp",
                // No error sent: the thread ended (panicked) before being stopped.
                source: r.unwrap_or_else(|_| std::io::Error::other("UDP thread ended")),
            }),
            r = &mut tcp => r.map_err(|source| DnsProxyError::Serve { proto: "tcp", source }),
            () = shutdown => Ok(()),
        };
        drop(udp);
        if result.is_ok() {
            let _ = stop_tcp.send(true);
            let _ = tcp.await;
        }
        let max = self.config.max_in_flight.max(1);
        if !drain::in_flight_done(&limit, max, drain::bound(&self.config)).await {
            tracing::warn!("DNS queries still in flight after the drain bound");
        }
        policy.task.abort();
        flusher.abort();
        shared.mux.shutdown();
        shared.flows.flush();
        result
    }
}

/// Binds and serves in one call (see [`BoundDnsProxy`] to learn the port first).
pub async fn run(
    config: DnsProxyConfig,
    snapshots: watch::Receiver<Arc<DnsSnapshot>>,
    learner: Arc<dyn FqdnLearner>,
    flows: mpsc::Sender<DnsFlowRecord>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DnsProxyError> {
    BoundDnsProxy::bind(config)?
        .serve(snapshots, learner, flows, shutdown)
        .await
}

struct Compiler {
    rx: watch::Receiver<Arc<CompiledPolicy>>,
    task: tokio::task::JoinHandle<()>,
}

/// Compiles every new snapshot off the query path and publishes the result.
fn spawn_compiler(mut snapshots: watch::Receiver<Arc<DnsSnapshot>>) -> Compiler {
    let first = snapshots.borrow_and_update().clone();
    let (tx, rx) = watch::channel(Arc::new(compile_logged(&first)));
    let task = tokio::spawn(async move {
        while snapshots.changed().await.is_ok() {
            let snap = snapshots.borrow_and_update().clone();
            let compiled = tokio::task::spawn_blocking(move || compile_logged(&snap)).await;
            let Ok(compiled) = compiled else { break };
            if tx.send(Arc::new(compiled)).is_err() {
                break;
            }
        }
    });
    Compiler { rx, task }
}

fn compile_logged(snap: &DnsSnapshot) -> CompiledPolicy {
    let c = CompiledPolicy::compile(snap);
    for (ep, sel, err) in &c.invalid {
        tracing::warn!(endpoint = %ep, selector = %sel, error = %err, "invalid DNS selector ignored");
    }
    tracing::debug!(revision = c.revision(), "DNS policy compiled");
    c
}
