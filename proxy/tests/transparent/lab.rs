//! The proxy and a real upstream HTTP server running inside the server namespace, on their own
//! Tokio runtime, with the handles a test needs: snapshot sender, applied revision, flow records,
//! and what the upstream saw.

use super::netns::{enter, NetnsPair};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use palisade_proxy::{HttpFlowRecord, PolicySnapshot, Proxy, ProxyConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// One request as the upstream server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path with query, as received.
    pub path: String,
    /// HTTP version.
    pub version: http::Version,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Source address of the upstream connection it came on (tells connections apart).
    pub peer: std::net::SocketAddr,
}

/// A running proxy + upstream in a namespace pair.
pub struct Lab {
    /// Namespaces (dropped last).
    pub ns: NetnsPair,
    snapshots: watch::Sender<Arc<PolicySnapshot>>,
    applied: watch::Receiver<u64>,
    flows: mpsc::Receiver<HttpFlowRecord>,
    /// Requests the upstream received.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lab {
    /// Starts everything with `config` (listen address forced to 0.0.0.0:0, transparent) and the
    /// first snapshot, and waits until that snapshot is enforced.
    pub fn start(mut config: ProxyConfig, first: PolicySnapshot) -> Lab {
        // `RUST_LOG=palisade_proxy=debug,hyper=debug` shows the proxy's side of a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let ns = NetnsPair::new();
        config.listen = "0.0.0.0:0".parse().expect("addr");
        config.transparent = true;
        let (snap_tx, snap_rx) = watch::channel(Arc::new(first.clone()));
        let (flow_tx, flow_rx) = mpsc::channel(1024);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let server_ns = ns.server.clone();
        let seen2 = seen.clone();
        let thread = std::thread::spawn(move || {
            enter(&server_ns);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let upstream = tokio::net::TcpListener::bind("0.0.0.0:80")
                    .await
                    .expect("bind upstream :80");
                tokio::spawn(serve_upstream(upstream, seen2));
                let proxy = Proxy::bind(config).expect("bind proxy");
                ready_tx
                    .send((proxy.local_addr().port(), proxy.applied_revision()))
                    .expect("ready");
                let stop = async {
                    let _ = stop_rx.await;
                };
                proxy
                    .serve(snap_rx, flow_tx, stop)
                    .await
                    .expect("proxy serve");
            });
        });
        let (port, applied) = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("proxy thread started");
        ns.redirect_to(port);
        let lab = Lab {
            ns,
            snapshots: snap_tx,
            applied,
            flows: flow_rx,
            seen,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        lab.wait_applied(first.revision);
        lab
    }

    /// Publishes a snapshot and waits (bounded) until the proxy enforces it.
    pub fn update(&self, snap: PolicySnapshot) {
        let rev = snap.revision;
        self.snapshots.send_replace(Arc::new(snap));
        self.wait_applied(rev);
    }

    fn wait_applied(&self, rev: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while *self.applied.borrow() != rev {
            assert!(
                Instant::now() < deadline,
                "revision {rev} never applied (at {})",
                *self.applied.borrow()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The next flow record (bounded wait).
    pub fn next_flow(&mut self) -> HttpFlowRecord {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(rec) = self.flows.try_recv() {
                return rec;
            }
            assert!(Instant::now() < deadline, "no flow record within 5 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Requests the upstream received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }
}

impl Lab {
    /// Stops the proxy's listener (as an upgrade does) without waiting for it to drain.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// TCP listening sockets in the server namespace (the upstream's, and the proxy's until it
    /// stops).
    pub fn listeners(&self) -> usize {
        let out = super::netns::sh(&["ip", "netns", "exec", &self.ns.server, "ss", "-Htln"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    /// Connections to port 80 in the server namespace that a process has accepted.
    pub fn accepted(&self) -> usize {
        let out = super::netns::sh(&[
            "ip",
            "netns",
            "exec",
            &self.ns.server,
            "ss",
            "-Htnp",
            "state",
            "established",
            "( sport = :80 )",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("users:"))
            .count()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The service pod: answers `<html><body><h1>Hello from PATH</h1></body></html>` over HTTP/1.1
/// or HTTP/2, echoes WebSocket-style upgrades, and closes its connection after answering a
/// request that carries `x-close`.
async fn serve_upstream(listener: tokio::net::TcpListener, seen: Arc<Mutex<Vec<Seen>>>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| page(req, peer, seen.clone()));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn page(
    mut req: Request<Incoming>,
    peer: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    seen.lock().expect("seen lock").push(Seen {
        method: req.method().to_string(),
        path: path.clone(),
        version: req.version(),
        headers: req.headers().clone(),
        peer,
    });
    if req.headers().contains_key(http::header::UPGRADE) {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on_upgrade.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert("connection", "upgrade".parse().expect("value"));
        resp.headers_mut()
            .insert("upgrade", "echo".parse().expect("value"));
        return Ok(resp);
    }
    let close = req.headers().contains_key("x-close");
    let _ = req.into_body().collect().await?;
    let mut resp = Response::new(Full::new(Bytes::from(format!(
        "<html><body><h1>Hello from {path}</h1></body></html>"
    ))));
    if close {
        resp.headers_mut()
            .insert("connection", "close".parse().expect("value"));
    }
    Ok(resp)
}

impl Lab {
    /// Publishes a snapshot without waiting for it (for snapshots that must not apply).
    pub fn update_unchecked(&self, snap: PolicySnapshot) {
        self.snapshots.send_replace(Arc::new(snap));
    }

    /// The revision enforced right now.
    pub fn applied_now(&self) -> u64 {
        *self.applied.borrow()
    }
}
