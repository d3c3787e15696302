//! Reading a ClientHello without answering it (rustls' `Acceptor`), keeping every byte so
//! the connection can be relayed or terminated afterwards, and matching its SNI against
//! `serverNames`.

use rustls::server::Acceptor;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest ClientHello accepted (several records); more is not a ClientHello worth reading.
const MAX_HELLO: usize = 64 * 1024;

/// A ClientHello read off a connection.
#[derive(Debug)]
pub(crate) struct ClientHello {
    /// Every byte read so far, to be replayed.
    pub(crate) bytes: Vec<u8>,
    /// The SNI host name, lower-cased; `None` when the client sent none.
    pub(crate) sni: Option<String>,
}

/// Why no ClientHello could be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HelloError {
    /// The bytes are not a TLS ClientHello.
    #[error("not a TLS ClientHello: {0}")]
    NotTls(rustls::Error),
    /// The client closed before sending a whole ClientHello.
    #[error("connection closed before the ClientHello was complete")]
    Closed,
    /// The ClientHello is larger than we accept.
    #[error("ClientHello larger than {MAX_HELLO} bytes")]
    TooLarge,
    /// The client took too long.
    #[error("no ClientHello within {0:?}")]
    Timeout(Duration),
    /// Reading failed.
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads until a whole ClientHello has arrived (or `timeout`).
pub(crate) async fn read_client_hello<R: AsyncRead + Unpin>(
    io: &mut R,
    timeout: Duration,
) -> Result<ClientHello, HelloError> {
    tokio::time::timeout(timeout, read(io))
        .await
        .unwrap_or(Err(HelloError::Timeout(timeout)))
}

async fn read<R: AsyncRead + Unpin>(io: &mut R) -> Result<ClientHello, HelloError> {
    let mut acceptor = Acceptor::default();
    let mut bytes = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(HelloError::Closed);
        }
        if bytes.len() + n > MAX_HELLO {
            return Err(HelloError::TooLarge);
        }
        bytes.extend_from_slice(&chunk[..n]);
        let mut fed = &chunk[..n];
        while !fed.is_empty() {
            acceptor.read_tls(&mut fed)?;
        }
        match acceptor.accept() {
            Ok(None) => continue,
            Ok(Some(accepted)) => {
                let sni = accepted
                    .client_hello()
                    .server_name()
                    .map(str::to_ascii_lowercase);
                return Ok(ClientHello { bytes, sni });
            }
            Err((e, _alert)) => return Err(HelloError::NotTls(e)),
        }
    }
}

/// One `serverNames` entry: labels compared case-insensitively, `*` matching any run of
/// characters within one label (so `*.example.com` covers `a.example.com`, not
/// `a.b.example.com`).
#[derive(Debug, Clone)]
pub(crate) struct SniPattern {
    labels: Vec<String>,
}

impl SniPattern {
    /// Compiles a pattern (validated by the policy loader).
    pub(crate) fn new(pattern: &str) -> SniPattern {
        let p = pattern.trim_end_matches('.').to_ascii_lowercase();
        SniPattern {
            labels: p.split('.').map(str::to_string).collect(),
        }
    }

    /// True when `name` (lower-case) matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        let mut labels = name.split('.');
        for pattern in &self.labels {
            match labels.next() {
                Some(label) if glob(pattern.as_bytes(), label.as_bytes()) => {}
                _ => return false,
            }
        }
        labels.next().is_none()
    }
}

/// `*` matches any run of bytes; everything else literally (ASCII case already folded).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text
            .split_first()
            .is_some_and(|(t, text)| t.eq_ignore_ascii_case(c) && glob(rest, text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use std::sync::Arc;

    /// The bytes a real rustls client sends first.
    fn client_hello(sni: Option<&str>) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.enable_sni = sni.is_some();
        let name = ServerName::try_from(sni.unwrap_or("unused.example").to_string()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    #[tokio::test]
    async fn reads_sni_and_keeps_every_byte() {
        let hello = client_hello(Some("API.Example.com"));
        let mut io = &hello[..];
        let got = read_client_hello(&mut io, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(got.sni.as_deref(), Some("api.example.com"));
        assert_eq!(
            got.bytes, hello,
            "the relayed bytes are the client's, unchanged"
        );
    }

    #[tokio::test]
    async fn hello_split_into_small_reads() {
        let hello = client_hello(Some("a.example.com"));
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for part in hello.chunks(7) {
                tx.write_all(part).await.unwrap();
            }
            tx
        });
        let got = read_client_hello(&mut rx, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(got.sni.as_deref(), Some("a.example.com"));
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn no_sni_plaintext_truncated_and_silent_clients() {
        let hello = client_hello(None);
        let got = read_client_hello(&mut &hello[..], Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(got.sni, None);

        let plain = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        let err = read_client_hello(&mut &plain[..], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, HelloError::NotTls(_)), "{err}");

        let hello = client_hello(Some("a.example.com"));
        let cut = &hello[..hello.len() / 2];
        let err = read_client_hello(&mut &cut[..], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, HelloError::Closed), "{err}");

        let (_tx, mut rx) = tokio::io::duplex(64);
        let err = read_client_hello(&mut rx, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(err, HelloError::Timeout(_)), "{err}");
    }

    #[test]
    fn server_name_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("api.example.com", "api.example.com", true),
            ("API.example.com.", "api.example.com", true),
            ("api.example.com", "www.example.com", false),
            ("api.example.com", "api.example.com.evil", false),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", false),
            ("api-*.example.com", "api-v2.example.com", true),
            ("api-*.example.com", "web-v2.example.com", false),
            ("*", "localhost", true),
            ("*", "a.b", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(
                SniPattern::new(pattern).matches(name),
                *want,
                "{pattern} vs {name}"
            );
        }
    }
}
