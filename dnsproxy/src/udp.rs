//! UDP front end: receive on the transparent socket, decide, forward through the multiplexer,
//! answer from a socket bound to the original resolver address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::flow::Transport;
use crate::handler::{Addrs, Begin, Forward, Release, Shared};
use crate::mux::{Done, Reply};
use crate::sockets;
use crate::upstream::MAX_MESSAGE;

/// Serves the UDP listener until the task is dropped. No task per query: this loop decides and
/// sends upstream, the multiplexer's reader tasks release answers; only an answer that must wait
/// for the learner gets a task.
pub async fn serve(
    sock: UdpSocket,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
) -> std::io::Result<()> {
    let out = Arc::new(Out {
        listener: sock,
        replies: ReplySockets::default(),
    });
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let dg = match sockets::recv_with_orig_dst(&out.listener, &mut buf).await {
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
        let packet = &buf[..dg.len.min(buf.len())];
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            if let Some(reply) = shared.overloaded(packet, addrs) {
                out.send(reply, addrs);
            }
            continue;
        };
        let fwd = match shared.begin(packet, addrs) {
            Begin::Reply(reply) => {
                if let Some(reply) = reply {
                    out.send(reply, addrs);
                }
                continue;
            }
            Begin::Forward(fwd) => fwd,
        };
        let q = fwd.query.question();
        let (name_end, end) = (q.name_end, q.end());
        let deadline = Instant::now() + shared.config.upstream_timeout;
        let (sh, o) = (shared.clone(), out.clone());
        let done: Done = Box::new(move |answer| complete(sh, o, fwd, permit, answer));
        shared
            .mux
            .send(packet, name_end, end, addrs.resolver, deadline, done);
    }
}

/// Runs on a multiplexer reader task when the answer (or the failure) is in.
fn complete(
    shared: Arc<Shared>,
    out: Arc<Out>,
    fwd: Box<Forward>,
    permit: OwnedSemaphorePermit,
    answer: std::io::Result<Reply>,
) {
    let addrs = fwd.addrs;
    let release = match answer {
        Ok(a) => shared.answered(fwd, a.bytes, a.received.into_std()),
        Err(e) => Release::Now(shared.upstream_failed(fwd, &e)),
    };
    match release {
        Release::Now(reply) => {
            drop(permit);
            if let Some(reply) = reply {
                out.send(reply, addrs);
            }
        }
        Release::AfterLearn(learning) => {
            tokio::spawn(async move {
                let _permit = permit;
                if let Some(reply) = shared.release_after_learn(learning).await {
                    out.send(reply, addrs);
                }
            });
        }
    }
}

/// The listener and the reply sockets.
struct Out {
    listener: UdpSocket,
    replies: ReplySockets,
}

impl Out {
    /// Sends from the resolver's own address without waiting (a task waits if the socket buffer
    /// is full); falls back to the listener (wrong source) when no reply socket can be made.
    fn send(self: &Arc<Self>, reply: Vec<u8>, addrs: Addrs) {
        let sock = match self.replies.get(addrs.resolver) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(resolver = %addrs.resolver, src = %addrs.src, error = %e,
                    "cannot answer from the resolver address; answering from the listener");
                let _ = self.listener.try_send_to(&reply, addrs.src);
                return;
            }
        };
        match sock.try_send_to(&reply, addrs.src) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::spawn(async move {
                    let _ = sock.send_to(&reply, addrs.src).await;
                });
            }
            Err(e) => tracing::debug!(src = %addrs.src, error = %e, "cannot send DNS answer"),
            Ok(_) => {}
        }
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
