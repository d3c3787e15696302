//! The agent's side of the proxy link: starts `palisade proxy` when it is not running, pushes
//! every new snapshot, and turns what comes back into flow events and learned addresses.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use palisade_dnsproxy::DnsFlowRecord;
use palisade_proxy::HttpFlowRecord;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::agent::Agent;
use crate::proxy_link::{send, Reader, ToAgent, ToProxy};

/// Connects to the proxy process, starting it first when its socket does not answer.
async fn connect(agent: &Agent, config_path: &Path) -> Result<UnixStream> {
    let socket = crate::proxy_process::socket_path(&agent.config);
    if let Ok(s) = UnixStream::connect(&socket).await {
        return Ok(s);
    }
    let exe = std::env::current_exe().context("locating the palisade binary")?;
    let log = std::fs::File::create(agent.config.state_dir.join("proxy.log"))
        .context("creating proxy.log")?;
    let child = Command::new(exe)
        .arg("proxy")
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: it must outlive the agent.
        .process_group(0)
        .spawn()
        .context("starting palisade proxy")?;
    tracing::info!(pid = child.id(), "started the proxy process");
    // Reap it if it exits while we live; it normally outlives us.
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    for _ in 0..100 {
        if let Ok(s) = UnixStream::connect(&socket).await {
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!(
        "the proxy process did not open {} (see proxy.log)",
        socket.display()
    )
}

/// Keeps the link up for the agent's lifetime, reconnecting (and restarting the proxy
/// process) when it drops.
pub async fn run(
    agent: Arc<Agent>,
    config_path: std::path::PathBuf,
    http_flows: mpsc::Sender<HttpFlowRecord>,
    dns_flows: mpsc::Sender<DnsFlowRecord>,
    connected: tokio::sync::oneshot::Sender<()>,
) {
    let mut connected = Some(connected);
    loop {
        match session(
            &agent,
            &config_path,
            &http_flows,
            &dns_flows,
            &mut connected,
        )
        .await
        {
            // A clean close is usually a proxy upgrade: the new process already listens, and
            // its DNS answers wait for this agent's learn replies, so reconnect at once.
            Ok(()) => {
                tracing::warn!("proxy link closed; reconnecting");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => {
                tracing::error!("proxy link: {e:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn session(
    agent: &Arc<Agent>,
    config_path: &Path,
    http_flows: &mpsc::Sender<HttpFlowRecord>,
    dns_flows: &mpsc::Sender<DnsFlowRecord>,
    connected: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<()> {
    let stream = connect(agent, config_path).await?;
    let (r, mut w) = stream.into_split();
    let mut reader = Reader::new(r);
    match reader.next::<ToAgent>().await? {
        Some(ToAgent::Hello { pid, http_revision }) => {
            tracing::info!(pid, http_revision, "connected to the proxy process")
        }
        other => anyhow::bail!("expected hello from the proxy, got {other:?}"),
    }
    let mut http = agent.http_snapshots.subscribe();
    let mut dns = agent.dns_snapshots.subscribe();
    if let Some(tx) = connected.take() {
        let _ = tx.send(());
    }
    // Whatever is in force now goes first; before this agent's first revision (a restart)
    // there is nothing to send, and the proxy keeps enforcing what it has.
    let first_http = (**http.borrow_and_update()).clone();
    let first_dns = (**dns.borrow_and_update()).clone();
    if first_http.revision > 0 {
        send(
            &mut w,
            &ToProxy::Http {
                snapshot: first_http,
            },
        )
        .await?;
        send(
            &mut w,
            &ToProxy::Dns {
                snapshot: first_dns,
            },
        )
        .await?;
    }
    let (learned_tx, mut learned_rx) = mpsc::channel::<ToProxy>(1024);
    loop {
        tokio::select! {
            changed = http.changed() => {
                changed?;
                let snapshot = (**http.borrow_and_update()).clone();
                send(&mut w, &ToProxy::Http { snapshot }).await?;
            }
            changed = dns.changed() => {
                changed?;
                let snapshot = (**dns.borrow_and_update()).clone();
                send(&mut w, &ToProxy::Dns { snapshot }).await?;
            }
            Some(reply) = learned_rx.recv() => send(&mut w, &reply).await?,
            msg = reader.next::<ToAgent>() => match msg? {
                None => return Ok(()),
                Some(ToAgent::HttpFlow { record }) => { let _ = http_flows.try_send(record); }
                Some(ToAgent::DnsFlow { record }) => { let _ = dns_flows.try_send(record); }
                Some(ToAgent::Learn { id, answer }) => {
                    let agent = agent.clone();
                    let tx = learned_tx.clone();
                    tokio::spawn(async move {
                        let r = agent.learn(&answer.endpoint, &answer.names, &answer.addrs).await;
                        let error = r.err().map(|e| format!("{e:#}"));
                        let _ = tx.send(ToProxy::Learned { id, error }).await;
                    });
                }
                Some(ToAgent::Applied { revision }) => agent.proxy_applied(revision),
                Some(ToAgent::Hello { .. }) => {}
            },
        }
    }
}
