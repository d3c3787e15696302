//! `palisade proxy`: the HTTP and DNS proxies in their own process, so an agent restart drops
//! no L7 connection and no DNS query. It enforces the last snapshots it was given until an
//! agent connects to its socket and sends newer ones.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use palisade_dnsproxy::{DnsSnapshot, FqdnLearner, LearnError, LearnedAnswer};
use palisade_proxy::PolicySnapshot;
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::proxy_handover as handover;
use crate::proxy_link::{send, send_all, Reader, ToAgent, ToProxy};

/// A learn request and who waits for its outcome.
type Pending = (LearnedAnswer, oneshot::Sender<Result<(), LearnError>>);

/// Learn requests kept while no agent is connected.
const MAX_PENDING: usize = 10_000;

/// The proxy process's socket under the agent's state directory.
pub fn socket_path(config: &Config) -> PathBuf {
    config.state_dir.join("proxy.sock")
}

/// Learn requests waiting for the agent, and the connection to send them on.
#[derive(Default)]
struct Link {
    writer: tokio::sync::Mutex<Option<OwnedWriteHalf>>,
    /// Learn requests not yet acknowledged by an agent. They outlive the DNS answer they came
    /// from (which the proxy releases after its learn timeout), so an agent that comes back
    /// still writes them; the oldest are dropped past [`MAX_PENDING`].
    pending: Mutex<std::collections::BTreeMap<u64, Pending>>,
    next_id: AtomicU64,
}

impl Link {
    async fn send(&self, msg: &ToAgent) -> bool {
        self.send_all(std::slice::from_ref(msg)).await
    }

    /// Sends `msgs` with one write.
    async fn send_all(&self, msgs: &[ToAgent]) -> bool {
        let mut w = self.writer.lock().await;
        match w.as_mut() {
            Some(writer) => {
                if send_all(writer, msgs).await.is_err() {
                    *w = None;
                    false
                } else {
                    true
                }
            }
            None => false,
        }
    }
}

struct RemoteLearner(Arc<Link>);

impl FqdnLearner for RemoteLearner {
    fn learn(
        &self,
        update: LearnedAnswer,
    ) -> Pin<Box<dyn Future<Output = Result<(), LearnError>> + Send + '_>> {
        Box::pin(async move {
            let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            {
                let mut pending = self.0.pending.lock().expect("pending");
                pending.insert(id, (update.clone(), tx));
                while pending.len() > MAX_PENDING {
                    pending.pop_first();
                }
            }
            // Without an agent the request waits in `pending` and is sent on (re)connect; the
            // DNS proxy's learn timeout bounds the wait either way.
            self.0.send(&ToAgent::Learn { id, answer: update }).await;
            rx.await
                .unwrap_or_else(|_| Err(LearnError::Failed("learn request dropped".into())))
        })
    }
}

/// Runs the proxies until SIGINT or SIGTERM, or until a newer proxy took over. With `upgrade`
/// it takes the listeners and policy of the running proxy process instead of binding.
pub fn main(config_path: &Path, upgrade: bool) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    crate::run::init_logging(&config.log_level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run(config, upgrade))?;
    Ok(ExitCode::SUCCESS)
}

/// The bound proxies and the policy they start with.
struct Bound {
    http: palisade_proxy::Proxy,
    dns: palisade_dnsproxy::server::BoundDnsProxy,
    snapshots: handover::Snapshots,
    /// The old process's end of the handover, confirmed once this one serves.
    from: Option<std::os::unix::net::UnixStream>,
}

fn bind(config: &Config, upgrade: bool) -> Result<Bound> {
    let handover_path = handover::socket_path(config);
    if upgrade {
        let (listeners, snapshots, from) = handover::take_over(&handover_path)?;
        tracing::info!(
            http_revision = snapshots.http.revision,
            "took over the listeners of the running proxy"
        );
        return Ok(Bound {
            http: palisade_proxy::Proxy::from_listener(config.http_proxy(), listeners.http)
                .context("serving the handed-over HTTP listener")?,
            dns: palisade_dnsproxy::server::BoundDnsProxy::from_sockets(
                config.dns_proxy(),
                listeners.dns_udp,
                listeners.dns_tcp,
            )
            .context("serving the handed-over DNS sockets")?,
            snapshots,
            from: Some(from),
        });
    }
    if std::os::unix::net::UnixStream::connect(socket_path(config)).is_ok() {
        anyhow::bail!(
            "a palisade proxy already serves {} (use `palisade proxy --upgrade` to replace it)",
            socket_path(config).display()
        );
    }
    Ok(Bound {
        http: palisade_proxy::Proxy::bind(config.http_proxy())
            .context("starting the HTTP proxy")?,
        dns: palisade_dnsproxy::server::BoundDnsProxy::bind(config.dns_proxy())
            .context("starting the DNS proxy")?,
        snapshots: handover::Snapshots {
            http: PolicySnapshot::default(),
            dns: DnsSnapshot::default(),
        },
        from: None,
    })
}

/// Binds a unix socket at `path` (replacing a stale one or a predecessor's) and remembers its
/// inode, so that on exit only our own socket file is removed.
fn bind_unix(path: &Path) -> Result<(UnixListener, u64)> {
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path)?);
    Ok((listener, inode))
}

fn remove_if_ours(path: &Path, inode: u64) {
    let ours =
        std::fs::metadata(path).is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == inode);
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

async fn run(config: Config, upgrade: bool) -> Result<()> {
    std::fs::create_dir_all(&config.state_dir)?;
    let bound = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || bind(&config, upgrade)).await??
    };
    let Bound {
        http: proxy,
        dns,
        snapshots,
        from,
    } = bound;
    let fds = handover::ListenerFds {
        http: proxy
            .listener_fd()
            .context("duplicating the HTTP listener")?,
        dns_udp: dns.listener_fds().context("duplicating the DNS sockets")?.0,
        dns_tcp: dns.listener_fds().context("duplicating the DNS sockets")?.1,
    };
    let (http_tx, http_rx) = watch::channel(Arc::new(snapshots.http));
    let (dns_tx, dns_rx) = watch::channel(Arc::new(snapshots.dns));
    let link = Arc::new(Link::default());
    // `stop`: stop accepting and drain; `unlink`: drop the agent connection (after the DNS
    // queries in flight have had their learn requests answered).
    let (stop_tx, stop_rx) = watch::channel(false);
    let (unlink_tx, unlink_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let (hflow_tx, mut hflow_rx) = mpsc::channel(4096);
    let (dflow_tx, mut dflow_rx) = mpsc::channel(4096);
    let applied = proxy.applied_revision();
    let mut tasks = tokio::task::JoinSet::new();
    let s1 = stopped();
    let http_task = tokio::spawn(async move {
        if let Err(e) = proxy.serve(http_rx, hflow_tx, s1).await {
            tracing::error!("HTTP proxy stopped: {e}");
        }
    });
    let s2 = stopped();
    let learner = Arc::new(RemoteLearner(link.clone()));
    let dns_task = tokio::spawn(async move {
        if let Err(e) = dns.serve(dns_rx, learner, dflow_tx, s2).await {
            tracing::error!("DNS proxy stopped: {e}");
        }
    });
    let l = link.clone();
    tasks.spawn(async move {
        while let Some(record) = hflow_rx.recv().await {
            l.send(&ToAgent::HttpFlow { record }).await;
        }
    });
    let l = link.clone();
    tasks.spawn(async move {
        // Records arrive in bursts (the DNS proxy flushes every 25 ms): one write per burst.
        let mut burst = Vec::new();
        while let Some(record) = dflow_rx.recv().await {
            burst.push(ToAgent::DnsFlow { record });
            while burst.len() < 512 {
                match dflow_rx.try_recv() {
                    Ok(record) => burst.push(ToAgent::DnsFlow { record }),
                    Err(_) => break,
                }
            }
            l.send_all(&burst).await;
            burst.clear();
        }
    });

    let path = socket_path(&config);
    let (listener, inode) = bind_unix(&path)?;
    let handover_path = handover::socket_path(&config);
    let (handover_listener, handover_inode) = bind_unix(&handover_path)?;
    tracing::info!(socket = %path.display(), "proxy process ready");
    let accept_link = link.clone();
    let http_tx = Arc::new(http_tx);
    let dns_tx = Arc::new(dns_tx);
    let (agent_http, agent_dns) = (http_tx.clone(), dns_tx.clone());
    tasks.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (r, w) = stream.into_split();
            let link = accept_link.clone();
            let (http_tx, dns_tx) = (agent_http.clone(), agent_dns.clone());
            let (applied, unlink) = (applied.clone(), unlink_rx.clone());
            tokio::spawn(
                async move { serve_agent(link, r, w, http_tx, dns_tx, applied, unlink).await },
            );
        }
    });
    if let Some(from) = from {
        tokio::task::spawn_blocking(move || handover::confirm(from)).await??;
    }

    tokio::select! {
        () = crate::run::shutdown_signal() => {
            tracing::info!("stopping");
            let _ = stop_tx.send(true);
            tokio::time::sleep(Duration::from_millis(200)).await;
            remove_if_ours(&path, inode);
            remove_if_ours(&handover_path, handover_inode);
        }
        () = serve_upgrades(handover_listener, fds, http_tx, dns_tx) => {
            tracing::info!("a new proxy process serves the listeners; draining");
            let _ = stop_tx.send(true);
            // DNS drains within its timeouts; its learn requests still reach the agent here.
            let _ = dns_task.await;
            let _ = unlink_tx.send(true);
            *link.writer.lock().await = None;
            let _ = http_task.await;
            tracing::info!("drained; exiting");
        }
    }
    tasks.abort_all();
    Ok(())
}

/// Hands the listeners and the policy in force to the first upgrader that confirms; returns
/// then. A failed attempt leaves this process serving.
async fn serve_upgrades(
    listener: UnixListener,
    fds: handover::ListenerFds,
    http: Arc<watch::Sender<Arc<PolicySnapshot>>>,
    dns: Arc<watch::Sender<Arc<DnsSnapshot>>>,
) {
    let fds = Arc::new(fds);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let snapshots = handover::Snapshots {
            http: (**http.borrow()).clone(),
            dns: (**dns.borrow()).clone(),
        };
        let fds = fds.clone();
        let handed = tokio::task::spawn_blocking(move || {
            let stream = stream.into_std()?;
            stream.set_nonblocking(false)?;
            handover::hand_over(stream, &fds, &snapshots)
        })
        .await;
        match handed {
            Ok(Ok(())) => return,
            Ok(Err(e)) => tracing::warn!("proxy upgrade failed, still serving: {e:#}"),
            Err(e) => tracing::warn!("proxy upgrade failed, still serving: {e}"),
        }
    }
}

/// One agent connection: the newest agent replaces any previous one.
async fn serve_agent(
    link: Arc<Link>,
    r: tokio::net::unix::OwnedReadHalf,
    mut w: OwnedWriteHalf,
    http_tx: Arc<watch::Sender<Arc<PolicySnapshot>>>,
    dns_tx: Arc<watch::Sender<Arc<DnsSnapshot>>>,
    applied: watch::Receiver<u64>,
    mut unlink: watch::Receiver<bool>,
) {
    let hello = ToAgent::Hello {
        pid: std::process::id(),
        http_revision: http_tx.borrow().revision,
    };
    if send(&mut w, &hello).await.is_err() {
        return;
    }
    // Learn requests that waited for an agent go out first.
    let pending: Vec<(u64, LearnedAnswer)> = link
        .pending
        .lock()
        .expect("pending")
        .iter()
        .map(|(id, (a, _))| (*id, a.clone()))
        .collect();
    for (id, answer) in pending {
        if send(&mut w, &ToAgent::Learn { id, answer }).await.is_err() {
            return;
        }
    }
    *link.writer.lock().await = Some(w);
    tracing::info!("agent connected");
    let mut reader = Reader::new(r);
    loop {
        let msg = tokio::select! {
            msg = reader.next::<ToProxy>() => msg,
            _ = unlink.wait_for(|u| *u) => break,
        };
        match msg {
            Ok(Some(ToProxy::Http { snapshot })) => {
                let revision = snapshot.revision;
                http_tx.send_replace(Arc::new(snapshot));
                // Acknowledge once compiled and in force, as Envoy ACKs xDS updates; the
                // agent reports a revision ready only then.
                let (link, mut applied) = (link.clone(), applied.clone());
                tokio::spawn(async move {
                    let ok = tokio::time::timeout(
                        Duration::from_secs(5),
                        applied.wait_for(|r| *r >= revision),
                    )
                    .await
                    .is_ok_and(|r| r.is_ok());
                    if ok {
                        link.send(&ToAgent::Applied { revision }).await;
                    } else {
                        tracing::error!(revision, "HTTP snapshot not applied (see earlier errors)");
                    }
                });
            }
            Ok(Some(ToProxy::Dns { snapshot })) => {
                dns_tx.send_replace(Arc::new(snapshot));
            }
            Ok(Some(ToProxy::Learned { id, error })) => {
                if let Some((_, tx)) = link.pending.lock().expect("pending").remove(&id) {
                    let _ = tx.send(match error {
                        None => Ok(()),
                        Some(e) => Err(LearnError::Failed(e)),
                    });
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("agent link: {e}");
                break;
            }
        }
    }
    tracing::info!("agent disconnected; enforcing the last snapshots");
}
