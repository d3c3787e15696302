//! Palisade's local API: how the agent is observed and asked questions.
//!
//! Sits beside the data path, not on it: the agent implements [`AgentApi`] and serves it on a
//! root-only unix socket ([`serve_api`]); the CLI talks to it with [`Client`] and prints the
//! answers with the [`render`] tables (or as JSON). [`Metrics`] is the agent's Prometheus
//! registry, served over TCP by [`serve_metrics`]. The view types are plain serde data with
//! no dependency on the other palisade crates.

#![forbid(unsafe_code)]

mod client;
mod error;
mod flow;
mod http_util;
mod metrics;
pub mod render;
mod server;
mod views;

pub use client::{Client, FlowStream, DEFAULT_SOCKET};
pub use error::{ApiError, ClientError};
pub use flow::{FlowEvent, FlowKind, MonitorFilter};
pub use metrics::{serve_metrics, Metrics, MetricsServer, DEFAULT_METRICS_ADDR};
pub use server::{serve_api, AgentApi};
pub use views::{
    BpfPolicyEntryView, DatapathStatus, DirectionView, EndpointDetail, EndpointView, FqdnCacheView,
    IdentityView, PolicyEntryView, PolicyListView, PolicyView, ProxiesStatus, StatusView,
    TraceRequest, TraceView,
};
