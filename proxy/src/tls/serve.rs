//! One accepted connection whose flow needs TLS handling: read the ClientHello, check the
//! SNI, then relay the raw bytes upstream or terminate TLS and serve the decrypted HTTP/1.1 or
//! HTTP/2 (ALPN) through the same handler as plain connections. Refusals reset the connection.

use super::flow::{FlowTls, TlsFlow};
use super::originate::TlsOrigin;
use super::sni::read_client_hello;
use crate::conn::{ClientConn, Ends};
use crate::drain;
use crate::handler::Handler;
use crate::policy::FlowPolicy;
use crate::rewind::Rewind;
use crate::upstream::{connect, Marks};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// What serving a TLS connection needs from the listener.
pub(crate) struct TlsServe {
    /// The request handler shared with plain connections.
    pub(crate) handler: Arc<Handler>,
    /// HTTP/1.1 + HTTP/2 server settings.
    pub(crate) builder: auto::Builder<TokioExecutor>,
    /// Upstream socket marks.
    pub(crate) marks: Marks,
    /// Time allowed for the ClientHello and for the handshake.
    pub(crate) hello_timeout: Duration,
    /// Time allowed to connect upstream.
    pub(crate) connect_timeout: Duration,
    /// Becomes `true` when the listener shuts down: terminated connections drain too.
    pub(crate) closing: watch::Receiver<bool>,
}

/// Serves a connection whose flow is [`FlowTls::Tls`]; returns when it is closed.
pub(crate) async fn serve(mut stream: TcpStream, ends: Ends, flow: Arc<FlowPolicy>, ctx: TlsServe) {
    let FlowTls::Tls(tls) = &flow.tls else {
        return;
    };
    let hello = match read_client_hello(&mut stream, ctx.hello_timeout).await {
        Ok(hello) => hello,
        Err(e) => return reset(stream, ends, &e.to_string()),
    };
    let sni = hello.sni.clone();
    if !tls.sni_allowed(sni.as_deref()) {
        let why = match &sni {
            Some(name) => format!("SNI {name:?} not in serverNames"),
            None => "no SNI, and serverNames requires one".to_string(),
        };
        return reset(stream, ends, &why);
    }
    let mark = if tls.egress {
        ctx.marks.egress
    } else {
        ctx.marks.ingress
    };
    match &tls.terminate {
        None => relay(stream, hello.bytes, ends, mark, ctx.connect_timeout).await,
        Some(Err(e)) => reset(stream, ends, &e.to_string()),
        Some(Ok(server)) => {
            let origin = match origin(tls, sni.as_deref(), ends) {
                Ok(origin) => origin,
                Err(why) => return reset(stream, ends, &why),
            };
            let accept =
                TlsAcceptor::from(server.clone()).accept(Rewind::new(hello.bytes.into(), stream));
            let tls_stream = match tokio::time::timeout(ctx.hello_timeout, accept).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, src = %ends.src, "TLS handshake with the client failed");
                    return;
                }
                Err(_) => return,
            };
            let client = Arc::new(ClientConn::with_flow(
                ends,
                ctx.marks,
                ctx.connect_timeout,
                origin,
                false,
                flow.clone(),
            ));
            let (handler, closing) = (ctx.handler.clone(), ctx.closing);
            let served = drain::serve_hyper(
                &ctx.builder,
                tls_stream,
                handler,
                client,
                closing,
                ctx.hello_timeout,
            );
            if let Err(e) = served.await {
                tracing::debug!(error = %e, src = %ends.src, "TLS connection ended with error");
            }
        }
    }
}

/// The upstream TLS of a terminated connection, or why it cannot be opened.
fn origin(tls: &TlsFlow, sni: Option<&str>, ends: Ends) -> Result<Option<TlsOrigin>, String> {
    match &tls.originate {
        None => Ok(None),
        Some(Ok(config)) => Ok(Some(TlsOrigin::new(config.clone(), sni, ends.dst.ip()))),
        Some(Err(e)) => Err(e.to_string()),
    }
}

/// Relays the TLS bytes, ClientHello first, to the original destination unchanged.
async fn relay(mut stream: TcpStream, hello: Vec<u8>, ends: Ends, mark: u32, timeout: Duration) {
    let mut up = match connect(ends.dst, mark, timeout).await {
        Ok(up) => up,
        Err(e) => return reset(stream, ends, &format!("upstream connect: {e}")),
    };
    if let Err(e) = up.write_all(&hello).await {
        return reset(stream, ends, &format!("upstream write: {e}"));
    }
    if let Err(e) = tokio::io::copy_bidirectional(&mut stream, &mut up).await {
        tracing::debug!(error = %e, src = %ends.src, dst = %ends.dst, "TLS relay ended with error");
    }
}

/// Closes with a TCP reset (zero linger), as Envoy's network filter does on a policy drop.
fn reset(stream: TcpStream, ends: Ends, why: &str) {
    tracing::debug!(src = %ends.src, dst = %ends.dst, "TLS connection reset: {why}");
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}
