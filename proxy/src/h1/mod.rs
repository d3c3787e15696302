//! Client connections. Plain HTTP/1.1 requests (nearly all of them) go through a purpose-built
//! relay ([`relay`]): the head parsed with `httparse`, its framing checked, judged by
//! [`Handler::decide`], answered here or sent to the connection's own upstream connection, with
//! bodies streamed both ways and their framing tracked, not re-encoded. HTTP/2 prior knowledge,
//! upgrades, `Expect`, HTTP/1.0, absolute-form and `CONNECT` make the relay hand the connection,
//! from that request on, to hyper and [`Handler::handle`].
//!
//! Generic over the client IO so a TLS-terminated stream can be served the same way.

mod chunked;
mod head;
mod relay;
#[cfg(test)]
mod tests;

use crate::conn::{ClientConn, Ends};
use crate::drain;
use crate::handler::Handler;
use crate::policy::FlowPolicy;
use crate::rewind::Rewind;
use crate::upstream::Marks;
use crate::Limits;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

#[doc(hidden)]
pub use fuzzing::*;

/// What every connection task shares with the listener.
pub(crate) struct Shared {
    pub(crate) handler: Arc<Handler>,
    /// hyper's HTTP/1.1 + HTTP/2 server, for connections the relay hands over.
    pub(crate) hyper: auto::Builder<TokioExecutor>,
    pub(crate) limits: Limits,
    pub(crate) marks: Marks,
    /// Becomes `true` when the listener shuts down: idle connections close.
    pub(crate) closing: watch::Receiver<bool>,
}

/// Serves one cleartext client connection (its flow resolved at accept) until it closes.
pub(crate) async fn serve<IO>(io: IO, ends: Ends, flow: Arc<FlowPolicy>, shared: Arc<Shared>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = shared.limits.connect_timeout;
    let client = ClientConn::with_flow(ends, shared.marks, timeout, None, true, flow);
    let Some((io, rest)) = relay::run(io, &client, &shared).await else {
        return;
    };
    let client = Arc::new(client);
    let io = Rewind::new(rest, io);
    let (handler, closing) = (shared.handler.clone(), shared.closing.clone());
    let first_within = shared.limits.header_timeout;
    let served = drain::serve_hyper(&shared.hyper, io, handler, client, closing, first_within);
    if let Err(e) = served.await {
        tracing::debug!(error = %e, peer = %ends.src, "connection ended with error");
    }
}

/// Entry points for the fuzz targets (not part of the API).
mod fuzzing {
    /// Parses a request head and its framing; must never panic.
    #[doc(hidden)]
    pub fn fuzz_request_head(bytes: &[u8]) {
        if let Ok(Some(head)) = super::head::parse_request(bytes, 100) {
            assert!(head.len <= bytes.len());
        }
    }

    /// Parses a response head into a forwarded head; must never panic.
    #[doc(hidden)]
    pub fn fuzz_response_head(bytes: &[u8]) {
        let mut out = Vec::new();
        if let Ok(Some(head)) = super::head::parse_response(bytes, false, false, &mut out) {
            assert!(head.len <= bytes.len());
            // What goes downstream parses back as a complete head.
            let mut again = Vec::new();
            let reparsed = super::head::parse_response(&out, false, false, &mut again);
            assert!(matches!(reparsed, Ok(Some(_))), "{out:?}");
        }
    }

    /// Feeds a chunked body whole and in two pieces split at `split`; both readings agree.
    #[doc(hidden)]
    pub fn fuzz_chunked(bytes: &[u8], split: usize) {
        let mut whole = super::chunked::Chunked::default();
        let a = whole.advance(bytes);
        let split = split.min(bytes.len());
        let mut parts = super::chunked::Chunked::default();
        let b = parts.advance(&bytes[..split]).and_then(|n| {
            if parts.done() {
                Ok(n)
            } else {
                parts.advance(&bytes[split..]).map(|m| n + m)
            }
        });
        assert_eq!(a, b);
        if a.is_ok() {
            assert_eq!(whole.done(), parts.done());
        }
    }
}
