//! Table tests for the raw header + first question reader and the raw reply check.

use super::*;
use crate::wire::build_query;

fn header(id: u16, flags: u16, qd: u16) -> Vec<u8> {
    let mut h = Vec::new();
    for v in [id, flags, qd, 0, 0, 0] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

fn with_name(labels: &[&[u8]], qtype: u16) -> Vec<u8> {
    let mut p = header(1, 0x0100, 1);
    for l in labels {
        p.push(l.len() as u8);
        p.extend_from_slice(l);
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p
}

/// (what, packet, expected name and type or why unreadable)
type ParseCase = (
    &'static str,
    Vec<u8>,
    Result<(&'static str, u16), Unreadable>,
);
/// (what, query, end of its question, reply, matches)
type ReplyCase<'a> = (&'static str, &'a [u8], usize, Vec<u8>, bool);

#[test]
fn parse_table() {
    let long_label = vec![b'a'; 64];
    let cases: Vec<ParseCase> = vec![
        ("short", vec![0; 5], Err(Unreadable::Drop)),
        ("response", header(1, 0x8100, 1), Err(Unreadable::Drop)),
        (
            "no question",
            header(1, 0x0100, 0),
            Err(Unreadable::FormErr),
        ),
        ("no body", header(1, 0x0100, 1), Err(Unreadable::FormErr)),
        (
            "pointer",
            [header(1, 0x0100, 1), vec![0xC0, 0x0C, 0, 1, 0, 1]].concat(),
            Err(Unreadable::FormErr),
        ),
        (
            "label over 63",
            with_name(&[&long_label, b"com"], 1),
            Err(Unreadable::FormErr),
        ),
        (
            "no type",
            {
                let mut p = with_name(&[b"a", b"com"], 1);
                p.truncate(p.len() - 3);
                p
            },
            Err(Unreadable::FormErr),
        ),
        ("root", with_name(&[], 2), Ok((".", 2))),
        (
            "mixed case",
            build_query(5, "API.GitHub.Com.", "AAAA"),
            Ok(("api.github.com.", 28)),
        ),
        (
            "dot inside a label is escaped",
            with_name(&[b"a.b", b"com"], 1),
            Ok(("a\\046b.com.", 1)),
        ),
        (
            "star is escaped, so no pattern can match it",
            with_name(&[b"*", b"github", b"com"], 1),
            Ok(("\\042.github.com.", 1)),
        ),
    ];
    for (what, packet, want) in cases {
        let got = parse(&packet).map(|q| (q.qname.clone(), q.qtype));
        let want = want.map(|(n, t)| (n.to_string(), t));
        assert_eq!(got, want, "case {what:?}");
    }
}

#[test]
fn name_over_255_bytes_is_formerr() {
    let label = [b'a'; 63];
    let packet = with_name(&[&label, &label, &label, &label, b"com"], 1);
    assert_eq!(
        parse(&packet),
        Err(Unreadable::FormErr),
        "name of 260 bytes"
    );
}

fn reply_to(query: &[u8], flags: u16) -> Vec<u8> {
    let mut r = query.to_vec();
    r[2..4].copy_from_slice(&flags.to_be_bytes());
    r
}

#[test]
fn reply_check_table() {
    let query = build_query(7, "api.github.com.", "A");
    let q = parse(&query).expect("query");
    let upper = build_query(7, "API.GITHUB.COM.", "A");
    // qtype 0x0061 differs from 0x0041 ('a' vs 'A') only in ASCII case: must not match.
    let type_a_upper = with_name(&[b"api", b"github", b"com"], 0x41);
    let type_a_lower = with_name(&[b"api", b"github", b"com"], 0x61);
    let tq = parse(&type_a_upper).expect("query");
    let cases: Vec<ReplyCase> = vec![
        ("echo", &query, q.end(), reply_to(&query, 0x8180), true),
        ("0x20 case", &query, q.end(), reply_to(&upper, 0x8180), true),
        (
            "not a response",
            &query,
            q.end(),
            reply_to(&query, 0x0100),
            false,
        ),
        (
            "other name",
            &query,
            q.end(),
            reply_to(&build_query(7, "www.github.com.", "A"), 0x8180),
            false,
        ),
        (
            "other type",
            &query,
            q.end(),
            reply_to(&build_query(7, "api.github.com.", "AAAA"), 0x8180),
            false,
        ),
        (
            "type bytes compared exactly",
            &type_a_upper,
            tq.end(),
            reply_to(&type_a_lower, 0x8180),
            false,
        ),
        (
            "no question, FORMERR",
            &query,
            q.end(),
            header(7, 0x8181, 0),
            true,
        ),
        (
            "no question, NOERROR",
            &query,
            q.end(),
            header(7, 0x8180, 0),
            false,
        ),
        (
            "truncated",
            &query,
            q.end(),
            reply_to(&query, 0x8180)[..20].to_vec(),
            false,
        ),
    ];
    for (what, query, end, reply, want) in cases {
        let name_end = end - 4;
        assert_eq!(
            reply_matches(&query[..end], name_end, &reply),
            want,
            "case {what:?}"
        );
    }
}

#[test]
fn id_helpers() {
    let mut m = build_query(0xBEEF, "a.com.", "A");
    assert_eq!(id_of(&m), Some(0xBEEF));
    set_id(&mut m, 0x0102);
    assert_eq!(&m[..2], &[1, 2], "ID rewritten in place");
    assert_eq!(id_of(&[1]), None, "no ID in one byte");
    assert_eq!(rcode_of(&header(1, 0x8183, 0)), 3, "NXDOMAIN");
}
