//! `GET /metrics` (Prometheus text format) and `GET /healthz` over TCP.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, StatusCode};
use tokio::net::TcpListener;

use super::Metrics;
use crate::error::ApiError;
use crate::http_util::{error, full, serve_loop, with_type};

/// Where metrics are served unless configured otherwise (Cilium's agent port).
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9962";

/// A bound metrics listener; split from serving so callers (and tests) can learn the port.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> Result<MetricsServer, ApiError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ApiError::BindTcp { addr, source })?;
        Ok(MetricsServer { listener })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(self, metrics: Arc<Metrics>, shutdown: impl Future) {
        let handler = move |req: http::Request<hyper::body::Incoming>| {
            let metrics = metrics.clone();
            async move {
                match (req.method(), req.uri().path()) {
                    (&Method::GET, "/metrics") => with_type(
                        StatusCode::OK,
                        "text/plain; version=0.0.4",
                        full(metrics.render()),
                    ),
                    (&Method::GET, "/healthz") => {
                        with_type(StatusCode::OK, "text/plain", full("ok\n"))
                    }
                    (m, p) => error(StatusCode::NOT_FOUND, format!("no route for {m} {p}")),
                }
            }
        };
        serve_loop(self.listener, handler, shutdown).await;
    }
}

/// Serves `metrics` on `addr` (default [`DEFAULT_METRICS_ADDR`]) until `shutdown` resolves.
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl Future,
) -> Result<(), ApiError> {
    let server = MetricsServer::bind(addr).await?;
    tracing::info!(%addr, "metrics listening");
    server.serve(metrics, shutdown).await;
    Ok(())
}
