//! End-to-end in network namespaces (needs root): a node namespace routing two pod
//! namespaces over /32 veths, the datapath attached to the pods' host-side veths, and real
//! `ping`/`curl` traffic. Covers allow, deny, default deny, replies via conntrack,
//! enforcement surviving the loader (pinned links), adoption by a second load, minimal
//! resync, and the transparent redirect to a proxy socket.

#[path = "helpers/bpffs.rs"]
mod bpffs;
#[path = "helpers/netns.rs"]
mod netns;

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use netns::{run, Netns};
use palisade_bpf::{
    install_proxy_routing, Datapath, Direction, EndpointInfo, EventKind, PolicyEntry, Verdict,
};

const POD_A: &str = "10.200.0.1";
const POD_B: &str = "10.200.0.2";
const ROUTER: &str = "10.200.0.254";
const PROXY_PORT: u16 = 15001;

struct Names {
    node: String,
    a: String,
    b: String,
    ha: String,
    hb: String,
}

/// Pod namespace with eth0 = ip/32, routed via the node's router address.
fn wire_pod(node: &Netns, pod: &Netns, host_if: &str, ip: &str) {
    run(&[
        "ip",
        "link",
        "add",
        host_if,
        "netns",
        node.name(),
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        pod.name(),
    ]);
    node.exec(&["ip", "addr", "add", &format!("{ROUTER}/32"), "dev", host_if]);
    node.exec(&["ip", "link", "set", host_if, "up"]);
    node.exec(&["ip", "route", "add", &format!("{ip}/32"), "dev", host_if]);
    pod.exec(&["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"]);
    pod.exec(&["ip", "link", "set", "eth0", "up"]);
    pod.exec(&["ip", "route", "add", ROUTER, "dev", "eth0", "scope", "link"]);
    pod.exec(&[
        "ip", "route", "add", "default", "via", ROUTER, "dev", "eth0",
    ]);
}

fn ping_once(ns: &str, dst: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "1", dst])
        .output()
        .expect("spawn ping")
        .status
        .success()
}

/// One echo answered within 1 s, up to 3 tries: a first packet can be lost to neighbour
/// resolution, so "allowed" gets retries; "denied" means all 3 tries went unanswered.
fn ping(ns: &str, dst: &str) -> bool {
    (0..3).any(|_| ping_once(ns, dst))
}

/// HTTP status from curl ("000" when the connection timed out).
fn curl(ns: &str, url: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-s",
            "-m",
            "2",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code}", url])
        .output()
        .expect("spawn curl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_listening(ns: &Netns, port: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ns.exec(&["ss", "-ltnH"]).contains(&format!(":{port} ")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listening on :{port} in {} after 20 s", ns.name());
}

/// ifindex of `ifname` in the calling thread's namespace.
fn ifindex(ifname: &str) -> u32 {
    let out = run(&["ip", "-o", "link", "show", ifname]);
    out.split(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .expect("ifindex")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn rule(dir: Direction, identity: u32, proto: u8, port: u16, verdict: Verdict) -> PolicyEntry {
    PolicyEntry {
        direction: dir,
        identity,
        proto,
        port,
        end_port: port,
        verdict,
    }
}

fn a_egress() -> Vec<PolicyEntry> {
    vec![
        rule(Direction::Egress, 1002, 1, 8, Verdict::Allow),
        rule(Direction::Egress, 1002, 6, 80, Verdict::Allow),
    ]
}

fn b_ingress(http: Verdict) -> Vec<PolicyEntry> {
    vec![
        rule(Direction::Ingress, 1001, 1, 8, Verdict::Allow),
        rule(Direction::Ingress, 1001, 6, 80, http),
    ]
}

fn program(dp: &Datapath, n: &Names) {
    let ep = |id, identity, ifname: &str| EndpointInfo {
        id,
        identity,
        ifindex: ifindex(ifname),
        ingress_enforced: true,
        egress_enforced: true,
    };
    dp.set_endpoint(ip(POD_A), ep(1, 1001, &n.ha))
        .expect("endpoint A");
    dp.set_endpoint(ip(POD_B), ep(2, 1002, &n.hb))
        .expect("endpoint B");
    dp.set_ipcache(format!("{POD_A}/32").parse().expect("net"), 1001)
        .expect("ipcache");
    dp.set_ipcache(format!("{POD_B}/32").parse().expect("net"), 1002)
        .expect("ipcache");
    dp.set_ipcache(format!("{ROUTER}/32").parse().expect("net"), 1)
        .expect("ipcache");
}

/// Accepts one connection on the transparent listener within `wait`.
fn accept_one(l: &socket2::Socket, wait: Duration) -> Option<std::net::TcpStream> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Ok((s, _)) = l.accept() {
            let s: std::net::TcpStream = s.into();
            s.set_nonblocking(false).expect("blocking");
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn redirect_case(dp: &Datapath, n: &Names) {
    install_proxy_routing().expect("proxy routing");
    install_proxy_routing().expect("proxy routing is idempotent");
    let l =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    l.set_ip_transparent(true).expect("IP_TRANSPARENT");
    l.set_reuse_address(true).expect("reuseaddr");
    let bind: SocketAddr = format!("0.0.0.0:{PROXY_PORT}").parse().expect("addr");
    l.bind(&bind.into()).expect("bind proxy");
    l.listen(16).expect("listen");
    l.set_nonblocking(true).expect("nonblocking");

    let mut events = dp.events().expect("events");
    events.poll();
    dp.sync_policy(
        2,
        &b_ingress(Verdict::Redirect {
            proxy_port: PROXY_PORT,
        }),
    )
    .expect("redirect policy");
    let client = Command::new("ip")
        .args([
            "netns",
            "exec",
            &n.a,
            "curl",
            "-s",
            "-m",
            "5",
            &format!("http://{POD_B}/"),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn curl");
    let conn = accept_one(&l, Duration::from_secs(5));
    let mut conn = conn.expect("the proxy listener received the redirected connection");
    let local = conn.local_addr().expect("local addr");
    assert_eq!(
        local,
        format!("{POD_B}:80").parse().expect("addr"),
        "original destination kept"
    );
    assert_eq!(
        conn.peer_addr().expect("peer").ip(),
        ip(POD_A),
        "client address kept"
    );
    let mut buf = [0u8; 1024];
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let nread = conn.read(&mut buf).expect("read request");
    assert!(
        buf[..nread].starts_with(b"GET / "),
        "HTTP request reached the proxy"
    );
    conn.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 7\r\n\r\nproxied")
        .expect("respond");
    drop(conn);
    let out = client.wait_with_output().expect("curl output");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "proxied",
        "reply reached the pod"
    );
    let evs = events.poll();
    assert!(
        evs.iter().any(|e| e.kind
            == EventKind::Redirect {
                proxy_port: PROXY_PORT
            }),
        "redirect event reported: {evs:?}"
    );
}

fn scenario(pins: &Path, n: &Names) {
    let b_url = format!("http://{POD_B}:80/");
    let mut dp = Datapath::load(pins).expect("load datapath");
    program(&dp, n);
    dp.attach_endpoint(&n.ha).expect("attach A");
    dp.attach_endpoint(&n.hb).expect("attach B");
    dp.attach_endpoint(&n.hb).expect("attach is idempotent");
    assert!(
        !ping(&n.a, POD_B),
        "no policy entries: default deny drops ping"
    );

    dp.sync_policy(1, &a_egress()).expect("policy A");
    dp.sync_policy(2, &b_ingress(Verdict::Allow))
        .expect("policy B");
    assert!(
        ping(&n.a, POD_B),
        "allowed ping A->B (reply passes via conntrack)"
    );
    assert_eq!(curl(&n.a, &b_url), "200", "allowed HTTP A->B");
    assert!(!ping(&n.b, POD_A), "B->A default deny");

    let mut with_deny = b_ingress(Verdict::Allow);
    with_deny.push(rule(Direction::Ingress, 0, 6, 80, Verdict::Deny));
    dp.sync_policy(2, &with_deny).expect("deny");
    assert_eq!(
        curl(&n.a, &b_url),
        "000",
        "deny beats allow: connection times out"
    );
    let s = dp
        .sync_policy(2, &b_ingress(Verdict::Allow))
        .expect("revert");
    assert_eq!(
        (s.written, s.deleted),
        (0, 1),
        "only the deny key removed: {s:?}"
    );
    let s = dp
        .sync_policy(2, &b_ingress(Verdict::Allow))
        .expect("unchanged");
    assert_eq!(s.written, 0, "unchanged set writes nothing: {s:?}");

    drop(dp);
    assert!(
        ping(&n.a, POD_B),
        "enforcement persists after the loader is gone (allow)"
    );
    assert!(
        !ping(&n.b, POD_A),
        "enforcement persists after the loader is gone (deny)"
    );

    let mut dp = Datapath::load(pins).expect("second load");
    assert_eq!(
        dp.policy_entries(2).expect("entries").len(),
        2,
        "entries adopted"
    );
    dp.attach_endpoint(&n.ha).expect("re-attach A");
    dp.attach_endpoint(&n.hb).expect("re-attach B");
    let attached = dp.attached_interfaces().expect("attached");
    assert_eq!(
        attached,
        vec![n.ha.clone(), n.hb.clone()],
        "both veths recorded"
    );
    assert!(ping(&n.a, POD_B), "after adoption: allow");
    assert!(!ping(&n.b, POD_A), "after adoption: default deny");
    assert!(
        dp.counters(2).expect("counters").ingress_forwarded_packets > 0,
        "B counted"
    );

    redirect_case(&dp, n);

    dp.detach(&n.ha).expect("detach A");
    dp.detach(&n.hb).expect("detach B");
    assert!(ping(&n.b, POD_A), "detached: no enforcement");
}

#[test]
fn enforcement_in_namespaces() {
    let id = std::process::id() % 100_000;
    let names = Names {
        node: format!("pbpf-{id}-node"),
        a: format!("pbpf-{id}-a"),
        b: format!("pbpf-{id}-b"),
        ha: format!("pbpf-ha{id}"),
        hb: format!("pbpf-hb{id}"),
    };
    let node = Netns::new(&names.node);
    let a = Netns::new(&names.a);
    let mut b = Netns::new(&names.b);
    wire_pod(&node, &a, &names.ha, POD_A);
    wire_pod(&node, &b, &names.hb, POD_B);
    node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    assert!(ping(&names.a, POD_B), "topology works before any program");
    assert!(
        ping(&names.b, POD_A),
        "topology works before any program (B->A)"
    );
    b.spawn(&["python3", "-m", "http.server", "80", "--bind", POD_B]);
    wait_listening(&b, "80");

    let pins = bpffs::PinDir::new();
    let pin_path = pins.path().to_path_buf();
    let node_ns = node.name().to_string();
    let worker = std::thread::spawn(move || {
        // Load and attach from inside the node namespace: TCX attaches by ifindex there.
        let f = std::fs::File::open(format!("/run/netns/{node_ns}")).expect("netns file");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        scenario(&pin_path, &names);
    });
    if let Err(panic) = worker.join() {
        std::panic::resume_unwind(panic);
    }
}
