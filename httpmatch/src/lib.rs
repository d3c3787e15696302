//! HTTP rule matching for the L7 proxy: Cilium's `rules.http[]` (method, path, host, headers,
//! headerMatches) and Envoy-like path normalization.
//!
//! Sits on the data path between the transparent proxy (`palisade-proxy`), which turns each
//! request into a [`RequestView`], and the upstream: the proxy normalizes the path with
//! [`normalize_path`], asks [`HttpRuleSet::check`] for a [`Decision`], then forwards or answers 403.
//! Pure: no I/O, no runtime, so it is table-tested and benchmarked alone.
#![forbid(unsafe_code)]

mod normalize;
mod ruleset;
mod spec;

pub use normalize::{normalize_path, PathError};
pub use ruleset::{Decision, HeaderAction, HttpRuleSet, RequestView};
pub use spec::{HeaderMatch, HttpRuleError, HttpRuleSpec, Mismatch};
