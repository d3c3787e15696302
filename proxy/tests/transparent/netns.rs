//! Two network namespaces joined by a veth pair: a client (`…-c`, 10.77.0.1 "prod" and
//! 10.77.0.3 "dev") and a server node (`…-s`, 10.77.0.2) where iptables TPROXY sends TCP/80
//! arriving on eth0 to the proxy, with the routing Palisade uses (mark 0x200/0xf00, table 2004).
//! Everything lives inside the namespaces and is removed on drop, even after a panic.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Client address with the "prod" identity.
pub const PROD: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Server address (the service endpoint).
pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// Client address with the "dev" identity.
pub const DEV: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The namespace pair; deleted on drop.
pub struct NetnsPair {
    /// Client namespace name.
    pub client: String,
    /// Server namespace name.
    pub server: String,
}

/// Runs a command and panics with its output when it fails.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl NetnsPair {
    /// Creates both namespaces, the veth pair and addresses.
    pub fn new() -> NetnsPair {
        let id = format!(
            "pprx-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let pair = NetnsPair {
            client: format!("{id}-c"),
            server: format!("{id}-s"),
        };
        sh(&["ip", "netns", "add", &pair.client]);
        sh(&["ip", "netns", "add", &pair.server]);
        sh(&[
            "ip",
            "link",
            "add",
            "eth0",
            "netns",
            &pair.client,
            "type",
            "veth",
            "peer",
            "eth0",
            "netns",
            &pair.server,
        ]);
        for (ns, addrs) in [
            (&pair.client, vec![PROD, DEV]),
            (&pair.server, vec![SERVER]),
        ] {
            for a in addrs {
                sh(&[
                    "ip",
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{a}/24"),
                    "dev",
                    "eth0",
                ]);
            }
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        }
        pair
    }

    /// Sends TCP/80 arriving from the client to the proxy's port, and counts upstream packets
    /// by mark (the proxy's own upstream connections leave through OUTPUT, never PREROUTING/eth0).
    pub fn redirect_to(&self, proxy_port: u16) {
        let s = &self.server;
        let port = proxy_port.to_string();
        sh(&[
            "ip",
            "netns",
            "exec",
            s,
            "iptables",
            "-t",
            "mangle",
            "-A",
            "PREROUTING",
            "-i",
            "eth0",
            "-p",
            "tcp",
            "--dport",
            "80",
            "-j",
            "TPROXY",
            "--on-port",
            &port,
            "--tproxy-mark",
            "0x200/0xf00",
        ]);
        sh(&[
            "ip",
            "-n",
            s,
            "rule",
            "add",
            "fwmark",
            "0x200/0xf00",
            "lookup",
            "2004",
            "pref",
            "9",
        ]);
        sh(&[
            "ip",
            "-n",
            s,
            "route",
            "add",
            "local",
            "0.0.0.0/0",
            "dev",
            "lo",
            "table",
            "2004",
        ]);
        for mark in ["0xa00", "0xb00"] {
            sh(&[
                "ip",
                "netns",
                "exec",
                s,
                "iptables",
                "-t",
                "mangle",
                "-A",
                "OUTPUT",
                "-p",
                "tcp",
                "--dport",
                "80",
                "-m",
                "mark",
                "--mark",
                &format!("{mark}/0xf00"),
            ]);
        }
    }

    /// Packets sent upstream with this mark so far (from the OUTPUT counting rules).
    pub fn marked_packets(&self, mark: &str) -> u64 {
        let out = sh(&[
            "ip",
            "netns",
            "exec",
            &self.server,
            "iptables",
            "-t",
            "mangle",
            "-L",
            "OUTPUT",
            "-v",
            "-x",
            "-n",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains(&format!("mark match {mark}/0xf00")))
            .unwrap_or_else(|| panic!("no counter for {mark} in:\n{text}"));
        line.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("packet count")
    }

    /// Runs curl in the client namespace (`-s -m 5`, extra args appended).
    pub fn curl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client, "curl", "-s", "-m", "5"])
            .args(args);
        cmd.output().unwrap_or_else(|e| panic!("spawn curl: {e}"))
    }

    /// A TCP connection from `from` (in the client namespace) to the server's port 80.
    pub fn connect(&self, from: Ipv4Addr) -> TcpStream {
        let ns = self.client.clone();
        let stream = std::thread::spawn(move || {
            enter(&ns);
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            sock.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())
                .expect("bind client address");
            let to = SocketAddr::V4(SocketAddrV4::new(SERVER, 80));
            sock.connect_timeout(&to.into(), Duration::from_secs(5))
                .expect("connect to server:80");
            TcpStream::from(sock)
        })
        .join()
        .expect("connect thread");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        stream
    }
}

/// Moves the calling thread into a namespace; threads it spawns afterwards stay there too.
pub fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("open netns {ns}: {e}"));
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("setns {ns}: {e}"));
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
