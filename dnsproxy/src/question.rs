//! Allocation-light reading of what the proxy decides on: the 12-byte header and the first
//! question, straight from the wire. The rest of a query is never decoded: the original bytes are
//! forwarded, so only the ID is ever rewritten. Also the raw check that an upstream reply answers
//! a query (same first question), done before any decoding of the reply.

use crate::wire::HEADER_LEN;

/// Longest name on the wire (RFC 1035 §3.1).
const MAX_NAME: usize = 255;

/// The header fields and first question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Transaction ID.
    pub id: u16,
    /// First question's name, lower case with a trailing dot (`.` for the root). Bytes outside
    /// `[A-Za-z0-9_-]` inside a label are written `\DDD`, so they can never match a selector.
    pub qname: String,
    /// First question's type.
    pub qtype: u16,
    /// First question's class.
    pub qclass: u16,
    /// Offset just past the first question's name.
    pub name_end: usize,
}

impl Question {
    /// Offset just past the first question (name, type, class).
    pub fn end(&self) -> usize {
        self.name_end + 4
    }
}

/// Why a packet did not yield a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Too short for a header, or a response: never answered (answering could loop).
    Drop,
    /// Readable header, unreadable first question: FORMERR.
    FormErr,
}

/// Reads the header and first question of a client query.
pub fn parse(buf: &[u8]) -> Result<Question, Unreadable> {
    if buf.len() < HEADER_LEN || buf[2] & 0x80 != 0 {
        return Err(Unreadable::Drop);
    }
    if u16::from_be_bytes([buf[4], buf[5]]) == 0 {
        return Err(Unreadable::FormErr);
    }
    let (qname, name_end) = read_name(buf, HEADER_LEN).ok_or(Unreadable::FormErr)?;
    let fixed = buf.get(name_end..name_end + 4).ok_or(Unreadable::FormErr)?;
    Ok(Question {
        id: u16::from_be_bytes([buf[0], buf[1]]),
        qname,
        qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
        name_end,
    })
}

/// Reads an uncompressed name at `at`: the first question's name starts right after the header,
/// where a compression pointer could only point into the header, so it is treated as malformed.
fn read_name(buf: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::with_capacity(32);
    let start = at;
    loop {
        let len = usize::from(*buf.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 || at + len - start > MAX_NAME {
            return None; // pointer, reserved label type, or over-long name
        }
        push_label(&mut name, buf.get(at..at + len)?);
        at += len;
    }
    if name.is_empty() {
        name.push('.');
    }
    Some((name, at))
}

/// Appends one label and its dot: `[A-Za-z0-9_-]` lower-cased, any other byte as `\DDD`.
pub(crate) fn push_label(name: &mut String, label: &[u8]) {
    // Room for the usual case (no escapes) at once, not grown byte by byte.
    name.reserve(label.len() + 1);
    for &b in label {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(char::from(b.to_ascii_lowercase()));
        } else {
            name.push('\\');
            for digit in [b / 100, b / 10 % 10, b % 10] {
                name.push(char::from(b'0' + digit));
            }
        }
    }
    name.push('.');
}

/// True when `reply` is a response whose first question equals the query's (`question` is the
/// query's bytes from the header to `name_end + 4`): the name compared case-insensitively
/// (resolvers echo 0x20 case as sent), type and class exactly. A reply without a question is
/// accepted only with an error rcode (some servers drop the question on FORMERR). The ID is
/// checked by the caller, which may have rewritten it.
pub fn reply_matches(question: &[u8], name_end: usize, reply: &[u8]) -> bool {
    if reply.len() < HEADER_LEN || reply[2] & 0x80 == 0 {
        return false;
    }
    if u16::from_be_bytes([reply[4], reply[5]]) == 0 {
        return reply[3] & 0x0f != 0;
    }
    let (Some(want), Some(got)) = (
        question.get(HEADER_LEN..),
        reply.get(HEADER_LEN..question.len()),
    ) else {
        return false;
    };
    let split = name_end - HEADER_LEN;
    want[..split].eq_ignore_ascii_case(&got[..split]) && want[split..] == got[split..]
}

/// The ID of a message, if it has a header.
pub fn id_of(msg: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.first()?, *msg.get(1)?]))
}

/// Rewrites the ID of a message in place (no-op on a message shorter than two bytes).
pub fn set_id(msg: &mut [u8], id: u16) {
    if let Some(b) = msg.get_mut(..2) {
        b.copy_from_slice(&id.to_be_bytes());
    }
}

/// The rcode of a message's header (0 when too short).
pub fn rcode_of(msg: &[u8]) -> u16 {
    msg.get(3).map_or(0, |b| u16::from(b & 0x0f))
}

#[cfg(test)]
#[path = "question_tests.rs"]
mod tests;
