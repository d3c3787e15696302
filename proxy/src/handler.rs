//! One request through the proxy: identities and rules from the current policy, path
//! normalization, the L7 decision, then upstream or a made-up answer, and a flow record.

use crate::conn::{ClientConn, Ends};
use crate::hop;
use crate::policy::{CompiledPolicy, DirectionPolicy, FlowPolicy};
use crate::response::{ProxyBody, Reject};
use crate::upstream::{H2Pools, Mark};
use crate::{FlowVerdict, HttpFlowRecord};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use palisade_httpmatch::{normalize_path, HeaderAction, RequestView};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};

/// A denied request's body is read (and dropped) up to this size so the connection stays usable.
const DRAIN_LIMIT: usize = 64 * 1024;
/// …and for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Shared state of all connections.
#[derive(Debug)]
pub(crate) struct Handler {
    pub(crate) policy: watch::Receiver<Arc<CompiledPolicy>>,
    /// HTTP/2 upstream pools (HTTP/1.1 upstreams belong to each [`ClientConn`]).
    pub(crate) h2: H2Pools,
    pub(crate) flows: mpsc::Sender<HttpFlowRecord>,
    /// The listener's own address, to refuse requests addressed to the proxy itself (a loop).
    pub(crate) listen: SocketAddr,
}

/// What the decision produced.
pub(crate) struct Allowed {
    /// The upstream socket's mark.
    pub(crate) mark: Mark,
    /// Header edits and log notes of the matched rules.
    pub(crate) actions: Vec<HeaderAction>,
}

/// A request's flow record before the verdict: the request as received.
pub(crate) fn new_record(ends: Ends, method: &str, host: String, path: String) -> HttpFlowRecord {
    HttpFlowRecord {
        time: SystemTime::now(),
        src: ends.src,
        dst: ends.dst,
        src_identity: 0,
        dst_identity: 0,
        method: method.to_owned(),
        host,
        path,
        verdict: FlowVerdict::Error,
        status: 0,
        latency: Duration::ZERO,
        notes: Vec::new(),
    }
}

impl Handler {
    /// Serves one request; never fails (errors become responses).
    pub(crate) async fn handle(
        self: Arc<Self>,
        conn: Arc<ClientConn>,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let ends = conn.ends;
        let start = Instant::now();
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let mut record = new_record(ends, req.method().as_str(), authority(&req), path);
        let grpc = is_grpc(&req);
        // Policy is read per request, so an update applies to the next request of an open
        // connection; the connection re-resolves its flow only when the policy changed.
        let flow = conn.flow(&self.policy.borrow());
        let result = match self.decide(&flow, ends, &mut record, req.method(), req.headers()) {
            Ok(allowed) => self.forward(&conn, req, allowed, &mut record).await,
            Err(reject) => {
                drain(req).await;
                Err(reject)
            }
        };
        let resp = match result {
            Ok(resp) => resp,
            Err(reject) => {
                let resp = reject.to_response(grpc);
                self.finish(record, start, resp.status(), Some(reject));
                return Ok(resp);
            }
        };
        self.finish(record, start, resp.status(), None);
        Ok(resp)
    }

    /// Completes a request's flow record (verdict from `reject`) and hands it to the agent.
    pub(crate) fn finish(
        &self,
        mut record: HttpFlowRecord,
        start: Instant,
        status: StatusCode,
        reject: Option<Reject>,
    ) {
        record.verdict = match &reject {
            None => FlowVerdict::Forwarded,
            Some(Reject::Denied) => FlowVerdict::Denied,
            Some(_) => FlowVerdict::Error,
        };
        if let Some(reject) = reject {
            record.notes.push(reject.reason());
        }
        record.status = status.as_u16();
        record.latency = start.elapsed();
        // Never block a request on a slow consumer: drop the record instead.
        let _ = self.flows.try_send(record);
    }

    /// Identities, normalization and the L7 verdict of both directions.
    pub(crate) fn decide(
        &self,
        flow: &FlowPolicy,
        ends: Ends,
        record: &mut HttpFlowRecord,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Allowed, Reject> {
        record.src_identity = flow.src_identity;
        record.dst_identity = flow.dst_identity;
        if self.is_self(ends.dst) {
            return Err(Reject::NoPolicy);
        }
        check_framing(headers)?;
        let path = normalize_path(&record.path).map_err(|e| Reject::BadRequest(e.to_string()))?;
        record.path = path;
        let FlowPolicy {
            ingress, egress, ..
        } = flow;
        if matches!(
            (ingress, egress),
            (DirectionPolicy::Absent, DirectionPolicy::Absent)
        ) {
            return Err(Reject::NoPolicy);
        }
        let view = RequestView {
            method: method.as_str(),
            path: &record.path,
            host: &record.host,
            headers,
        };
        let mut actions = Vec::new();
        // Both checks return an owned decision; chaining them keeps the first deny.
        for decision in [ingress.check(&view), egress.check(&view)]
            .into_iter()
            .flatten()
        {
            if !decision.allowed() {
                return Err(Reject::Denied);
            }
            actions.extend(decision.actions);
        }
        for action in &actions {
            if let HeaderAction::Log { name } = action {
                record.notes.push(format!("header mismatch: {name}"));
            }
        }
        // 0xa00 only when the destination's ingress rules alone decided; any egress rule → 0xb00.
        let mark = if !matches!(egress, DirectionPolicy::Filtered(_))
            && !matches!(ingress, DirectionPolicy::Absent)
        {
            Mark::Ingress
        } else {
            Mark::Egress
        };
        Ok(Allowed { mark, actions })
    }

    /// Sends the allowed request to the original destination and relays the response head;
    /// bodies stream through.
    async fn forward(
        &self,
        conn: &ClientConn,
        mut req: Request<Incoming>,
        allowed: Allowed,
        record: &mut HttpFlowRecord,
    ) -> Result<Response<ProxyBody>, Reject> {
        let dst = conn.ends.dst;
        let upgrade = hop::wants_upgrade(&req);
        let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        hop::strip(req.headers_mut(), upgrade);
        for action in &allowed.actions {
            action.apply(req.headers_mut());
        }
        let sent = if req.version() == Version::HTTP_2 && conn.h2_pool {
            let uri = format!("http://{dst}{}", record.path);
            *req.uri_mut() = Uri::try_from(uri).map_err(|e| Reject::BadRequest(e.to_string()))?;
            self.h2.send(allowed.mark, req).await
        } else {
            to_origin_form(&mut req, dst, &record.path)?;
            *req.version_mut() = Version::HTTP_11;
            conn.h1.send(allowed.mark, req).await
        };
        let mut resp = sent.map_err(|e| Reject::Upstream(error_chain(&e)))?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(down) = downstream_upgrade {
                tunnel(down, hyper::upgrade::on(&mut resp));
            }
        } else {
            hop::strip(resp.headers_mut(), false);
        }
        Ok(resp.map(|b| b.boxed_unsync()))
    }

    fn is_self(&self, dst: SocketAddr) -> bool {
        dst.port() == self.listen.port()
            && (self.listen.ip().is_unspecified() || dst.ip() == self.listen.ip())
    }
}

/// Rewrites an HTTP/1 request for the upstream connection: the normalized path in origin form
/// (authority form for `CONNECT`), and a `Host` naming the original destination when the client
/// sent none.
fn to_origin_form<B>(req: &mut Request<B>, dst: SocketAddr, path: &str) -> Result<(), Reject> {
    // Absolute form: the request-target's authority is the one that was judged, so it replaces
    // whatever `Host` the client sent (RFC 9112 §3.2.2), as Envoy does from `:authority`.
    if req.method() != Method::CONNECT {
        if let Some(auth) = req.uri().authority() {
            let value = HeaderValue::try_from(auth.as_str())
                .map_err(|e| Reject::BadRequest(e.to_string()))?;
            req.headers_mut().insert(header::HOST, value);
        }
    }
    let target = if req.method() == Method::CONNECT {
        Some(Uri::try_from(dst.to_string()))
    } else if req.uri().authority().is_some()
        || req.uri().path_and_query().map(|p| p.as_str()) != Some(path)
    {
        Some(Uri::try_from(path))
    } else {
        // Already origin form and already normal: nothing to rebuild.
        None
    };
    if let Some(uri) = target {
        *req.uri_mut() = uri.map_err(|e| Reject::BadRequest(e.to_string()))?;
    }
    if !req.headers().contains_key(header::HOST) {
        req.headers_mut().insert(header::HOST, default_host(dst)?);
    }
    Ok(())
}

/// The `Host` sent upstream for a request that carried none: the original destination.
pub(crate) fn default_host(dst: SocketAddr) -> Result<HeaderValue, Reject> {
    let host = match dst {
        SocketAddr::V4(a) if a.port() == 80 => a.ip().to_string(),
        SocketAddr::V6(a) if a.port() == 80 => format!("[{}]", a.ip()),
        other => other.to_string(),
    };
    HeaderValue::try_from(host).map_err(|e| Reject::BadRequest(e.to_string()))
}

/// Rejects requests whose meaning a server could read differently than the policy did: more
/// than one `Host` (RFC 9112 §3.2), or Content-Length together with Transfer-Encoding (the
/// request-smuggling shape, RFC 9112 §6.1).
fn check_framing(h: &HeaderMap) -> Result<(), Reject> {
    if h.get_all(header::HOST).iter().nth(1).is_some() {
        return Err(Reject::Malformed("more than one Host header".into()));
    }
    if h.contains_key(header::CONTENT_LENGTH) && h.contains_key(header::TRANSFER_ENCODING) {
        return Err(Reject::Malformed(
            "Content-Length and Transfer-Encoding together".into(),
        ));
    }
    Ok(())
}

/// Copies bytes both ways once both sides have switched protocols.
fn tunnel(down: hyper::upgrade::OnUpgrade, up: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (Ok(down), Ok(up)) = (down.await, up.await) else {
            tracing::debug!("upgrade did not complete");
            return;
        };
        let result =
            tokio::io::copy_bidirectional(&mut TokioIo::new(down), &mut TokioIo::new(up)).await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "upgraded connection ended");
        }
    });
}

/// Reads a rejected request's body away (bounded) so HTTP/1.1 keep-alive survives the answer.
async fn drain(req: Request<Incoming>) {
    let body = Limited::new(req.into_body(), DRAIN_LIMIT);
    let _ = tokio::time::timeout(DRAIN_TIME, body.collect()).await;
}

/// The authority as sent: `Host` for HTTP/1.1, `:authority` (in the URI) for HTTP/2.
fn authority<B>(req: &Request<B>) -> String {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
