//! The multiplexer against a real UDP responder on loopback: concurrent queries with the same
//! client ID, out-of-order answers, forged answers, timeouts.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::*;
use crate::question;
use crate::wire::build_query;

const CLIENT_ID: u16 = 0x1234;

/// The query turned into a response (question echoed, no records).
fn answer(query: &[u8]) -> Vec<u8> {
    let mut r = query.to_vec();
    r[2] |= 0x80;
    r
}

fn name_of(msg: &[u8]) -> String {
    question::parse(&{
        let mut q = msg.to_vec();
        q[2] &= 0x7f; // parse() reads queries
        q
    })
    .expect("message with a question")
    .qname
}

async fn resolver() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind resolver");
    let a = s.local_addr().expect("addr");
    (s, a)
}

async fn ask(mux: &UdpMux, resolver: SocketAddr, name: &str) -> std::io::Result<Reply> {
    let q = build_query(CLIENT_ID, name, "A");
    let parsed = question::parse(&q).expect("query");
    let deadline = Instant::now() + Duration::from_secs(2);
    mux.exchange(&q, parsed.name_end, parsed.end(), resolver, deadline)
        .await
}

#[tokio::test]
async fn concurrent_queries_with_one_client_id_get_their_own_answers() {
    const N: usize = 200;
    let (sock, addr) = resolver().await;
    // Wait for all N queries, then answer in reverse order: all are pending at once.
    let responder = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while got.len() < N {
            let (n, from) = sock.recv_from(&mut buf).await.expect("recv");
            got.push((buf[..n].to_vec(), from));
        }
        let ids: HashSet<(SocketAddr, u16)> = got
            .iter()
            .map(|(q, from)| (*from, question::id_of(q).expect("id")))
            .collect();
        for (q, from) in got.iter().rev() {
            sock.send_to(&answer(q), from).await.expect("send");
        }
        ids
    });
    let mux = Arc::new(UdpMux::new(0, Arc::default()));
    let asks = (0..N).map(|i| {
        let mux = mux.clone();
        tokio::spawn(async move {
            let name = format!("host{i}.example.com.");
            (name.clone(), ask(&mux, addr, &name).await)
        })
    });
    let results = futures_join(asks.collect()).await;
    let ids = responder.await.expect("responder");
    assert_eq!(
        ids.len(),
        N,
        "every pending query had its own (socket, ID) on the wire"
    );
    for (name, reply) in results {
        let reply = reply.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            question::id_of(&reply.bytes),
            Some(CLIENT_ID),
            "client ID restored"
        );
        assert_eq!(name_of(&reply.bytes), name, "each query got its own answer");
    }
    assert!(
        mux.sockets_opened() <= SOCKETS,
        "sockets reused: {} opened for {N} queries",
        mux.sockets_opened()
    );
}

async fn futures_join<T: Send + 'static>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn forged_answers_are_dropped_and_the_real_one_accepted() {
    let (sock, addr) = resolver().await;
    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("attacker");
    let mismatched = Arc::new(AtomicU64::new(0));
    let mux = UdpMux::new(0, mismatched.clone());
    let responder = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        let (n, from) = sock.recv_from(&mut buf).await.expect("recv");
        let q = buf[..n].to_vec();
        // Right ID, other question.
        let mut other = answer(&build_query(0, "evil.example.com.", "A"));
        other[..2].copy_from_slice(&q[..2]);
        sock.send_to(&other, from).await.expect("send");
        // Right question, wrong ID.
        let mut wrong_id = answer(&q);
        let id = question::id_of(&q).expect("id");
        wrong_id[..2].copy_from_slice(&id.wrapping_add(1).to_be_bytes());
        sock.send_to(&wrong_id, from).await.expect("send");
        // Perfect forgery from another address: the connected socket never sees it.
        let mut forged = answer(&q);
        forged.push(0xEE);
        attacker.send_to(&forged, from).await.expect("send");
        tokio::time::sleep(Duration::from_millis(50)).await;
        sock.send_to(&answer(&q), from).await.expect("send");
        q
    });
    let reply = ask(&mux, addr, "api.github.com.")
        .await
        .expect("the real answer");
    let sent = responder.await.expect("responder");
    let mut want = answer(&sent);
    want[..2].copy_from_slice(&CLIENT_ID.to_be_bytes());
    assert_eq!(
        reply.bytes, want,
        "exactly the resolver's answer, ID restored"
    );
    assert_eq!(
        mismatched.load(Ordering::Relaxed),
        2,
        "other question and wrong ID counted as mismatched"
    );
}

#[tokio::test]
async fn silent_resolver_times_out_and_late_answer_is_dropped() {
    let (sock, addr) = resolver().await;
    let mismatched = Arc::new(AtomicU64::new(0));
    let mux = UdpMux::new(0, mismatched.clone());
    let q = build_query(CLIENT_ID, "slow.example.com.", "A");
    let parsed = question::parse(&q).expect("query");
    let started = Instant::now();
    let deadline = started + Duration::from_millis(300);
    let err = mux
        .exchange(&q, parsed.name_end, parsed.end(), addr, deadline)
        .await
        .err()
        .expect("no answer: an error");
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "timeout: {err}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the deadline"
    );
    let mut buf = [0u8; 512];
    let (n, from) = sock.recv_from(&mut buf).await.expect("the query arrived");
    sock.send_to(&answer(&buf[..n]), from).await.expect("send");
    for _ in 0..100 {
        if mismatched.load(Ordering::Relaxed) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the late answer was not dropped as mismatched");
}
