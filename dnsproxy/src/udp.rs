//! UDP front end: receive on the transparent socket, handle each query in its own task, answer
//! from a socket bound to the original resolver address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::flow::Transport;
use crate::handler::{Addrs, Shared};
use crate::sockets;
use crate::upstream::{Upstream, MAX_MESSAGE};

/// Serves the UDP listener until the task is dropped.
pub async fn serve(
    sock: UdpSocket,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
) -> std::io::Result<()> {
    let sock = Arc::new(sock);
    let replies = Arc::new(ReplySockets::default());
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        while tasks.try_join_next().is_some() {}
        let dg = match sockets::recv_with_orig_dst(&sock, &mut buf).await {
            Ok(d) => d,
            // ICMP errors from earlier sends surface here; they are not fatal for a listener.
            Err(e) if is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        shared.stats.queries.fetch_add(1, Ordering::Relaxed);
        let Some(orig) = dg.orig_dst else {
            tracing::warn!(src = %dg.src, "UDP datagram without original destination; dropped");
            continue;
        };
        let addrs = Addrs {
            src: sockets::canonical(dg.src),
            resolver: sockets::canonical(orig),
            transport: Transport::Udp,
        };
        let packet = buf[..dg.len.min(buf.len())].to_vec();
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            if let Some(reply) = shared.overloaded(&packet, addrs) {
                send_reply(&sock, &replies, &reply, addrs).await;
            }
            continue;
        };
        let (shared, sock, replies) = (shared.clone(), sock.clone(), replies.clone());
        tasks.spawn(async move {
            let _permit = permit;
            if let Some(reply) = shared
                .handle(&packet, addrs, &mut Upstream::Udp(shared.mux.clone()))
                .await
            {
                send_reply(&sock, &replies, &reply, addrs).await;
            }
        });
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(nix::libc::EHOSTUNREACH)
        || e.raw_os_error() == Some(nix::libc::ENETUNREACH)
}

/// Most resolver addresses whose reply sockets are kept; past it the cache starts over.
const MAX_REPLY_SOCKETS: usize = 256;

/// Reply sockets per resolver address, reused across queries (creating one costs ~6 syscalls).
/// Nothing is ever delivered to them: packets for the resolver address are either forwarded or
/// steered to the listener explicitly (TPROXY / sk_assign), never looked up by address.
#[derive(Default)]
pub struct ReplySockets(Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>);

impl ReplySockets {
    fn get(&self, resolver: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(&resolver) {
            return Ok(s.clone());
        }
        if map.len() >= MAX_REPLY_SOCKETS {
            map.clear();
        }
        let s = Arc::new(sockets::reply_udp(resolver)?);
        map.insert(resolver, s.clone());
        Ok(s)
    }
}

/// Sends from the resolver's own address; falls back to the listener (wrong source) on failure.
async fn send_reply(listener: &UdpSocket, replies: &ReplySockets, reply: &[u8], addrs: Addrs) {
    let sent = match replies.get(addrs.resolver) {
        Ok(s) => s.send_to(reply, addrs.src).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        tracing::warn!(resolver = %addrs.resolver, src = %addrs.src, error = %e,
            "cannot answer from the resolver address; answering from the listener");
        let _ = listener.send_to(reply, addrs.src).await;
    }
}
