//! S4 (CIDR): myservice may reach 20.1.1.1/32 and 10.0.0.0/8 except 10.96.0.0/12, nothing
//! else; the CiliumNetworkPolicy and the Kubernetes NetworkPolicy (`ipBlock` + `except`) give
//! the same outcomes.

use palisade_e2e::Lab;

const SRC: &str = "default/myservice";

fn check_outcomes(lab: &Lab, which: &str) {
    for ip in ["20.1.1.1", "10.1.1.1"] {
        let (rc, body) = lab.curl(SRC, &format!("http://{ip}/"));
        assert_eq!(rc, 0, "{which}: {ip} is allowed, curl exit {rc}");
        assert!(
            body.contains("Hello from /"),
            "{which}: {ip}'s page, got {body:?}"
        );
    }
    let webpod = lab.ip("default/webpod").to_string();
    for (ip, why) in [
        ("10.96.0.10", "in the except range"),
        ("203.0.113.10", "outside every CIDR"),
        (webpod.as_str(), "a cluster pod, not a CIDR peer"),
    ] {
        let (rc, _) = lab.curl(SRC, &format!("http://{ip}/"));
        assert_eq!(
            rc, 28,
            "{which}: {ip} ({why}) must time out, curl exit {rc}"
        );
    }
}

#[test]
fn s4_cidr_cnp_and_knp_agree() {
    let lab = Lab::up("s4");
    lab.assert_tools(SRC, &["curl"]);
    // Before any policy everything answers, so every timeout below is the policy's.
    for ip in ["20.1.1.1", "10.1.1.1", "10.96.0.10", "203.0.113.10"] {
        let (rc, _) = lab.curl(SRC, &format!("http://{ip}/"));
        assert_eq!(rc, 0, "{ip} answers before any policy");
    }

    lab.apply(&["s4-cidr/cidr-rule.yaml"]);
    check_outcomes(&lab, "CiliumNetworkPolicy");

    lab.remove("s4-cidr/cidr-rule.yaml");
    let (rc, _) = lab.curl(SRC, "http://10.96.0.10/");
    assert_eq!(rc, 0, "without policy 10.96.0.10 answers again");

    lab.apply(&["s4-cidr-knp/cidr-rule-knp.yaml"]);
    check_outcomes(&lab, "NetworkPolicy");
}
