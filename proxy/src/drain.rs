//! Stopping the listener (an upgrade hands it to a new process) for connections hyper serves:
//! hyper's own graceful shutdown closes an HTTP/1 connection that has not started a request yet,
//! so a client that connected just before the stop would lose its first request. Here such a
//! connection is shut down only once its first request has started (or the header timeout
//! passed), as the relay and the DNS proxy do; one between requests is shut down at once.

use hyper_util::server::graceful::GracefulConnection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Serves `conn` until it ends; once `closing` turns true, shuts it down gracefully as soon as
/// it has started a request (`started`), or after `first_within` if it never does.
pub(crate) async fn serve<C: GracefulConnection>(
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
pub(crate) struct FirstRequest(Arc<watch::Sender<bool>>);

impl FirstRequest {
    /// A new flag and the receiver [`serve`] waits on.
    pub(crate) fn new() -> (Self, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (FirstRequest(Arc::new(tx)), rx)
    }

    /// Marks that a request started (only the first call notifies).
    pub(crate) fn seen(&self) {
        self.0.send_if_modified(|s| !std::mem::replace(s, true));
    }
}
