//! Upstream connections, from sockets marked `0xa00`/`0xb00` so the datapath lets them pass.
//!
//! HTTP/1.1 (the common case): each client connection gets its own upstream connection per
//! mark ([`H1Upstream`]), opened on the first allowed request and reused for the connection's
//! lifetime: no pool checkout, no shared locks, no extra task per request. HTTP/2 (prior
//! knowledge) multiplexes, so it goes through shared hyper-util pools ([`H2Pools`]), one per
//! mark, keyed by original destination.

pub(crate) mod connect;
mod h1;

pub(crate) use connect::connect;
pub(crate) use h1::H1Upstream;

use crate::Limits;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// Which `SO_MARK` an upstream socket carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Only the destination's ingress rules decided (`0xa00`).
    Ingress,
    /// An egress (source-side) rule decided (`0xb00`).
    Egress,
}

/// The two mark values, from the config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marks {
    pub(crate) ingress: u32,
    pub(crate) egress: u32,
}

impl Marks {
    /// The `SO_MARK` value for `mark`.
    pub(crate) fn value(self, mark: Mark) -> u32 {
        match mark {
            Mark::Ingress => self.ingress,
            Mark::Egress => self.egress,
        }
    }
}

/// Why a request could not be delivered upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The TCP connection could not be opened.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake with the server failed (untrusted certificate, wrong name).
    #[error("TLS to the server: {0}")]
    Tls(std::io::Error),
    /// The new connection failed before the request could be sent.
    #[error("connection closed before the request was sent: {0}")]
    Closed(hyper::Error),
    /// Sending the request or reading the response head failed.
    #[error("request failed: {0}")]
    Send(#[source] hyper::Error),
    /// The HTTP/2 pool failed.
    #[error("{0}")]
    Pool(#[source] hyper_util::client::legacy::Error),
}

/// Idle pooled HTTP/2 connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Shared HTTP/2 pools, one per mark.
#[derive(Debug, Clone)]
pub(crate) struct H2Pools {
    ingress: Client<HttpConnector, Incoming>,
    egress: Client<HttpConnector, Incoming>,
}

impl H2Pools {
    /// Builds pools whose sockets carry the given marks.
    pub(crate) fn new(marks: Marks, limits: &Limits) -> H2Pools {
        let build = |mark: u32| {
            let mut connector = HttpConnector::new();
            connector.set_mark(Some(mark));
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(limits.connect_timeout));
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .http2_only(true)
                .build(connector)
        };
        H2Pools {
            ingress: build(marks.ingress),
            egress: build(marks.egress),
        }
    }

    /// Sends an HTTP/2 request (absolute URI `http://dst/...`) over the pool of `mark`.
    pub(crate) async fn send(
        &self,
        mark: Mark,
        req: Request<Incoming>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let client = match mark {
            Mark::Ingress => &self.ingress,
            Mark::Egress => &self.egress,
        };
        client.request(req).await.map_err(UpstreamError::Pool)
    }
}
