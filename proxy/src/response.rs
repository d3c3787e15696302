//! Every answer the proxy makes up itself is built here, and only here: the 403 that
//! cilium-envoy sends, its gRPC form, and the error statuses.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
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
            Reject::NoPolicy => StatusCode::INTERNAL_SERVER_ERROR,
            Reject::Upstream(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short reason for the flow log.
    pub(crate) fn reason(&self) -> String {
        match self {
            Reject::Denied => "denied by policy".into(),
            Reject::BadRequest(why) | Reject::Malformed(why) => format!("bad request: {why}"),
            Reject::NoPolicy => "no L7 policy for this flow".into(),
            Reject::Upstream(why) => format!("upstream: {why}"),
        }
    }

    /// The response: gRPC clients get a trailers-only answer with a gRPC status instead.
    pub(crate) fn into_response(self, grpc: bool) -> Response<ProxyBody> {
        if grpc {
            return grpc_response(self.grpc_status(), &self.reason());
        }
        let body = match &self {
            Reject::Denied => DENY_BODY.to_string(),
            other => format!("{}\r\n", other.reason()),
        };
        let mut resp = text_response(self.status(), body);
        if matches!(self, Reject::Malformed(_)) {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    /// gRPC status codes: 7 PERMISSION_DENIED, 3 INVALID_ARGUMENT, 13 INTERNAL, 14 UNAVAILABLE.
    fn grpc_status(&self) -> u16 {
        match self {
            Reject::Denied => 7,
            Reject::BadRequest(_) | Reject::Malformed(_) => 3,
            Reject::NoPolicy => 13,
            Reject::Upstream(_) => 14,
        }
    }
}

fn text_response(status: StatusCode, body: String) -> Response<ProxyBody> {
    let len = body.len();
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// HTTP 200 with the gRPC status in the headers and no body: HTTP/2 sends it as one HEADERS
/// frame with END_STREAM, which gRPC reads as trailers-only.
fn grpc_response(code: u16, message: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(full(Bytes::new()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    resp
}

/// Wraps bytes into the common body type.
pub(crate) fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
