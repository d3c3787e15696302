//! Forwarding an allowed query to the original resolver and waiting for its matching answer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::mux::UdpMux;
use crate::sockets;
use crate::wire::{self, AnswerInfo, Query};

/// Largest DNS message (UDP datagram or TCP frame).
pub const MAX_MESSAGE: usize = 65_535;

/// A matching upstream answer: the bytes to relay and what they resolve to.
pub struct Answer {
    /// Raw answer, relayed unchanged (over UDP with the client's ID restored).
    pub bytes: Vec<u8>,
    /// Decoded for learning (addresses only for a NOERROR answer with records).
    pub info: AnswerInfo,
    /// When the answer came off the upstream socket.
    pub received: Instant,
}

/// How a query goes upstream: the client's protocol.
pub enum Upstream {
    /// The shared UDP multiplexer (long-lived marked sockets, rewritten IDs).
    Udp(Arc<UdpMux>),
    /// One marked TCP connection per client connection, opened on first use.
    Tcp(Option<TcpStream>),
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "upstream timeout")
}

impl Upstream {
    /// Sends `packet` (the client's bytes, unchanged) to `resolver` and waits for the answer
    /// matching `query` until `limit` has passed.
    pub async fn exchange(
        &mut self,
        packet: &[u8],
        query: &Query,
        resolver: SocketAddr,
        mark: u32,
        limit: Duration,
    ) -> io::Result<Answer> {
        let deadline = Instant::now() + limit;
        match self {
            Upstream::Udp(mux) => udp_exchange(mux, query, resolver, deadline).await,
            Upstream::Tcp(conn) => {
                let reused = conn.is_some();
                let first = tcp_exchange(conn, packet, query, resolver, mark, deadline).await;
                match first {
                    // A kept connection may have been closed by the resolver meanwhile: retry once.
                    Err(e) if reused && e.kind() != io::ErrorKind::TimedOut => {
                        *conn = None;
                        tcp_exchange(conn, packet, query, resolver, mark, deadline).await
                    }
                    other => other,
                }
            }
        }
    }
}

async fn udp_exchange(
    mux: &UdpMux,
    query: &Query,
    resolver: SocketAddr,
    deadline: Instant,
) -> io::Result<Answer> {
    let q = query.question();
    let reply = mux
        .exchange(query.raw(), q.name_end, q.end(), resolver, deadline)
        .await?;
    let info = wire::answer_of(&query.qname, &reply.bytes).ok_or_else(undecodable)?;
    Ok(Answer {
        bytes: reply.bytes,
        info,
        received: reply.received,
    })
}

/// A NOERROR answer whose records do not decode: its addresses cannot be learned, so it is not
/// released (the client gets SERVFAIL).
fn undecodable() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "upstream answer does not decode",
    )
}

async fn tcp_exchange(
    conn: &mut Option<TcpStream>,
    packet: &[u8],
    query: &Query,
    resolver: SocketAddr,
    mark: u32,
    deadline: Instant,
) -> io::Result<Answer> {
    if conn.is_none() {
        let c = timeout_at(deadline, sockets::upstream_tcp(resolver, mark))
            .await
            .map_err(|_| timed_out())??;
        *conn = Some(c);
    }
    let Some(stream) = conn.as_mut() else {
        unreachable!("connection was just set");
    };
    let result = timeout_at(deadline, async {
        write_frame(stream, packet).await?;
        loop {
            let bytes = read_frame(stream).await?;
            if query.matches_reply(&bytes) {
                let info = wire::answer_of(&query.qname, &bytes).ok_or_else(undecodable)?;
                let received = Instant::now();
                return Ok(Answer {
                    bytes,
                    info,
                    received,
                });
            }
        }
    })
    .await
    .map_err(|_| timed_out())
    .and_then(|r| r);
    if result.is_err() {
        *conn = None; // never reuse a connection in an unknown state
    }
    result
}

/// Writes one length-prefixed DNS message.
pub async fn write_frame(stream: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "DNS message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out).await
}

/// Reads one length-prefixed DNS message.
pub async fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}
