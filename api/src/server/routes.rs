//! Request routing: path → route with `matchit`, method check, and one handler per route.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;

use super::{monitor, AgentApi};
use crate::flow::MonitorFilter;
use crate::http_util::{error, full, json, with_type, Body};
use crate::views::TraceRequest;

/// Largest request body accepted (trace requests are small).
const MAX_BODY: usize = 1 << 20;

/// Every route the API serves.
#[derive(Debug, Clone, Copy)]
enum Route {
    Healthz,
    Status,
    Identities,
    Identity,
    Endpoints,
    Endpoint,
    Policies,
    Trace,
    BpfPolicy,
    FqdnCache,
    Monitor,
}

/// Path patterns; endpoint names contain `/`, hence the catch-alls.
const ROUTES: &[(&str, Method, Route)] = &[
    ("/healthz", Method::GET, Route::Healthz),
    ("/v1/status", Method::GET, Route::Status),
    ("/v1/identities", Method::GET, Route::Identities),
    ("/v1/identities/{id}", Method::GET, Route::Identity),
    ("/v1/endpoints", Method::GET, Route::Endpoints),
    ("/v1/endpoints/{*name}", Method::GET, Route::Endpoint),
    ("/v1/policies", Method::GET, Route::Policies),
    ("/v1/trace", Method::POST, Route::Trace),
    ("/v1/bpf/policy/{*name}", Method::GET, Route::BpfPolicy),
    ("/v1/fqdn/cache", Method::GET, Route::FqdnCache),
    ("/v1/monitor", Method::GET, Route::Monitor),
];

/// The compiled route table.
pub(crate) struct Router {
    inner: matchit::Router<(Method, Route)>,
}

impl Router {
    /// Compiles [`ROUTES`].
    pub(crate) fn new() -> Router {
        let mut inner = matchit::Router::new();
        for (path, method, route) in ROUTES {
            // The table is static; a conflict is a programming error caught by every test.
            inner
                .insert(*path, (method.clone(), *route))
                .expect("route table has no conflicts");
        }
        Router { inner }
    }

    /// Answers one request.
    pub(crate) async fn handle(
        &self,
        api: Arc<dyn AgentApi>,
        req: Request<Incoming>,
    ) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let Ok(matched) = self.inner.at(&path) else {
            return error(
                StatusCode::NOT_FOUND,
                format!("no route for {} {path}", req.method()),
            );
        };
        let (method, route) = matched.value.clone();
        if req.method() != method {
            let mut resp = error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} accepts {method}, not {}", req.method()),
            );
            if let Ok(v) = http::HeaderValue::from_str(method.as_str()) {
                resp.headers_mut().insert(http::header::ALLOW, v);
            }
            return resp;
        }
        let param = |name| {
            matched
                .params
                .get(name)
                .map(|raw| percent_decode_str(raw).decode_utf8_lossy().into_owned())
                .unwrap_or_default()
        };
        match route {
            Route::Healthz => with_type(StatusCode::OK, "text/plain", full("ok\n")),
            Route::Status => blocking(api, |a| json(&a.status())).await,
            Route::Identities => blocking(api, |a| json(&a.identities())).await,
            Route::Identity => identity(api, &param("id")).await,
            Route::Endpoints => blocking(api, |a| json(&a.endpoints())).await,
            Route::Endpoint => {
                let name = param("name");
                blocking(api, move |a| match a.endpoint(&name) {
                    Some(d) => json(&d),
                    None => error(StatusCode::NOT_FOUND, format!("endpoint {name} not found")),
                })
                .await
            }
            Route::Policies => blocking(api, |a| json(&a.policies())).await,
            Route::Trace => trace(api, req).await,
            Route::BpfPolicy => {
                let name = param("name");
                blocking(api, move |a| match a.bpf_policy(&name) {
                    Ok(entries) => json(&entries),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
                })
                .await
            }
            Route::FqdnCache => blocking(api, |a| json(&a.fqdn_cache())).await,
            Route::Monitor => {
                match MonitorFilter::from_query(req.uri().query().unwrap_or_default()) {
                    Ok(filter) => monitor::stream(api.subscribe_flows(), filter),
                    Err(e) => error(StatusCode::BAD_REQUEST, e),
                }
            }
        }
    }
}

/// `GET /v1/identities/{id}`: the id must be a number.
async fn identity(api: Arc<dyn AgentApi>, raw: &str) -> Response<Body> {
    let Ok(id) = raw.parse::<u32>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("identity must be a number, got {raw:?}"),
        );
    };
    blocking(api, move |a| match a.identity(id) {
        Some(v) => json(&v),
        None => error(StatusCode::NOT_FOUND, format!("identity {id} not found")),
    })
    .await
}

/// `POST /v1/trace`: reads and decodes the JSON body, then asks the agent.
async fn trace(api: Arc<dyn AgentApi>, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading body: {e}")),
    };
    let trace_req: TraceRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid trace request JSON: {e}"),
            )
        }
    };
    blocking(api, move |a| match a.trace(trace_req) {
        Ok(v) => json(&v),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    })
    .await
}

/// Runs an agent call on the blocking pool (the trait is synchronous by design).
async fn blocking<F>(api: Arc<dyn AgentApi>, f: F) -> Response<Body>
where
    F: FnOnce(&dyn AgentApi) -> Response<Body> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || f(api.as_ref())).await {
        Ok(resp) => resp,
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("agent handler failed: {e}"),
        ),
    }
}
