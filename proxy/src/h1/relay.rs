//! The HTTP/1.1 relay: one client connection's requests in order (pipelined ones included),
//! each judged, then answered here or forwarded over the client connection's own upstream
//! connection (one per mark, kept alive), bodies streamed both ways with their framing tracked
//! (not re-encoded) and the response head rewritten. No task, channel or timer per request: the
//! connection's task does it all.

use super::chunked::Chunked;
use super::head::{self, Body, HeadError, RequestHead, ResponseHead};
use super::Shared;
use crate::conn::ClientConn;
use crate::handler::{default_host, new_record, Allowed};
use crate::hop;
use crate::response::Reject;
use crate::upstream::{connect::connect, Mark};
use crate::HttpFlowRecord;
use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, Method, StatusCode};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;

/// HTTP/2's connection preface: such a connection goes to hyper.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Room made in a buffer before each read.
const READ_CHUNK: usize = 16 * 1024;
/// Largest response head accepted from an upstream.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// hyper's smallest head buffer: the same floor as the hyper path, so both answer alike.
const MIN_HEAD_LIMIT: usize = 8192;
/// After answering and closing, unread client bytes are read away (bounded) so the kernel
/// sends FIN, not a reset that could destroy the answer before the client reads it.
const LINGER_BYTES: usize = 64 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(1);

/// A refused request's body is read away up to this size so the connection stays usable…
const DRAIN_LIMIT: usize = 64 * 1024;
/// …and for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// An allowed request on its way upstream.
struct Forward {
    method: Method,
    headers: HeaderMap,
    body: Body,
    /// The client asked to close after the response.
    close: bool,
}

/// One upstream connection and the bytes read from it but not yet relayed.
struct Upstream {
    stream: TcpStream,
    buf: BytesMut,
}

/// What happens after a request.
enum Next {
    /// Read the next request.
    Continue,
    /// Close after reading away what the client still sends.
    Close,
    /// The client went away or timed out: just close.
    Gone,
    /// Hand the connection, from the request at the start of the buffer, to hyper.
    Hyper,
}

/// The outcome of reading a request head.
enum ReadHead {
    Head(RequestHead),
    Hyper,
    Gone,
    Bad(Reject),
}

/// Why a forwarded request got no response head.
enum Failed {
    /// The upstream failed: answered 503 here.
    Upstream(String),
    /// The client's chunked body is malformed: answered 400 here.
    BadBody(String),
    /// The client connection failed.
    Client(io::Error),
}

struct Relay<'a, IO> {
    io: IO,
    /// Client bytes not yet consumed.
    buf: BytesMut,
    /// The request head sent upstream.
    req: Vec<u8>,
    /// Bytes for the client.
    out: Vec<u8>,
    /// Upstream connections by mark (`[ingress, egress]`).
    up: [Option<Upstream>; 2],
    client: &'a ClientConn,
    shared: &'a Shared,
    /// The header timeout: one timer per connection, pushed later at each request (extending
    /// a tokio timer is an atomic store; a new timer per request costs a wheel insert and
    /// removal every time).
    timer: Pin<Box<Sleep>>,
    /// Resolves when the listener shuts down; registered once per connection.
    closing: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Serves requests until the connection ends (`None`) or must go to hyper: then the IO and
/// the bytes already read from it.
pub(super) async fn run<IO>(io: IO, client: &ClientConn, shared: &Shared) -> Option<(IO, Bytes)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut relay = Relay {
        io,
        buf: BytesMut::with_capacity(READ_CHUNK),
        req: Vec::with_capacity(1024),
        out: Vec::with_capacity(READ_CHUNK),
        up: [None, None],
        client,
        shared,
        timer: Box::pin(tokio::time::sleep(shared.limits.header_timeout)),
        closing: Box::pin(closed(shared.closing.clone())),
    };
    let mut first = true;
    loop {
        let next = relay.request(first).await;
        first = false;
        match next {
            Ok(Next::Continue) => {}
            Ok(Next::Hyper) => return Some((relay.io, relay.buf.freeze())),
            Ok(Next::Close) => {
                relay.linger().await;
                return None;
            }
            Ok(Next::Gone) => {
                let _ = relay.io.shutdown().await;
                return None;
            }
            Err(e) => {
                tracing::debug!(error = %e, peer = %client.ends.src, "client connection failed");
                return None;
            }
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Relay<'_, IO> {
    /// Reads, judges and answers one request.
    async fn request(&mut self, first: bool) -> io::Result<Next> {
        let head = match self.read_head(first).await? {
            ReadHead::Head(head) => head,
            ReadHead::Hyper => return Ok(Next::Hyper),
            ReadHead::Gone => return Ok(Next::Gone),
            ReadHead::Bad(reject) => {
                self.write_reject(&reject, true).await?;
                return Ok(Next::Close);
            }
        };
        let RequestHead {
            len,
            method,
            target,
            minor,
            headers,
            body,
        } = head;
        // Plain HTTP/1.1 requests stay here, and every framing error is answered here; `Expect`
        // goes to hyper, which answers `100 Continue` itself.
        let plain = minor == 1
            && method != Method::CONNECT
            && target.starts_with('/')
            && !headers.contains_key(header::UPGRADE)
            && !headers.contains_key(header::EXPECT);
        if body.is_ok() && !plain {
            return Ok(Next::Hyper);
        }
        self.buf.advance(len);
        let start = Instant::now();
        let ends = self.client.ends;
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut record = new_record(ends, method.as_str(), host, target);
        let close = hop::connection_has(&headers, "close");
        let handler = &self.shared.handler;
        // Policy is read per request, so an update applies to the next request of an open
        // connection; the connection re-resolves its flow only when the policy changed.
        let flow = self.client.flow(&handler.policy.borrow());
        let (decision, body) = match body {
            Err(why) => {
                record.src_identity = flow.src_identity;
                record.dst_identity = flow.dst_identity;
                (Err(Reject::Malformed(why.to_owned())), Body::Empty)
            }
            Ok(body) => (
                handler.decide(&flow, ends, &mut record, &method, &headers),
                body,
            ),
        };
        match decision {
            Ok(allowed) => {
                let req = Forward {
                    method,
                    headers,
                    body,
                    close,
                };
                self.forward(req, allowed, record, start).await
            }
            Err(reject) => {
                // The body of a refused request is read away so the connection stays usable.
                let close = close || !self.discard_body(body).await;
                self.answer(record, start, reject, close).await
            }
        }
    }

    /// Reads until a whole request head is buffered, the connection is HTTP/2, or it ends.
    async fn read_head(&mut self, first: bool) -> io::Result<ReadHead> {
        let limits = &self.shared.limits;
        let max_head = limits.max_header_bytes.max(MIN_HEAD_LIMIT);
        self.timer
            .as_mut()
            .reset(tokio::time::Instant::now() + limits.header_timeout);
        loop {
            let n = self.buf.len().min(PREFACE.len());
            let maybe_h2 = first && self.buf[..n] == PREFACE[..n];
            if maybe_h2 && n == PREFACE.len() {
                return Ok(ReadHead::Hyper);
            }
            if !maybe_h2 && !self.buf.is_empty() {
                match head::parse_request(&self.buf, limits.max_headers) {
                    Ok(Some(head)) => return Ok(ReadHead::Head(head)),
                    Ok(None) if self.buf.len() >= max_head => {
                        return Ok(ReadHead::Bad(Reject::HeadTooLarge))
                    }
                    Ok(None) => {}
                    Err(HeadError::TooManyHeaders) => {
                        return Ok(ReadHead::Bad(Reject::HeadTooLarge))
                    }
                    Err(e) => return Ok(ReadHead::Bad(Reject::Malformed(e.to_string()))),
                }
            }
            let idle = self.buf.is_empty();
            self.buf.reserve(READ_CHUNK);
            let read = tokio::select! {
                biased;
                r = self.io.read_buf(&mut self.buf) => Ok(r),
                () = &mut self.timer => Err(()),
                // Idle between requests: the listener's shutdown closes the connection. A new
                // connection still gets its first request served, as hyper does: the client
                // sent it to a listener that accepted it.
                () = &mut self.closing, if idle && !first => return Ok(ReadHead::Gone),
            };
            match read {
                Ok(Ok(0)) => return Ok(ReadHead::Gone),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    tracing::debug!(peer = %self.client.ends.src, "request head timed out");
                    return Ok(ReadHead::Gone);
                }
            }
        }
    }

    /// Answers a request here (deny, bad request, upstream failure) and records it.
    async fn answer(
        &mut self,
        record: HttpFlowRecord,
        start: Instant,
        reject: Reject,
        close: bool,
    ) -> io::Result<Next> {
        let status = self.write_reject(&reject, close).await?;
        let close = close || reject.closes();
        self.shared
            .handler
            .finish(record, start, status, Some(reject));
        Ok(if close { Next::Close } else { Next::Continue })
    }

    /// Writes the proxy's own answer; `close` adds `Connection: close`.
    async fn write_reject(&mut self, reject: &Reject, close: bool) -> io::Result<StatusCode> {
        let (status, headers, body) = reject.parts(false);
        self.out.clear();
        write_status(&mut self.out, status.as_u16(), status.canonical_reason());
        hop::write_fields(&headers, &mut self.out);
        if close && !headers.contains_key(header::CONNECTION) {
            self.out.extend_from_slice(b"connection: close\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&body);
        self.write_out().await?;
        Ok(status)
    }

    /// Sends an allowed request upstream and relays the response.
    async fn forward(
        &mut self,
        req: Forward,
        allowed: Allowed,
        record: HttpFlowRecord,
        start: Instant,
    ) -> io::Result<Next> {
        let Forward {
            method,
            mut headers,
            body,
            close,
        } = req;
        hop::strip(&mut headers, false);
        for action in &allowed.actions {
            action.apply(&mut headers);
        }
        if body == Body::Chunked {
            // Relayed as received: the chunked framing goes on (strip removed the field).
            headers.insert(
                header::TRANSFER_ENCODING,
                http::HeaderValue::from_static("chunked"),
            );
        }
        if !headers.contains_key(header::HOST) {
            match default_host(self.client.ends.dst) {
                Ok(host) => headers.insert(header::HOST, host),
                Err(reject) => return self.answer(record, start, reject, close).await,
            };
        }
        // The normalized path in origin form: what was judged is what the upstream reads.
        self.req.clear();
        self.req.extend_from_slice(method.as_str().as_bytes());
        self.req.push(b' ');
        self.req.extend_from_slice(record.path.as_bytes());
        self.req.extend_from_slice(b" HTTP/1.1\r\n");
        hop::write_fields(&headers, &mut self.req);
        self.req.extend_from_slice(b"\r\n");
        let (mut up, resp) = match self.exchange(allowed.mark, &method, body, close).await {
            Ok(got) => got,
            // Where the request body stands is unknown: the connection closes after the answer.
            Err(Failed::Upstream(why)) => {
                let close = close || body != Body::Empty;
                return self
                    .answer(record, start, Reject::Upstream(why), close)
                    .await;
            }
            Err(Failed::BadBody(why)) => {
                return self
                    .answer(record, start, Reject::Malformed(why), true)
                    .await
            }
            Err(Failed::Client(e)) => return Err(e),
        };
        let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY);
        self.shared.handler.finish(record, start, status, None);
        let complete = self.relay_body(&mut up, resp.body).await?;
        // Bytes after the response, or a broken body, leave the upstream connection unusable.
        if complete && !resp.close && up.buf.is_empty() {
            self.up[slot(allowed.mark)] = Some(up);
        }
        Ok(if !complete || close || resp.body == Body::UntilClose {
            Next::Close
        } else {
            Next::Continue
        })
    }

    /// Sends the request head in `self.req` and reads the final response head (interim 1xx
    /// heads are relayed), whose rewritten form is left in `self.out`. An idle connection the
    /// upstream closed is replaced before use; one that closes before answering anything is
    /// replaced once for an idempotent request (the close crossed the request).
    async fn exchange(
        &mut self,
        mark: Mark,
        method: &Method,
        body: Body,
        close: bool,
    ) -> Result<(Upstream, ResponseHead), Failed> {
        let head_request = method == Method::HEAD;
        // A body is read from the client once: such a request cannot go again.
        let idempotent = method.is_idempotent() && body == Body::Empty;
        let mut retried = false;
        loop {
            let idle = self.up[slot(mark)].take();
            let (mut up, reused) = match idle {
                Some(up) if !retried && still_open(&up.stream).await => (up, true),
                _ => {
                    let limits = &self.shared.limits;
                    let stream = connect(
                        self.client.ends.dst,
                        self.shared.marks.value(mark),
                        limits.connect_timeout,
                    )
                    .await
                    .map_err(|e| Failed::Upstream(format!("connect: {e}")))?;
                    let buf = BytesMut::with_capacity(READ_CHUNK);
                    (Upstream { stream, buf }, false)
                }
            };
            let mut received = false;
            let sent = match up.stream.write_all(&self.req).await {
                Ok(()) => self.send_body(&mut up, body).await,
                Err(e) => Err(Failed::Upstream(format!("sending the request: {e}"))),
            };
            let why: String = match sent {
                Err(Failed::Upstream(why)) => why,
                Err(other) => return Err(other),
                Ok(()) => loop {
                    if !up.buf.is_empty() {
                        self.out.clear();
                        match head::parse_response(&up.buf, head_request, close, &mut self.out) {
                            Ok(Some(resp)) if resp.status == 101 => {
                                break "101 Switching Protocols without an upgrade".into()
                            }
                            Ok(Some(resp)) if resp.status < 200 => {
                                up.buf.advance(resp.len);
                                self.write_out().await.map_err(Failed::Client)?;
                                continue;
                            }
                            Ok(Some(resp)) => {
                                up.buf.advance(resp.len);
                                return Ok((up, resp));
                            }
                            Ok(None) if up.buf.len() > MAX_RESPONSE_HEAD => {
                                break "response head too large".into()
                            }
                            Ok(None) => {}
                            Err(e) => break format!("response head: {e}"),
                        }
                    }
                    up.buf.reserve(READ_CHUNK);
                    match up.stream.read_buf(&mut up.buf).await {
                        Ok(0) => break "upstream closed before responding".into(),
                        Ok(_) => received = true,
                        Err(e) => break format!("reading the response: {e}"),
                    }
                },
            };
            // Only an idempotent request may go again: the upstream may have acted on it.
            if !reused || received || !idempotent {
                return Err(Failed::Upstream(why));
            }
            retried = true;
        }
    }

    /// Streams the request body from the client to the upstream as received (chunked framing
    /// checked on the way, so the upstream finds the end where the relay did).
    async fn send_body(&mut self, up: &mut Upstream, body: Body) -> Result<(), Failed> {
        let mut left = match body {
            Body::Empty | Body::UntilClose => return Ok(()),
            Body::Length(n) => n,
            Body::Chunked => u64::MAX,
        };
        let mut chunked = Chunked::default();
        loop {
            let take = if body == Body::Chunked {
                chunked
                    .advance(&self.buf)
                    .map_err(|e| Failed::BadBody(e.to_string()))?
            } else {
                self.buf
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX))
            };
            if take > 0 {
                up.stream
                    .write_all(&self.buf[..take])
                    .await
                    .map_err(|e| Failed::Upstream(format!("sending the body: {e}")))?;
                self.buf.advance(take);
                if body != Body::Chunked {
                    left -= take as u64;
                }
            }
            if left == 0 || chunked.done() {
                return Ok(());
            }
            self.buf.reserve(READ_CHUNK);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => {
                    return Err(Failed::Client(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "client closed inside the request body",
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(Failed::Client(e)),
            }
        }
    }

    /// Reads a refused request's body away: at most [`DRAIN_LIMIT`] bytes for at most
    /// [`DRAIN_TIME`]; `false` when it could not (the connection then closes).
    async fn discard_body(&mut self, body: Body) -> bool {
        let drain = async {
            let mut chunked = Chunked::default();
            let mut left = match body {
                Body::Empty | Body::UntilClose => return true,
                Body::Length(n) if n > DRAIN_LIMIT as u64 => return false,
                Body::Length(n) => n as usize,
                Body::Chunked => DRAIN_LIMIT,
            };
            loop {
                let take = if body == Body::Chunked {
                    match chunked.advance(&self.buf) {
                        Ok(n) if n <= left => n,
                        _ => return false,
                    }
                } else {
                    self.buf.len().min(left)
                };
                self.buf.advance(take);
                left -= take;
                if (body == Body::Chunked && chunked.done()) || (body != Body::Chunked && left == 0)
                {
                    return true;
                }
                self.buf.reserve(READ_CHUNK);
                if !matches!(self.io.read_buf(&mut self.buf).await, Ok(n) if n > 0) {
                    return false;
                }
            }
        };
        tokio::time::timeout(DRAIN_TIME, drain)
            .await
            .unwrap_or(false)
    }

    /// Relays the response body after the head in `self.out`; `false` when the upstream broke
    /// off mid-body (the client connection must close: its response is cut short).
    async fn relay_body(&mut self, up: &mut Upstream, body: Body) -> io::Result<bool> {
        match body {
            Body::Empty => {}
            Body::Length(n) => {
                let mut left = n;
                loop {
                    let take = up
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.out.extend_from_slice(&up.buf[..take]);
                    up.buf.advance(take);
                    left -= take as u64;
                    if left == 0 {
                        break;
                    }
                    self.write_out().await?;
                    if !read_more(up).await {
                        return Ok(false);
                    }
                }
            }
            Body::Chunked => {
                let mut chunked = Chunked::default();
                loop {
                    let Ok(take) = chunked.advance(&up.buf) else {
                        self.write_out().await?;
                        return Ok(false);
                    };
                    self.out.extend_from_slice(&up.buf[..take]);
                    up.buf.advance(take);
                    if chunked.done() {
                        break;
                    }
                    self.write_out().await?;
                    if !read_more(up).await {
                        return Ok(false);
                    }
                }
            }
            Body::UntilClose => loop {
                self.out.extend_from_slice(&up.buf);
                up.buf.clear();
                self.write_out().await?;
                if !read_more(up).await {
                    break;
                }
            },
        }
        self.write_out().await?;
        Ok(true)
    }

    /// Writes and empties `self.out`.
    async fn write_out(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.io.write_all(&self.out).await?;
        self.io.flush().await?;
        self.out.clear();
        Ok(())
    }

    /// Half-closes, then reads away (bounded) what the client still sends.
    async fn linger(&mut self) {
        let _ = self.io.shutdown().await;
        let mut left = LINGER_BYTES;
        let drain = async {
            let mut scratch = [0u8; 4096];
            while left > 0 {
                match self.io.read(&mut scratch).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    }
}

/// Whether an idle upstream connection can take a request: one that turned readable while idle
/// was closed by the upstream (or sent something unasked). Costs a syscall only then, as tokio
/// caches readiness.
async fn still_open(stream: &TcpStream) -> bool {
    let readable =
        std::future::poll_fn(|cx| Poll::Ready(stream.poll_read_ready(cx).is_ready())).await;
    if !readable {
        return true;
    }
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Resolves once `closing` is `true` (or its sender is gone).
async fn closed(mut closing: watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// Reads more of a response; `false` at end of stream or on error.
async fn read_more(up: &mut Upstream) -> bool {
    up.buf.reserve(READ_CHUNK);
    matches!(up.stream.read_buf(&mut up.buf).await, Ok(n) if n > 0)
}

fn write_status(out: &mut Vec<u8>, status: u16, reason: Option<&str>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn slot(mark: Mark) -> usize {
    match mark {
        Mark::Ingress => 0,
        Mark::Egress => 1,
    }
}
