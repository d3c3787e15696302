//! The lab's server programs, run in the foreground inside a pod or external namespace
//! (`palisade lab serve KIND --port P --name N`): `http` answers every path with a small page,
//! `whoami` echoes who it is and the request, like traefik/whoami. HTTP/1.1 with keep-alive
//! (hyper), started in milliseconds; each request is logged on stdout. With a certificate and
//! key the same servers answer over TLS (HTTPS, ALPN h2 and http/1.1).

mod page;
mod tls;

pub use tls::TlsFiles;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use palisade_policy::topology::ServeKind;
use tokio::net::TcpListener;

use crate::error::LabError;

/// Serves `kind` on `0.0.0.0:port` until killed. `name` is the pod or host name (whoami's
/// `Hostname`). `dns` is not served here: `lab up` runs dnsmasq for it.
pub fn serve(kind: ServeKind, port: u16, name: &str) -> Result<(), LabError> {
    serve_with(kind, port, name, None)
}

/// [`serve`], over TLS when `tls` names a certificate chain and key.
pub fn serve_with(
    kind: ServeKind,
    port: u16,
    name: &str,
    tls: Option<&TlsFiles>,
) -> Result<(), LabError> {
    if kind == ServeKind::Dns {
        return Err(LabError::Serve(
            "dns is answered by dnsmasq, which `lab up` starts in the resolver pod".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LabError::Serve(e.to_string()))?;
    let ctx = Arc::new(page::Context {
        kind,
        name: name.to_string(),
        ips: page::interface_ips(),
    });
    let acceptor = tls.map(tls::acceptor).transpose()?;
    runtime.block_on(accept_loop(ctx, port, acceptor))
}

async fn accept_loop(
    ctx: Arc<page::Context>,
    port: u16,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), LabError> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        .await
        .map_err(|e| LabError::Serve(format!("bind port {port}: {e}")))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "{} {:?} listening on port {port} ({scheme})",
        ctx.name, ctx.kind
    );
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(conn) => conn,
            // Out of file descriptors and the like: keep serving the connections we have.
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(ctx.clone(), remote, req));
            // HTTP/1.1 and HTTP/2 with prior knowledge (h2c), like a typical app server.
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Err(e) => eprintln!("{remote}: TLS handshake failed: {e}"),
                },
            }
        });
    }
}

async fn handle(
    ctx: Arc<page::Context>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let agent = parts
        .headers
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    println!(
        "{remote} \"{} {} {:?}\" {agent}",
        parts.method, parts.uri, parts.version
    );
    let (content_type, text) = match ctx.kind {
        ServeKind::Whoami => (
            "text/plain; charset=utf-8",
            page::whoami(&ctx, remote, &parts, &body),
        ),
        _ => ("text/html", page::hello(parts.uri.path())),
    };
    let response = Response::builder()
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(text)))
        .expect("static response parts");
    Ok(response)
}
