//! `palisade run`: the agent. Loads config, adopts the pinned datapath, applies policy, runs the
//! HTTP and DNS proxies, serves the local API and metrics, and watches the inputs.

mod agent;
mod api_impl;
mod datapath_sync;
mod flows;
mod fqdn_persist;
mod inputs;
mod learn_fast;
mod proxy_client;
mod secrets;
mod snapshots;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use palisade_api::Metrics;
use palisade_dnsproxy::{FqdnLearner, LearnError, LearnedAnswer};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, ProxyMode};
use agent::Agent;

/// How often the inputs are checked for changes (a change applies within a second).
const POLL: Duration = Duration::from_millis(250);

/// Runs the agent until SIGINT or SIGTERM.
pub fn main(config_path: &Path) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    init_logging(&config.log_level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run(config, config_path.to_path_buf()))?;
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr with the configured filter (`RUST_LOG` wins).
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

struct Learner(Arc<Agent>);

impl FqdnLearner for Learner {
    fn learn(
        &self,
        update: LearnedAnswer,
    ) -> Pin<Box<dyn Future<Output = Result<(), LearnError>> + Send + '_>> {
        let agent = self.0.clone();
        Box::pin(async move {
            agent
                .learn(&update.endpoint, &update.names, &update.addrs)
                .await
                .map_err(|e| LearnError::Failed(format!("{e:#}")))
        })
    }
}

async fn run(config: Config, config_path: std::path::PathBuf) -> Result<()> {
    let metrics = Arc::new(Metrics::new().context("creating metrics")?);
    let agent = Agent::new(config.clone(), metrics.clone())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let (http_tx, http_rx) = mpsc::channel(4096);
    let (dns_tx, dns_rx) = mpsc::channel(4096);
    let mut tasks = tokio::task::JoinSet::new();
    let mut proxy_connected = None;
    match config.proxy.mode {
        ProxyMode::Embedded => {
            // Proxies first, so redirect entries never point at a missing listener.
            let proxy = palisade_proxy::Proxy::bind(config.http_proxy())
                .context("starting the HTTP proxy")?;
            let dns = palisade_dnsproxy::server::BoundDnsProxy::bind(config.dns_proxy())
                .context("starting the DNS proxy")?;
            tasks.spawn(
                proxy
                    .serve(agent.http_snapshots.subscribe(), http_tx, stopped())
                    .map_ok_or_log("HTTP proxy"),
            );
            tasks.spawn(
                dns.serve(
                    agent.dns_snapshots.subscribe(),
                    Arc::new(Learner(agent.clone())),
                    dns_tx,
                    stopped(),
                )
                .map_ok_or_log("DNS proxy"),
            );
        }
        ProxyMode::External => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            proxy_connected = Some(rx);
            tasks.spawn(proxy_client::run(
                agent.clone(),
                config_path,
                http_tx,
                dns_tx,
                tx,
            ));
        }
    }

    if let Some(rx) = proxy_connected {
        // Redirect entries must find the proxies listening: wait (bounded) for the process.
        if tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .is_err()
        {
            tracing::error!("the proxy process is not up; applying policy anyway");
        }
    }
    let a = agent.clone();
    tokio::task::spawn_blocking(move || a.reload(true)).await?;

    tasks.spawn(ignore(flows::http_flows(agent.clone(), http_rx)));
    tasks.spawn(ignore(flows::dns_flows(agent.clone(), dns_rx)));
    tasks.spawn(flows::datapath_events(agent.clone()).map_ok_or_log("datapath events"));
    tasks.spawn(ignore(flows::housekeeping(agent.clone())));
    let api = Arc::new(api_impl::Api(agent.clone()));
    let socket = config.api_socket.clone();
    let api_stop = stopped();
    tasks.spawn(async move {
        if let Err(e) = palisade_api::serve_api(&socket, api, api_stop).await {
            tracing::error!("API stopped: {e}");
        }
    });
    if let Some(addr) = config.metrics_addr()? {
        tasks.spawn(
            palisade_api::serve_metrics(addr, metrics.clone(), stopped()).map_ok_or_log("metrics"),
        );
    }
    let watcher = agent.clone();
    tasks.spawn(ignore(async move {
        loop {
            tokio::time::sleep(POLL).await;
            let a = watcher.clone();
            let _ = tokio::task::spawn_blocking(move || a.reload(false)).await;
        }
    }));

    shutdown_signal().await;
    tracing::info!("stopping; enforcement stays in the kernel");
    let _ = stop_tx.send(true);
    tasks.abort_all();
    // Whatever the writer has not written yet (TTL refreshes, a write in progress).
    let a = agent.clone();
    let _ = tokio::task::spawn_blocking(move || a.save_fqdns_now()).await;
    Ok(())
}

async fn ignore(f: impl Future<Output = ()>) {
    f.await
}

trait LogResult {
    fn map_ok_or_log(self, what: &'static str) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<F, E> LogResult for F
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    fn map_ok_or_log(self, what: &'static str) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            if let Err(e) = self.await {
                tracing::error!("{what} stopped: {e}");
            }
        })
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
