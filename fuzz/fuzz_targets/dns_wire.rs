//! Fuzz target: the DNS proxy's wire handling (`palisade_dnsproxy::wire`): query parsing, the
//! error answers built from a query, reply matching and answer decoding with learned-address
//! extraction along the CNAME chain.
//!
//! Input: two bytes of query length (big endian), the query, then the upstream reply. Besides
//! "never panics or hangs", it checks that a FORMERR built from raw bytes is a 12-byte FORMERR
//! response and that the REFUSED answer to a query is a response with the query's ID and rcode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_dnsproxy::wire::{self, rcode, Parsed};

fuzz_target!(|data: &[u8]| {
    let Some(len) = data
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return;
    };
    let rest = &data[2..];
    let (query, reply) = rest.split_at(len.min(rest.len()));

    match wire::parse_query(query) {
        Parsed::Drop => {}
        Parsed::FormErr(answer) => {
            assert_eq!(
                answer.len(),
                wire::HEADER_LEN,
                "raw FORMERR is a bare header"
            );
            assert_eq!(answer[..2], query[..2], "FORMERR keeps the ID");
            assert!(answer[2] & 0x80 != 0, "FORMERR is a response");
            assert_eq!(u16::from(answer[3] & 0x0f), rcode::FORMERR);
        }
        Parsed::Query(q) => {
            assert!(q.qname.ends_with('.'), "qname {:?} is absolute", q.qname);
            for code in [rcode::REFUSED, rcode::SERVFAIL, rcode::NXDOMAIN] {
                let answer = q.error_answer(code);
                assert!(
                    answer.len() >= wire::HEADER_LEN,
                    "error answer has a header"
                );
                assert_eq!(
                    answer[..2],
                    q.id().to_be_bytes(),
                    "error answer keeps the ID"
                );
                assert!(answer[2] & 0x80 != 0, "error answer is a response");
                assert_eq!(u16::from(answer[3] & 0x0f), code, "error answer's rcode");
                // Our own answer must be accepted as the reply to the query.
                assert!(
                    q.matches_reply(&answer),
                    "own error answer matches its query"
                );
            }
            if let Some(info) = wire::parse_answer(&q, reply) {
                assert_eq!(info.names.first(), Some(&q.qname), "chain starts at qname");
            }
            let _ = wire::answer_of(&q.qname, reply);
        }
    }
});
