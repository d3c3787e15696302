//! S5 (toServices), S6 (toFQDNs learned through the DNS proxy) and S7 (DNS REFUSED for names
//! outside `matchPattern`), with real curl and dig.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use palisade_e2e::tools::{code, describe, stdout};
use palisade_e2e::Lab;

/// One lab at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const BOT: &str = "default/mediabot";

#[test]
fn s5_to_services_by_name_and_selector() {
    let _one = serial();
    let lab = Lab::up("s5");
    let app2 = "default/app2";
    lab.assert_tools(app2, &["curl"]);
    let myservice = format!("http://{}/", lab.ip("default/myservice"));
    let staging = format!("http://{}/", lab.ip("another-namespace/staging-pod"));
    let webpod = format!("http://{}/", lab.ip("default/webpod"));
    let (rc, _) = lab.curl(app2, &webpod);
    assert_eq!(rc, 0, "webpod answers before the policy");

    lab.apply(&["s5-services/service-rule.yaml"]);
    let (rc, body) = lab.curl(app2, &myservice);
    assert_eq!(
        rc, 0,
        "k8sService myservice: its backend is allowed, exit {rc}"
    );
    assert!(body.contains("Hello from /"), "myservice's page: {body:?}");
    let (rc, _) = lab.curl(app2, &staging);
    assert_eq!(
        rc, 0,
        "k8sServiceSelector env=staging: staging-pod allowed, exit {rc}"
    );
    let (rc, _) = lab.curl(app2, &webpod);
    assert_eq!(
        rc, 28,
        "webpod is behind no selected service: must time out, exit {rc}"
    );
}

#[test]
fn s6_s7_fqdn_and_dns_refused() {
    let _one = serial();
    let lab = Lab::up("s6");
    lab.assert_tools(BOT, &["curl", "dig"]);

    // S6: the DNS proxy learns api.github.com's address from the answer and allows exactly it.
    lab.apply(&["s6-fqdn/fqdn.yaml"]);
    // Nothing looked up yet in this lab: nothing learned, the address is not allowed yet.
    let cache = lab.cli(&["fqdn", "cache", "list"]);
    assert!(
        !stdout(&cache).contains("github.com"),
        "a fresh lab's agent has learned nothing: {}",
        describe(&cache)
    );
    let (rc, _) = lab.curl(BOT, "http://203.0.113.10/");
    assert_eq!(
        rc, 28,
        "api.github.com's address before any lookup must time out, exit {rc}"
    );
    let out = lab.exec(BOT, &["curl", "-sS", "-I", "-m", "2", "api.github.com"]);
    assert_eq!(code(&out), 0, "curl -I api.github.com: {}", describe(&out));
    assert!(
        stdout(&out).starts_with("HTTP/1.1 200"),
        "200 from api.github.com: {}",
        stdout(&out)
    );
    let out = lab.exec(BOT, &["curl", "-sS", "-I", "-m", "2", "support.github.com"]);
    assert_eq!(
        code(&out),
        28,
        "support.github.com resolves but is not allowed: {}",
        describe(&out)
    );
    let cache = lab.cli(&["fqdn", "cache", "list"]);
    let text = stdout(&cache);
    assert!(
        text.contains("api.github.com") && text.contains("203.0.113.10"),
        "fqdn cache holds api.github.com -> 203.0.113.10: {}",
        describe(&cache)
    );
    // Like Cilium's cache, every proxied lookup is listed; only toFQDNs matches are allowed.
    let (rc, _) = lab.curl(BOT, "http://203.0.113.11/");
    assert_eq!(
        rc, 28,
        "support.github.com's address is not allowed, exit {rc}"
    );
    let (rc, _) = lab.curl(BOT, "http://203.0.113.10/");
    assert_eq!(rc, 0, "the learned address is allowed by IP too");
    let (rc, _) = lab.curl(BOT, "http://20.1.1.1/");
    assert_eq!(rc, 28, "an address never learned times out");

    // S7: only *.github.com may be asked; anything else is REFUSED at once, not dropped.
    lab.remove("s6-fqdn/fqdn.yaml");
    lab.apply(&["s7-dns/fqdn.yaml"]);
    let out = lab.exec(BOT, &["dig", "+time=3", "+tries=1", "api.github.com"]);
    let text = stdout(&out);
    assert!(
        text.contains("status: NOERROR"),
        "dig api.github.com NOERROR: {}",
        describe(&out)
    );
    assert!(
        text.contains("203.0.113.10"),
        "dig api.github.com answers the address: {text}"
    );
    let started = Instant::now();
    let out = lab.exec(BOT, &["dig", "+time=3", "+tries=1", "example.org"]);
    let took = started.elapsed();
    assert!(
        stdout(&out).contains("status: REFUSED"),
        "dig example.org must get REFUSED: {}",
        describe(&out)
    );
    // Not a speed goal: a timeout would take the full 3 s +time and print no status at all.
    assert!(
        took.as_secs() < 3,
        "REFUSED comes at once, not after dig's timeout ({took:?})"
    );
}
