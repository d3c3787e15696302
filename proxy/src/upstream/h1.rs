//! The HTTP/1.1 upstream of one client connection: at most one upstream connection per mark,
//! opened on the first request that needs it, reused by every later request of the client
//! connection, and reopened when the upstream closed it. Dropped with the client connection.

use super::connect::connect;
use super::{Mark, Marks, UpstreamError};
use crate::tls::TlsOrigin;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Upstream connections of one client connection, to its original destination.
#[derive(Debug)]
pub(crate) struct H1Upstream {
    dst: SocketAddr,
    marks: Marks,
    connect_timeout: Duration,
    /// TLS to the server (`originatingTLS`); `None` = cleartext.
    tls: Option<TlsOrigin>,
    /// Idle senders by mark (`[ingress, egress]`). A request takes its sender out while it waits
    /// for the response head; HTTP/1.1 serves a connection's requests one after the other, so
    /// the slot is back before the next request looks.
    idle: Mutex<[Option<SendRequest<Incoming>>; 2]>,
}

impl H1Upstream {
    /// No connection yet; the first request opens one.
    pub(crate) fn new(
        dst: SocketAddr,
        marks: Marks,
        connect_timeout: Duration,
        tls: Option<TlsOrigin>,
    ) -> H1Upstream {
        H1Upstream {
            dst,
            marks,
            connect_timeout,
            tls,
            idle: Mutex::new([None, None]),
        }
    }

    /// Sends a request in origin form (with `Host`) and returns the response head; the body
    /// streams from the upstream connection. A request that a reused connection closed before
    /// sending is retried once on a fresh connection (it never reached the upstream).
    pub(crate) async fn send(
        &self,
        mark: Mark,
        mut req: Request<Incoming>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut idle = self.take(mark);
        loop {
            let reused = idle.is_some();
            let mut sender = match idle.take() {
                Some(sender) => sender,
                None => self.open(mark, &req).await?,
            };
            if let Err(e) = sender.ready().await {
                // Closed while idle (the upstream's keep-alive timeout, `Connection: close`).
                if reused {
                    continue;
                }
                return Err(UpstreamError::Closed(e));
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.put(mark, sender);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(UpstreamError::Send(e.into_error())),
                },
            }
        }
    }

    fn take(&self, mark: Mark) -> Option<SendRequest<Incoming>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())[slot(mark)].take()
    }

    fn put(&self, mark: Mark, sender: SendRequest<Incoming>) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())[slot(mark)] = Some(sender);
    }

    /// Connects and runs the connection on its own task (upgrades enabled, so a 101 can turn
    /// it into a tunnel); the task ends when the sender is dropped.
    async fn open(
        &self,
        mark: Mark,
        req: &Request<Incoming>,
    ) -> Result<SendRequest<Incoming>, UpstreamError> {
        let stream = connect(self.dst, self.marks.value(mark), self.connect_timeout)
            .await
            .map_err(UpstreamError::Connect)?;
        match &self.tls {
            None => self.handshake(stream).await,
            Some(origin) => {
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok());
                let stream = origin
                    .connect(stream, host)
                    .await
                    .map_err(UpstreamError::Tls)?;
                self.handshake(stream).await
            }
        }
    }

    async fn handshake<T>(&self, stream: T) -> Result<SendRequest<Incoming>, UpstreamError>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Closed)?;
        let dst = self.dst;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, %dst, "upstream connection ended with error");
            }
        });
        Ok(sender)
    }
}

fn slot(mark: Mark) -> usize {
    match mark {
        Mark::Ingress => 0,
        Mark::Egress => 1,
    }
}
