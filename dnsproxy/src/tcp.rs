//! TCP front end: accept on the transparent listener (the accepted socket's local address is the
//! original resolver), then read length-prefixed queries and answer them in order.
//!
//! Stopping (an upgrade hands the listener to a new process) closes connections only between
//! queries: a connection this process accepted still gets its first query answered, since the
//! client sent it to a listener that accepted it (as the HTTP proxy does for a first request).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::flow::Transport;
use crate::handler::{Addrs, Shared, Stamp};
use crate::upstream::{read_frame, write_frame, Upstream};
use crate::{drain, sockets};

/// An idle client connection is closed after this (RFC 7766 suggests seconds, not minutes).
const IDLE: Duration = Duration::from_secs(10);

/// Serves the TCP listener until `stop` completes; then stops accepting, answers the query each
/// connection is on (or its first one) and closes the connections.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut conns = JoinSet::new();
    let (closing_tx, closing) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of fds or an aborted handshake: keep the listener alive.
                tracing::warn!(error = %e, "DNS proxy TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let addrs = Addrs {
            src: sockets::canonical(peer),
            resolver: sockets::canonical(local),
            transport: Transport::Tcp,
        };
        conns.spawn(connection(
            stream,
            addrs,
            shared.clone(),
            limit.clone(),
            closing.clone(),
        ));
    }
    drop(listener);
    // Idle connections close now; the others finish the query they are on. Bounded: a client
    // that connected and never sends is cut off with the rest.
    let _ = closing_tx.send(true);
    let all_done = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(drain::bound(&shared.config), all_done)
        .await
        .is_err()
    {
        tracing::warn!("DNS TCP connections still open after the drain bound");
    }
    conns.shutdown().await;
    Ok(())
}

async fn connection(
    mut stream: TcpStream,
    addrs: Addrs,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut closing: watch::Receiver<bool>,
) {
    let mut upstream = Upstream::default();
    let mut answered = false;
    loop {
        // Wait for the next query's first byte (peek: readiness alone can be stale), not inside
        // `read_frame`: closing then never cuts a query in half.
        let mut first = [0u8; 1];
        tokio::select! {
            biased;
            r = stream.peek(&mut first) => if !matches!(r, Ok(1..)) { return },
            () = tokio::time::sleep(IDLE) => return,
            _ = closing.wait_for(|c| *c), if answered => return,
        }
        let packet = match tokio::time::timeout(IDLE, read_frame(&mut stream)).await {
            Ok(Ok(p)) => p,
            _ => return, // closed, broken or idle
        };
        shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let reply = match limit.clone().try_acquire_owned() {
            Ok(_permit) => shared.handle(&packet, addrs, &mut upstream).await,
            Err(_) => shared.overloaded(&packet, addrs, Stamp::now()),
        };
        let Some(reply) = reply else {
            return; // unreadable: the stream framing can no longer be trusted
        };
        if write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
        answered = true;
    }
}
