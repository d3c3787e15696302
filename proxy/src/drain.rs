//! Stopping the listener (an upgrade hands it to a new process) for connections hyper serves:
//! hyper's own graceful shutdown closes an HTTP/1 connection that has not started a request yet,
//! so a client that connected just before the stop would lose its first request. Here such a
//! connection is shut down only once its first request has started (or the header timeout
//! passed), as the relay and the DNS proxy do; one between requests is shut down at once.

use crate::conn::ClientConn;
use crate::handler::Handler;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// Serves `io` with hyper (HTTP/1.1 or HTTP/2, upgrades passed) through `handler` for `client`
/// until it ends; once `closing` turns true, as [`serve`] says. `builder` is only borrowed
/// while the connection is set up.
pub(crate) fn serve_hyper<IO>(
    builder: &auto::Builder<TokioExecutor>,
    io: IO,
    handler: Arc<Handler>,
    client: Arc<ClientConn>,
    closing: watch::Receiver<bool>,
    first_within: Duration,
) -> impl Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (first, started) = FirstRequest::new();
    let service = service_fn(move |req| {
        first.seen();
        handler.clone().handle(client.clone(), req)
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    serve(conn, closing, started, first_within)
}

/// Serves `conn` until it ends; once `closing` turns true, shuts it down gracefully as soon as
/// it has started a request (`started`), or after `first_within` if it never does.
async fn serve<C: GracefulConnection>(
    conn: C,
    mut closing: watch::Receiver<bool>,
    mut started: watch::Receiver<bool>,
    first_within: Duration,
) -> Result<(), C::Error> {
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return r,
        _ = closing.wait_for(|c| *c) => {}
    }
    if !*started.borrow() {
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = started.wait_for(|s| *s) => {}
            () = tokio::time::sleep(first_within) => {}
        }
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

/// Raised by a connection's service when a request starts (cloned into the service).
#[derive(Clone)]
struct FirstRequest(Arc<watch::Sender<bool>>);

impl FirstRequest {
    /// A new flag and the receiver [`serve`] waits on.
    fn new() -> (Self, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (FirstRequest(Arc::new(tx)), rx)
    }

    /// Marks that a request started (only the first call notifies).
    fn seen(&self) {
        self.0.send_if_modified(|s| !std::mem::replace(s, true));
    }
}
