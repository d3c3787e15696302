//! Flow events (`palisade monitor`) and the filter applied to the stream.
//!
//! The agent publishes one [`FlowEvent`] per datapath drop/allow notification, proxied HTTP
//! request and DNS query on a `tokio::sync::broadcast` channel; `GET /v1/monitor` streams the
//! ones matching a [`MonitorFilter`] as NDJSON.

use serde::{Deserialize, Serialize};

/// What produced a flow event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    /// The datapath dropped a packet.
    Drop,
    /// The datapath allowed (forwarded) a new flow.
    Allow,
    /// The HTTP proxy handled a request.
    L7Http,
    /// The DNS proxy handled a query.
    Dns,
}

impl FlowKind {
    /// Name used in JSON and in the `type=` filter.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Drop => "drop",
            FlowKind::Allow => "allow",
            FlowKind::L7Http => "l7-http",
            FlowKind::Dns => "dns",
        }
    }

    /// Parses a `type=` filter value; `l7` and `http` are accepted for [`FlowKind::L7Http`].
    pub fn parse(s: &str) -> Option<FlowKind> {
        match s.to_ascii_lowercase().as_str() {
            "drop" => Some(FlowKind::Drop),
            "allow" | "trace" => Some(FlowKind::Allow),
            "l7-http" | "l7" | "http" => Some(FlowKind::L7Http),
            "dns" => Some(FlowKind::Dns),
            _ => None,
        }
    }
}

/// One observed flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEvent {
    /// Wall-clock time, unix milliseconds.
    pub time_unix_ms: u64,
    /// What produced the event.
    pub kind: FlowKind,
    /// `FORWARDED`, `DROPPED`, `DENIED` (403), `REFUSED` (DNS), ...
    pub verdict: String,
    /// Why: `Policy denied`, `policy-verdict`, `http-request`, `dns-request`, ...
    pub reason: String,
    /// `ingress` or `egress`, relative to `endpoint`.
    pub direction: String,
    /// The local endpoint the event belongs to (`namespace/pod`).
    pub endpoint: String,
    /// Source, `name:port` or `ip:port`.
    pub src: String,
    /// Destination, `name:port` or `ip:port`.
    pub dst: String,
    /// Source security identity.
    pub src_identity: u32,
    /// Destination security identity.
    pub dst_identity: u32,
    /// `TCP`, `UDP`, `ICMP`.
    pub proto: String,
    /// One-line summary, e.g. `GET http://service/private => 403`.
    pub summary: String,
    /// Endpoint owning the source address (`namespace/pod`), empty when none.
    #[serde(default)]
    pub src_endpoint: String,
    /// Endpoint owning the destination address, empty when none.
    #[serde(default)]
    pub dst_endpoint: String,
}

/// Which events `GET /v1/monitor` streams; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitorFilter {
    /// Endpoint name: matches `endpoint`, or `src`/`dst` equal to it or to `it:port`.
    pub endpoint: Option<String>,
    /// Verdict, compared case-insensitively.
    pub verdict: Option<String>,
    /// Event kind.
    pub kind: Option<FlowKind>,
}

impl MonitorFilter {
    /// True when `ev` passes every set criterion.
    pub fn matches(&self, ev: &FlowEvent) -> bool {
        let endpoint_ok = self.endpoint.as_deref().is_none_or(|name| {
            ev.endpoint == name
                || ev.src_endpoint == name
                || ev.dst_endpoint == name
                || addr_is(&ev.src, name)
                || addr_is(&ev.dst, name)
        });
        let verdict_ok = self
            .verdict
            .as_deref()
            .is_none_or(|v| ev.verdict.eq_ignore_ascii_case(v));
        let kind_ok = self.kind.is_none_or(|k| ev.kind == k);
        endpoint_ok && verdict_ok && kind_ok
    }

    /// Query string for `GET /v1/monitor` (empty when nothing is filtered).
    pub fn to_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(e) = &self.endpoint {
            q.append_pair("endpoint", e);
        }
        if let Some(v) = &self.verdict {
            q.append_pair("verdict", v);
        }
        if let Some(k) = self.kind {
            q.append_pair("type", k.as_str());
        }
        q.finish()
    }

    /// Parses the query string of `GET /v1/monitor`; unknown keys and bad types are errors.
    pub fn from_query(query: &str) -> Result<MonitorFilter, String> {
        let mut f = MonitorFilter::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            // An empty value means "not filtered", as in `?endpoint=&type=drop`.
            if value.is_empty() {
                continue;
            }
            match key.as_ref() {
                "endpoint" => f.endpoint = Some(value.into_owned()),
                "verdict" => f.verdict = Some(value.into_owned()),
                "type" => {
                    f.kind = Some(FlowKind::parse(&value).ok_or_else(|| {
                        format!("unknown event type {value:?} (want drop, allow, l7-http, dns)")
                    })?)
                }
                other => return Err(format!("unknown monitor filter {other:?}")),
            }
        }
        Ok(f)
    }
}

/// `addr` is `name` itself or `name:port`.
fn addr_is(addr: &str, name: &str) -> bool {
    addr.strip_prefix(name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: FlowKind, verdict: &str, endpoint: &str, src: &str, dst: &str) -> FlowEvent {
        FlowEvent {
            time_unix_ms: 0,
            kind,
            verdict: verdict.into(),
            reason: String::new(),
            direction: "ingress".into(),
            endpoint: endpoint.into(),
            src: src.into(),
            dst: dst.into(),
            src_identity: 0,
            dst_identity: 0,
            proto: "TCP".into(),
            summary: String::new(),
            src_endpoint: String::new(),
            dst_endpoint: String::new(),
        }
    }

    #[test]
    fn filter_matches_each_field() {
        let e = ev(
            FlowKind::Drop,
            "DROPPED",
            "default/service",
            "default/client-dev:4000",
            "default/service:80",
        );
        let by_src = MonitorFilter {
            endpoint: Some("default/client-dev".into()),
            ..Default::default()
        };
        assert!(
            by_src.matches(&e),
            "src name:port must match the endpoint filter"
        );
        let prefix_only = MonitorFilter {
            endpoint: Some("default/client".into()),
            ..Default::default()
        };
        assert!(
            !prefix_only.matches(&e),
            "a name prefix is not the endpoint"
        );
        let verdict = MonitorFilter {
            verdict: Some("dropped".into()),
            kind: Some(FlowKind::Drop),
            ..Default::default()
        };
        assert!(verdict.matches(&e), "verdict compares case-insensitively");
        let other_kind = MonitorFilter {
            kind: Some(FlowKind::Dns),
            ..Default::default()
        };
        assert!(!other_kind.matches(&e), "kind filter must exclude drops");
    }

    #[test]
    fn query_round_trip_and_errors() {
        let f = MonitorFilter {
            endpoint: Some("default/client-prod".into()),
            verdict: Some("DROPPED".into()),
            kind: Some(FlowKind::L7Http),
        };
        assert_eq!(MonitorFilter::from_query(&f.to_query()), Ok(f));
        assert_eq!(
            MonitorFilter::from_query("endpoint=&verdict=&type="),
            Ok(MonitorFilter::default())
        );
        let err = MonitorFilter::from_query("type=bogus").unwrap_err();
        assert!(
            err.contains("bogus"),
            "error must name the bad value: {err}"
        );
        assert!(
            MonitorFilter::from_query("color=red").is_err(),
            "unknown key must fail"
        );
    }
}
