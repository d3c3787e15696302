//! End to end in network namespaces: real `dig` in a pod namespace, iptables TPROXY to the proxy
//! in a node namespace, real dnsmasq as the resolver. Needs root; skipped (with a note) otherwise.

#[path = "support/lab.rs"]
mod lab;
#[path = "support/learner.rs"]
mod learner;
#[path = "support/netns.rs"]
mod netns;

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab::{Lab, ProxyThread, DEAD_RESOLVER_IP, POD_IP, RESOLVER_IP};
use learner::RecordingLearner;
use palisade_dnsproxy::{
    DnsPeer, DnsPortRule, DnsProxyConfig, DnsSnapshot, EndpointDns, RejectCode, Transport, Verdict,
};
use palisade_policy::fqdn::FqdnSelector;

const PROXY_PORT: u16 = 15053;
const RESOLVER_ID: u32 = 300;
const LEARN_DELAY: Duration = Duration::from_millis(200);

fn snapshot() -> DnsSnapshot {
    DnsSnapshot {
        revision: 1,
        ipcache: vec![(
            format!("{RESOLVER_IP}/32").parse().expect("net"),
            RESOLVER_ID,
        )],
        endpoints: vec![EndpointDns {
            name: "default/pod".into(),
            ips: vec![POD_IP.parse().expect("ip")],
            identity: 256,
            rules: vec![DnsPortRule {
                port: 53,
                peers: vec![
                    DnsPeer {
                        identities: Some(vec![RESOLVER_ID]),
                        patterns: Some(vec![
                            FqdnSelector::pattern("*.github.com"),
                            FqdnSelector::pattern("*.palisade.test"),
                        ]),
                    },
                    // Any resolver, but only this name: reaches the dead resolver.
                    DnsPeer {
                        identities: None,
                        patterns: Some(vec![FqdnSelector::name("dead.test")]),
                    },
                ],
            }],
        }],
    }
}

fn config(reject: RejectCode) -> DnsProxyConfig {
    DnsProxyConfig {
        listen_port: PROXY_PORT,
        upstream_timeout: Duration::from_secs(1),
        learn_timeout: Duration::from_secs(2),
        reject,
        ..DnsProxyConfig::default()
    }
}

const DNSMASQ: &[&str] = &[
    "--address=/api.github.com/10.99.0.10",
    "--host-record=target.palisade.test,10.99.0.20",
    "--cname=www.palisade.test,target.palisade.test",
    "--local-ttl=30",
];

fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("(none)")
}

fn query_ms(out: &str) -> u64 {
    out.split(";; Query time: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no query time in dig output:\n{out}"))
}

fn skip_unless_root() -> bool {
    if netns::is_root() {
        return false;
    }
    eprintln!("skipped: netns tests need root");
    true
}

#[test]
fn allowed_refused_learned_over_udp_and_tcp() {
    if skip_unless_root() {
        return;
    }
    let lab = Lab::new("main", PROXY_PORT, DNSMASQ);
    let learner = Arc::new(RecordingLearner::new(LEARN_DELAY));
    let mut proxy = ProxyThread::start(
        &lab.node,
        config(RejectCode::Refused),
        snapshot(),
        learner.clone(),
    );
    let at = format!("@{RESOLVER_IP}");

    // Allowed over UDP: the answer, from the resolver's address, after the learner finished.
    let before = Instant::now();
    let out = lab.dig(&[&at, "api.github.com"]);
    let after = Instant::now();
    assert_eq!(status(&out), "NOERROR", "allowed name:\n{out}");
    assert!(out.contains("10.99.0.10"), "address in the answer:\n{out}");
    assert!(
        out.contains(&format!("SERVER: {RESOLVER_IP}#53")),
        "answer from the resolver address:\n{out}"
    );
    assert!(
        query_ms(&out) >= 200,
        "answer held until the 200 ms learner returned:\n{out}"
    );
    let flow = proxy.flow_for("api.github.com.");
    assert_eq!(
        (flow.verdict, flow.rcode, flow.transport),
        (Verdict::Forwarded, Some(0), Transport::Udp)
    );
    assert_eq!(flow.endpoint.as_deref(), Some("default/pod"));
    assert_eq!(
        flow.resolver.to_string(),
        format!("{RESOLVER_IP}:53"),
        "original destination"
    );
    let learn = flow.learn_latency.expect("learner was called");
    assert!(
        learn >= LEARN_DELAY && flow.latency >= learn,
        "learned before release: {flow:?}"
    );
    let calls = learner.calls();
    assert_eq!(calls.len(), 1, "one learn call: {calls:?}");
    assert!(
        before < calls[0].started
            && calls[0].finished - calls[0].started >= LEARN_DELAY
            && calls[0].finished < after,
        "learner ran during the dig: {:?}",
        calls[0]
    );
    let u = &calls[0].update;
    assert_eq!(
        (u.endpoint.as_str(), u.qname.as_str()),
        ("default/pod", "api.github.com.")
    );
    assert_eq!(u.source.to_string(), POD_IP);
    assert_eq!(u.addrs, vec![("10.99.0.10".parse().expect("ip"), 30)]);

    // Refused over UDP: REFUSED at once, and the resolver never saw it.
    let out = lab.dig(&[&at, "example.org"]);
    assert_eq!(status(&out), "REFUSED", "denied name:\n{out}");
    assert!(
        out.contains("QUESTION SECTION:\n;example.org."),
        "question echoed:\n{out}"
    );
    assert!(
        out.contains(&format!("SERVER: {RESOLVER_IP}#53")),
        "refusal from the resolver address:\n{out}"
    );
    let flow = proxy.flow_for("example.org.");
    assert_eq!((flow.verdict, flow.rcode), (Verdict::Refused, Some(5)));
    assert_eq!(flow.learn_latency, None, "no learning for a refused query");

    // CNAME chain: the learner sees the name asked, the target and the target's address.
    let out = lab.dig(&[&at, "www.palisade.test"]);
    assert_eq!(status(&out), "NOERROR", "CNAME:\n{out}");
    let calls = learner.calls();
    let u = &calls.last().expect("learn call").update;
    assert_eq!(u.qname, "www.palisade.test.");
    assert_eq!(
        u.names,
        vec![
            "www.palisade.test.".to_string(),
            "target.palisade.test.".to_string()
        ]
    );
    assert_eq!(u.addrs, vec![("10.99.0.20".parse().expect("ip"), 30)]);

    // TCP: same decisions, length-prefixed, through the transparent TCP listener.
    let out = lab.dig(&["+tcp", &at, "api.github.com"]);
    assert_eq!(status(&out), "NOERROR", "allowed over TCP:\n{out}");
    assert!(
        out.contains("10.99.0.10") && out.contains("(TCP)"),
        "TCP answer:\n{out}"
    );
    assert_eq!(proxy.flow_for("api.github.com.").transport, Transport::Tcp);
    let out = lab.dig(&["+tcp", &at, "example.org"]);
    assert_eq!(status(&out), "REFUSED", "denied over TCP:\n{out}");

    // Case does not matter; a name outside the pattern's single label does.
    assert_eq!(status(&lab.dig(&[&at, "API.GitHub.COM"])), "NOERROR");
    assert_eq!(status(&lab.dig(&[&at, "a.b.github.com"])), "REFUSED");

    let log = lab.resolver_log();
    assert!(
        log.contains("api.github.com"),
        "resolver saw allowed queries:\n{log}"
    );
    assert!(
        !log.contains("example.org") && !log.contains("a.b.github.com"),
        "resolver never saw denied queries:\n{log}"
    );
}

#[test]
fn dead_upstream_servfail_nxdomain_option_and_formerr() {
    if skip_unless_root() {
        return;
    }
    let lab = Lab::new("err", PROXY_PORT, DNSMASQ);
    let learner = Arc::new(RecordingLearner::new(Duration::ZERO));
    let mut proxy = ProxyThread::start(
        &lab.node,
        config(RejectCode::NameError),
        snapshot(),
        learner.clone(),
    );

    // Allowed, but nothing answers at that address: SERVFAIL after upstream_timeout, not a hang.
    let out = lab.dig(&[&format!("@{DEAD_RESOLVER_IP}"), "dead.test"]);
    assert_eq!(status(&out), "SERVFAIL", "dead upstream:\n{out}");
    let flow = proxy.flow_for("dead.test.");
    assert_eq!((flow.verdict, flow.rcode), (Verdict::Error, Some(2)));
    let out = lab.dig(&["+tcp", &format!("@{DEAD_RESOLVER_IP}"), "dead.test"]);
    assert_eq!(status(&out), "SERVFAIL", "dead upstream over TCP:\n{out}");

    // reject: nameError.
    let out = lab.dig(&[&format!("@{RESOLVER_IP}"), "example.org"]);
    assert_eq!(status(&out), "NXDOMAIN", "nameError reject code:\n{out}");

    // Garbage with a readable header → FORMERR with the ID echoed, from the resolver address.
    let reply = send_raw_from_pod(
        &lab.pod,
        &[0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'x'],
    );
    assert_eq!(&reply.0[..2], &[0xAB, 0xCD], "ID echoed: {:?}", reply.0);
    assert_eq!(reply.0[3] & 0x0f, 1, "FORMERR: {:?}", reply.0);
    assert_eq!(
        reply.1.to_string(),
        format!("{RESOLVER_IP}:53"),
        "from the resolver address"
    );
    assert!(learner.calls().is_empty(), "nothing learned");

    // A policy update applies to the next query: allow example.org.
    let mut snap = snapshot();
    snap.revision = 2;
    snap.endpoints[0].rules[0].peers[1].patterns = None;
    proxy.snapshots.send(Arc::new(snap)).expect("update");
    let mut last = String::new();
    for _ in 0..50 {
        last = lab.dig(&[&format!("@{RESOLVER_IP}"), "example.org"]);
        if status(&last) != "NXDOMAIN" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // dnsmasq has no data for it and no upstream: it answers REFUSED itself, so look at the log.
    assert!(
        lab.resolver_log().contains("example.org"),
        "forwarded after the update:\n{last}"
    );
}

/// Runs `f` on a thread inside namespace `ns` (sockets it makes stay in that namespace).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in the namespace")
}

/// Sends raw bytes to the resolver from inside the pod namespace; returns the reply and its source.
fn send_raw_from_pod(pod: &str, bytes: &[u8]) -> (Vec<u8>, std::net::SocketAddr) {
    let bytes = bytes.to_vec();
    in_netns(pod, move || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.send_to(&bytes, format!("{RESOLVER_IP}:53"))
            .expect("send");
        let mut buf = [0u8; 512];
        let (n, from) = s.recv_from(&mut buf).expect("a reply to a malformed query");
        (buf[..n].to_vec(), from)
    })
}

#[test]
fn learner_failure_and_timeout() {
    if skip_unless_root() {
        return;
    }
    let extra = [
        DNSMASQ,
        &[
            "--address=/fail.palisade.test/10.99.0.30",
            "--address=/slow.palisade.test/10.99.0.31",
        ],
    ]
    .concat();
    let lab = Lab::new("learn", PROXY_PORT, &extra);
    // slow.* takes 10 × 100 ms, past the 500 ms learn_timeout.
    let learner = Arc::new(RecordingLearner::new(Duration::from_millis(100)));
    let cfg = DnsProxyConfig {
        learn_timeout: Duration::from_millis(500),
        ..config(RejectCode::Refused)
    };
    let mut proxy = ProxyThread::start(&lab.node, cfg, snapshot(), learner.clone());
    let at = format!("@{RESOLVER_IP}");

    // The agent could not write the maps: the address would not be reachable, so SERVFAIL.
    let out = lab.dig(&[&at, "fail.palisade.test"]);
    assert_eq!(status(&out), "SERVFAIL", "learner error:\n{out}");
    assert_eq!(
        proxy.flow_for("fail.palisade.test.").verdict,
        Verdict::Error
    );
    assert_eq!(
        proxy.stats.learn_errors.load(Ordering::Relaxed),
        1,
        "learn error counted"
    );

    // The agent is too slow: the answer is released at learn_timeout anyway, and counted.
    let out = lab.dig(&[&at, "slow.palisade.test"]);
    assert_eq!(status(&out), "NOERROR", "learner timeout releases:\n{out}");
    assert!(out.contains("10.99.0.31"), "address released:\n{out}");
    let flow = proxy.flow_for("slow.palisade.test.");
    assert_eq!(flow.verdict, Verdict::Forwarded);
    assert!(
        flow.learn_latency.expect("learner called") < Duration::from_secs(1),
        "bounded wait: {flow:?}"
    );
    assert_eq!(
        proxy.stats.learn_timeouts.load(Ordering::Relaxed),
        1,
        "timeout counted"
    );
}

#[test]
fn repeated_answer_is_released_without_waiting_for_the_learner() {
    if skip_unless_root() {
        return;
    }
    let lab = Lab::new("skip", PROXY_PORT, DNSMASQ);
    let learner = Arc::new(RecordingLearner::new(LEARN_DELAY));
    let cfg = DnsProxyConfig {
        // Long enough that the repeat below is never a due refresh, however slow the machine.
        learn_refresh: Duration::from_secs(60),
        ..config(RejectCode::Refused)
    };
    let mut proxy = ProxyThread::start(&lab.node, cfg, snapshot(), learner.clone());
    let at = format!("@{RESOLVER_IP}");

    let out = lab.dig(&[&at, "api.github.com"]);
    assert_eq!(status(&out), "NOERROR", "first answer:\n{out}");
    let first = proxy.flow_for("api.github.com.");
    assert!(
        first.learn_latency.is_some(),
        "first answer learned: {first:?}"
    );

    let out = lab.dig(&[&at, "api.github.com"]);
    assert_eq!(status(&out), "NOERROR", "repeat:\n{out}");
    assert!(out.contains("10.99.0.10"), "address in the repeat:\n{out}");
    let repeat = proxy.flow_for("api.github.com.");
    assert_eq!(repeat.verdict, Verdict::Forwarded);
    assert_eq!(
        repeat.learn_latency, None,
        "the agent already has the address: no learner call"
    );
    assert!(
        repeat.release_latency.is_some(),
        "release latency recorded: {repeat:?}"
    );
    assert_eq!(learner.calls().len(), 1, "one learner call for two answers");
    assert_eq!(proxy.stats.learn_skipped.load(Ordering::Relaxed), 1);

    // Another name is news to the agent: held until learned.
    let out = lab.dig(&[&at, "www.palisade.test"]);
    assert_eq!(status(&out), "NOERROR", "CNAME:\n{out}");
    assert!(
        query_ms(&out) >= 200,
        "a new name waits for the learner:\n{out}"
    );
    assert_eq!(learner.calls().len(), 2, "the new name was learned");
}

#[test]
fn stopping_lets_queries_in_flight_finish() {
    if skip_unless_root() {
        return;
    }
    let extra = [DNSMASQ, &["--address=/slow.palisade.test/10.99.0.31"]].concat();
    let lab = Lab::new("drain", PROXY_PORT, &extra);
    // slow.* spends 10 × 60 ms in the learner: still in flight when the proxy is stopped.
    let learner = Arc::new(RecordingLearner::new(Duration::from_millis(60)));
    let proxy = ProxyThread::start(
        &lab.node,
        config(RejectCode::Refused),
        snapshot(),
        learner.clone(),
    );
    let stats = proxy.stats.clone();
    let out = std::thread::scope(|s| {
        let dig = s.spawn(|| lab.dig(&[&format!("@{RESOLVER_IP}"), "slow.palisade.test"]));
        // Stop only once the proxy has read the query: one still in the socket buffer of a
        // listener that closes for good (no new process takes it over here) is not in flight.
        let deadline = Instant::now() + Duration::from_secs(5);
        while stats.queries.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(!dig.is_finished(), "the query is still in flight");
        // As on an upgrade: the listeners stop, the query already read is answered.
        drop(proxy);
        dig.join().expect("dig thread")
    });
    assert_eq!(status(&out), "NOERROR", "answered while draining:\n{out}");
    assert!(out.contains("10.99.0.31"), "with its address:\n{out}");
    assert!(
        learner
            .calls()
            .iter()
            .any(|c| c.update.qname == "slow.palisade.test."),
        "learned before the answer was released"
    );
}

/// An `A` query for `name` with id 0x5a5a, as a TCP frame (length prefix included).
fn tcp_query_frame(name: &str) -> Vec<u8> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};
    let mut m = Message::new(0x5a5a, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let body = m.to_vec().unwrap();
    let mut frame = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Reads one TCP frame; `None` when the proxy closed the connection first.
fn read_tcp_reply(s: &mut std::net::TcpStream) -> Option<hickory_proto::op::Message> {
    use std::io::Read;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).expect("a whole reply");
    Some(hickory_proto::op::Message::from_vec(&body).expect("a readable reply"))
}

/// TCP connections to port 53 in namespace `ns` that a process has accepted.
fn accepted_on_53(ns: &str) -> usize {
    let out = netns::in_ns(
        ns,
        &["ss", "-Htnp", "state", "established", "( sport = :53 )"],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("users:"))
        .count()
}

/// Connects to the resolver over TCP from inside the pod namespace.
fn tcp_from_pod(pod: &str) -> std::net::TcpStream {
    in_netns(pod, || {
        let s = std::net::TcpStream::connect((RESOLVER_IP, 53)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s
    })
}

#[test]
fn stopping_answers_a_new_tcp_connection_and_closes_idle_ones() {
    use std::io::{Read, Write};
    if skip_unless_root() {
        return;
    }
    let lab = Lab::new("tcpdrain", PROXY_PORT, DNSMASQ);
    let proxy = ProxyThread::start(
        &lab.node,
        config(RejectCode::Refused),
        snapshot(),
        Arc::new(RecordingLearner::new(Duration::ZERO)),
    );
    let query = tcp_query_frame("api.github.com.");
    // One connection already answered a query and sits idle; one is accepted, query not sent.
    let mut idle = tcp_from_pod(&lab.pod);
    idle.write_all(&query).unwrap();
    assert!(read_tcp_reply(&mut idle).is_some(), "answered before stop");
    let mut fresh = tcp_from_pod(&lab.pod);
    // Accepted by the proxy, not only queued on its listener (ss names a process only then).
    let deadline = Instant::now() + Duration::from_secs(5);
    while accepted_on_53(&lab.node) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(accepted_on_53(&lab.node), 2, "both connections accepted");

    // As on an upgrade: the listener stops (drop joins, so stop from another thread).
    let stopper = std::thread::spawn(move || drop(proxy));
    let mut byte = [0u8; 1];
    assert_eq!(
        idle.read(&mut byte).expect("closed, not timed out"),
        0,
        "an idle connection closes when the proxy stops"
    );
    fresh.write_all(&query).unwrap();
    let reply = read_tcp_reply(&mut fresh).expect("the first query on an accepted connection");
    assert_eq!(reply.metadata.id, 0x5a5a);
    assert_eq!(
        reply.metadata.response_code,
        hickory_proto::op::ResponseCode::NoError
    );
    assert_eq!(reply.answers.len(), 1, "with its address: {reply:?}");
    assert_eq!(fresh.read(&mut byte).expect("closed after it"), 0);
    stopper.join().expect("proxy stopped");
}
