//! The CLI side of the local API: HTTP/1.1 over the agent's unix socket.
//!
//! One connection per request (the CLI makes one or two calls), so there is no pool to
//! manage. Errors are worded for the person at the terminal: missing socket, not root,
//! or the agent's own message.

mod stream;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::{de::DeserializeOwned, Serialize};
use tokio::net::UnixStream;

pub use self::stream::FlowStream;
use crate::error::ClientError;
use crate::flow::MonitorFilter;
use crate::http_util::ErrorBody;
use crate::views::{
    BpfPolicyEntryView, EndpointDetail, EndpointView, FqdnCacheView, IdentityView, PolicyListView,
    StatusView, TraceRequest, TraceView,
};

/// Default socket path of the agent's API.
pub const DEFAULT_SOCKET: &str = "/var/run/palisade/palisade.sock";

/// Characters escaped in a path segment; `/` stays, it separates namespace and name.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A client of the agent's API on one unix socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the socket at `socket` (nothing is opened yet).
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET path` and decode the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.send(Method::GET, path, None).await?;
        Ok(serde_json::from_slice(&body.collect().await?.to_bytes())?)
    }

    /// `POST path` with `body` as JSON and decode the JSON answer.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = Bytes::from(serde_json::to_vec(body)?);
        let answer = self.send(Method::POST, path, Some(bytes)).await?;
        Ok(serde_json::from_slice(&answer.collect().await?.to_bytes())?)
    }

    /// Streams flow events matching `filter` (`GET /v1/monitor`).
    pub async fn monitor(&self, filter: &MonitorFilter) -> Result<FlowStream, ClientError> {
        let query = filter.to_query();
        let path = if query.is_empty() {
            "/v1/monitor".to_owned()
        } else {
            format!("/v1/monitor?{query}")
        };
        let body = self.send(Method::GET, &path, None).await?;
        Ok(FlowStream::new(body))
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusView, ClientError> {
        self.get("/v1/status").await
    }

    /// `GET /v1/identities`.
    pub async fn identities(&self) -> Result<Vec<IdentityView>, ClientError> {
        self.get("/v1/identities").await
    }

    /// `GET /v1/identities/{id}`.
    pub async fn identity(&self, id: u32) -> Result<IdentityView, ClientError> {
        self.get(&format!("/v1/identities/{id}")).await
    }

    /// `GET /v1/endpoints`.
    pub async fn endpoints(&self) -> Result<Vec<EndpointView>, ClientError> {
        self.get("/v1/endpoints").await
    }

    /// `GET /v1/endpoints/{name}`, `name` being `namespace/pod`.
    pub async fn endpoint(&self, name: &str) -> Result<EndpointDetail, ClientError> {
        self.get(&format!("/v1/endpoints/{}", encode(name))).await
    }

    /// `GET /v1/policies`.
    pub async fn policies(&self) -> Result<PolicyListView, ClientError> {
        self.get("/v1/policies").await
    }

    /// `POST /v1/trace`.
    pub async fn trace(&self, req: &TraceRequest) -> Result<TraceView, ClientError> {
        self.post("/v1/trace", req).await
    }

    /// `GET /v1/bpf/policy/{endpoint}`.
    pub async fn bpf_policy(&self, endpoint: &str) -> Result<Vec<BpfPolicyEntryView>, ClientError> {
        self.get(&format!("/v1/bpf/policy/{}", encode(endpoint)))
            .await
    }

    /// `GET /v1/fqdn/cache`.
    pub async fn fqdn_cache(&self) -> Result<Vec<FqdnCacheView>, ClientError> {
        self.get("/v1/fqdn/cache").await
    }

    /// Sends one request on a fresh connection; non-2xx answers become [`ClientError::Agent`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Incoming, ClientError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| ClientError::from_connect(self.socket.clone(), e))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection task ends by itself once the response body is consumed or dropped.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "API client connection ended with an error");
            }
        });
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "palisade");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let req = builder.body(Full::new(body.unwrap_or_default()))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.into_body());
        }
        let bytes = resp.into_body().collect().await?.to_bytes();
        Err(agent_error(status, &bytes))
    }
}

/// Turns an error answer into [`ClientError::Agent`], keeping the agent's message.
fn agent_error(status: StatusCode, body: &[u8]) -> ClientError {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    ClientError::Agent {
        status: status.as_u16(),
        message,
    }
}

/// Percent-encodes a name for use as (the tail of) a path.
fn encode(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}
