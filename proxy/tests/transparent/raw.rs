//! Raw HTTP/1.1 over a plain TCP stream: exact bytes on the wire, keep-alive and pipelining
//! under the test's control.

use std::io::{Read, Write};
use std::net::TcpStream;

/// One response as received.
#[derive(Debug)]
pub struct RawResponse {
    /// Status line and headers, without the final blank line.
    pub head: String,
    /// Body bytes (per Content-Length).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The numeric status.
    pub fn status(&self) -> u16 {
        self.head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code")
    }

    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Writes raw bytes.
pub fn send(stream: &mut TcpStream, raw: &str) {
    stream.write_all(raw.as_bytes()).expect("write request");
}

/// A minimal GET/other request with Host and no body.
pub fn request(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: service\r\n{extra}\r\n")
}

/// Reads exactly one response (Content-Length framing), leaving later bytes unread.
pub fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read response head");
        assert!(
            n == 1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head[..head.len() - 4].to_vec()).expect("utf-8 head");
    let mut resp = RawResponse {
        head,
        body: Vec::new(),
    };
    let len: usize = resp
        .header("content-length")
        .map_or(0, |v| v.parse().expect("content-length"));
    resp.body = vec![0; len];
    stream.read_exact(&mut resp.body).expect("read body");
    resp
}
