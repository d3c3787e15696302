//! The relay against a scripted upstream on loopback: request bodies (length and chunked,
//! streamed as received; a refused one read away) and every response framing it must pass
//! through (chunked, close-delimited, interim 1xx, HEAD, a body larger than one read) on one
//! pipelined client connection, with a flow record per request.

use super::{serve, Shared};
use crate::conn::Ends;
use crate::handler::Handler;
use crate::policy::CompiledPolicy;
use crate::upstream::{H2Pools, Marks};
use crate::{HttpFlowRecord, PolicySnapshot, ProxyConfig};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

const BIG: usize = 200_000;

/// What the upstream answers to each path (requests are read one head at a time).
fn scripted(path: &str) -> (Vec<u8>, bool) {
    match path {
        "/chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
                .to_vec(),
            false,
        ),
        "/head" => (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n".to_vec(), false),
        "/continue" => (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            false,
        ),
        "/big" => {
            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
            r.extend(std::iter::repeat_n(b'x', BIG));
            (r, false)
        }
        // No length, no chunking: the body ends when the upstream closes.
        _ => (b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\n\r\nbye".to_vec(), true),
    }
}

/// Reads request heads and writes the scripted answers; one connection is expected.
async fn upstream(listener: TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::new();
        loop {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                let mut chunk = [0u8; 4096];
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            buf.drain(..end + 4);
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            // The body as it arrived: a length's worth, or chunks up to the last one.
            let body_end = |buf: &[u8]| {
                if head.contains("transfer-encoding: chunked") {
                    buf.windows(5)
                        .position(|w| w == b"0\r\n\r\n")
                        .map(|p| p + 5)
                } else {
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse::<usize>().expect("length"));
                    (buf.len() >= len).then_some(len)
                }
            };
            let body = loop {
                if let Some(n) = body_end(&buf) {
                    break buf.drain(..n).collect::<Vec<u8>>();
                }
                let mut chunk = [0u8; 4096];
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let (resp, close) = if path == "/echo" {
                let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                    .into_bytes();
                r.extend_from_slice(&body);
                (r, false)
            } else {
                scripted(&path)
            };
            if s.write_all(&resp).await.is_err() || close {
                break;
            }
        }
    }
}

#[tokio::test]
async fn response_framings_pass_through_a_pipelined_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dst = listener.local_addr().expect("addr");
    tokio::spawn(upstream(listener));
    let snapshot: PolicySnapshot = serde_json::from_value(serde_json::json!({
        "revision": 1,
        "ipcache": [["127.0.0.2/32", 1001]],
        "endpoints": [{"name": "up", "ips": ["127.0.0.1"], "identity": 2000,
            "ingress": [{"port": dst.port(), "peers": [{"identities": [1001],
                "http": [{"method": "GET|HEAD", "path": "/.*"},
                         {"method": "POST", "path": "/echo"}]}]}],
            "egress": []}]
    }))
    .expect("snapshot");
    let policy = CompiledPolicy::compile(&snapshot).expect("compiles");
    let src = "127.0.0.2:40000".parse().expect("addr");
    let flow = Arc::new(policy.flow(src, dst));
    let (_policy_tx, policy_rx) = watch::channel(Arc::new(policy));
    let config = ProxyConfig::default();
    let marks = Marks {
        ingress: config.upstream_mark_ingress,
        egress: config.upstream_mark_egress,
    };
    let (flows_tx, mut flows) = mpsc::channel::<HttpFlowRecord>(16);
    let (_closing_tx, closing) = watch::channel(false);
    let shared = Arc::new(Shared {
        handler: Arc::new(Handler {
            policy: policy_rx,
            h2: H2Pools::new(marks, &config.limits),
            flows: flows_tx,
            listen: "127.0.0.1:1".parse().expect("addr"),
        }),
        hyper: crate::server::http_builder(&config),
        limits: config.limits.clone(),
        marks,
        closing,
    });
    let (mut client, proxy_side) = tokio::io::duplex(64 * 1024);
    let ends = Ends { src, dst };
    let conn = tokio::spawn(serve(proxy_side, ends, flow, shared));
    let mut requests = String::new();
    requests.push_str("POST /echo HTTP/1.1\r\nHost: up\r\nContent-Length: 5\r\n\r\nhello");
    requests.push_str(
        "POST /echo HTTP/1.1\r\nHost: up\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nworld\r\n0\r\n\r\n",
    );
    requests.push_str("PUT /echo HTTP/1.1\r\nHost: up\r\nContent-Length: 3\r\n\r\nabc");
    for p in [
        "/chunked",
        "/head",
        "/continue",
        "/big",
        "/private/../close",
    ] {
        let method = if p == "/head" { "HEAD" } else { "GET" };
        requests.push_str(&format!(
            "{method} {p} HTTP/1.1\r\nHost: up\r\nConnection: keep-alive\r\n\r\n"
        ));
    }
    client.write_all(requests.as_bytes()).await.expect("send");
    let mut got = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.read_to_end(&mut got),
    )
    .await
    .expect("the relay closes after the close-delimited answer")
    .expect("read");
    let mut want = Vec::new();
    want.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    want.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n5;x=1\r\nworld\r\n0\r\n\r\n",
    );
    want.extend_from_slice(
        b"HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 15\r\n\r\nAccess denied\r\n",
    );
    want.extend_from_slice(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    );
    want.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
    want.extend_from_slice(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    want.extend_from_slice(format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").as_bytes());
    want.extend(std::iter::repeat_n(b'x', BIG));
    want.extend_from_slice(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nbye");
    let text = |b: &[u8]| {
        String::from_utf8_lossy(&b[..b.len().min(400)])
            .escape_debug()
            .to_string()
    };
    assert!(
        got == want,
        "relayed bytes differ:\n got: {}\nwant: {}",
        text(&got),
        text(&want)
    );
    conn.await.expect("connection task");
    let mut paths = Vec::new();
    while let Ok(rec) = flows.try_recv() {
        paths.push((rec.method, rec.path, rec.status));
    }
    let want_paths: Vec<(String, String, u16)> = [
        ("POST", "/echo", 200),
        ("POST", "/echo", 200),
        ("PUT", "/echo", 403),
        ("GET", "/chunked", 200),
        ("HEAD", "/head", 200),
        ("GET", "/continue", 200),
        ("GET", "/big", 200),
        ("GET", "/close", 200),
    ]
    .iter()
    .map(|(m, p, s)| (m.to_string(), p.to_string(), *s))
    .collect();
    assert_eq!(paths, want_paths, "one flow record per request");
}
