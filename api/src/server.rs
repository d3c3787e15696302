//! The agent side of the local API: the [`AgentApi`] trait the agent implements and
//! [`serve_api`], which serves it as JSON over HTTP/1.1 on a root-only unix socket.
//!
//! Routes (all JSON; errors are `{"error": "..."}`):
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | GET | `/healthz` | `ok` (liveness/readiness) |
//! | GET | `/v1/status` | [`StatusView`] |
//! | GET | `/v1/identities` | `[IdentityView]` |
//! | GET | `/v1/identities/{id}` | [`IdentityView`] or 404 |
//! | GET | `/v1/endpoints` | `[EndpointView]` |
//! | GET | `/v1/endpoints/{ns/name}` | [`EndpointDetail`] or 404 |
//! | GET | `/v1/policies` | [`PolicyListView`] |
//! | POST | `/v1/trace` | [`TraceView`]; body [`TraceRequest`] |
//! | GET | `/v1/bpf/policy/{ns/name}` | `[BpfPolicyEntryView]` |
//! | GET | `/v1/fqdn/cache` | `[FqdnCacheView]` |
//! | GET | `/v1/monitor?endpoint=&verdict=&type=` | NDJSON stream of [`FlowEvent`] |

mod monitor;
mod routes;
mod socket;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::flow::FlowEvent;
use crate::views::{
    BpfPolicyEntryView, EndpointDetail, EndpointView, FqdnCacheView, IdentityView, PolicyListView,
    StatusView, TraceRequest, TraceView,
};

/// What the agent exposes; one method per route.
///
/// Methods are synchronous and run on tokio's blocking pool, so an implementation may take
/// std locks, read kernel maps, or `block_on` freely.
pub trait AgentApi: Send + Sync + 'static {
    /// `GET /v1/status`.
    fn status(&self) -> StatusView;
    /// `GET /v1/identities`: every identity, reserved ones included.
    fn identities(&self) -> Vec<IdentityView>;
    /// `GET /v1/identities/{id}`; `None` answers 404.
    fn identity(&self, id: u32) -> Option<IdentityView>;
    /// `GET /v1/endpoints`.
    fn endpoints(&self) -> Vec<EndpointView>;
    /// `GET /v1/endpoints/{name}` with `name` = `namespace/pod`; `None` answers 404.
    fn endpoint(&self, name: &str) -> Option<EndpointDetail>;
    /// `GET /v1/policies`.
    fn policies(&self) -> PolicyListView;
    /// `POST /v1/trace`; an `Err` (e.g. unknown source) answers 400 with the message.
    fn trace(&self, req: TraceRequest) -> Result<TraceView, String>;
    /// `GET /v1/bpf/policy/{endpoint}`: the decoded kernel policy map; an `Err` (unknown
    /// endpoint, map read failure) answers 500 with the message.
    fn bpf_policy(&self, endpoint: &str) -> Result<Vec<BpfPolicyEntryView>, String>;
    /// `GET /v1/fqdn/cache`.
    fn fqdn_cache(&self) -> Vec<FqdnCacheView>;
    /// A new receiver on the agent's flow broadcast channel (`GET /v1/monitor`).
    fn subscribe_flows(&self) -> broadcast::Receiver<FlowEvent>;
}

/// Serves `api` on the unix socket `socket` until `shutdown` resolves.
///
/// The parent directory is created with mode 0700 when missing; a stale socket is removed
/// (but a live agent on it is an error); the socket appears already at mode 0600, root only,
/// because it is bound under a temporary name, chmod-ed and then renamed into place. The
/// socket file is removed on shutdown.
pub async fn serve_api(
    socket: &Path,
    api: Arc<dyn AgentApi>,
    shutdown: impl Future,
) -> Result<(), ApiError> {
    let listener = socket::bind(socket)?;
    tracing::info!(socket = %socket.display(), "API listening");
    let router = Arc::new(routes::Router::new());
    let handler = move |req| {
        let api = api.clone();
        let router = router.clone();
        async move { router.handle(api, req).await }
    };
    crate::http_util::serve_loop(listener, handler, shutdown).await;
    // Best effort: the next start removes a stale socket anyway.
    let _ = std::fs::remove_file(socket);
    Ok(())
}
