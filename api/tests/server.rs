//! The API over a real unix socket: every route through `Client`, errors (404, 400, 405,
//! agent messages), and the socket file's life cycle.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use palisade_api::*;
use tokio::sync::oneshot;

#[path = "harness/agent.rs"]
mod harness;

use harness::*;

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
