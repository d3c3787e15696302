//! TLS to the original destination (`originatingTLS`): the server's certificate must chain to
//! the secret's trusted CAs and name the host the client asked for: its SNI, else (a plain
//! client) the `Host` of the request that opens the upstream connection, else the destination
//! address.

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How one connection's upstream TLS is opened.
#[derive(Clone)]
pub(crate) struct TlsOrigin {
    connector: TlsConnector,
    /// The client's SNI, when it sent one.
    sni: Option<ServerName<'static>>,
    dst: IpAddr,
}

impl std::fmt::Debug for TlsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOrigin")
            .field("sni", &self.sni)
            .field("dst", &self.dst)
            .finish()
    }
}

impl TlsOrigin {
    /// Verifies the server as `sni` when given (and valid), else as described above.
    pub(crate) fn new(config: Arc<ClientConfig>, sni: Option<&str>, dst: IpAddr) -> TlsOrigin {
        TlsOrigin {
            connector: TlsConnector::from(config),
            sni: sni.and_then(|s| ServerName::try_from(s.to_string()).ok()),
            dst,
        }
    }

    /// The name the server must prove: SNI, else `host` without its port, else the address.
    fn server_name(&self, host: Option<&str>) -> ServerName<'static> {
        if let Some(sni) = &self.sni {
            return sni.clone();
        }
        host.map(strip_port)
            .and_then(|h| ServerName::try_from(h.to_string()).ok())
            .unwrap_or(ServerName::IpAddress(self.dst.into()))
    }

    /// Runs the TLS handshake over a connected socket; fails when the server is not trusted.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
        host: Option<&str>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.server_name(host), tcp).await
    }
}

/// `name:port` → `name`, `[v6]:port` → `v6`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_prefers_sni_then_host_then_address() {
        let config = crate::tls::config::tests_support::client();
        let dst: IpAddr = "10.0.0.1".parse().unwrap();
        let name = |s: &str| ServerName::try_from(s.to_string()).unwrap();
        let with_sni = TlsOrigin::new(config.clone(), Some("api.example"), dst);
        assert_eq!(with_sni.server_name(Some("other:443")), name("api.example"));
        let plain = TlsOrigin::new(config, None, dst);
        assert_eq!(
            plain.server_name(Some("web.example:8443")),
            name("web.example")
        );
        assert_eq!(plain.server_name(Some("web.example")), name("web.example"));
        assert_eq!(plain.server_name(Some("[fd00::1]:443")), name("fd00::1"));
        assert_eq!(plain.server_name(None), ServerName::IpAddress(dst.into()));
    }
}
