//! Shared by the API's socket tests: a test agent with fixed answers served by `serve_api` on
//! a temp socket, and helpers to talk raw HTTP to it.

// Each test crate uses a different part of the harness.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use palisade_api::*;
use tokio::sync::{broadcast, oneshot};

/// An agent with fixed answers and a real flow channel.
pub struct TestAgent {
    pub flows: broadcast::Sender<FlowEvent>,
}

pub fn labels(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub fn client_prod() -> EndpointView {
    EndpointView {
        name: "default/client-prod".into(),
        security_identity: 256,
        state: "ready".into(),
        ipv4: labels(&["10.0.1.5"]),
        ipv6: vec![],
    }
}

pub fn status() -> StatusView {
    StatusView {
        datapath: DatapathStatus {
            ok: true,
            interfaces: labels(&["pe-veth0"]),
        },
        proxies: ProxiesStatus {
            ok: true,
            http_port: 15001,
            dns_port: 15053,
        },
        policy_revision: 7,
        endpoints: 1,
        identities: 11,
        policies: 1,
        fqdn_names: 1,
        last_error: None,
    }
}

pub fn host_identity() -> IdentityView {
    IdentityView {
        id: 1,
        labels: labels(&["reserved:host"]),
    }
}

pub fn bpf_entry() -> BpfPolicyEntryView {
    BpfPolicyEntryView {
        direction: "egress".into(),
        identity: 0,
        identity_labels: vec![],
        proto: "TCP".into(),
        port: 80,
        end_port: 80,
        verdict: "allow".into(),
        proxy_port: None,
        bytes: Some(10),
        packets: Some(1),
    }
}

pub fn fqdn_entry() -> FqdnCacheView {
    FqdnCacheView {
        endpoint: "default/mediabot".into(),
        source: "lookup".into(),
        name: "api.github.com.".into(),
        ttl: 60,
        expires_unix: 1_700_000_000,
        ips: labels(&["10.99.0.1"]),
    }
}

impl AgentApi for TestAgent {
    fn status(&self) -> StatusView {
        status()
    }
    fn identities(&self) -> Vec<IdentityView> {
        vec![host_identity()]
    }
    fn identity(&self, id: u32) -> Option<IdentityView> {
        (id == 1).then(host_identity)
    }
    fn endpoints(&self) -> Vec<EndpointView> {
        vec![client_prod()]
    }
    fn endpoint(&self, name: &str) -> Option<EndpointDetail> {
        (name == "default/client-prod").then(|| EndpointDetail {
            endpoint: client_prod(),
            labels: labels(&["k8s:env=prod"]),
            ingress: DirectionView::default(),
            egress: DirectionView::default(),
        })
    }
    fn policies(&self) -> PolicyListView {
        PolicyListView {
            revision: 7,
            policies: vec![PolicyView {
                name: "l4-rule".into(),
                namespace: "default".into(),
                kind: "CiliumNetworkPolicy".into(),
                source: "p.yaml:1".into(),
            }],
        }
    }
    fn trace(&self, req: TraceRequest) -> Result<TraceView, String> {
        if req.from == "nowhere" {
            return Err("unknown source endpoint nowhere".into());
        }
        Ok(TraceView {
            lines: vec![format!("{} -> {}:{}", req.from, req.to, req.dport)],
            allowed: req.dport == 80,
        })
    }
    fn bpf_policy(&self, endpoint: &str) -> Result<Vec<BpfPolicyEntryView>, String> {
        if endpoint == "default/client-prod" {
            Ok(vec![bpf_entry()])
        } else {
            Err(format!("no policy map for endpoint {endpoint}"))
        }
    }
    fn fqdn_cache(&self) -> Vec<FqdnCacheView> {
        vec![fqdn_entry()]
    }
    fn subscribe_flows(&self) -> broadcast::Receiver<FlowEvent> {
        self.flows.subscribe()
    }
}

/// A served test agent on a socket in a temp dir; shut down and removed on drop.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub flows: broadcast::Sender<FlowEvent>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ApiError>>,
}

impl Harness {
    /// Serves at `<tmp>/run/palisade/palisade.sock` (the parent does not exist yet).
    pub async fn start() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("run/palisade/palisade.sock");
        let (flows, _) = broadcast::channel(64);
        let agent = Arc::new(TestAgent {
            flows: flows.clone(),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let path = socket.clone();
        let task = tokio::spawn(async move { serve_api(&path, agent, rx).await });
        wait_for(&socket).await;
        Harness {
            dir,
            socket,
            flows,
            shutdown: Some(tx),
            task,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    /// Stops the server and returns its result.
    pub async fn stop(mut self) -> Result<(), ApiError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.expect("server task panicked")
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits (bounded) until the socket appears.
pub async fn wait_for(socket: &Path) {
    for _ in 0..200 {
        if socket.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("socket {} never appeared", socket.display());
}

/// Sends raw bytes and returns the whole raw response (the client cannot send bad JSON).
pub async fn raw_request(socket: &Path, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("response within 5s")
        .expect("read response");
    out
}

pub fn agent_error(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Agent { status, message } => (status, message),
        other => panic!("expected an agent error, got {other:?}"),
    }
}
