//! Reading an upstream answer straight from the wire: the rcode (with the EDNS extension), and
//! the answer section's A, AAAA and CNAME records, the only ones the proxy learns from. Every
//! section is walked, so a truncated or garbled message is refused as a whole; records of other
//! types are checked for structure (names, lengths) only. Decoding the whole message with
//! hickory-proto cost more than the rest of the answer path together.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::question::push_label;
use crate::wire::HEADER_LEN;

/// Longest name on the wire (RFC 1035 §3.1).
const MAX_NAME: usize = 255;
/// Room made for a name read from an answer: most names fit without growing the string.
const NAME_ROOM: usize = 64;
/// Most compression pointers followed in one name (a loop otherwise never ends).
const MAX_POINTERS: usize = 32;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

/// What the answer section holds for learning.
#[derive(Debug, Default)]
pub struct Answer {
    /// Header rcode combined with the EDNS extended rcode.
    pub rcode: u16,
    /// Answer-section records: owner (normalized) and what it says.
    pub records: Vec<(String, Data)>,
}

/// The data of an answer record the proxy looks at.
#[derive(Debug, PartialEq, Eq)]
pub enum Data {
    /// An address (class IN only) with its TTL.
    Addr(IpAddr, u32),
    /// A CNAME's target (normalized).
    Cname(String),
    /// Anything else.
    Other,
}

/// Reads `buf`; `None` when any section does not decode.
pub fn read(buf: &[u8]) -> Option<Answer> {
    let header = buf.get(..HEADER_LEN)?;
    let count = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let mut rcode = u16::from(header[3] & 0x0f);
    let mut at = HEADER_LEN;
    for _ in 0..qd {
        at = skip_name(buf, at)?;
        at = at.checked_add(4).filter(|&e| e <= buf.len())?;
    }
    let mut records = Vec::with_capacity(usize::from(an).min(16));
    for _ in 0..an {
        let mut owner = String::with_capacity(NAME_ROOM);
        let rr = record(buf, at, Some(&mut owner))?;
        let data = match (rr.rtype, rr.rdata) {
            (TYPE_A, d) if rr.class == CLASS_IN => {
                let b: [u8; 4] = d.try_into().ok()?;
                Data::Addr(IpAddr::V4(Ipv4Addr::from(b)), rr.ttl)
            }
            (TYPE_AAAA, d) if rr.class == CLASS_IN => {
                let b: [u8; 16] = d.try_into().ok()?;
                Data::Addr(IpAddr::V6(Ipv6Addr::from(b)), rr.ttl)
            }
            (TYPE_CNAME, _) => {
                let mut target = String::with_capacity(NAME_ROOM);
                let end = read_name(buf, rr.rdata_at, Some(&mut target))?;
                if end != rr.end {
                    return None; // the name must fill the record data exactly
                }
                Data::Cname(target)
            }
            _ => Data::Other,
        };
        records.push((owner, data));
        at = rr.end;
    }
    for _ in 0..usize::from(ns) + usize::from(ar) {
        let rr = record(buf, at, None)?;
        if rr.rtype == TYPE_OPT {
            // Extended rcode: the top 8 bits of the OPT record's TTL, above the header's 4.
            rcode |= ((rr.ttl >> 24) as u16) << 4;
        }
        at = rr.end;
    }
    Some(Answer { rcode, records })
}

/// One resource record's fixed fields and where its data lies.
struct Rr<'a> {
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata_at: usize,
    rdata: &'a [u8],
    end: usize,
}

/// Reads the record at `at`; its owner name goes to `owner` when given.
fn record<'a>(buf: &'a [u8], at: usize, owner: Option<&mut String>) -> Option<Rr<'a>> {
    let at = read_name(buf, at, owner)?;
    let fixed = buf.get(at..at + 10)?;
    let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let rdata_at = at + 10;
    let end = rdata_at + rdlen;
    Some(Rr {
        rtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        class: u16::from_be_bytes([fixed[2], fixed[3]]),
        ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        rdata_at,
        rdata: buf.get(rdata_at..end)?,
        end,
    })
}

fn skip_name(buf: &[u8], at: usize) -> Option<usize> {
    read_name(buf, at, None)
}

/// Reads a possibly compressed name at `at`, normalized like the query's name (lower case,
/// trailing dot, odd bytes as `\DDD`) into `out` when given; returns the offset just past the
/// name where it starts (a pointer ends it).
fn read_name(buf: &[u8], mut at: usize, mut out: Option<&mut String>) -> Option<usize> {
    let mut end = None;
    let mut pointers = 0;
    let mut wire_len = 1; // the root label
    loop {
        let len = *buf.get(at)?;
        match len & 0xc0 {
            0x00 if len == 0 => break,
            0x00 => {
                let len = usize::from(len);
                let label = buf.get(at + 1..at + 1 + len)?;
                wire_len += len + 1;
                if wire_len > MAX_NAME {
                    return None;
                }
                if let Some(out) = out.as_deref_mut() {
                    push_label(out, label);
                }
                at += 1 + len;
            }
            0xc0 => {
                let low = *buf.get(at + 1)?;
                end.get_or_insert(at + 2);
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return None;
                }
                at = usize::from(u16::from_be_bytes([len & 0x3f, low]));
            }
            _ => return None, // reserved label types
        }
    }
    if let Some(out) = out {
        if out.is_empty() {
            out.push('.');
        }
    }
    Some(end.unwrap_or(at + 1))
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
