//! HTTP plumbing shared by the API server (unix socket) and the metrics server (TCP):
//! the response body type, JSON/error responses, and one accept loop for both listeners.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;

/// Body of every response we send: whole JSON documents or a streamed NDJSON feed.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// The JSON body of every error response: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: String,
}

/// A complete body from bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A 200 response with `value` as JSON.
pub(crate) fn json<T: Serialize>(value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_type(StatusCode::OK, "application/json", full(bytes)),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding answer: {e}"),
        ),
    }
}

/// An error response with a JSON `{"error": message}` body.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let body = ErrorBody {
        error: message.into(),
    };
    // Serializing a struct with one String field cannot fail.
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    with_type(status, "application/json", full(bytes))
}

/// A response with a status, a content type and a body.
pub(crate) fn with_type(status: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// A listener the accept loop can serve: unix or TCP.
pub(crate) trait Listener: Send {
    /// The accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Accepts one connection.
    fn accept_io(&self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Serves HTTP/1.1 connections with `handler` until `shutdown` resolves, then drops every
/// open connection (monitor streams never end on their own, so a graceful drain would hang).
pub(crate) async fn serve_loop<L, H, Fut>(listener: L, handler: H, shutdown: impl Future)
where
    L: Listener,
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept_io() => match accepted {
                Ok(io) => {
                    let handler = handler.clone();
                    conns.spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let fut = handler(req);
                            async move { Ok::<_, Infallible>(fut.await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(io), svc);
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "API connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // EMFILE and friends are transient; back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    conns.abort_all();
}
