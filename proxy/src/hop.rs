//! Hop-by-hop header handling (RFC 9110 §7.6.1) and protocol-upgrade detection.

use http::header::{self, HeaderMap, HeaderName};
use http::{Request, Version};

/// Headers that describe one connection and must not be forwarded (a `static`: a `const`
/// array would be built and dropped at every use).
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// [`HOP_BY_HOP`] and `TE` as plain names, for matching raw header bytes (`TE` means nothing in a
/// response, where this is used).
const HOP_BY_HOP_NAMES: [&[u8]; 8] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authenticate",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
    b"te",
];

/// Whether an HTTP/1.1 request asks for a protocol upgrade we pass through (WebSocket and
/// others). `h2c` is never passed through: streams after it would bypass per-request policy.
pub(crate) fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && connection_has(req.headers(), "upgrade")
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.split(',').any(|p| p.trim().eq_ignore_ascii_case("h2c")))
}

/// Removes hop-by-hop headers and the ones named in `Connection`; with `keep_upgrade` the
/// `Connection: upgrade` and `Upgrade` headers stay so the upgrade reaches the other side.
/// `TE: trailers` stays: gRPC needs it end to end.
pub(crate) fn strip(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds what is there; most messages carry none of these or only
    // `Connection: keep-alive`, and hashing every removal on each message shows in profiles.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut te = false;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        } else if name == header::TE {
            te = true;
        }
    }
    if !te && !present.contains(&true) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // The usual tokens name nothing to remove beyond the fixed list (and never allocate).
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    let upgrade = keep_upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    for name in &named {
        headers.remove(name);
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
    if te {
        let trailers = headers
            .get(header::TE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("trailers"))
            });
        headers.remove(header::TE);
        if trailers {
            headers.insert(header::TE, http::HeaderValue::from_static("trailers"));
        }
    }
    if let Some(up) = upgrade {
        headers.insert(
            header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        headers.insert(header::UPGRADE, up);
    }
}

/// Writes a response's header fields as `name: value` lines into `out`, without the hop-by-hop
/// ones and those named in `Connection` (the raw-bytes twin of [`strip`], for the HTTP/1.1
/// relay; `TE` means nothing in a response and is dropped). `Content-Length` only with
/// `keep_length`.
pub(crate) fn forward_raw(headers: &[httparse::Header<'_>], keep_length: bool, out: &mut Vec<u8>) {
    // The tokens of every `Connection` field, gathered once (a response head is read per
    // request, so this runs on every one); the usual ones name nothing beyond the fixed list.
    let mut named: Vec<&[u8]> = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("connection") {
            named.extend(
                h.value
                    .split(|&b| b == b',')
                    .map(<[u8]>::trim_ascii)
                    .filter(|t| {
                        !t.eq_ignore_ascii_case(b"keep-alive") && !t.eq_ignore_ascii_case(b"close")
                    }),
            );
        }
    }
    for h in headers {
        let name = h.name.as_bytes();
        let hop = HOP_BY_HOP_NAMES
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
            || (!keep_length && name.eq_ignore_ascii_case(b"content-length"))
            || named.iter().any(|t| name.eq_ignore_ascii_case(t));
        if hop {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes a request's header fields as `name: value` lines into `out`.
pub(crate) fn write_fields(headers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Whether a `Connection` field lists `token`.
pub(crate) fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<String> {
        let mut v: Vec<String> = h.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
        v.sort();
        v
    }

    /// Input headers, `keep_upgrade`, and the headers left (sorted, `name: "value"`).
    type Case<'a> = (&'a [(&'a str, &'a str)], bool, &'a [&'a str]);

    #[test]
    fn raw_names_are_the_hop_by_hop_list_and_te() {
        let mut want: Vec<&[u8]> = HOP_BY_HOP.iter().map(|n| n.as_str().as_bytes()).collect();
        want.push(b"te");
        assert_eq!(HOP_BY_HOP_NAMES.as_slice(), want.as_slice());
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let table: &[Case<'_>] = &[
            (&[("host", "a")], false, &["host: \"a\""]),
            (
                &[
                    ("connection", "keep-alive"),
                    ("keep-alive", "timeout=5"),
                    ("x", "1"),
                ],
                false,
                &["x: \"1\""],
            ),
            (
                &[
                    ("connection", "close, X-Secret"),
                    ("x-secret", "s"),
                    ("y", "2"),
                ],
                false,
                &["y: \"2\""],
            ),
            (&[("te", "gzip, trailers")], false, &["te: \"trailers\""]),
            (&[("te", "gzip")], false, &[]),
            (&[("connection", "te"), ("te", "trailers")], false, &[]),
            (
                &[
                    ("transfer-encoding", "chunked"),
                    ("upgrade", "echo"),
                    ("trailer", "x"),
                ],
                false,
                &[],
            ),
            (
                &[
                    ("connection", "Upgrade"),
                    ("upgrade", "echo"),
                    ("proxy-connection", "x"),
                ],
                true,
                &["connection: \"upgrade\"", "upgrade: \"echo\""],
            ),
        ];
        for (input, keep_upgrade, want) in table {
            let mut h = headers(input);
            strip(&mut h, *keep_upgrade);
            assert_eq!(
                names(&h),
                *want,
                "strip({input:?}, keep_upgrade={keep_upgrade})"
            );
        }
    }
}
