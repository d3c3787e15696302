//! The lab's networking without the agent: pods reach their node, pods on other nodes and
//! external hosts; names resolve through the lab's dnsmasq; the servers answer; `exec`,
//! `label`, `status` and `down` do what they say. Needs root (network namespaces).

#[path = "support/helpers.rs"]
mod helpers;

use helpers::{assert_gone, options, run_in, stdout_in, topology_file, LabGuard};

const TOPOLOGY: &str = r#"
nodes:
- {name: n1, local: true, labels: {role: worker}}
- {name: n2}
namespaces: [{name: default}, {name: kube-system}]
pods:
- {name: resolver, namespace: kube-system, node: n1, labels: {k8s-app: kube-dns}, serve: [{kind: dns}]}
- {name: client, node: n1, labels: {env: dev}}
- {name: webpod, node: n2, labels: {app: webpod}, serve: [{kind: whoami}]}
- {name: service-pod, node: n1, labels: {app: service}, serve: [{kind: http}]}
services:
- {name: webpod, selector: {app: webpod}}
externals:
- {name: api.example.com, ips: [20.1.1.1], serve: [{kind: http}]}
"#;

#[test]
fn lab_networking_dns_servers_label_and_down() {
    let opts = options("net");
    let _ = palisade_lab::down(&opts);
    let guard = LabGuard(opts.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = topology_file(dir.path(), TOPOLOGY);
    let status = palisade_lab::up(&topo, dir.path(), &opts).expect("lab up");
    let text = status.to_string();
    assert!(
        text.contains("default/webpod") && text.contains("whoami:80"),
        "status:\n{text}"
    );

    // Routing: own node, a pod on the other node, an external host, the other node.
    let ip = |name: &str| {
        status
            .ip_of(name)
            .unwrap_or_else(|| panic!("no ip for {name}"))
    };
    for target in ["n1", "webpod", "api.example.com", "n2"] {
        let addr = ip(target).to_string();
        let out = run_in(
            &status,
            "default/client",
            &["ping", "-c", "1", "-W", "2", &addr],
        );
        assert!(
            out.status.success(),
            "client cannot ping {target} ({addr}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // Servers: exact page on /public, whoami through the resolver, external host by IP.
    let page = stdout_in(
        &status,
        "default/client",
        &[
            "curl",
            "-sS",
            "-m",
            "5",
            &format!("http://{}/public", ip("service-pod")),
        ],
    );
    assert_eq!(
        page,
        "<html><body><h1>Hello from /public</h1></body></html>\n"
    );
    // HTTP/1.1 keep-alive: curl reuses the connection for the second URL.
    let base = format!("http://{}", ip("service-pod"));
    let two = stdout_in(
        &status,
        "default/client",
        &[
            "curl",
            "-sS",
            "-m",
            "5",
            "-w",
            "connects=%{num_connects}\n",
            &format!("{base}/a"),
            &format!("{base}/b"),
        ],
    );
    assert!(
        two.contains("Hello from /a</h1></body></html>\nconnects=1\n"),
        "{two}"
    );
    assert!(
        two.contains("Hello from /b</h1></body></html>\nconnects=0\n"),
        "keep-alive:\n{two}"
    );
    // The server logs who called.
    let (server, _) = status
        .processes
        .iter()
        .find(|(p, _)| p.member == "default/service-pod")
        .expect("service-pod server");
    let log = std::fs::read_to_string(&server.log).expect("server log");
    assert!(
        log.contains(&format!("{}:", ip("client"))) && log.contains("GET /public"),
        "log:\n{log}"
    );
    let who = stdout_in(
        &status,
        "default/client",
        &["curl", "-sS", "-m", "5", "http://webpod/"],
    );
    assert!(who.contains("Hostname: webpod\n"), "whoami text:\n{who}");
    assert!(
        who.contains(&format!("RemoteAddr: {}:", ip("client"))),
        "no pod NAT:\n{who}"
    );
    assert!(
        who.contains("GET / HTTP/1.1\r\nHost: webpod\r\n"),
        "request echoed:\n{who}"
    );
    let ext = stdout_in(
        &status,
        "default/client",
        &["curl", "-sS", "-m", "5", "http://api.example.com/x"],
    );
    assert_eq!(ext, "<html><body><h1>Hello from /x</h1></body></html>\n");

    // DNS details: FQDN names, unknown names NXDOMAIN at once.
    let dig = stdout_in(
        &status,
        "default/client",
        &[
            "dig",
            "+short",
            "+time=2",
            "webpod.default.svc.cluster.local",
        ],
    );
    assert_eq!(dig.trim(), ip("webpod").to_string());
    let nx = stdout_in(
        &status,
        "default/client",
        &["dig", "+time=2", "example.org"],
    );
    assert!(nx.contains("status: NXDOMAIN"), "unknown name:\n{nx}");

    // exec returns the command's exit code.
    let code = |cmd: &[&str]| {
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        palisade_lab::exec(&opts, "client", &cmd).expect("exec")
    };
    assert_eq!(code(&["true"]), 0);
    assert_eq!(code(&["sh", "-c", "exit 7"]), 7);
    assert!(
        palisade_lab::exec(&opts, "nobody", &["true".into()]).is_err(),
        "unknown member"
    );

    // label: the resolved topology changes, and the resolver follows (client joins webpod).
    palisade_lab::label(&opts, "client", "app=webpod").expect("label");
    let resolved = std::fs::read_to_string(opts.state_dir.join("topology.yaml")).expect("topology");
    let topo = palisade_policy::Topology::parse(&resolved, &opts.state_dir).expect("valid");
    let client = topo.pod("client").expect("client in topology");
    assert_eq!(
        client.labels.get("app").map(String::as_str),
        Some("webpod"),
        "{resolved}"
    );
    assert!(client.host_interface.is_some(), "lab fields kept");
    let mut answers = String::new();
    for _ in 0..50 {
        answers = stdout_in(
            &status,
            "default/client",
            &["dig", "+short", "+time=2", "webpod"],
        );
        if answers.lines().count() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        answers.lines().count(),
        2,
        "dnsmasq reloaded the service's backends:\n{answers}"
    );
    palisade_lab::label(&opts, "client", "app-").expect("unlabel");
    let topo =
        palisade_policy::Topology::load(&opts.state_dir.join("topology.yaml")).expect("valid");
    assert!(
        !topo
            .pod("client")
            .expect("client")
            .labels
            .contains_key("app"),
        "label removed"
    );

    // down removes everything.
    drop(guard);
    assert_gone(&opts);
}

#[test]
fn up_refuses_a_second_lab_with_the_same_prefix() {
    let opts = options("twice");
    let _ = palisade_lab::down(&opts);
    let _guard = LabGuard(opts.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let topo = topology_file(dir.path(), "nodes: [{name: n1}]\npods: [{name: p}]\n");
    palisade_lab::up(&topo, dir.path(), &opts).expect("first up");
    let err = palisade_lab::up(&topo, dir.path(), &opts).expect_err("second up must fail");
    assert!(err.to_string().contains("already up"), "{err}");
}
