use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use palisade_policy::fqdn::normalize_name;

use super::{read, Data};

fn name(s: &str) -> Name {
    Name::from_str(s).expect("name")
}

fn rec(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name(owner), ttl, data)
}

/// A response with many shapes of records; hickory's encoder compresses repeated names.
fn rich_response() -> Message {
    let mut m = Message::new(7, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(name("WWW.Example.com."), RecordType::A));
    for r in [
        rec(
            "www.example.com.",
            300,
            RData::CNAME(CNAME(name("edge.Example.com."))),
        ),
        rec(
            "edge.example.com.",
            20,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ),
        rec(
            "edge.example.com.",
            30,
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
        ),
        rec(
            "edge.example.com.",
            30,
            RData::TXT(TXT::new(vec!["hi".into()])),
        ),
        rec(
            "example.com.",
            30,
            RData::MX(MX::new(10, name("mail.example.com."))),
        ),
    ] {
        m.add_answer(r);
    }
    let mut chaos = rec(
        "edge.example.com.",
        5,
        RData::A(A(Ipv4Addr::new(10, 0, 0, 9))),
    );
    chaos.dns_class = DNSClass::CH;
    m.add_answer(chaos);
    let soa = SOA::new(
        name("ns.example.com."),
        name("admin.example.com."),
        1,
        2,
        3,
        4,
        5,
    );
    m.add_authority(rec("example.com.", 60, RData::SOA(soa)));
    m.add_additional(rec(
        "ns.example.com.",
        60,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 53))),
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.edns = Some(edns);
    m
}

#[test]
fn matches_hickory_on_a_rich_response() {
    let msg = rich_response();
    let bytes = msg.to_vec().expect("encode");
    let ours = read(&bytes).expect("decodes");
    let theirs = Message::from_vec(&bytes).expect("hickory decodes");
    assert_eq!(ours.rcode, u16::from(theirs.metadata.response_code));
    assert_eq!(ours.records.len(), theirs.answers.len());
    for ((owner, data), r) in ours.records.iter().zip(&theirs.answers) {
        assert_eq!(*owner, normalize_name(&r.name.to_ascii()));
        let want = match &r.data {
            RData::A(a) if r.dns_class == DNSClass::IN => Data::Addr(IpAddr::V4(a.0), r.ttl),
            RData::AAAA(a) if r.dns_class == DNSClass::IN => Data::Addr(IpAddr::V6(a.0), r.ttl),
            RData::CNAME(t) => Data::Cname(normalize_name(&t.0.to_ascii())),
            _ => Data::Other,
        };
        assert_eq!(*data, want, "record {r:?}");
    }
}

#[test]
fn extended_rcode_comes_from_opt() {
    let mut msg = rich_response();
    msg.metadata.response_code = ResponseCode::BADVERS;
    let bytes = msg.to_vec().expect("encode");
    let theirs = Message::from_vec(&bytes).expect("hickory decodes");
    assert_eq!(read(&bytes).expect("decodes").rcode, 16);
    assert_eq!(u16::from(theirs.metadata.response_code), 16);
}

#[test]
fn every_truncation_is_refused() {
    let bytes = rich_response().to_vec().expect("encode");
    // The OPT record ends the message, so every shorter prefix cuts a record somewhere.
    for len in 0..bytes.len() {
        assert!(
            read(&bytes[..len]).is_none(),
            "prefix of {len} bytes accepted"
        );
    }
}

/// Header with one question (`a.`, A IN) and one answer record starting at offset 19.
fn with_answer(record: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    b.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
    b.extend_from_slice(record);
    b
}

#[test]
fn malformed_records_are_refused() {
    // Owner = pointer to the question's name (offset 12), type, class IN, TTL, rdlength, rdata.
    let a3 = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 3, 1, 2, 3];
    assert!(read(&with_answer(&a3)).is_none(), "A with 3 bytes");
    let loop_ = [0xc0, 19, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 1, 2, 3, 4];
    assert!(read(&with_answer(&loop_)).is_none(), "pointer to itself");
    let reserved = [0x80, 0, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 1, 2, 3, 4];
    assert!(
        read(&with_answer(&reserved)).is_none(),
        "reserved label type"
    );
    // CNAME whose target ("b.", 3 bytes) leaves a byte of its rdata unread.
    let cname = [0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 9, 0, 4, 1, b'b', 0, 0];
    assert!(
        read(&with_answer(&cname)).is_none(),
        "CNAME data longer than its name"
    );
    let good = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 1, 2, 3, 4];
    let answer = read(&with_answer(&good)).expect("well-formed");
    assert_eq!(
        answer.records,
        [("a.".to_string(), Data::Addr(IpAddr::from([1, 2, 3, 4]), 9))]
    );
}
