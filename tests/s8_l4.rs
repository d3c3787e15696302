//! S8 (L4): myservice may open TCP port 80 anywhere; every other port (a second real listener
//! on 8080, a closed port, DNS on UDP 53, ICMP) is dropped: curl times out instead of being
//! refused.

use std::time::Duration;

use palisade_e2e::tools::{code, describe, poll};
use palisade_e2e::Lab;

const SRC: &str = "default/myservice";
const EXT: &str = "cidr-host.example";
const POD: &str = "default/server";

#[test]
fn s8_l4_only_tcp_80() {
    let lab = Lab::up("s8");
    lab.assert_tools(SRC, &["curl", "ping", "dig"]);
    let bin = lab.bin().to_string_lossy().into_owned();
    // Second listeners on 8080: the lab's own HTTP server, in an external host and a pod.
    for member in [EXT, POD] {
        lab.spawn(
            member,
            &format!("http8080-{}.log", member.replace('/', "-")),
            &[
                &bin, "lab", "serve", "http", "--port", "8080", "--name", member,
            ],
        );
    }
    let ext = lab.ip(EXT).to_string();
    let pod = lab.ip(POD).to_string();

    // Before the policy: both ports answer, a closed port is refused at once (exit 7).
    for ip in [&ext, &pod] {
        let url = format!("http://{ip}:8080/");
        poll(Duration::from_secs(5), || {
            (lab.curl(SRC, &url).0 == 0).then_some(())
        })
        .unwrap_or_else(|| panic!("listener on {url} never answered before the policy"));
        let (rc, _) = lab.curl(SRC, &format!("http://{ip}/"));
        assert_eq!(rc, 0, "{ip}:80 answers before the policy");
    }
    let closed = format!("http://{ext}:9090/");
    let (rc, _) = lab.curl(SRC, &closed);
    assert_eq!(rc, 7, "a closed port is refused (exit 7) without policy");
    assert!(lab.ping(SRC, &ext), "ICMP passes before the policy");

    lab.apply(&["s8-l4/l4-rule.yaml"]);
    for ip in [&ext, &pod] {
        let (rc, body) = lab.curl(SRC, &format!("http://{ip}/"));
        assert_eq!(rc, 0, "TCP 80 to {ip} is allowed: exit {rc}");
        assert!(body.contains("Hello from /"), "{ip}'s page, got {body:?}");
        let (rc, _) = lab.curl(SRC, &format!("http://{ip}:8080/"));
        assert_eq!(
            rc, 28,
            "TCP 8080 to {ip} must time out (dropped), exit {rc}"
        );
    }
    let (rc, _) = lab.curl(SRC, &closed);
    assert_eq!(
        rc, 28,
        "the closed port must now time out (dropped before the RST), exit {rc}"
    );
    assert!(!lab.ping(SRC, &ext), "ICMP is not TCP 80: no reply");
    let resolver = lab.ip("kube-system/kube-dns").to_string();
    let out = lab.exec(
        SRC,
        &[
            "dig",
            "+time=1",
            "+tries=1",
            &format!("@{resolver}"),
            "webpod.default.svc.cluster.local",
        ],
    );
    assert_eq!(
        code(&out),
        9,
        "DNS on UDP 53 must time out (dig exit 9): {}",
        describe(&out)
    );
}
