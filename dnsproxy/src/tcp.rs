//! TCP front end: accept on the transparent listener (the accepted socket's local address is the
//! original resolver), then read length-prefixed queries and answer them in order.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::flow::Transport;
use crate::handler::{Addrs, Shared};
use crate::upstream::{read_frame, write_frame, Upstream};
use crate::{drain, sockets};

/// An idle client connection is closed after this (RFC 7766 suggests seconds, not minutes).
const IDLE: Duration = Duration::from_secs(10);

/// Serves the TCP listener until `stop` completes; then stops accepting, lets the queries being
/// answered finish and closes the connections.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut conns = JoinSet::new();
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
        conns.spawn(connection(stream, addrs, shared.clone(), limit.clone()));
    }
    drop(listener);
    let max = shared.config.max_in_flight.max(1);
    drain::in_flight_done(&limit, max, drain::bound(&shared.config)).await;
    conns.shutdown().await;
    Ok(())
}

async fn connection(
    mut stream: TcpStream,
    addrs: Addrs,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
) {
    let mut upstream = Upstream::default();
    loop {
        let packet = match tokio::time::timeout(IDLE, read_frame(&mut stream)).await {
            Ok(Ok(p)) => p,
            _ => return, // closed, broken or idle
        };
        shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let reply = match limit.clone().try_acquire_owned() {
            Ok(_permit) => shared.handle(&packet, addrs, &mut upstream).await,
            Err(_) => shared.overloaded(&packet, addrs),
        };
        let Some(reply) = reply else {
            return; // unreadable: the stream framing can no longer be trusted
        };
        if write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}
