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
    // Most messages carry none of these (or only `Connection: keep-alive`): one pass over the
    // names is cheaper than hashing seven removals on every request and response.
    if !headers
        .keys()
        .any(|name| name == header::TE || HOP_BY_HOP.contains(name))
    {
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
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("trailers"))
        });
    headers.remove(header::TE);
    if te_trailers {
        headers.insert(header::TE, http::HeaderValue::from_static("trailers"));
    }
    if let Some(up) = upgrade {
        headers.insert(
            header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        headers.insert(header::UPGRADE, up);
    }
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}
