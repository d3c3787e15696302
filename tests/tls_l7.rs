//! TLS-aware L7 policy (issue 8) in the lab, with certificates made by the test: `serverNames`
//! lets a TLS connection through by its SNI without decrypting it and resets the others (and
//! those without SNI); `terminatingTLS` + `originatingTLS` decrypt, apply the HTTP rules
//! (`/public` allowed, `/private` gets cilium-envoy's 403) and re-encrypt to a server that must
//! chain to the trusted CA; a missing secret fails only its port closed, with the reason in the
//! agent log; a rotated certificate is picked up from disk.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_e2e::tools::{code, poll, stderr, stdout, tail};
use palisade_e2e::Lab;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

const SERVER: &str = "default/myservice";
const CLIENT: &str = "default/client-prod";
const NAME: &str = "secure.example";

/// A certificate authority made for this test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(p, key).expect("self-signed CA"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// (certificate PEM, key PEM) for `names`, signed by this CA.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let p = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.issuer).expect("signed leaf");
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `text` to `path` atomically (the agent polls these files).
fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).expect("rename into place");
    path.to_path_buf()
}

/// `curl -sS -m 3 [extra…] URL` from the client; returns (exit, HTTP code or "000", body, stderr).
fn curl(lab: &Lab, extra: &[&str], url: &str) -> (i32, String, String, String) {
    let mut cmd = vec![
        "curl",
        "-sS",
        "-m",
        "3",
        "-w",
        "\n%{http_code} %{http_version}",
    ];
    cmd.extend(extra);
    cmd.push(url);
    let out = lab.exec(CLIENT, &cmd);
    let text = stdout(&out);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    eprintln!(
        "curl {extra:?} {url}: exit {} status {status:?}",
        code(&out)
    );
    (
        code(&out),
        status.to_string(),
        body.to_string(),
        stderr(&out),
    )
}

fn resolve(port: u16, name: &str, ip: Ipv4Addr) -> String {
    format!("{name}:{port}:{ip}")
}

fn assert_reset(r: &(i32, String, String, String), what: &str) {
    // 35: the TLS handshake failed; 56: receive failure. Either way, by a reset.
    assert!(
        (r.0 == 35 || r.0 == 56) && r.3.to_ascii_lowercase().contains("reset"),
        "{what}: expected a reset, got exit {} status {:?} stderr {:?}",
        r.0,
        r.1,
        r.3
    );
}

fn policy(body: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: tls}}\nspec:\n  \
         endpointSelector: {{matchLabels: {{app: myService}}}}\n  ingress:\n  \
         - fromEndpoints: [{{matchLabels: {{env: prod}}}}]\n    toPorts:\n{body}"
    )
}

#[test]
fn tls_server_names_termination_origination_and_secrets() {
    let lab = Lab::up("tls");
    lab.assert_tools(CLIENT, &["curl"]);
    let ip = lab.ip(SERVER);
    let certs = lab.log_path("certs");
    let secrets = lab.state_dir().join("tls-secrets/default");

    // The real server's CA and certificate; a rogue server with a certificate from another CA;
    // the lab CA the client trusts, which signs the proxy's interception certificate.
    let server_ca = Ca::new("server CA");
    let lab_ca = Ca::new("lab CA");
    let rogue_ca = Ca::new("rogue CA");
    let server_ca_pem = write(&certs.join("server-ca.pem"), &server_ca.pem());
    let lab_ca_pem = write(&certs.join("lab-ca.pem"), &lab_ca.pem());
    let (cert, key) = server_ca.leaf(&[NAME]);
    let server_cert = write(&certs.join("server.crt"), &cert);
    let server_key = write(&certs.join("server.key"), &key);
    let (cert, key) = rogue_ca.leaf(&[NAME]);
    let rogue_cert = write(&certs.join("rogue.crt"), &cert);
    let rogue_key = write(&certs.join("rogue.key"), &key);

    let bin = lab.bin().to_string_lossy().into_owned();
    for (port, cert, key) in [
        ("443", &server_cert, &server_key),
        ("7443", &server_cert, &server_key),
        ("8443", &rogue_cert, &rogue_key),
    ] {
        let c = cert.to_string_lossy().into_owned();
        let k = key.to_string_lossy().into_owned();
        let log = format!("https-{port}.log");
        lab.spawn(
            SERVER,
            &log,
            &[
                &bin,
                "lab",
                "serve",
                "http",
                "--port",
                port,
                "--name",
                "myservice",
                "--tls-cert",
                &c,
                "--tls-key",
                &k,
            ],
        );
        poll(Duration::from_secs(10), || {
            std::fs::read_to_string(lab.log_path(&log))
                .ok()
                .filter(|t| t.contains("listening"))
        })
        .unwrap_or_else(|| panic!("HTTPS server on {port} did not start"));
    }
    let server_ca_arg = server_ca_pem.to_string_lossy().into_owned();
    let lab_ca_arg = lab_ca_pem.to_string_lossy().into_owned();
    let url = |port: u16, path: &str| format!("https://{NAME}:{port}{path}");
    let r443 = resolve(443, NAME, ip);

    // Before any policy: the server's own certificate, straight through.
    let r = curl(
        &lab,
        &["--cacert", &server_ca_arg, "--resolve", &r443],
        &url(443, "/public"),
    );
    assert!(r.0 == 0 && r.1.starts_with("200 "), "no policy yet: {r:?}");

    // serverNames: allowed by SNI without decryption (the client still sees the server's own
    // certificate); another SNI and no SNI are reset.
    lab.apply_yaml(
        "tls.yaml",
        &policy(
            "    - ports: [{port: \"443\", protocol: TCP}]\n      serverNames: [secure.example]\n",
        ),
    );
    let r = curl(
        &lab,
        &["--cacert", &server_ca_arg, "--resolve", &r443],
        &url(443, "/private"),
    );
    assert_eq!(r.0, 0, "allowed SNI passes unchanged: {}", r.3);
    assert!(
        r.1.starts_with("200") && r.2.contains("Hello from /private"),
        "{r:?}"
    );
    let other = resolve(443, "other.example", ip);
    let r = curl(
        &lab,
        &["-k", "--resolve", &other],
        "https://other.example/public",
    );
    assert_reset(&r, "SNI other.example");
    let r = curl(&lab, &["-k"], &format!("https://{ip}/public"));
    assert_reset(&r, "no SNI (curl sends none for an address)");

    // terminatingTLS + originatingTLS with HTTP rules; a third port names a missing secret.
    let (cert, key) = lab_ca.leaf(&[NAME]);
    write(&secrets.join("intercept/tls.key"), &key);
    write(&secrets.join("intercept/tls.crt"), &cert);
    write(&secrets.join("origin/ca.crt"), &server_ca.pem());
    let log_from = lab.agent_log().len();
    let tls_port = |port: &str, term: &str| {
        format!(
            "    - ports: [{{port: \"{port}\", protocol: TCP}}]\n      terminatingTLS: {{secret: {{name: {term}}}}}\n      \
             originatingTLS: {{secret: {{name: origin}}}}\n      rules: {{http: [{{method: GET, path: /public}}]}}\n"
        )
    };
    // Port 7443: a plain-HTTP client, TLS to the server (originatingTLS alone).
    let originate_only = "    - ports: [{port: \"7443\", protocol: TCP}]\n      \
         originatingTLS: {secret: {name: origin}}\n      rules: {http: [{method: GET, path: /public}]}\n";
    let body = format!(
        "{}{}{}{originate_only}",
        tls_port("443", "intercept"),
        tls_port("8443", "intercept"),
        tls_port("9443", "absent")
    );
    lab.apply_yaml("tls.yaml", &policy(&body));

    let lab_trust = ["--cacert", lab_ca_arg.as_str(), "--resolve", r443.as_str()];
    let r = curl(
        &lab,
        &[&lab_trust[..], &["--http1.1"]].concat(),
        &url(443, "/public"),
    );
    assert_eq!(
        (r.0, r.1.as_str()),
        (0, "200 1.1"),
        "GET /public over HTTPS: {}",
        r.3
    );
    assert!(
        r.2.contains("Hello from /public"),
        "the server's page: {:?}",
        r.2
    );
    let r = curl(
        &lab,
        &[&lab_trust[..], &["--http2"]].concat(),
        &url(443, "/public"),
    );
    assert_eq!((r.0, r.1.as_str()), (0, "200 2"), "HTTP/2 by ALPN: {}", r.3);
    let r = curl(
        &lab,
        &[&lab_trust[..], &["--http1.1"]].concat(),
        &url(443, "/private"),
    );
    assert_eq!((r.0, r.1.as_str()), (0, "403 1.1"), "GET /private: {}", r.3);
    assert_eq!(r.2, "Access denied\r\n", "cilium-envoy's 403 body");
    let r = curl(
        &lab,
        &[&lab_trust[..], &["--http2"]].concat(),
        &url(443, "/private"),
    );
    assert_eq!(r.1, "403 2", "HTTP/2 GET /private: {}", r.3);
    // The client no longer sees the server's certificate: it does not trust the proxy's.
    let r = curl(
        &lab,
        &["--cacert", &server_ca_arg, "--resolve", &r443],
        &url(443, "/public"),
    );
    assert_eq!(
        r.0, 60,
        "the proxy presents the lab CA's certificate: {r:?}"
    );

    // originatingTLS alone: the client speaks plain HTTP, the proxy TLS (verified as Host).
    let r7443 = resolve(7443, NAME, ip);
    let plain = format!("http://{NAME}:7443");
    let r = curl(&lab, &["--resolve", &r7443], &format!("{plain}/public"));
    assert_eq!(
        (r.0, r.1.as_str()),
        (0, "200 1.1"),
        "plain client, TLS upstream: {r:?}"
    );
    assert!(r.2.contains("Hello from /public"), "{:?}", r.2);
    let r = curl(&lab, &["--resolve", &r7443], &format!("{plain}/private"));
    assert_eq!(
        (r.1.as_str(), r.2.as_str()),
        ("403 1.1", "Access denied\r\n"),
        "{r:?}"
    );

    // Origination verifies the server: the rogue server's certificate fails, as a 503.
    let r8443 = resolve(8443, NAME, ip);
    let r = curl(
        &lab,
        &["--cacert", &lab_ca_arg, "--resolve", &r8443],
        &url(8443, "/public"),
    );
    assert_eq!(r.0, 0, "{}", r.3);
    assert!(r.1.starts_with("503"), "untrusted server: {r:?}");
    assert!(r.2.contains("TLS to the server"), "the reason: {:?}", r.2);

    // The missing secret: that port resets, with the reason in the agent log.
    let line = lab.wait_log(log_from, "default/absent");
    eprintln!("agent log: {line}");
    assert!(
        line.contains("terminatingTLS")
            && line.contains("port 9443")
            && line.contains("tls.secrets"),
        "agent log names the port, the secret and where secrets come from: {line}"
    );
    let r9443 = resolve(9443, NAME, ip);
    let r = curl(
        &lab,
        &["--cacert", &lab_ca_arg, "--resolve", &r9443],
        &url(9443, "/public"),
    );
    assert_reset(&r, "port with a missing secret");

    // Rotation: a new interception certificate from another CA is picked up from disk.
    let lab_ca2 = Ca::new("lab CA 2");
    let lab_ca2_pem = write(&certs.join("lab-ca-2.pem"), &lab_ca2.pem());
    let lab_ca2_arg = lab_ca2_pem.to_string_lossy().into_owned();
    let (cert, key) = lab_ca2.leaf(&[NAME]);
    write(&secrets.join("intercept/tls.key"), &key);
    write(&secrets.join("intercept/tls.crt"), &cert);
    let rotated = poll(Duration::from_secs(15), || {
        let r = curl(
            &lab,
            &["--cacert", &lab_ca2_arg, "--resolve", &r443],
            &url(443, "/public"),
        );
        (r.0 == 0 && r.1.starts_with("200")).then_some(r)
    });
    assert!(
        rotated.is_some(),
        "the rotated certificate was not picked up; agent log:\n{}",
        tail(&lab.agent_log(), 20)
    );
    let r = curl(
        &lab,
        &["--cacert", &lab_ca_arg, "--resolve", &r443],
        &url(443, "/public"),
    );
    assert_eq!(r.0, 60, "the old CA no longer verifies: {r:?}");

    // The same interception on the client's egress instead (Cilium's TLS-inspection guide):
    // the source-side rule decides, upstream sockets carry the egress mark.
    let egress = r#"apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: tls}
spec:
  endpointSelector: {matchLabels: {env: prod}}
  egress:
  - toEndpoints: [{matchLabels: {app: myService}}]
    toPorts:
    - ports: [{port: "443", protocol: TCP}]
      terminatingTLS: {secret: {name: intercept}}
      originatingTLS: {secret: {name: origin}}
      rules: {http: [{method: GET, path: /public}]}
"#;
    lab.apply_yaml("tls.yaml", egress);
    let trust2 = ["--cacert", lab_ca2_arg.as_str(), "--resolve", r443.as_str()];
    let r = curl(&lab, &trust2, &url(443, "/public"));
    assert!(
        r.0 == 0 && r.1.starts_with("200 "),
        "egress GET /public: {r:?}"
    );
    assert!(r.2.contains("Hello from /public"), "{:?}", r.2);
    let r = curl(&lab, &trust2, &url(443, "/private"));
    assert!(
        r.1.starts_with("403 ") && r.2 == "Access denied\r\n",
        "egress GET /private: {r:?}"
    );
}
