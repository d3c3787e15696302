//! rustls configurations built from a snapshot's PEM material, once per policy revision. A
//! bad or missing secret is kept as an error on its port, which then fails closed.

use crate::snapshot::{TlsL7, TlsMaterial};
use crate::tls::sni::SniPattern;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::{Arc, OnceLock};

/// Which side of the proxy a TLS secret configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRole {
    /// `terminatingTLS`: the certificate and key presented to the client.
    Terminating,
    /// `originatingTLS`: the CA bundle the server is verified with.
    Originating,
}

impl std::fmt::Display for TlsRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsRole::Terminating => "terminatingTLS",
            TlsRole::Originating => "originatingTLS",
        })
    }
}

/// Why a TLS secret cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The agent could not read the secret (not configured, unreadable file).
    #[error("{role} secret {secret}: {reason}")]
    Unavailable {
        /// Role of the secret.
        role: TlsRole,
        /// `namespace/name`.
        secret: String,
        /// The agent's explanation.
        reason: String,
    },
    /// An item the role needs is absent.
    #[error("{role} secret {secret}: no {item} item")]
    MissingItem {
        /// Role of the secret.
        role: TlsRole,
        /// `namespace/name`.
        secret: String,
        /// `certificate`, `privateKey` or `trustedCA`.
        item: &'static str,
    },
    /// An item holds no usable PEM block.
    #[error("{role} secret {secret}: {item}: {reason}")]
    BadPem {
        /// Role of the secret.
        role: TlsRole,
        /// `namespace/name`.
        secret: String,
        /// `certificate`, `privateKey` or `trustedCA`.
        item: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the material (key does not match the certificate, unsupported key).
    #[error("{role} secret {secret}: {reason}")]
    Rejected {
        /// Role of the secret.
        role: TlsRole,
        /// `namespace/name`.
        secret: String,
        /// rustls' error.
        reason: String,
    },
}

/// Checks that `material` can configure `role`, as the proxy will build it.
pub fn check_material(role: TlsRole, material: &TlsMaterial) -> Result<(), TlsConfigError> {
    match role {
        TlsRole::Terminating => server_config(material).map(drop),
        TlsRole::Originating => client_config(material).map(drop),
    }
}

/// One port rule's TLS settings, compiled.
#[derive(Debug)]
pub(crate) struct CompiledTls {
    /// Allowed SNI patterns; empty = SNI not checked.
    pub(crate) server_names: Vec<SniPattern>,
    /// The terminating configuration, or why there is none.
    pub(crate) terminate: Option<Result<Arc<ServerConfig>, TlsConfigError>>,
    /// The originating configuration, or why there is none.
    pub(crate) originate: Option<Result<Arc<ClientConfig>, TlsConfigError>>,
}

impl CompiledTls {
    /// Compiles the settings; errors are logged with `context` (endpoint, direction, port)
    /// and kept, so connections on this port are reset.
    pub(crate) fn compile(spec: &TlsL7, context: &str) -> CompiledTls {
        let log = |e: &TlsConfigError| {
            tracing::error!("{context}: {e}; connections on this port are reset");
        };
        let terminate = spec.terminating.as_ref().map(|m| {
            let r = server_config(m);
            r.as_ref().err().map(log);
            r
        });
        let originate = spec.originating.as_ref().map(|m| {
            let r = client_config(m);
            r.as_ref().err().map(log);
            r
        });
        CompiledTls {
            server_names: spec
                .server_names
                .iter()
                .map(|n| SniPattern::new(n))
                .collect(),
            terminate,
            originate,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn unavailable(role: TlsRole, m: &TlsMaterial) -> Result<(), TlsConfigError> {
    match &m.error {
        Some(reason) => Err(TlsConfigError::Unavailable {
            role,
            secret: m.secret.clone(),
            reason: reason.clone(),
        }),
        None => Ok(()),
    }
}

fn item<'a>(
    role: TlsRole,
    m: &'a TlsMaterial,
    value: &'a Option<String>,
    name: &'static str,
) -> Result<&'a [u8], TlsConfigError> {
    value
        .as_deref()
        .map(str::as_bytes)
        .ok_or_else(|| TlsConfigError::MissingItem {
            role,
            secret: m.secret.clone(),
            item: name,
        })
}

fn certificates(
    role: TlsRole,
    m: &TlsMaterial,
    pem: &[u8],
    name: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let bad = |reason: String| TlsConfigError::BadPem {
        role,
        secret: m.secret.clone(),
        item: name,
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The server side: certificate chain and key, ALPN h2 and http/1.1.
pub(crate) fn server_config(m: &TlsMaterial) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let role = TlsRole::Terminating;
    unavailable(role, m)?;
    let chain = certificates(
        role,
        m,
        item(role, m, &m.certificate, "certificate")?,
        "certificate",
    )?;
    let key_pem = item(role, m, &m.private_key, "privateKey")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsConfigError::BadPem {
        role,
        secret: m.secret.clone(),
        item: "privateKey",
        reason: e.to_string(),
    })?;
    let rejected = |e: rustls::Error| TlsConfigError::Rejected {
        role,
        secret: m.secret.clone(),
        reason: e.to_string(),
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(rejected)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client side: the server is verified against the trusted CAs only (never the system
/// store), HTTP/1.1 upstream.
pub(crate) fn client_config(m: &TlsMaterial) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let role = TlsRole::Originating;
    unavailable(role, m)?;
    let cas = certificates(
        role,
        m,
        item(role, m, &m.trusted_ca, "trustedCA")?,
        "trustedCA",
    )?;
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| TlsConfigError::BadPem {
            role,
            secret: m.secret.clone(),
            item: "trustedCA",
            reason: e.to_string(),
        })?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Rejected {
            role,
            secret: m.secret.clone(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Configurations for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    /// A client configuration trusting one made-up CA.
    pub(crate) fn client() -> std::sync::Arc<rustls::ClientConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        super::client_config(&crate::TlsMaterial {
            secret: "test/ca".into(),
            trusted_ca: Some(ca.pem()),
            ..Default::default()
        })
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(cert: Option<String>, key: Option<String>, ca: Option<String>) -> TlsMaterial {
        TlsMaterial {
            secret: "default/web".into(),
            certificate: cert,
            private_key: key,
            trusted_ca: ca,
            error: None,
        }
    }

    fn leaf(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn good_material_builds_both_sides() {
        let (cert, key) = leaf("a.example");
        let server = server_config(&material(Some(cert.clone()), Some(key), None)).unwrap();
        assert_eq!(
            server.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let client = client_config(&material(None, None, Some(cert))).unwrap();
        assert_eq!(client.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn bad_material_names_the_secret_and_item() {
        let (cert, key) = leaf("a.example");
        let (_, other_key) = leaf("b.example");
        let cases: Vec<(TlsRole, TlsMaterial, &str)> = vec![
            (
                TlsRole::Terminating,
                material(None, Some(key.clone()), None),
                "terminatingTLS secret default/web: no certificate item",
            ),
            (
                TlsRole::Terminating,
                material(Some(cert.clone()), None, None),
                "terminatingTLS secret default/web: no privateKey item",
            ),
            (
                TlsRole::Terminating,
                material(Some("not pem".into()), Some(key.clone()), None),
                "terminatingTLS secret default/web: certificate: no PEM CERTIFICATE block",
            ),
            (
                TlsRole::Terminating,
                material(Some(cert.clone()), Some(cert.clone()), None),
                "terminatingTLS secret default/web: privateKey:",
            ),
            (
                TlsRole::Terminating,
                material(Some(cert.clone()), Some(other_key), None),
                "terminatingTLS secret default/web:",
            ),
            (
                TlsRole::Originating,
                material(Some(cert), Some(key), None),
                "originatingTLS secret default/web: no trustedCA item",
            ),
            (
                TlsRole::Originating,
                TlsMaterial {
                    error: Some("not found in palisade.yaml".into()),
                    ..material(None, None, None)
                },
                "originatingTLS secret default/web: not found in palisade.yaml",
            ),
        ];
        for (role, m, want) in cases {
            let err = check_material(role, &m).expect_err(want).to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }
}
