//! The snapshot and flow record cross a process boundary as JSON: round trips and strictness.

use palisade_proxy::{PolicySnapshot, ProxyConfig};

const SNAPSHOT: &str = r#"{
  "revision": 7,
  "ipcache": [["10.0.0.0/8", 256], ["10.1.2.3/32", 300]],
  "endpoints": [{
    "name": "service", "ips": ["10.1.2.3"], "identity": 300,
    "ingress": [{"port": 80, "peers": [
      {"identities": [256], "http": [{"method": "GET", "path": "/public"}]},
      {"identities": null, "http": null}]}],
    "egress": []
  }]
}"#;

#[test]
fn snapshot_round_trips_through_json() {
    let snap: PolicySnapshot = serde_json::from_str(SNAPSHOT).expect("snapshot parses");
    assert_eq!(snap.revision, 7);
    assert_eq!(
        snap.endpoints[0].ingress[0].end_port, 0,
        "endPort defaults to 0 (single port)"
    );
    let again: PolicySnapshot =
        serde_json::from_str(&serde_json::to_string(&snap).expect("serializes"))
            .expect("parses back");
    assert_eq!(snap, again, "JSON round trip keeps everything");
}

#[test]
fn unknown_keys_are_rejected() {
    let typo = SNAPSHOT.replace("\"identity\": 300", "\"identty\": 300");
    let err = serde_json::from_str::<PolicySnapshot>(&typo).expect_err("unknown key rejected");
    assert!(
        err.to_string().contains("identty"),
        "error names the key: {err}"
    );
    let err = serde_json::from_str::<ProxyConfig>(r#"{"lissen": "0.0.0.0:1"}"#)
        .expect_err("unknown key rejected");
    assert!(
        err.to_string().contains("lissen"),
        "error names the key: {err}"
    );
}

#[test]
fn config_defaults_are_cilium_values() {
    let c: ProxyConfig = serde_json::from_str("{}").expect("empty config uses defaults");
    assert_eq!(c.listen.to_string(), "0.0.0.0:15001");
    assert_eq!(
        (c.upstream_mark_egress, c.upstream_mark_ingress),
        (0xb00, 0xa00)
    );
    assert!(c.transparent, "transparent by default");
}

#[test]
fn tls_settings_use_cilium_names_and_never_print_the_key() {
    let port = r#"{"port": 443, "peers": [{"identities": [256], "http": null, "tls": {
        "serverNames": ["api.example"],
        "terminating": {"secret": "default/web", "certificate": "CERT", "privateKey": "SECRET-KEY"},
        "originating": {"secret": "default/ca", "trustedCA": "CA"}}}]}"#;
    let text = SNAPSHOT.replace("\"egress\": []", &format!("\"egress\": [{port}]"));
    let snap: PolicySnapshot = serde_json::from_str(&text).expect("snapshot with TLS parses");
    let tls = snap.endpoints[0].egress[0].peers[0]
        .tls
        .as_ref()
        .expect("tls settings");
    assert_eq!(tls.server_names, ["api.example"]);
    let o = tls.originating.as_ref().expect("originating");
    assert_eq!(o.trusted_ca.as_deref(), Some("CA"));
    let again: PolicySnapshot =
        serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
    assert_eq!(snap, again, "JSON round trip keeps the TLS settings");
    let debug = format!("{snap:?}");
    assert!(
        !debug.contains("SECRET-KEY") && debug.contains("[redacted]"),
        "Debug output hides the private key: {debug}"
    );
    let typo = text.replace("trustedCA", "trustedCa");
    assert!(serde_json::from_str::<PolicySnapshot>(&typo).is_err());
}
