//! Upstream connection pools: one hyper-util client per (socket mark, HTTP version), each
//! pooling connections per original destination (the URI authority is the destination address).

use crate::Limits;
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// The pools for one mark.
#[derive(Debug, Clone)]
struct MarkedClients {
    h1: Client<HttpConnector, Incoming>,
    h2: Client<HttpConnector, Incoming>,
}

/// All upstream pools of the proxy.
#[derive(Debug, Clone)]
pub(crate) struct Upstreams {
    ingress: MarkedClients,
    egress: MarkedClients,
}

/// Idle pooled connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

impl Upstreams {
    /// Builds pools whose sockets carry the given `SO_MARK`s.
    pub(crate) fn new(mark_ingress: u32, mark_egress: u32, limits: &Limits) -> Upstreams {
        Upstreams {
            ingress: MarkedClients::new(mark_ingress, limits),
            egress: MarkedClients::new(mark_egress, limits),
        }
    }

    /// Sends a request (absolute URI `http://dst/...`) from a socket with the ingress or egress
    /// mark, over HTTP/2 prior knowledge when the client spoke HTTP/2, else HTTP/1.1.
    pub(crate) async fn send(
        &self,
        ingress_mark: bool,
        req: Request<Incoming>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let clients = if ingress_mark {
            &self.ingress
        } else {
            &self.egress
        };
        let client = if req.version() == Version::HTTP_2 {
            &clients.h2
        } else {
            &clients.h1
        };
        client.request(req).await
    }
}

impl MarkedClients {
    fn new(mark: u32, limits: &Limits) -> MarkedClients {
        let mut connector = HttpConnector::new();
        connector.set_mark(Some(mark));
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(limits.connect_timeout));
        let build = |h2: bool| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .http2_only(h2)
                .build(connector.clone())
        };
        MarkedClients {
            h1: build(false),
            h2: build(true),
        }
    }
}
