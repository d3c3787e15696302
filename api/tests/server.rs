//! The API over a real unix socket: a test agent served by `serve_api`, queried by `Client`
//! (and by raw HTTP where the client cannot send what we want to test).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use palisade_api::*;
use tokio::sync::{broadcast, oneshot};

/// An agent with fixed answers and a real flow channel.
struct TestAgent {
    flows: broadcast::Sender<FlowEvent>,
}

fn labels(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn client_prod() -> EndpointView {
    EndpointView {
        name: "default/client-prod".into(),
        security_identity: 256,
        state: "ready".into(),
        ipv4: labels(&["10.0.1.5"]),
        ipv6: vec![],
    }
}

fn status() -> StatusView {
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

fn host_identity() -> IdentityView {
    IdentityView {
        id: 1,
        labels: labels(&["reserved:host"]),
    }
}

fn bpf_entry() -> BpfPolicyEntryView {
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

fn fqdn_entry() -> FqdnCacheView {
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
struct Harness {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    flows: broadcast::Sender<FlowEvent>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ApiError>>,
}

impl Harness {
    /// Serves at `<tmp>/run/palisade/palisade.sock` (the parent does not exist yet).
    async fn start() -> Harness {
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
            _dir: dir,
            socket,
            flows,
            shutdown: Some(tx),
            task,
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.socket)
    }

    /// Stops the server and returns its result.
    async fn stop(mut self) -> Result<(), ApiError> {
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
async fn wait_for(socket: &Path) {
    for _ in 0..200 {
        if socket.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("socket {} never appeared", socket.display());
}

/// Sends raw bytes and returns the whole raw response (the client cannot send bad JSON).
async fn raw_request(socket: &Path, request: &str) -> String {
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

fn agent_error(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Agent { status, message } => (status, message),
        other => panic!("expected an agent error, got {other:?}"),
    }
}

#[tokio::test]
async fn every_route_answers_json() {
    let h = Harness::start().await;
    let c = h.client();
    assert_eq!(c.status().await.expect("status"), status());
    assert_eq!(
        c.identities().await.expect("identities"),
        vec![host_identity()]
    );
    assert_eq!(c.identity(1).await.expect("identity 1"), host_identity());
    assert_eq!(c.endpoints().await.expect("endpoints"), vec![client_prod()]);
    let detail = c.endpoint("default/client-prod").await.expect("endpoint");
    assert_eq!(detail.endpoint, client_prod());
    assert_eq!(c.policies().await.expect("policies").revision, 7);
    let trace = c
        .trace(&TraceRequest {
            from: "default/client-prod".into(),
            to: "default/service".into(),
            dport: 80,
            ..Default::default()
        })
        .await
        .expect("trace");
    assert!(trace.allowed, "trace to port 80 must be allowed: {trace:?}");
    assert_eq!(
        trace.lines,
        vec!["default/client-prod -> default/service:80"]
    );
    let bpf = c
        .bpf_policy("default/client-prod")
        .await
        .expect("bpf policy");
    assert_eq!(bpf, vec![bpf_entry()]);
    assert_eq!(c.fqdn_cache().await.expect("fqdn"), vec![fqdn_entry()]);
    let health = raw_request(
        &h.socket,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "healthz: {health}");
    h.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn not_found_and_agent_errors_pass_through() {
    let h = Harness::start().await;
    let c = h.client();
    let (status, msg) = agent_error(c.identity(4242).await.unwrap_err());
    assert_eq!((status, msg.as_str()), (404, "identity 4242 not found"));
    let (status, msg) = agent_error(c.endpoint("default/ghost").await.unwrap_err());
    assert_eq!(
        (status, msg.as_str()),
        (404, "endpoint default/ghost not found")
    );
    let (status, msg) = agent_error(c.get::<serde_json::Value>("/v1/nope").await.unwrap_err());
    assert_eq!((status, msg.as_str()), (404, "no route for GET /v1/nope"));
    let (status, msg) = agent_error(
        c.get::<serde_json::Value>("/v1/identities/abc")
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400, "non-numeric identity: {msg}");
    let (status, msg) = agent_error(c.bpf_policy("default/ghost").await.unwrap_err());
    assert_eq!(
        (status, msg.as_str()),
        (500, "no policy map for endpoint default/ghost")
    );
    let bad_src = TraceRequest {
        from: "nowhere".into(),
        ..Default::default()
    };
    let (status, msg) = agent_error(c.trace(&bad_src).await.unwrap_err());
    assert_eq!(
        (status, msg.as_str()),
        (400, "unknown source endpoint nowhere")
    );
    let (status, msg) = agent_error(
        c.post::<_, serde_json::Value>("/v1/status", &serde_json::json!({}))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 405, "POST on a GET route: {msg}");
    let err = c
        .get::<serde_json::Value>("/v1/nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no route for GET /v1/nope"), "display: {err}");
}

#[tokio::test]
async fn malformed_trace_is_400_with_message() {
    let h = Harness::start().await;
    let resp = raw_request(
        &h.socket,
        "POST /v1/trace HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 5\r\nConnection: close\r\n\r\n{bad}",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "status line: {resp}");
    assert!(
        resp.contains("invalid trace request JSON"),
        "body must say what is wrong: {resp}"
    );
    // Valid JSON of the wrong shape is rejected the same way, naming the field.
    let (status, msg) = agent_error(
        h.client()
            .post::<_, TraceView>("/v1/trace", &serde_json::json!({"from": 1, "to": "x"}))
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400);
    assert!(
        msg.contains("invalid type"),
        "serde message passed through: {msg}"
    );
    let (status, msg) = agent_error(
        h.client()
            .post::<_, TraceView>(
                "/v1/trace",
                &serde_json::json!({"from": "a", "to": "b", "dprot": 80}),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400);
    assert!(msg.contains("dprot"), "unknown field named: {msg}");
}

#[tokio::test]
async fn socket_is_root_only_and_removed_on_shutdown() {
    let h = Harness::start().await;
    let mode = std::fs::metadata(&h.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode is {mode:o}");
    let parent = h.socket.parent().unwrap();
    let pmode = std::fs::metadata(parent).unwrap().permissions().mode() & 0o777;
    assert_eq!(pmode, 0o700, "created parent mode is {pmode:o}");
    let leftovers: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "only the socket remains: {leftovers:?}");
    let socket = h.socket.clone();
    h.stop().await.expect("clean shutdown");
    assert!(!socket.exists(), "socket must be removed on shutdown");
}

#[tokio::test]
async fn stale_socket_is_replaced_and_live_one_refused() {
    let h = Harness::start().await;
    // A second agent on the same path must not steal a live socket.
    let agent = Arc::new(TestAgent {
        flows: h.flows.clone(),
    });
    let err = serve_api(&h.socket, agent.clone(), std::future::pending::<()>())
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::InUse(_)), "got {err:?}");
    // A socket left behind by a dead agent is replaced.
    let stale = h.socket.with_file_name("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(
        stale.exists(),
        "stale socket file must exist before the test"
    );
    let (tx, rx) = oneshot::channel::<()>();
    let path = stale.clone();
    let task = tokio::spawn(async move { serve_api(&path, agent, rx).await });
    let mut answered = false;
    for _ in 0..200 {
        if Client::new(&stale).status().await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        answered,
        "agent on the formerly stale socket never answered"
    );
    tx.send(()).unwrap();
    task.await.unwrap().expect("second server ran");
}

#[tokio::test]
async fn missing_socket_says_agent_not_running() {
    let err = Client::new("/nonexistent/palisade.sock")
        .status()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::SocketMissing(_)), "got {err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("is the agent running?") && msg.contains("/nonexistent/palisade.sock"),
        "message: {msg}"
    );
}

fn flow(kind: FlowKind, verdict: &str, src: &str, summary: &str) -> FlowEvent {
    FlowEvent {
        time_unix_ms: 1,
        kind,
        verdict: verdict.into(),
        reason: "Policy denied".into(),
        direction: "ingress".into(),
        endpoint: "default/service".into(),
        src: src.into(),
        dst: "default/service:80".into(),
        src_identity: 258,
        dst_identity: 257,
        proto: "TCP".into(),
        summary: summary.into(),
    }
}

#[tokio::test]
async fn monitor_streams_filtered_events_until_disconnect() {
    let h = Harness::start().await;
    let filter = MonitorFilter {
        endpoint: Some("default/client-dev".into()),
        verdict: None,
        kind: Some(FlowKind::Drop),
    };
    let mut stream = h.client().monitor(&filter).await.expect("monitor");
    // The server subscribed before answering, so nothing published from now on is missed.
    assert_eq!(h.flows.receiver_count(), 1, "one monitor subscriber");
    let wanted = flow(
        FlowKind::Drop,
        "DROPPED",
        "default/client-dev:4000",
        "first",
    );
    let events = [
        flow(
            FlowKind::Drop,
            "DROPPED",
            "default/client-prod:4000",
            "other src",
        ),
        flow(
            FlowKind::L7Http,
            "FORWARDED",
            "default/client-dev:4001",
            "other kind",
        ),
        wanted.clone(),
        flow(
            FlowKind::Drop,
            "DROPPED",
            "default/client-dev:4002",
            "second",
        ),
    ];
    for ev in &events {
        h.flows.send(ev.clone()).expect("publish");
    }
    let got = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("event within 5s")
        .expect("stream open")
        .expect("event decodes");
    assert_eq!(
        got, wanted,
        "the first matching event, nothing filtered out before it"
    );
    let got = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("event within 5s")
        .expect("stream open")
        .expect("event decodes");
    assert_eq!(got.summary, "second");

    // Disconnecting ends the server's forwarder even with no further events: hyper notices
    // the closed connection and drops the body, which closes the forwarder's channel.
    drop(stream);
    let mut gone = false;
    for _ in 0..100 {
        if h.flows.receiver_count() == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gone,
        "monitor subscription must end when the client disconnects"
    );

    let (status, msg) = agent_error(
        h.client()
            .get::<serde_json::Value>("/v1/monitor?type=bogus")
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 400);
    assert!(msg.contains("bogus"), "filter error names the value: {msg}");
}

/// Env var carrying the socket path to the child run as `nobody`.
const CHILD_SOCKET: &str = "PALISADE_API_TEST_SOCKET";
/// Env var telling the child whether connecting must fail (`denied`) or work (`allowed`).
const CHILD_EXPECT: &str = "PALISADE_API_TEST_EXPECT";

/// Runs `nonroot_child_connect` as uid/gid 65534 against `socket`.
fn run_child_as_nobody(socket: &Path, expect: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("test binary path");
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(exe)
        .args([
            "--exact",
            "nonroot_child_connect",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_SOCKET, socket)
        .env(CHILD_EXPECT, expect)
        .output()
        .expect("run setpriv (util-linux)")
}

#[tokio::test]
async fn non_root_caller_is_refused() {
    let h = Harness::start().await;
    // Open the directories so the socket's own mode is what stops `nobody`.
    let mut dir = h.socket.parent().unwrap().to_path_buf();
    loop {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        if dir == h._dir.path() {
            break;
        }
        dir.pop();
    }
    let socket = h.socket.clone();
    let out = tokio::task::spawn_blocking(move || run_child_as_nobody(&socket, "denied"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "child as nobody must be refused with a 'must be root' error:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Control: with the socket opened up, the same child connects. This proves the refusal
    // above came from the socket's mode and not from something else in the child.
    std::fs::set_permissions(&h.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let socket = h.socket.clone();
    let out = tokio::task::spawn_blocking(move || run_child_as_nobody(&socket, "allowed"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "control child with an open socket must connect:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Child half of `non_root_caller_is_refused`; only meaningful when started by it.
#[tokio::test]
#[ignore = "run by non_root_caller_is_refused as uid 65534"]
async fn nonroot_child_connect() {
    let socket = std::env::var(CHILD_SOCKET).expect("started by non_root_caller_is_refused");
    let expect = std::env::var(CHILD_EXPECT).expect("expectation set by parent");
    let result = Client::new(&socket).status().await;
    match (expect.as_str(), result) {
        ("denied", Err(e @ ClientError::PermissionDenied(_))) => {
            let msg = e.to_string();
            assert!(msg.contains("must be root"), "message: {msg}");
            println!("CHILD-OK: {msg}");
        }
        ("allowed", Ok(st)) => {
            assert_eq!(st.policy_revision, 7);
            println!("CHILD-OK: connected");
        }
        (want, got) => panic!("expected {want}, got {got:?}"),
    }
}
