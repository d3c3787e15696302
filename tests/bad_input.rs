//! Bad policy input while the agent runs: an invalid file is reported with file:line and the
//! field, nothing of it is applied (revision and verdicts unchanged), a good file broken by an
//! edit keeps its last good version in force, and fixing the file applies it.

use palisade_e2e::Lab;

const DEV: &str = "default/dev-pod";
const CTR: &str = "192.168.10.100";
const W1: &str = "192.168.10.101";

/// Allows the control plane and has an invalid CIDR: applying any of it would let ping through.
const BAD: &str = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dev-to-ctr}
spec:
  endpointSelector: {matchLabels: {env: dev}}
  egress:
  - toCIDR:
    - 192.168.10.100/32
    - 10.0.0.0/33
"#;

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} in the test's own YAML"))
        + 1
}

fn policy_revision(lab: &Lab) -> u64 {
    let v = lab.cli_json(&["policy", "get"]);
    v["revision"]
        .as_u64()
        .unwrap_or_else(|| panic!("policy get revision: {v}"))
}

fn assert_dev_to_host_verdicts(lab: &Lab, when: &str) {
    assert!(lab.ping(DEV, W1), "{when}: own node answers");
    assert!(
        !lab.ping(DEV, CTR),
        "{when}: the control plane still must not answer"
    );
}

#[test]
fn invalid_policy_reported_not_applied_then_fixed() {
    let lab = Lab::up("bad");
    lab.assert_tools(DEV, &["ping"]);
    lab.apply(&["s2-entities/dev-to-host.yaml"]);
    assert_dev_to_host_verdicts(&lab, "dev-to-host applied");
    let rev = lab.revision().expect("ready file");
    assert_eq!(
        policy_revision(&lab),
        rev,
        "policy get and the ready file agree"
    );

    // A new invalid file: reported with file:line and field, nothing applied.
    let log_from = lab.agent_log().len();
    let path = lab.write_policy("dev-to-ctr.yaml", BAD);
    let line = lab.wait_log(log_from, "dev-to-ctr.yaml");
    assert!(
        line.contains(&format!("{}:", path.display())),
        "the error names the file: {line}"
    );
    // The position must fall inside the field: from its key to the bad value (the agent names
    // the field's value, `spec.egress[0].toCIDR`, not the list element). Checked last, so the
    // rest of the behaviour is still verified when only the position is off.
    let lines = line_of(BAD, "toCIDR:")..=line_of(BAD, "10.0.0.0/33");
    let position_ok = lines
        .clone()
        .any(|n| line.contains(&format!("{}:{n}:", path.display())));
    assert!(
        line.contains("spec.egress[0].toCIDR") && line.contains("10.0.0.0/33"),
        "the error names the field and the value: {line}"
    );
    assert_eq!(
        policy_revision(&lab),
        rev,
        "an invalid file applies no revision"
    );
    assert_eq!(lab.revision(), Some(rev), "ready file unchanged");
    assert_dev_to_host_verdicts(&lab, "with an invalid file present");
    let status = lab.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("10.0.0.0/33"),
        "status shows the last error"
    );

    // A good file broken by an edit: its last good version stays in force.
    let log_from = lab.agent_log().len();
    let host = lab.policies_dir().join("s2-entities--dev-to-host.yaml");
    let good = std::fs::read_to_string(&host).expect("dev-to-host in the watched dir");
    let broken = good.replace("toEntities:", "toEntities: 7\n    oops:");
    assert_ne!(broken, good, "the edit changes the file");
    lab.write_policy("s2-entities--dev-to-host.yaml", &broken);
    let broken_line = lab.wait_log(log_from, "dev-to-host.yaml");
    assert!(
        broken_line.contains("dev-to-host.yaml:"),
        "names the broken file: {broken_line}"
    );
    assert_eq!(
        policy_revision(&lab),
        rev,
        "a broken edit applies no revision"
    );
    assert_dev_to_host_verdicts(&lab, "with dev-to-host broken by an edit");

    // Fixing both: applied, the control plane answers (dev-to-ctr's valid CIDR).
    lab.write_policy("s2-entities--dev-to-host.yaml", &good);
    lab.apply_yaml("dev-to-ctr.yaml", &BAD.replace("    - 10.0.0.0/33\n", ""));
    assert!(policy_revision(&lab) > rev, "the fixed file is applied");
    assert!(
        lab.ping(DEV, CTR),
        "the fixed dev-to-ctr allows the control plane"
    );
    assert!(lab.ping(DEV, W1), "dev-to-host still allows the own node");
    assert!(
        !lab.ping(DEV, "192.168.10.102"),
        "k8s-w2 is allowed by neither"
    );

    assert!(
        position_ok,
        "the error names a line of the field (lines {lines:?}): {line}"
    );
}
