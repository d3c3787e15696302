//! TLS to the original destination (`originatingTLS`): the server's certificate must chain to
//! the secret's trusted CAs and name the host the client asked for (its SNI), or the
//! destination address when the client sent no name.

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
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOrigin")
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsOrigin {
    /// Verifies the server as `sni` when given (and valid), else as the address `dst`.
    pub(crate) fn new(config: Arc<ClientConfig>, sni: Option<&str>, dst: IpAddr) -> TlsOrigin {
        let server_name = sni
            .and_then(|s| ServerName::try_from(s.to_string()).ok())
            .unwrap_or(ServerName::IpAddress(dst.into()));
        TlsOrigin {
            connector: TlsConnector::from(config),
            server_name,
        }
    }

    /// Runs the TLS handshake over a connected socket; fails when the server is not trusted.
    pub(crate) async fn connect(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.server_name.clone(), tcp).await
    }
}
