//! What TLS handling one flow gets, from the port entries that match it in both directions.
//!
//! Per direction: no matching entry, or any matching entry without TLS settings (a plain L7 or
//! L3/L4 allow for that peer), imposes nothing. Otherwise the direction requires the SNI to
//! match one of its entries' `serverNames` (an entry without `serverNames` accepts any), and
//! its `terminatingTLS`/`originatingTLS` apply. Ingress entries are consulted before egress.

use super::config::{CompiledTls, TlsConfigError};
use super::sni::SniPattern;
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;

/// TLS handling of one flow.
#[derive(Debug, Default)]
pub(crate) enum FlowTls {
    /// Plain HTTP, as without TLS settings.
    #[default]
    Plain,
    /// Plain HTTP from the client, TLS to the server (`originatingTLS` alone).
    Originate(Result<Arc<ClientConfig>, TlsConfigError>),
    /// TLS from the client: check SNI, then relay or terminate.
    Tls(Box<TlsFlow>),
}

/// A flow whose client speaks TLS.
#[derive(Debug)]
pub(crate) struct TlsFlow {
    /// One allow-list per direction that constrains the SNI; each must match.
    pub(crate) server_names: Vec<Vec<SniPattern>>,
    /// Terminate with this configuration (`None`: relay the TLS bytes unchanged).
    pub(crate) terminate: Option<Result<Arc<ServerConfig>, TlsConfigError>>,
    /// Re-encrypt upstream with this configuration (`None`: plain HTTP upstream).
    pub(crate) originate: Option<Result<Arc<ClientConfig>, TlsConfigError>>,
    /// An egress (source-side) entry is involved: upstream sockets carry the egress mark.
    pub(crate) egress: bool,
}

impl TlsFlow {
    /// Whether the ClientHello's SNI passes every direction's `serverNames`.
    pub(crate) fn sni_allowed(&self, sni: Option<&str>) -> bool {
        self.server_names
            .iter()
            .all(|names| sni.is_some_and(|sni| names.iter().any(|p| p.matches(sni))))
    }
}

/// A direction's entries when all of them carry TLS settings; `None` when it imposes nothing.
fn constraining<'a>(entries: &[Option<&'a Arc<CompiledTls>>]) -> Option<Vec<&'a Arc<CompiledTls>>> {
    (!entries.is_empty() && entries.iter().all(Option::is_some))
        .then(|| entries.iter().flatten().copied().collect())
}

impl FlowTls {
    /// Classifies a flow from the TLS settings of its matching entries per direction.
    pub(crate) fn classify(
        ingress: &[Option<&Arc<CompiledTls>>],
        egress: &[Option<&Arc<CompiledTls>>],
    ) -> FlowTls {
        let ingress = constraining(ingress);
        let egress = constraining(egress);
        let directions: Vec<&Vec<&Arc<CompiledTls>>> =
            ingress.iter().chain(egress.iter()).collect();
        if directions.is_empty() {
            return FlowTls::Plain;
        }
        let mut server_names = Vec::new();
        for entries in &directions {
            if entries.iter().all(|t| !t.server_names.is_empty()) {
                server_names.push(
                    entries
                        .iter()
                        .flat_map(|t| t.server_names.iter().cloned())
                        .collect(),
                );
            }
        }
        let all = || directions.iter().flat_map(|d| d.iter());
        let terminate = all().find_map(|t| t.terminate.clone());
        let originate = all().find_map(|t| t.originate.clone());
        if terminate.is_none() && server_names.is_empty() {
            return match originate {
                Some(o) => FlowTls::Originate(o),
                None => FlowTls::Plain,
            };
        }
        FlowTls::Tls(Box::new(TlsFlow {
            server_names,
            terminate,
            originate,
            egress: egress.is_some(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(names: &[&str], terminate: bool, originate: bool) -> Arc<CompiledTls> {
        let err = |role| TlsConfigError::Unavailable {
            role,
            secret: "ns/s".into(),
            reason: "test".into(),
        };
        Arc::new(CompiledTls {
            server_names: names.iter().map(|n| SniPattern::new(n)).collect(),
            terminate: terminate.then(|| Err(err(super::super::TlsRole::Terminating))),
            originate: originate.then(|| Err(err(super::super::TlsRole::Originating))),
        })
    }

    fn flow(
        ingress: &[Option<&Arc<CompiledTls>>],
        egress: &[Option<&Arc<CompiledTls>>],
    ) -> FlowTls {
        FlowTls::classify(ingress, egress)
    }

    #[test]
    fn classification() {
        let sni = tls(&["a.example.com"], false, false);
        let other = tls(&["b.example.com"], false, false);
        let term = tls(&[], true, true);
        let orig = tls(&[], false, true);

        assert!(matches!(flow(&[], &[]), FlowTls::Plain));
        // A plain entry for the same peer in the direction lifts its TLS requirement.
        assert!(matches!(flow(&[Some(&sni), None], &[]), FlowTls::Plain));
        assert!(matches!(
            flow(&[], &[Some(&orig)]),
            FlowTls::Originate(Err(_))
        ));

        let FlowTls::Tls(f) = flow(&[Some(&sni), Some(&other)], &[]) else {
            panic!("SNI entries make a TLS flow");
        };
        assert!(f.sni_allowed(Some("a.example.com")));
        assert!(f.sni_allowed(Some("b.example.com")));
        assert!(!f.sni_allowed(Some("c.example.com")));
        assert!(!f.sni_allowed(None), "no SNI when one is required");
        assert!(f.terminate.is_none() && !f.egress);

        // Both directions constrain: both must match.
        let FlowTls::Tls(f) = flow(&[Some(&sni)], &[Some(&other)]) else {
            panic!("TLS flow");
        };
        assert!(!f.sni_allowed(Some("a.example.com")));
        assert!(f.egress);

        // An entry without serverNames accepts any SNI (and none).
        let FlowTls::Tls(f) = flow(&[], &[Some(&term), Some(&sni)]) else {
            panic!("TLS flow");
        };
        assert!(f.sni_allowed(None));
        assert!(matches!(f.terminate, Some(Err(_))));
        assert!(matches!(f.originate, Some(Err(_))));
    }
}
