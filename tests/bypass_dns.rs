//! DNS bypass and robustness attempts against the DNS proxy (issue 7), table-driven: raw packets
//! (built here, sent byte for byte by `python3` inside mediabot over UDP or TCP to the resolver
//! 172.20.1.10:53) under S7's policy (`matchPattern: "*.github.com"`). Each case says what the
//! client must get: an rcode, or no answer at all. After the table the proxy must still answer
//! normal queries (it did not crash or hang).
//!
//! Then the resolver is replaced by a crafted one (CVE-2025-23028 shape): answers with a
//! compression loop, pointers past the end, a CNAME loop, lying counts and short rdata. The proxy
//! must answer the client (never crash or hang) and learn nothing from them.

use palisade_e2e::tools::{describe, stdout, wait_until};
use palisade_e2e::Lab;

const BOT: &str = "default/mediabot";
const RESOLVER: &str = "172.20.1.10";

/// Sends every case (from the JSON file named by argv[1]: `[proto, hex]`) one after the other
/// and prints one line per case: the rcodes of the answers read, or `none`.
/// An answer is counted only when it is a response with the query's ID.
const RUNNER: &str = r#"
import json, socket, struct, sys, time
cases = json.load(open(sys.argv[1]))
resolver = sys.argv[2]
RC = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
def name(msg, qid):
    if len(msg) < 12: return "short"
    if msg[0:2] != qid: return "wrong-id"
    if msg[2] & 0x80 == 0: return "not-a-response"
    return RC.get(msg[3] & 0x0f, "rcode%d" % (msg[3] & 0x0f))
for proto, hexreq in cases:
    data = bytes.fromhex(hexreq)
    got = []
    if proto == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.0)
        s.sendto(data, (resolver, 53))
        try:
            msg, _ = s.recvfrom(65535)
            got.append(name(msg, data[0:2]))
        except socket.timeout:
            pass
        s.close()
    else:
        s = socket.create_connection((resolver, 53), timeout=2)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(1.5)
        buf = b""
        try:
            while True:
                c = s.recv(65535)
                if not c: break
                buf += c
        except (socket.timeout, OSError):
            pass
        s.close()
        # The IDs of the queries in the stream, in order, to match answers.
        ids, at = [], 0
        while at + 4 <= len(data):
            n = struct.unpack(">H", data[at:at+2])[0]
            ids.append(data[at+2:at+4]); at += 2 + n
        at, i = 0, 0
        while at + 2 <= len(buf):
            n = struct.unpack(">H", buf[at:at+2])[0]
            msg = buf[at+2:at+2+n]; at += 2 + n
            got.append(name(msg, ids[i] if i < len(ids) else b"??")); i += 1
    print(" ".join(got) if got else "none", flush=True)
"#;

/// A DNS header.
fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// A name in wire form, labels as given (case kept).
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Type and class IN.
fn tc(qtype: u16) -> Vec<u8> {
    [qtype.to_be_bytes(), 1u16.to_be_bytes()].concat()
}

/// A standard query (RD set) for `name` of type `qtype`, with id `id`.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    [header(id, 0x0100, 1, 0, 0, 0), wire_name(name), tc(qtype)].concat()
}

/// `msg` with a TCP length prefix.
fn framed(msg: &[u8]) -> Vec<u8> {
    [(msg.len() as u16).to_be_bytes().to_vec(), msg.to_vec()].concat()
}

const A: u16 = 1;

/// The table: (case, protocol, packet, expected). One line per case.
fn table() -> Vec<(&'static str, &'static str, Vec<u8>, &'static str)> {
    let q = |id, n| query(id, n, A);
    let mut two_refused_first = q(20, "example.org");
    two_refused_first[5] = 2;
    two_refused_first.extend([wire_name("api.github.com"), tc(A)].concat());
    let mut two_allowed_first = q(21, "api.github.com");
    two_allowed_first[5] = 2;
    two_allowed_first.extend([wire_name("example.org"), tc(A)].concat());
    let mut oversized_refused = q(22, "example.org");
    oversized_refused.extend(vec![0u8; 600]);
    let mut oversized_allowed = q(23, "api.github.com");
    oversized_allowed.extend(vec![0u8; 600]);
    let long_name: String = (0..5).map(|_| format!("{}.", "a".repeat(60))).collect();
    let mut label64 = header(30, 0x0100, 1, 0, 0, 0);
    label64.push(64);
    label64.extend(vec![b'a'; 64]);
    label64.extend([0u8].iter().chain(&tc(A)));
    let mut dot_in_label = header(31, 0x0100, 1, 0, 0, 0);
    dot_in_label.extend([10u8].iter().chain(b"api.github"));
    dot_in_label.extend([3u8].iter().chain(b"com").chain(&[0u8]));
    dot_in_label.extend(tc(A));
    let mut nul_in_label = header(32, 0x0100, 1, 0, 0, 0);
    nul_in_label.extend([4u8].iter().chain(b"ap\0i"));
    nul_in_label.extend(wire_name("github.com"));
    nul_in_label.extend(tc(A));
    let mut response = q(33, "api.github.com");
    response[2] |= 0x80;
    let mut update = q(34, "example.org");
    update[2] = 0x28; // opcode 5 (UPDATE)
    let mut chaos = [header(35, 0x0100, 1, 0, 0, 0), wire_name("version.bind")].concat();
    chaos.extend([0, 16, 0, 3]); // TXT CH
    let edns_big = {
        let mut m = header(36, 0x0100, 1, 0, 0, 1);
        m.extend(wire_name("example.org"));
        m.extend(tc(A));
        m.extend([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]); // OPT, 4096 bytes, no options
        m.extend(vec![0u8; 700]);
        m
    };
    let pipelined = [
        framed(&q(40, "api.github.com")),
        framed(&q(41, "example.org")),
    ]
    .concat();
    vec![
        ("allowed name", "udp", q(1, "api.github.com"), "NOERROR"),
        ("refused name", "udp", q(2, "example.org"), "REFUSED"),
        (
            "allowed name, upper case",
            "udp",
            q(3, "API.GITHUB.COM"),
            "NOERROR",
        ),
        (
            "allowed name, mixed case",
            "udp",
            q(4, "Api.GitHub.Com"),
            "NOERROR",
        ),
        (
            "refused name, mixed case",
            "udp",
            q(5, "EXAMPLE.org"),
            "REFUSED",
        ),
        (
            "refused name, upper case",
            "udp",
            q(6, "EXAMPLE.ORG"),
            "REFUSED",
        ),
        (
            "pattern apex github.com",
            "udp",
            q(7, "github.com"),
            "REFUSED",
        ),
        (
            "suffix trick api.github.com.example.org",
            "udp",
            q(8, "api.github.com.example.org"),
            "REFUSED",
        ),
        (
            "prefix trick evilgithub.com",
            "udp",
            q(9, "evilgithub.com"),
            "REFUSED",
        ),
        ("dot inside a label", "udp", dot_in_label, "REFUSED"),
        ("NUL inside a label", "udp", nul_in_label, "REFUSED"),
        ("root name", "udp", q(10, "."), "REFUSED"),
        ("shorter than a header", "udp", vec![0, 11, 1, 0, 0], "none"),
        (
            "header only, qdcount 1",
            "udp",
            header(12, 0x0100, 1, 0, 0, 0),
            "FORMERR",
        ),
        (
            "qdcount 0",
            "udp",
            header(13, 0x0100, 0, 0, 0, 0),
            "FORMERR",
        ),
        (
            "name cut in a label",
            "udp",
            [header(14, 0x0100, 1, 0, 0, 0), vec![3, b'a', b'p']].concat(),
            "FORMERR",
        ),
        (
            "qtype cut",
            "udp",
            [
                header(15, 0x0100, 1, 0, 0, 0),
                wire_name("api.github.com"),
                vec![0],
            ]
            .concat(),
            "FORMERR",
        ),
        (
            "compression loop in qname",
            "udp",
            [header(16, 0x0100, 1, 0, 0, 0), vec![0xc0, 12], tc(A)].concat(),
            "FORMERR",
        ),
        (
            "pointer after a label",
            "udp",
            [
                header(17, 0x0100, 1, 0, 0, 0),
                vec![3, b'a', b'p', b'i', 0xc0, 12],
                tc(A),
            ]
            .concat(),
            "FORMERR",
        ),
        ("label of 64 bytes", "udp", label64, "FORMERR"),
        ("name over 255 bytes", "udp", q(18, &long_name), "FORMERR"),
        (
            "reserved label type 0x40",
            "udp",
            [header(19, 0x0100, 1, 0, 0, 0), vec![0x41, b'a', 0], tc(A)].concat(),
            "FORMERR",
        ),
        (
            "multi-question, refused first",
            "udp",
            two_refused_first,
            "REFUSED",
        ),
        (
            "multi-question, allowed first",
            "udp",
            two_allowed_first,
            "NOERROR|NXDOMAIN|FORMERR",
        ),
        (
            "oversized 600 B without EDNS, refused",
            "udp",
            oversized_refused,
            "REFUSED",
        ),
        (
            "oversized 600 B without EDNS, allowed",
            "udp",
            oversized_allowed,
            "NOERROR|FORMERR",
        ),
        ("EDNS 4096 with junk, refused", "udp", edns_big, "REFUSED"),
        ("QR bit set (a response)", "udp", response, "none"),
        ("opcode UPDATE, refused name", "udp", update, "REFUSED"),
        ("class CHAOS version.bind", "udp", chaos, "REFUSED"),
        (
            "TCP allowed",
            "tcp",
            framed(&q(42, "api.github.com")),
            "NOERROR",
        ),
        (
            "TCP refused, upper case",
            "tcp",
            framed(&q(43, "EXAMPLE.ORG")),
            "REFUSED",
        ),
        (
            "TCP pipelined allowed + refused",
            "tcp",
            pipelined,
            "NOERROR REFUSED",
        ),
        ("TCP length 0", "tcp", vec![0, 0], "none"),
        (
            "TCP length past the data",
            "tcp",
            [vec![0x01, 0x00], q(44, "api.github.com")].concat(),
            "none",
        ),
        ("TCP garbage body", "tcp", framed(&[0xff; 40]), "none"),
    ]
}

/// Runs `cases` (protocol, packet) from mediabot; one outcome per case.
fn send_all(lab: &Lab, name: &str, cases: &[(&str, Vec<u8>)]) -> Vec<String> {
    let json: Vec<serde_json::Value> = cases
        .iter()
        .map(|(p, b)| {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            serde_json::json!([p, hex])
        })
        .collect();
    let file = lab.log_path(name);
    std::fs::write(&file, serde_json::Value::Array(json).to_string())
        .unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
    let out = lab.exec(
        BOT,
        &["python3", "-c", RUNNER, &file.to_string_lossy(), RESOLVER],
    );
    assert!(out.status.success(), "runner failed: {}", describe(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), cases.len(), "one result per case: {lines:?}");
    lines
}

/// `dig` from mediabot: the status word.
fn dig_status(lab: &Lab, name: &str) -> String {
    let out = lab.exec(BOT, &["dig", "+time=2", "+tries=1", name]);
    let text = stdout(&out);
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("no answer")
        .to_string()
}

/// A resolver on 172.20.1.10:53 (UDP) whose answers are crafted from the question's first
/// label; anything else gets a correct A record 203.0.113.10.
const CRAFTED: &str = r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("172.20.1.10", 53))
A = struct.pack(">HHIH", 1, 1, 60, 4)
while True:
    q, peer = s.recvfrom(4096)
    end = 12
    while q[end] != 0: end += 1 + q[end]
    question = q[12:end + 5]
    label = q[13:13 + q[12]].lower()
    hdr = lambda an: q[0:2] + b"\x81\x80" + struct.pack(">HHHH", 1, an, 0, 0)
    if label == b"loop":      # answer name is a pointer to itself
        body = hdr(1) + question + b"\xc0" + bytes([12 + len(question)]) + A + bytes([203, 0, 113, 66])
    elif label == b"past":    # pointer past the end of the message
        body = hdr(1) + question + b"\xff\xf0" + A + bytes([203, 0, 113, 67])
    elif label == b"cname":   # CNAME chain a -> b -> a
        n = b"\xc0\x0c"
        tgt = b"\x01b\xc0\x0c"
        rr1 = n + struct.pack(">HHIH", 5, 1, 60, len(tgt)) + tgt
        back = b"\xc0\x0c"
        rr2 = b"\x01b\xc0\x0c" + struct.pack(">HHIH", 5, 1, 60, len(back)) + back
        body = hdr(2) + question + rr1 + rr2
    elif label == b"count":   # ancount 50, one record
        body = hdr(50) + question + b"\xc0\x0c" + A + bytes([203, 0, 113, 68])
    elif label == b"rdlen":   # rdlength past the end
        body = hdr(1) + question + b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 400) + bytes([203, 0, 113, 69])
    elif label == b"short":   # A record with 3 bytes of rdata
        body = hdr(1) + question + b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 3) + bytes([203, 0, 113])
    elif label == b"cut":     # message cut inside the header
        body = q[0:2] + b"\x81\x80\x00"
    else:
        body = hdr(1) + question + b"\xc0\x0c" + A + bytes([203, 0, 113, 10])
    s.sendto(body, peer)
"#;

#[test]
fn dns_bypass_and_malformed_packets() {
    let lab = Lab::up("byd");
    lab.assert_tools(BOT, &["python3", "dig"]);
    lab.apply(&["s7-dns/fqdn.yaml"]);
    let mut failures = Vec::new();

    let table = table();
    let cases: Vec<(&str, Vec<u8>)> = table.iter().map(|(_, p, b, _)| (*p, b.clone())).collect();
    let got = send_all(&lab, "table.json", &cases);
    for ((name, proto, _, want), got) in table.iter().zip(&got) {
        eprintln!("{proto} {name:<44} -> {got:<16} (want {want})");
        if !want.split('|').any(|w| w == got) {
            failures.push(format!("{proto} {name}: want {want:?}, got {got:?}"));
        }
    }

    // A burst of garbage, then the proxy must still answer at once.
    let burst: Vec<(&str, Vec<u8>)> = (0..300u16)
        .map(|i| {
            (
                "udp",
                [header(i, 0x0100, 1, 0, 0, 0), vec![0xc0, 12]].concat(),
            )
        })
        .collect();
    let _ = send_all(&lab, "burst.json", &burst);
    for (name, want) in [("api.github.com", "NOERROR"), ("example.org", "REFUSED")] {
        let got = dig_status(&lab, name);
        if got != want {
            failures.push(format!(
                "after the table: dig {name}: want {want}, got {got}"
            ));
        }
    }

    // CVE-2025-23028 shape: a resolver that answers with crafted records.
    let state = lab.state();
    let dnsmasq = state["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["role"].as_str().is_some_and(|r| r.starts_with("dns")))
        .and_then(|p| p["pid"].as_i64())
        .expect("the lab's resolver process");
    std::process::Command::new("kill")
        .arg(dnsmasq.to_string())
        .status()
        .expect("kill");
    // The crafted server binds port 53 only once dnsmasq is gone, and is asked only once bound.
    let timeout = std::time::Duration::from_secs(10);
    assert!(
        wait_until(timeout, || {
            // Gone or a zombie: either way its socket is closed.
            std::fs::read_to_string(format!("/proc/{dnsmasq}/stat"))
                .map_or(true, |s| s.contains(") Z "))
        }),
        "the lab's resolver exited"
    );
    lab.spawn(
        "kube-system/kube-dns",
        "crafted-dns",
        &["python3", "-c", CRAFTED],
    );
    let bound = || {
        let out = lab.exec("kube-system/kube-dns", &["ss", "-Hulnp", "( sport = :53 )"]);
        stdout(&out).contains("python3")
    };
    assert!(
        wait_until(timeout, bound),
        "the crafted resolver is listening"
    );
    let crafted = [
        ("good.github.com", vec!["NOERROR"]),
        ("loop.github.com", vec!["SERVFAIL", "FORMERR"]),
        ("past.github.com", vec!["SERVFAIL", "FORMERR"]),
        ("cname.github.com", vec!["NOERROR", "SERVFAIL", "FORMERR"]),
        ("count.github.com", vec!["SERVFAIL", "FORMERR"]),
        ("rdlen.github.com", vec!["SERVFAIL", "FORMERR"]),
        ("short.github.com", vec!["SERVFAIL", "FORMERR"]),
        ("cut.github.com", vec!["SERVFAIL", "FORMERR", "none"]),
    ];
    let cases: Vec<(&str, Vec<u8>)> = crafted
        .iter()
        .enumerate()
        .map(|(i, (n, _))| ("udp", query(100 + i as u16, n, A)))
        .collect();
    let got = send_all(&lab, "crafted.json", &cases);
    for ((name, allowed), got) in crafted.iter().zip(&got) {
        eprintln!("crafted answer {name:<20} -> {got}");
        if !allowed.contains(&got.as_str()) {
            failures.push(format!(
                "crafted answer for {name}: want one of {allowed:?}, got {got:?}"
            ));
        }
    }
    let got = dig_status(&lab, "good.github.com");
    if got != "NOERROR" {
        failures.push(format!("after crafted answers: dig good.github.com: {got}"));
    }
    // Nothing learned from a malformed answer: only good.github.com's address (and the
    // table's api.github.com) may be in the FQDN cache.
    let cache = stdout(&lab.cli(&["fqdn", "cache", "list"]));
    for bogus in [
        "203.0.113.66",
        "203.0.113.67",
        "203.0.113.68",
        "203.0.113.69",
    ] {
        if cache.contains(bogus) {
            failures.push(format!("learned {bogus} from a malformed answer:\n{cache}"));
        }
    }

    assert!(
        failures.is_empty(),
        "{} DNS case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
