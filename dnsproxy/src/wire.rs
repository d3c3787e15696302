//! DNS wire format: the one module that talks to hickory-proto, so an upgrade touches one file.
//! Parses queries, builds REFUSED / NXDOMAIN / SERVFAIL / FORMERR answers, matches upstream
//! replies to their query and extracts learned addresses along the CNAME chain (the hot path
//! reads the wire itself: `question` for queries, `records` for answers).

use std::borrow::Cow;
use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::question::{self, Unreadable};
use crate::records::{self, Answer, Data};

/// Size of the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// Longest CNAME chain followed, so a loop in an answer cannot spin.
const MAX_CNAME_HOPS: usize = 16;

/// Rcode numbers used in flow records.
pub mod rcode {
    /// NOERROR.
    pub const NOERROR: u16 = 0;
    /// FORMERR.
    pub const FORMERR: u16 = 1;
    /// SERVFAIL.
    pub const SERVFAIL: u16 = 2;
    /// NXDOMAIN.
    pub const NXDOMAIN: u16 = 3;
    /// REFUSED.
    pub const REFUSED: u16 = 5;
}

/// Name of an rcode number (`NOERROR`, `REFUSED`, ...).
pub fn rcode_name(code: u16) -> &'static str {
    <ResponseCode as From<u16>>::from(code).to_str()
}

/// A query whose header and first question could be read.
#[derive(Debug, Clone)]
pub struct Query {
    /// The client's bytes, kept for error answers (decoded only when one is needed).
    raw: Vec<u8>,
    id: u16,
    /// Offsets just past the first question's name, and past the whole first question.
    name_end: usize,
    question_end: usize,
    /// First question's name, normalized (lower case, trailing dot).
    pub qname: String,
    /// First question's type, e.g. `A` (a static name: no allocation per query).
    pub qtype: Cow<'static, str>,
}

/// What to do with a packet received from a client.
#[derive(Debug)]
pub enum Parsed {
    /// A query with at least one question; decide on the first.
    Query(Query),
    /// Unreadable body but readable header: send this FORMERR.
    FormErr(Vec<u8>),
    /// Not even a query header (too short, or a response): drop silently.
    Drop,
}

/// Parses a client packet: header and first question only (the rest is forwarded unread).
pub fn parse_query(buf: &[u8]) -> Parsed {
    match question::parse(buf) {
        Ok(q) => Parsed::Query(Query {
            raw: buf.to_vec(),
            id: q.id,
            name_end: q.name_end,
            question_end: q.end(),
            qname: q.qname,
            qtype: Cow::Borrowed(RecordType::from(q.qtype).into()),
        }),
        Err(Unreadable::FormErr) => Parsed::FormErr(formerr_raw(buf)),
        Err(Unreadable::Drop) => Parsed::Drop,
    }
}

/// FORMERR built from the raw header only (the body could not be parsed): no question echoed.
fn formerr_raw(req: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    out[..2].copy_from_slice(&req[..2]);
    // QR=1, keep OPCODE and RD from the query.
    out[2] = 0x80 | (req[2] & 0x79);
    out[3] = rcode::FORMERR as u8;
    out
}

impl Query {
    /// The query's ID.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The client's bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Offset just past the first question's name.
    pub(crate) fn name_end(&self) -> usize {
        self.name_end
    }

    /// Offset just past the first question (name, type, class).
    pub(crate) fn question_end(&self) -> usize {
        self.question_end
    }

    /// The query's bytes from the start to the end of the first question (for reply matching).
    pub(crate) fn question_bytes(&self) -> &[u8] {
        &self.raw[..self.question_end()]
    }

    /// An answer with `code`, no records, all questions echoed (and EDNS if the query had it).
    /// When the rest of the query does not decode, only the header and first question are echoed.
    pub fn error_answer(&self, code: u16) -> Vec<u8> {
        let Ok(msg) = Message::from_vec(&self.raw) else {
            return self.raw_error_answer(code);
        };
        let mut resp = Message::new(self.id(), MessageType::Response, msg.metadata.op_code);
        resp.metadata = Metadata::response_from_request(&msg.metadata);
        resp.metadata.recursion_available = true;
        resp.metadata.response_code = <ResponseCode as From<u16>>::from(code);
        resp.queries = msg.queries.clone();
        if let Some(req_edns) = &msg.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(req_edns.max_payload().max(512));
            resp.edns = Some(edns);
        }
        resp.to_vec()
            .unwrap_or_else(|_| self.raw_error_answer(code))
    }

    /// Header (QR, RA, rcode set; one question) and the first question, copied from the query.
    fn raw_error_answer(&self, code: u16) -> Vec<u8> {
        let mut out = self.question_bytes().to_vec();
        out[2] = 0x80 | (out[2] & 0x79);
        out[3] = 0x80 | (code & 0x0f) as u8;
        out[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        out
    }

    /// True when `reply` answers this query: same ID and same first question.
    pub fn matches_reply(&self, reply: &[u8]) -> bool {
        question::id_of(reply) == Some(self.id())
            && question::reply_matches(self.question_bytes(), self.name_end, reply)
    }
}

/// What the proxy learns from an upstream answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerInfo {
    /// The answer's rcode.
    pub rcode: u16,
    /// qname followed by every CNAME target in the chain (normalized).
    pub names: Vec<String>,
    /// A/AAAA addresses of names in the chain with their TTLs, deduplicated.
    pub addrs: Vec<(IpAddr, u32)>,
}

/// Parses an upstream reply; `None` when it is unreadable or does not answer `query`.
pub fn parse_answer(query: &Query, buf: &[u8]) -> Option<AnswerInfo> {
    if !query.matches_reply(buf) {
        return None;
    }
    answer_of(&query.qname, buf)
}

/// Decodes a reply already matched to its query. Only a NOERROR reply with answers is read in
/// full (for its addresses, straight from the wire: see [`crate::records`]); any other keeps the
/// bytes unread and reports just the rcode. `None` when a reply that needs reading does not
/// decode.
pub fn answer_of(qname: &str, buf: &[u8]) -> Option<AnswerInfo> {
    let ancount = buf
        .get(6..8)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    if question::rcode_of(buf) != rcode::NOERROR || ancount == 0 {
        return Some(AnswerInfo {
            rcode: question::rcode_of(buf),
            names: vec![qname.to_string()],
            addrs: Vec::new(),
        });
    }
    let answer = records::read(buf)?;
    Some(answer_info(qname, &answer))
}

/// Follows the CNAME chain from `qname` through the answer section and collects addresses.
fn answer_info(qname: &str, answer: &Answer) -> AnswerInfo {
    let mut names = vec![qname.to_string()];
    for _ in 0..MAX_CNAME_HOPS {
        let current = &names[names.len() - 1];
        let next = answer.records.iter().find_map(|(owner, data)| match data {
            Data::Cname(target) if owner == current => Some(target),
            _ => None,
        });
        match next {
            Some(n) if !names.contains(n) => names.push(n.clone()),
            _ => break, // end of chain, or a loop
        }
    }
    let mut addrs: Vec<(IpAddr, u32)> = Vec::new();
    for (owner, data) in &answer.records {
        let Data::Addr(ip, ttl) = data else { continue };
        if !names.contains(owner) {
            continue; // an address for a name outside the chain is not an answer to qname
        }
        if !addrs.iter().any(|(a, _)| a == ip) {
            addrs.push((*ip, *ttl));
        }
    }
    AnswerInfo {
        rcode: answer.rcode,
        names,
        addrs,
    }
}

/// Builds a query message (used by tests and the bench example).
pub fn build_query(id: u16, name: &str, qtype: &str) -> Vec<u8> {
    let mut msg = Message::new(id, MessageType::Query, hickory_proto::op::OpCode::Query);
    msg.metadata.recursion_desired = true;
    let name = hickory_proto::rr::Name::from_ascii(name).unwrap_or_default();
    let rtype: RecordType = qtype.parse().unwrap_or(RecordType::A);
    msg.add_query(hickory_proto::op::Query::query(name, rtype));
    msg.to_vec().unwrap_or_default()
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
