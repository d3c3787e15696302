//! Table tests for query parsing, error answers and answer extraction.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, MessageType, OpCode, Query as HQuery, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::*;

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("test name")
}

fn header(id: u16, flags: u16, qd: u16) -> Vec<u8> {
    let mut h = Vec::new();
    for v in [id, flags, qd, 0, 0, 0] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

fn multi_question() -> Vec<u8> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.add_query(HQuery::query(name("First.Example.COM."), RecordType::A));
    m.add_query(HQuery::query(name("second.example.org."), RecordType::AAAA));
    m.to_vec().expect("encode")
}

fn compression_loop() -> Vec<u8> {
    // The question name is a pointer to itself (offset 12).
    let mut p = header(9, 0x0100, 1);
    p.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1]);
    p
}

fn oversized() -> Vec<u8> {
    let mut p = build_query(11, "big.example.com.", "A");
    p.resize(65_535, 0xAB);
    p
}

#[derive(Debug, PartialEq)]
enum Kind {
    Query(&'static str, &'static str),
    FormErr,
    Drop,
}

fn kind(p: &[u8]) -> Kind {
    match parse_query(p) {
        Parsed::Query(q) => Kind::Query(
            Box::leak(q.qname.clone().into_boxed_str()),
            Box::leak(q.qtype.to_string().into_boxed_str()),
        ),
        Parsed::FormErr(_) => Kind::FormErr,
        Parsed::Drop => Kind::Drop,
    }
}

#[test]
fn parse_table() {
    let cases: Vec<(&str, Vec<u8>, Kind)> = vec![
        ("empty", vec![], Kind::Drop),
        ("short", vec![1, 2, 3, 4, 5], Kind::Drop),
        ("header, no question", header(1, 0x0100, 0), Kind::FormErr),
        (
            "question count, no body",
            header(2, 0x0100, 1),
            Kind::FormErr,
        ),
        (
            "truncated name",
            {
                let mut p = build_query(3, "api.github.com.", "A");
                p.truncate(20);
                p
            },
            Kind::FormErr,
        ),
        ("response bit set", header(4, 0x8100, 1), Kind::Drop),
        ("compression loop", compression_loop(), Kind::FormErr),
        (
            "garbage",
            (0..200u8).map(|b| b.wrapping_mul(37)).collect(),
            Kind::FormErr,
        ),
        (
            "plain A",
            build_query(5, "api.github.com.", "A"),
            Kind::Query("api.github.com.", "A"),
        ),
        (
            "mixed case",
            build_query(6, "API.GitHub.Com.", "AAAA"),
            Kind::Query("api.github.com.", "AAAA"),
        ),
        (
            "multi-question decides on first",
            multi_question(),
            Kind::Query("first.example.com.", "A"),
        ),
    ];
    for (what, packet, want) in cases {
        assert_eq!(kind(&packet), want, "case {what:?}");
    }
}

#[test]
fn oversized_query_does_not_panic() {
    // Trailing junk after a valid question: either reading is fine, as long as nothing panics.
    let k = kind(&oversized());
    assert!(
        k != Kind::Drop,
        "a readable header is never dropped silently, got {k:?}"
    );
}

#[test]
fn formerr_echoes_id_and_opcode() {
    let mut p = header(0xBEEF, 0x0100, 1);
    p.extend_from_slice(&[3, b'a', b'b']);
    let Parsed::FormErr(r) = parse_query(&p) else {
        panic!("expected FORMERR");
    };
    let m = Message::from_vec(&r).expect("FORMERR parses");
    assert_eq!(m.metadata.id, 0xBEEF, "ID echoed");
    assert_eq!(m.metadata.message_type, MessageType::Response, "QR set");
    assert!(m.metadata.recursion_desired, "RD copied");
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr, "rcode");
}

fn query(id: u16, n: &str, t: &str) -> Query {
    match parse_query(&build_query(id, n, t)) {
        Parsed::Query(q) => q,
        other => panic!("test query did not parse: {other:?}"),
    }
}

#[test]
fn error_answers_echo_question() {
    for code in [rcode::REFUSED, rcode::NXDOMAIN, rcode::SERVFAIL] {
        let q = query(42, "Example.ORG.", "AAAA");
        let m = Message::from_vec(&q.error_answer(code)).expect("answer parses");
        assert_eq!(m.metadata.id, 42, "ID echoed for {code}");
        assert_eq!(u16::from(m.metadata.response_code), code, "rcode {code}");
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.queries.len(), 1, "question echoed");
        assert_eq!(m.queries[0].name, name("Example.ORG."), "question as asked");
        assert_eq!(m.queries[0].query_type, RecordType::AAAA);
        assert!(m.answers.is_empty(), "no records in an error answer");
    }
}

fn rec(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name(owner), ttl, data)
}

fn response(q: &Query, answers: Vec<Record>) -> Vec<u8> {
    let mut m = Message::new(q.id(), MessageType::Response, OpCode::Query);
    m.add_query(HQuery::query(name(&q.qname), RecordType::A));
    for a in answers {
        m.add_answer(a);
    }
    m.to_vec().expect("encode")
}

#[test]
fn cname_chain_is_followed() {
    let q = query(1, "www.Example.com.", "A");
    let v4 = |s: &str| RData::A(A(s.parse::<Ipv4Addr>().expect("ip")));
    let packet = response(
        &q,
        vec![
            rec(
                "www.example.com.",
                300,
                RData::CNAME(CNAME(name("Edge.Example.net."))),
            ),
            rec(
                "edge.example.net.",
                60,
                RData::CNAME(CNAME(name("e1.cdn.net."))),
            ),
            rec("e1.cdn.net.", 20, v4("192.0.2.1")),
            rec("e1.cdn.net.", 20, v4("192.0.2.1")),
            rec("e1.cdn.net.", 30, RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))),
            rec("unrelated.org.", 30, v4("198.51.100.9")),
        ],
    );
    let info = parse_answer(&q, &packet).expect("answer matches query");
    assert_eq!(info.rcode, rcode::NOERROR);
    assert_eq!(
        info.names,
        ["www.example.com.", "edge.example.net.", "e1.cdn.net."]
    );
    assert_eq!(
        info.addrs,
        [
            (IpAddr::from([192, 0, 2, 1]), 20),
            (IpAddr::V6(Ipv6Addr::LOCALHOST), 30)
        ],
        "addresses of the chain only, deduplicated"
    );
}

#[test]
fn cname_loop_terminates() {
    let q = query(2, "a.loop.", "A");
    let packet = response(
        &q,
        vec![
            rec("a.loop.", 5, RData::CNAME(CNAME(name("b.loop.")))),
            rec("b.loop.", 5, RData::CNAME(CNAME(name("a.loop.")))),
        ],
    );
    let info = parse_answer(&q, &packet).expect("answer matches");
    assert_eq!(info.names, ["a.loop.", "b.loop."]);
    assert!(info.addrs.is_empty());
}

#[test]
fn mismatched_replies_are_ignored() {
    let q = query(3, "api.github.com.", "A");
    let other_id = query(4, "api.github.com.", "A");
    let other_name = query(3, "evil.com.", "A");
    assert!(
        parse_answer(&q, &response(&other_id, vec![])).is_none(),
        "different ID"
    );
    assert!(
        parse_answer(&q, &response(&other_name, vec![])).is_none(),
        "different question"
    );
    assert!(parse_answer(&q, &[0u8; 5]).is_none(), "garbage");
    assert!(
        parse_answer(&q, &build_query(3, "api.github.com.", "A")).is_none(),
        "a query, not a response"
    );
    assert!(
        parse_answer(&q, &response(&q, vec![])).is_some(),
        "the real answer"
    );
}
