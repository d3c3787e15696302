//! Bad policy input is rejected with file, line and field; warnings name the line too.

use std::path::Path;

use palisade_policy::load::parse_str;
use palisade_policy::LoadError;

fn err(yaml: &str) -> (usize, String, String) {
    match parse_str(yaml, Path::new("p.yaml")) {
        Err(LoadError::Invalid {
            location,
            field,
            message,
        }) => (location.line.unwrap_or(0), field, message),
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

const HEAD: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {matchLabels: {app: a}}\n";

#[test]
fn bad_values_name_line_and_field() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("  egress:\n  - toCIDR: [10.0.0.300/8]\n", 7, "spec.egress[0].toCIDR[0]", "invalid CIDR"),
        ("  egress:\n  - toPorts:\n    - ports: [{port: \"70000\"}]\n", 8, "spec.egress[0].toPorts[0].ports[0].port", "out of range"),
        ("  egress:\n  - toPorts:\n    - ports: [{port: \"80\", protocol: XTP}]\n", 8, "spec.egress[0].toPorts[0].ports[0].protocol", "invalid protocol"),
        ("  ingress:\n  - toPorts:\n    - ports: [{port: \"80\"}]\n      rules:\n        http: [{path: \"/a(\"}]\n", 10, "spec.ingress[0].toPorts[0].rules.http[0].path", "invalid regex"),
        ("  egress:\n  - toEntities: [wrld]\n", 7, "spec.egress[0].toEntities[0]", "unknown entity"),
        ("  egress:\n  - toEndpoint: [{}]\n", 7, "spec.egress[0]", "unknown field"),
    ];
    for (body, line, field, msg) in cases {
        let (l, f, m) = err(&format!("{HEAD}{body}"));
        // serde reports the innermost container of the bad value; it must be on the field's path.
        assert!(
            field.starts_with(f.as_str())
                && f.matches('.').count() + 1 >= field.matches('.').count(),
            "field for {body:?}: {f} (message {m})"
        );
        assert!(m.contains(msg), "message for {body:?}: {m}");
        assert_eq!(l, *line, "line for {body:?}");
    }
}

#[test]
fn cross_field_checks() {
    let cases: &[(&str, &str, &str)] = &[
        ("  ingress:\n  - toPorts:\n    - ports: [{port: \"53\", protocol: UDP}]\n      rules:\n        http: [{path: /}]\n", "spec.ingress[0].toPorts[0]", "need a TCP port"),
        ("  egress:\n  - toPorts:\n    - ports: [{port: \"53\", endPort: 60}]\n      rules:\n        dns: [{matchPattern: \"*\"}]\n", "spec.egress[0].toPorts[0]", "port range"),
        ("  egress:\n  - toEndpoints: [{}]\n    toCIDR: [10.0.0.0/8]\n", "spec.egress[0].toCIDR", "combining"),
        ("  egress:\n  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [192.168.0.0/16]}]\n", "spec.egress[0].toCIDRSet[0].except[0]", "not inside"),
    ];
    for (body, field, msg) in cases {
        let (_, f, m) = err(&format!("{HEAD}{body}"));
        assert!(
            f.starts_with(field) || field.starts_with(f.as_str()),
            "field for {body:?}: {f} ({m})"
        );
        assert!(m.contains(msg), "message for {body:?}: {m}");
    }
}

#[test]
fn bad_list_element_points_at_its_own_line() {
    let body = "  egress:\n  - toCIDR:\n    - 192.168.10.100/32\n    - 10.0.0.0/33\n";
    let (line, field, msg) = err(&format!("{HEAD}{body}"));
    assert!(field.starts_with("spec.egress[0].toCIDR"), "{field}");
    assert!(msg.contains("10.0.0.0/33"), "{msg}");
    assert_eq!(line, 9, "the bad element's own line");
}

#[test]
fn multi_document_lines_are_absolute() {
    let good = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: ok}\nspec:\n  endpointSelector: {}\n  egress: [{}]\n";
    let bad = format!("{HEAD}  egress:\n  - toCIDR: [nope]\n");
    let (line, field, _) = err(&format!("{good}---\n{bad}"));
    assert!(field.starts_with("spec.egress[0].toCIDR"), "{field}");
    assert_eq!(line, 7 + 7, "second document starts at line 8");
}

#[test]
fn empty_egress_list_warns_with_line() {
    let set = parse_str(&format!("{HEAD}  egress: []\n"), Path::new("p.yaml")).expect("valid");
    assert_eq!(set.policies.len(), 1);
    let w = &set.warnings[0];
    assert_eq!(w.location.line, Some(6), "{w}");
    assert!(w.message.contains("egress: [{}]"), "{w}");
    let set = parse_str(&format!("{HEAD}  egress: [{{}}]\n"), Path::new("p.yaml")).unwrap();
    assert!(set.warnings.is_empty());
}

#[test]
fn unknown_kind_and_missing_spec() {
    let (_, f, m) = err("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n");
    assert_eq!(f, "kind");
    assert!(m.contains("unsupported kind"));
    let (_, f, _) =
        err("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\n");
    assert_eq!(f, "spec");
}

#[test]
fn tls_fields_are_typed_and_checked() {
    let port = "  ingress:\n  - toPorts:\n    - ports: [{port: \"443\", protocol: TCP}]\n";
    let cases: &[(&str, usize, &str, &str)] = &[
        // Unknown key inside a TLS context names its line and the context's path.
        (
            "      terminatingTLS:\n        secret: {name: s}\n        certFile: x\n",
            11,
            "spec.ingress[0].toPorts[0].terminatingTLS",
            "unknown field `certFile`",
        ),
        (
            "      originatingTLS: {trustedCA: ca.crt}\n",
            9,
            "spec.ingress[0].toPorts[0]",
            "missing field `secret`",
        ),
        (
            "      terminatingTLS: {secret: {name: \"\"}}\n",
            9,
            "spec.ingress[0].toPorts[0].terminatingTLS.secret",
            "must not be empty",
        ),
        (
            "      serverNames: [\"bad name!\"]\n",
            9,
            "spec.ingress[0].toPorts[0]",
            "invalid server name \"bad name!\"",
        ),
    ];
    for (extra, line, field, msg) in cases {
        let (l, f, m) = err(&format!("{HEAD}{port}{extra}"));
        assert!(
            f.starts_with(field) || field.starts_with(f.as_str()),
            "field for {extra:?}: {f} ({m})"
        );
        assert!(m.contains(msg), "message for {extra:?}: {m}");
        assert_eq!(l, *line, "line for {extra:?} ({f}: {m})");
    }
    let cross: &[(&str, &str, &str)] = &[
        ("  ingress:\n  - toPorts:\n    - ports: [{port: \"53\", protocol: UDP}]\n      serverNames: [a.b]\n", "spec.ingress[0].toPorts[0]", "need a TCP port"),
        ("  ingress:\n  - toPorts:\n    - terminatingTLS: {secret: {name: s}}\n", "spec.ingress[0].toPorts[0]", "at least one port"),
        ("  egress:\n  - toPorts:\n    - ports: [{port: \"53\"}]\n      serverNames: [a.b]\n      rules: {dns: [{matchPattern: \"*\"}]}\n", "spec.egress[0].toPorts[0]", "DNS rules cannot be combined"),
        ("  egressDeny:\n  - toPorts:\n    - ports: [{port: \"443\", protocol: TCP}]\n      serverNames: [a.b]\n", "spec.egressDeny[0].toPorts[0].serverNames", "not allowed in deny rules"),
    ];
    for (body, field, msg) in cross {
        let (_, f, m) = err(&format!("{HEAD}{body}"));
        assert!(
            f.starts_with(field) || field.starts_with(f.as_str()),
            "field for {body:?}: {f} ({m})"
        );
        assert!(m.contains(msg), "message for {body:?}: {m}");
    }
    // A valid context with wildcard server names parses.
    let ok = format!("{HEAD}{port}      serverNames: [\"*.example.com\", api.example.com]\n      terminatingTLS: {{secret: {{namespace: ns, name: s}}, certificate: c.pem, privateKey: k.pem}}\n");
    parse_str(&ok, Path::new("p.yaml")).expect("valid TLS port");
}
