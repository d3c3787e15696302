//! UDP front end: receive on the transparent socket, decide, forward through the multiplexer,
//! answer from a socket bound to the original resolver address. Datagrams move in batches
//! (`recvmmsg` / `sendmmsg`): each batch of queries read is decided, then the multiplexer sends
//! the allowed ones and the answers made here (REFUSED, FORMERR) leave together; answers from
//! upstream are queued by the multiplexer's readers and leave after each batch they read.

use foldhash::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::batch::{self, RecvBatch, BATCH};
use crate::flow::Transport;
use crate::handler::{Addrs, Begin, Forward, Release, Shared, Stamp};
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
        queue: Mutex::default(),
        spare: Mutex::default(),
    });
    let flusher = out.clone();
    shared.mux.on_batch_end(Arc::new(move || flusher.flush()));
    let mut batch = RecvBatch::new(MAX_MESSAGE, true);
    loop {
        let n = match batch.recv(&out.listener).await {
            Ok(n) => n,
            // ICMP errors from earlier sends surface here; they are not fatal for a listener.
            Err(e) if is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        // One clock read per batch for the flow records' times and the upstream deadlines
        // (checked every 100 ms); queries of a batch arrived within microseconds of each other.
        let read = Stamp::now();
        let deadline = Instant::from_std(read.at) + shared.config.upstream_timeout;
        for i in 0..n {
            let (packet, meta) = batch.get(i);
            shared.stats.queries.fetch_add(1, Ordering::Relaxed);
            let Some(src) = meta.src else {
                tracing::warn!("UDP datagram without source address; dropped");
                continue;
            };
            let Some(orig) = meta.orig_dst else {
                tracing::warn!(src = %src, "UDP datagram without original destination; dropped");
                continue;
            };
            let addrs = Addrs {
                src: sockets::canonical(src),
                resolver: sockets::canonical(orig),
                transport: Transport::Udp,
            };
            query(&shared, &out, &limit, packet, addrs, read, deadline);
        }
        shared.mux.flush();
        out.flush();
        if n == BATCH {
            // More are likely queued: let the upstream readers release answers first.
            tokio::task::yield_now().await;
        }
    }
}

/// Decides one query: answered at once (queued in `out`) or queued in the multiplexer.
fn query(
    shared: &Arc<Shared>,
    out: &Arc<Out>,
    limit: &Arc<Semaphore>,
    packet: &[u8],
    addrs: Addrs,
    read: Stamp,
    deadline: Instant,
) {
    let Ok(permit) = limit.clone().try_acquire_owned() else {
        if let Some(reply) = shared.overloaded(packet, addrs, read) {
            out.queue(reply, addrs);
        }
        return;
    };
    let fwd = match shared.begin(packet, addrs, read) {
        Begin::Reply(reply) => {
            if let Some(reply) = reply {
                out.queue(reply, addrs);
            }
            return;
        }
        Begin::Forward(fwd) => fwd,
    };
    let (name_end, end) = (fwd.query.name_end(), fwd.query.question_end());
    let (sh, o) = (shared.clone(), out.clone());
    let done: Done = Box::new(move |answer| complete(sh, o, fwd, permit, answer));
    shared
        .mux
        .send(packet, name_end, end, addrs.resolver, deadline, done);
}

/// Runs on a multiplexer reader task when the answer (or the failure) is in; the answer is
/// queued and leaves when the reader ends its batch.
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
                out.queue(reply, addrs);
            }
        }
        Release::AfterLearn(learning) => {
            tokio::spawn(async move {
                let _permit = permit;
                if let Some(reply) = shared.release_after_learn(learning).await {
                    out.queue(reply, addrs);
                    out.flush();
                }
            });
        }
    }
}

/// The listener, the reply sockets and the answers waiting for [`Out::flush`].
struct Out {
    listener: UdpSocket,
    replies: ReplySockets,
    queue: Mutex<Vec<(Vec<u8>, Addrs)>>,
    /// The queue's previous buffer, kept for its room.
    spare: Mutex<Vec<(Vec<u8>, Addrs)>>,
}

impl Out {
    /// Queues an answer for the next [`Out::flush`].
    fn queue(&self, reply: Vec<u8>, addrs: Addrs) {
        lock(&self.queue).push((reply, addrs));
    }

    /// Sends the queued answers from their resolver's own address without waiting, one
    /// `sendmmsg` per run of answers from the same resolver (a task waits if the socket buffer
    /// is full); falls back to the listener (wrong source) when no reply socket can be made.
    fn flush(&self) {
        let mut queued = std::mem::take(&mut *lock(&self.spare));
        std::mem::swap(&mut queued, &mut *lock(&self.queue));
        if queued.is_empty() {
            return;
        }
        for run in queued.chunk_by(|a, b| a.1.resolver == b.1.resolver) {
            let resolver = run[0].1.resolver;
            let sock = match self.replies.get(resolver) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(resolver = %resolver, error = %e,
                        "cannot answer from the resolver address; answering from the listener");
                    for (reply, addrs) in run {
                        let _ = self.listener.try_send_to(reply, addrs.src);
                    }
                    continue;
                }
            };
            let msgs: Vec<(&[u8], Option<SocketAddr>)> = run
                .iter()
                .map(|(reply, addrs)| (reply.as_slice(), Some(addrs.src)))
                .collect();
            let mut at = 0;
            while at < msgs.len() {
                match batch::send_now_unwatched(&sock, &msgs[at..]) {
                    Ok(n) => {
                        at += n;
                        break;
                    }
                    Err((n, e)) => {
                        tracing::debug!(src = %run[at + n].1.src, error = %e,
                            "cannot send DNS answer");
                        at += n + 1;
                    }
                }
            }
            if at < msgs.len() {
                // Socket buffer full: a watched copy of the socket waits for room, then goes.
                let rest: Vec<(Vec<u8>, SocketAddr)> = run[at..]
                    .iter()
                    .map(|(reply, addrs)| (reply.clone(), addrs.src))
                    .collect();
                let watched = sock.try_clone().and_then(UdpSocket::from_std);
                tokio::spawn(async move {
                    let Ok(sock) = watched else { return };
                    for (reply, src) in rest {
                        let _ = sock.send_to(&reply, src).await;
                    }
                });
            }
        }
        queued.clear();
        *lock(&self.spare) = queued;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
pub struct ReplySockets(Mutex<HashMap<SocketAddr, Arc<std::net::UdpSocket>>>);

impl ReplySockets {
    fn get(&self, resolver: SocketAddr) -> std::io::Result<Arc<std::net::UdpSocket>> {
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
