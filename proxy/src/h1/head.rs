//! HTTP/1.x request and response heads, parsed with `httparse` (hyper's own parser), and the
//! framing rules: which body follows a head, and which heads are request-smuggling shapes
//! (RFC 9112 §6: Content-Length with Transfer-Encoding, differing Content-Lengths, a
//! Transfer-Encoding that does not end in `chunked`) to refuse before anything is judged.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::mem::MaybeUninit;

/// hyper's header-count limit, kept on the stack like hyper does.
const STACK_HEADERS: usize = 100;

/// The body that follows a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the sender closes (responses only).
    UntilClose,
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    /// Bytes the head took in the buffer.
    pub(crate) len: usize,
    pub(crate) method: Method,
    /// The request target as sent.
    pub(crate) target: String,
    /// Minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub(crate) minor: u8,
    pub(crate) headers: HeaderMap,
    /// The body, or why its framing is ambiguous.
    pub(crate) body: Result<Body, &'static str>,
}

/// A head that cannot be read at all; the connection is answered and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// More header fields than allowed (431).
    #[error("too many header fields")]
    TooManyHeaders,
    /// Not HTTP/1.x syntax (400): httparse's reason.
    #[error("malformed request head: {0}")]
    Syntax(&'static str),
}

/// Parses a request head at the start of `buf`; `None` while incomplete.
pub(crate) fn parse_request(
    buf: &[u8],
    max_headers: usize,
) -> Result<Option<RequestHead>, HeadError> {
    // Uninitialized slots: httparse fills only what it parses, so a request does not pay for
    // writing all of them first.
    let mut stack = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let mut heap = Vec::new();
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max_headers <= STACK_HEADERS {
        &mut stack[..max_headers]
    } else {
        heap.resize_with(max_headers, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Syntax(error_text(e))),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Syntax("incomplete request line"));
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Syntax("method"))?;
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::Syntax("header name"))?;
        let value =
            HeaderValue::from_bytes(h.value).map_err(|_| HeadError::Syntax("header value"))?;
        headers.append(name, value);
    }
    let body = request_body(&headers, minor);
    Ok(Some(RequestHead {
        len,
        method,
        target: target.to_owned(),
        minor,
        headers,
        body,
    }))
}

/// The request body's framing (RFC 9112 §6.3), refusing every shape two parsers could read
/// differently: a proxy that picks one reading while the upstream picks another lets a second
/// request ride inside the first one's body, unseen by the policy.
fn request_body(headers: &HeaderMap, minor: u8) -> Result<Body, &'static str> {
    let te = headers.get_all(http::header::TRANSFER_ENCODING);
    let has_te = te.iter().next().is_some();
    let length = content_length(headers)?;
    if has_te {
        if length.is_some() {
            return Err("Content-Length and Transfer-Encoding together");
        }
        if minor == 0 {
            return Err("Transfer-Encoding in an HTTP/1.0 request");
        }
        // Exactly one coding, `chunked`: anything else is either not chunked last (no way to
        // find the end) or a coding the upstream may not know.
        let mut codings = te
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(trim);
        let only_chunked = codings
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
            && codings.next().is_none();
        return if only_chunked {
            Ok(Body::Chunked)
        } else {
            Err("Transfer-Encoding other than a single chunked")
        };
    }
    Ok(match length {
        None | Some(0) => Body::Empty,
        Some(n) => Body::Length(n),
    })
}

/// The Content-Length, if any: every value (repeated fields and comma lists) must be the same
/// plain decimal number.
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut found = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',').map(trim) {
            let n = parse_decimal(part).ok_or("Content-Length is not a number")?;
            if found.is_some_and(|f| f != n) {
                return Err("differing Content-Length values");
            }
            found = Some(n);
        }
    }
    Ok(found)
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    // At most 15 digits: a length no server accepts, and no overflow.
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

fn error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

/// A parsed response head (status line and the fields the relay needs).
#[derive(Debug)]
pub(crate) struct ResponseHead {
    /// Bytes the head took in the buffer.
    pub(crate) len: usize,
    pub(crate) status: u16,
    /// Whether the upstream connection ends after this response.
    pub(crate) close: bool,
    pub(crate) body: Body,
}

/// Parses a response head at the start of `buf` for a request with `method`, and writes the
/// head to send downstream into `out`: hop-by-hop fields removed ([`crate::hop::forward_raw`]),
/// `Transfer-Encoding: chunked` kept when the chunked body is relayed as is, and
/// `Connection: close` when `close_client` (or a body that ends with the connection) says so.
/// `None` while incomplete.
pub(crate) fn parse_response(
    buf: &[u8],
    head_request: bool,
    close_client: bool,
    out: &mut Vec<u8>,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut slots = [const { MaybeUninit::uninit() }; STACK_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Syntax(error_text(e))),
    };
    let (Some(status), Some(minor)) = (resp.code, resp.version) else {
        return Err(HeadError::Syntax("incomplete status line"));
    };
    let mut te_chunked = None;
    let mut length: Option<u64> = None;
    let mut conn_close = minor == 0;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.split(|&b| b == b',').map(trim).next_back();
            te_chunked = Some(last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            for part in h.value.split(|&b| b == b',').map(trim) {
                let n = parse_decimal(part).ok_or(HeadError::Syntax("Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(HeadError::Syntax("differing Content-Length values"));
                }
                length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if minor == 0 && token.eq_ignore_ascii_case(b"keep-alive") {
                    conn_close = false;
                }
            }
        }
    }
    let body = if head_request || status < 200 || status == 204 || status == 304 {
        Body::Empty
    } else {
        match (te_chunked, length) {
            (Some(true), _) => Body::Chunked,
            (Some(false), _) => Body::UntilClose,
            (None, Some(0)) => Body::Empty,
            (None, Some(n)) => Body::Length(n),
            (None, None) => Body::UntilClose,
        }
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(status).as_slice());
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    // A length next to a transfer coding is dropped: chunked framing is what is relayed.
    crate::hop::forward_raw(resp.headers, te_chunked.is_none(), out);
    if body == Body::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close_client || body == Body::UntilClose {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some(ResponseHead {
        len,
        status,
        close: conn_close || body == Body::UntilClose,
        body,
    }))
}

/// A status code's three digits (httparse guarantees 100..=999).
fn itoa3(n: u16) -> [u8; 3] {
    [
        b'0' + (n / 100 % 10) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(head: &str) -> Result<Body, &'static str> {
        let text = format!("POST / HTTP/1.1\r\nHost: a\r\n{head}\r\n");
        parse_request(text.as_bytes(), 100)
            .expect("parses")
            .expect("complete")
            .body
    }

    #[test]
    fn request_framing_refuses_smuggling_shapes() {
        let table: &[(&str, Result<Body, ()>)] = &[
            ("", Ok(Body::Empty)),
            ("Content-Length: 0\r\n", Ok(Body::Empty)),
            ("Content-Length: 5\r\n", Ok(Body::Length(5))),
            (
                "Content-Length: 5\r\nContent-Length: 5\r\n",
                Ok(Body::Length(5)),
            ),
            ("Content-Length: 5, 5\r\n", Ok(Body::Length(5))),
            ("Content-Length: 5\r\nContent-Length: 6\r\n", Err(())),
            ("Content-Length: 5, 6\r\n", Err(())),
            ("Content-Length: +5\r\n", Err(())),
            ("Content-Length: -1\r\n", Err(())),
            ("Content-Length: 0x5\r\n", Err(())),
            ("Content-Length: \r\n", Err(())),
            ("Content-Length: 99999999999999999999\r\n", Err(())),
            ("Transfer-Encoding: chunked\r\n", Ok(Body::Chunked)),
            ("Transfer-Encoding: Chunked\r\n", Ok(Body::Chunked)),
            (
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                Err(()),
            ),
            (
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                Err(()),
            ),
            ("Transfer-Encoding: chunked, identity\r\n", Err(())),
            ("Transfer-Encoding: gzip, chunked\r\n", Err(())),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                Err(()),
            ),
            ("Transfer-Encoding: xchunked\r\n", Err(())),
            ("Transfer-Encoding: identity\r\n", Err(())),
            ("Transfer-Encoding: \r\n", Err(())),
        ];
        for (head, want) in table {
            assert_eq!(body(head).map_err(|_| ()), *want, "{head:?}");
        }
    }

    #[test]
    fn request_head_errors() {
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n", 100),
            Ok(None)
        ));
        let many: String = (0..5).map(|i| format!("X-{i}: v\r\n")).collect();
        let text = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse_request(text.as_bytes(), 4).err(),
            Some(HeadError::TooManyHeaders)
        );
        for bad in [
            "GET / HTTP/1.1\r\nX-A : b\r\n\r\n",
            "GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n",
            "GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n",
            "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_request(bad.as_bytes(), 100),
                    Err(HeadError::Syntax(_))
                ),
                "{bad:?}"
            );
        }
        let ok = parse_request(b"GET /a?b HTTP/1.0\r\nHost: h\r\n\r\nrest", 100)
            .expect("parses")
            .expect("complete");
        assert_eq!(
            (ok.method, ok.target.as_str(), ok.minor, ok.len),
            (Method::GET, "/a?b", 0, 30)
        );
    }

    #[test]
    fn response_framing_and_forwarded_head() {
        let table: &[(&str, bool, Body, bool, &str)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX: y\r\n\r\n",
                false,
                Body::Length(3),
                false,
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: y\r\n\r\n",
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close, X-Secret\r\nX-Secret: s\r\n\r\n",
                false,
                Body::Chunked,
                true,
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            ),
            (
                "HTTP/1.1 200 OK\r\n\r\n",
                false,
                Body::UntilClose,
                true,
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n",
                false,
                Body::Length(1),
                false,
                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Body::Chunked,
                false,
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            ),
            (
                "HTTP/1.0 204 No Content\r\n\r\n",
                false,
                Body::Empty,
                true,
                "HTTP/1.1 204 No Content\r\n\r\n",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
                true,
                Body::Empty,
                false,
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            ),
        ];
        for (input, head_req, body, close, out) in table {
            let mut buf = Vec::new();
            let head = parse_response(input.as_bytes(), *head_req, false, &mut buf)
                .expect("parses")
                .expect("complete");
            assert_eq!(
                (head.body, head.close, head.len),
                (*body, *close, input.len()),
                "{input:?}"
            );
            assert_eq!(String::from_utf8_lossy(&buf), *out, "{input:?}");
        }
        let mut buf = Vec::new();
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false,
            false,
            &mut buf
        )
        .is_err());
    }
}
