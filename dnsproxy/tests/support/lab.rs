//! The three-namespace lab: `pod` (dig client) ─ `node` (DNS proxy + TPROXY) ─ `res` (dnsmasq).
//! Interception uses iptables TPROXY inside the node namespace, not our BPF datapath.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use palisade_dnsproxy::{
    BoundDnsProxy, DnsFlowRecord, DnsProxyConfig, DnsProxyStats, DnsSnapshot, FqdnLearner,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::netns::{in_ns, NsGuard};

/// Pod address.
pub const POD_IP: &str = "10.98.1.2";
/// The resolver the pod asks (dnsmasq).
pub const RESOLVER_IP: &str = "10.98.2.2";
/// An address in the resolver subnet where nothing answers.
pub const DEAD_RESOLVER_IP: &str = "10.98.2.3";

/// Namespaces, dnsmasq and its query log.
pub struct Lab {
    /// Node namespace name.
    pub node: String,
    /// Pod namespace name.
    pub pod: String,
    /// dnsmasq's query log.
    pub dnsmasq_log: PathBuf,
    _tmp: tempfile::TempDir,
    _guard: NsGuard,
}

impl Lab {
    /// Builds the namespaces, routes, TPROXY rules (to `proxy_port`) and starts dnsmasq.
    pub fn new(tag: &str, proxy_port: u16, dnsmasq_args: &[&str]) -> Lab {
        let base = format!("pdns-{}-{tag}", std::process::id() % 100_000);
        let (node, pod, res) = (
            format!("{base}-n"),
            format!("{base}-p"),
            format!("{base}-r"),
        );
        let mut guard = NsGuard::default();
        for n in [&node, &pod, &res] {
            guard.add(n);
        }
        link(&pod, "eth0", "10.98.1.2/24", &node, "vpod", "10.98.1.1/24");
        link(&res, "eth0", "10.98.2.2/24", &node, "vres", "10.98.2.1/24");
        in_ns(&pod, &["ip", "route", "add", "default", "via", "10.98.1.1"]);
        in_ns(&res, &["ip", "route", "add", "default", "via", "10.98.2.1"]);
        in_ns(&node, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let port = proxy_port.to_string();
        for proto in ["udp", "tcp"] {
            in_ns(
                &node,
                &[
                    "iptables",
                    "-t",
                    "mangle",
                    "-A",
                    "PREROUTING",
                    "-p",
                    proto,
                    "--dport",
                    "53",
                    "-j",
                    "TPROXY",
                    "--on-port",
                    &port,
                    "--tproxy-mark",
                    "0x200/0xf00",
                ],
            );
        }
        in_ns(
            &node,
            &[
                "ip",
                "rule",
                "add",
                "fwmark",
                "0x200/0xf00",
                "lookup",
                "2004",
                "pref",
                "9",
            ],
        );
        in_ns(
            &node,
            &[
                "ip",
                "route",
                "add",
                "local",
                "0.0.0.0/0",
                "dev",
                "lo",
                "table",
                "2004",
            ],
        );

        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join("dnsmasq.log");
        let log_arg = format!("--log-facility={}", log.display());
        let mut args = vec![
            "ip",
            "netns",
            "exec",
            &res,
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--port=53",
            "--listen-address=10.98.2.2",
            "--bind-interfaces",
            "--user=root",
            "--pid-file",
            "--log-queries",
            &log_arg,
        ];
        args.extend_from_slice(dnsmasq_args);
        let child = Command::new(args[0])
            .args(&args[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        guard.keep(child);
        let lab = Lab {
            node,
            pod,
            dnsmasq_log: log,
            _tmp: tmp,
            _guard: guard,
        };
        lab.wait_for_dnsmasq();
        lab
    }

    /// dnsmasq answers queries from the node itself (not intercepted: TPROXY is on PREROUTING).
    fn wait_for_dnsmasq(&self) {
        for _ in 0..50 {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.node,
                    "dig",
                    "+time=1",
                    "+tries=1",
                    "@10.98.2.2",
                    "probe.invalid",
                ])
                .output()
                .expect("dig");
            if String::from_utf8_lossy(&out.stdout).contains("status:") {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("dnsmasq did not start in the resolver namespace");
    }

    /// Runs `dig` in the pod namespace and returns its output.
    pub fn dig(&self, args: &[&str]) -> String {
        let mut full = vec!["dig", "+time=5", "+tries=1"];
        full.extend_from_slice(args);
        let out = in_ns(&self.pod, &full);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// dnsmasq's query log so far.
    pub fn resolver_log(&self) -> String {
        std::fs::read_to_string(&self.dnsmasq_log).unwrap_or_default()
    }
}

fn link(a_ns: &str, a: &str, a_ip: &str, b_ns: &str, b: &str, b_ip: &str) {
    super::netns::sh(&[
        "ip", "link", "add", a, "netns", a_ns, "type", "veth", "peer", b, "netns", b_ns,
    ]);
    for (ns, dev, ip) in [(a_ns, a, a_ip), (b_ns, b, b_ip)] {
        in_ns(ns, &["ip", "addr", "add", ip, "dev", dev]);
        in_ns(ns, &["ip", "link", "set", dev, "up"]);
    }
}

/// The DNS proxy running on its own thread inside a namespace (sockets belong to the netns of
/// the thread that creates them, so the runtime is single-threaded on that thread).
pub struct ProxyThread {
    /// Flow records.
    pub flows: mpsc::Receiver<DnsFlowRecord>,
    /// Policy updates.
    pub snapshots: watch::Sender<Arc<DnsSnapshot>>,
    /// The running proxy's counters.
    pub stats: Arc<DnsProxyStats>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ProxyThread {
    /// Binds the proxy inside `ns` and serves until dropped.
    pub fn start(
        ns: &str,
        config: DnsProxyConfig,
        snap: DnsSnapshot,
        learner: Arc<dyn FqdnLearner>,
    ) -> Self {
        let (snap_tx, snap_rx) = watch::channel(Arc::new(snap));
        let (flow_tx, flow_rx) = mpsc::channel(1024);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let path = format!("/run/netns/{ns}");
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let bound = BoundDnsProxy::bind(config).expect("bind DNS proxy");
                ready_tx.send(bound.stats()).expect("ready");
                let stop = async {
                    let _ = stop_rx.await;
                };
                bound
                    .serve(snap_rx, learner, flow_tx, stop)
                    .await
                    .expect("serve");
            });
        });
        let stats = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("proxy bound");
        ProxyThread {
            flows: flow_rx,
            snapshots: snap_tx,
            stats,
            shutdown: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Waits (bounded) for the next flow record whose qname is `qname`.
    pub fn flow_for(&mut self, qname: &str) -> DnsFlowRecord {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.flows.try_recv() {
                Ok(r) if r.qname == qname => return r,
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        panic!("no flow record for {qname}");
    }
}

impl Drop for ProxyThread {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
