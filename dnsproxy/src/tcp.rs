//! TCP front end: accept on the transparent listener (the accepted socket's local address is the
//! original resolver), then read length-prefixed queries and answer them in order.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::flow::Transport;
use crate::handler::{Addrs, Shared};
use crate::sockets;
use crate::upstream::{read_frame, write_frame, Upstream};

/// An idle client connection is closed after this (RFC 7766 suggests seconds, not minutes).
const IDLE: Duration = Duration::from_secs(10);

/// Serves the TCP listener until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
) -> std::io::Result<()> {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
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
