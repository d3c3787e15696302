//! TCP to the resolver: forwarding an allowed query over the client connection's own upstream
//! connection and waiting for its matching answer (UDP goes through [`crate::mux`]).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::sockets;
use crate::wire::Query;

/// Largest DNS message (UDP datagram or TCP frame).
pub const MAX_MESSAGE: usize = 65_535;

/// The upstream side of one client TCP connection: one marked TCP connection to the resolver,
/// opened on first use and reused for the client's later queries.
#[derive(Default)]
pub struct Upstream {
    conn: Option<TcpStream>,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "upstream timeout")
}

impl Upstream {
    /// Sends the client's query (unchanged) to `resolver` and waits for the answer matching it
    /// until `limit` has passed; returns the answer and when it arrived.
    pub async fn exchange(
        &mut self,
        query: &Query,
        resolver: SocketAddr,
        mark: u32,
        limit: Duration,
    ) -> io::Result<(Vec<u8>, Instant)> {
        let deadline = Instant::now() + limit;
        let conn = &mut self.conn;
        let reused = conn.is_some();
        let first = tcp_exchange(conn, query, resolver, mark, deadline).await;
        match first {
            // A kept connection may have been closed by the resolver meanwhile: retry once.
            Err(e) if reused && e.kind() != io::ErrorKind::TimedOut => {
                *conn = None;
                tcp_exchange(conn, query, resolver, mark, deadline).await
            }
            other => other,
        }
    }
}

async fn tcp_exchange(
    conn: &mut Option<TcpStream>,
    query: &Query,
    resolver: SocketAddr,
    mark: u32,
    deadline: Instant,
) -> io::Result<(Vec<u8>, Instant)> {
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
        write_frame(stream, query.raw()).await?;
        loop {
            let bytes = read_frame(stream).await?;
            if query.matches_reply(&bytes) {
                return Ok((bytes, Instant::now()));
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
