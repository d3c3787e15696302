//! Every answer the proxy makes up itself is built here, and only here: the 403 that
//! cilium-envoy sends, its gRPC form, and the error statuses.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};

/// Body type of every response the proxy sends downstream.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// cilium-envoy's deny body.
const DENY_BODY: &str = "Access denied\r\n";

/// Why the proxy answers instead of the upstream.
#[derive(Debug, Clone)]
pub(crate) enum Reject {
    /// Denied by policy.
    Denied,
    /// The path could not be normalized (encoded slash, bad escape…).
    BadRequest(String),
    /// The request's framing or headers are ambiguous (duplicate `Host`, Content-Length with
    /// Transfer-Encoding): answered 400 and the connection closed, as nothing after it on the
    /// connection can be trusted to be framed the way the upstream would frame it.
    Malformed(String),
    /// The request head is over the size or field-count limit: answered 431 and closed.
    HeadTooLarge,
    /// No rule in either direction covers this flow: fail closed.
    NoPolicy,
    /// The upstream could not be reached or failed mid-response.
    Upstream(String),
}

impl Reject {
    /// Status code sent for this rejection on plain HTTP.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Reject::Denied => StatusCode::FORBIDDEN,
            Reject::BadRequest(_) | Reject::Malformed(_) => StatusCode::BAD_REQUEST,
            Reject::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Reject::NoPolicy => StatusCode::INTERNAL_SERVER_ERROR,
            Reject::Upstream(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short reason for the flow log.
    pub(crate) fn reason(&self) -> String {
        match self {
            Reject::Denied => "denied by policy".into(),
            Reject::BadRequest(why) | Reject::Malformed(why) => format!("bad request: {why}"),
            Reject::HeadTooLarge => "request head too large".into(),
            Reject::NoPolicy => "no L7 policy for this flow".into(),
            Reject::Upstream(why) => format!("upstream: {why}"),
        }
    }

    /// The response: gRPC clients get a trailers-only answer with a gRPC status instead.
    pub(crate) fn to_response(&self, grpc: bool) -> Response<ProxyBody> {
        let (status, headers, body) = self.parts(grpc);
        let mut resp = Response::new(full(body));
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp
    }

    /// Status, headers and body of the answer: [`Reject::to_response`] wraps them for
    /// hyper; the HTTP/1.1 relay writes them out itself.
    pub(crate) fn parts(&self, grpc: bool) -> (StatusCode, HeaderMap, Bytes) {
        if grpc {
            return grpc_parts(self.grpc_status(), &self.reason());
        }
        let body = match self {
            Reject::Denied => Bytes::from_static(DENY_BODY.as_bytes()),
            other => Bytes::from(format!("{}\r\n", other.reason())),
        };
        let mut headers = HeaderMap::with_capacity(3);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if self.closes() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        (self.status(), headers, body)
    }

    /// Whether the connection closes after this answer.
    pub(crate) fn closes(&self) -> bool {
        matches!(self, Reject::Malformed(_) | Reject::HeadTooLarge)
    }

    /// gRPC status codes: 7 PERMISSION_DENIED, 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED,
    /// 13 INTERNAL, 14 UNAVAILABLE.
    fn grpc_status(&self) -> u16 {
        match self {
            Reject::Denied => 7,
            Reject::BadRequest(_) | Reject::Malformed(_) => 3,
            Reject::HeadTooLarge => 8,
            Reject::NoPolicy => 13,
            Reject::Upstream(_) => 14,
        }
    }
}

/// HTTP 200 with the gRPC status in the headers and no body: HTTP/2 sends it as one HEADERS
/// frame with END_STREAM, which gRPC reads as trailers-only.
fn grpc_parts(code: u16, message: &str) -> (StatusCode, HeaderMap, Bytes) {
    let mut h = HeaderMap::with_capacity(3);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    (StatusCode::OK, h, Bytes::new())
}

/// Wraps bytes into the common body type.
pub(crate) fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
