//! UDP upstream multiplexer: a few long-lived marked sockets per resolver instead of a fresh
//! socket (socket + setsockopt + bind + connect + close) per query.
//!
//! Each query gets a transaction ID unique among the pending queries of its socket, drawn from a
//! keyed hash (unpredictable without the process's secret key); the client's ID is restored in
//! the answer. A reader task per socket hands each datagram to the pending query with that ID, and
//! only if its first question is the query's (name case-insensitive, type and class exact);
//! anything else is dropped and counted, the query keeps waiting.
//!
//! Spoofing: an off-path attacker must hit an open port and a pending ID. With `SOCKETS` ports
//! holding `P` pending queries between them, a blind answer hits with probability
//! `P / (ports × 65536)`, the same as with one random port per pending query. Sockets are
//! replaced after `ROTATE_AFTER` or `ROTATE_QUERIES`, so a port learned somehow is short-lived.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::AbortHandle;
use tokio::time::{timeout_at, Instant};

use crate::question;
use crate::sockets;
use crate::upstream::MAX_MESSAGE;

/// Sockets per resolver address.
const SOCKETS: usize = 4;
/// A socket stops taking new queries after this long...
const ROTATE_AFTER: Duration = Duration::from_secs(10);
/// ...or after this many queries, whichever comes first.
const ROTATE_QUERIES: u64 = 20_000;
/// A retired socket's reader gives up on late answers after this (queries time out sooner).
const DRAIN: Duration = Duration::from_secs(30);
/// Most resolver addresses with sockets; past it the pools start over.
const MAX_RESOLVERS: usize = 256;

/// How often a reader looks for queries past their deadline.
const SWEEP: Duration = Duration::from_millis(100);

/// A matched answer with the client's ID restored, and when it arrived.
pub struct Reply {
    /// Datagram as received, ID restored.
    pub bytes: Vec<u8>,
    /// When the reader took it off the socket.
    pub received: Instant,
}

/// Called once per query with its answer or why there is none (send error, timeout). Runs on
/// the socket's reader task, so it must not block; it may spawn.
pub type Done = Box<dyn FnOnce(io::Result<Reply>) + Send>;

struct Waiter {
    client_id: u16,
    /// The query's bytes up to the end of the first question.
    question: Vec<u8>,
    name_end: usize,
    deadline: Instant,
    done: Done,
}

#[derive(Default)]
struct Pending {
    waiters: HashMap<u16, Waiter>,
    /// Set by the reader as it stops; a query that finds it set picks another socket.
    closed: bool,
}

struct Conn {
    sock: UdpSocket,
    pending: Mutex<Pending>,
    born: Instant,
    used: AtomicU64,
    /// Replaced in its pool: takes no new queries, its reader stops once none wait.
    retired: AtomicBool,
}

impl Conn {
    fn due(&self) -> bool {
        self.born.elapsed() >= ROTATE_AFTER || self.used.load(Ordering::Relaxed) >= ROTATE_QUERIES
    }
}

#[derive(Default)]
struct Pool {
    slots: Vec<Arc<Conn>>,
    next: usize,
}

/// Upstream UDP sockets per resolver, shared by all queries. Dropping it stops the readers.
pub struct UdpMux {
    mark: u32,
    pools: Mutex<HashMap<SocketAddr, Pool>>,
    readers: Mutex<Vec<AbortHandle>>,
    ids: RandomState,
    counter: AtomicU64,
    /// Datagrams dropped because no pending query has their ID and question.
    pub mismatched: Arc<AtomicU64>,
    spawned: AtomicUsize,
}

impl UdpMux {
    /// A multiplexer whose sockets carry `SO_MARK = mark`; mismatched datagrams are counted in
    /// `mismatched`.
    pub fn new(mark: u32, mismatched: Arc<AtomicU64>) -> Self {
        UdpMux {
            mark,
            pools: Mutex::default(),
            readers: Mutex::default(),
            ids: RandomState::new(),
            counter: AtomicU64::new(0),
            mismatched,
            spawned: AtomicUsize::new(0),
        }
    }

    #[cfg(test)]
    /// Sockets opened so far (rotation included); lets tests see that sockets are reused.
    pub fn sockets_opened(&self) -> usize {
        self.spawned.load(Ordering::Relaxed)
    }

    /// Sends `packet` (its first question ends at `question_end`, its name at `name_end`) to
    /// `resolver` under a fresh ID; `done` gets the matching answer, or an error once `deadline`
    /// has passed (checked every `SWEEP`) or when sending fails.
    pub fn send(
        &self,
        packet: &[u8],
        name_end: usize,
        question_end: usize,
        resolver: SocketAddr,
        deadline: Instant,
        done: Done,
    ) {
        let mut waiter = Some(Waiter {
            client_id: question::id_of(packet).unwrap_or(0),
            question: packet[..question_end].to_vec(),
            name_end,
            deadline,
            done,
        });
        let (conn, id) = loop {
            let conn = match self.conn(resolver) {
                Ok(c) => c,
                Err(e) => {
                    if let Some(w) = waiter.take() {
                        (w.done)(Err(e));
                    }
                    return;
                }
            };
            let mut pending = lock(&conn.pending);
            if pending.closed {
                continue; // its reader just stopped; conn() hands out another socket
            }
            let id = self.free_id(&pending.waiters);
            if let Some(w) = waiter.take() {
                pending.waiters.insert(id, w);
            }
            drop(pending);
            break (conn, id);
        };
        let mut out = packet.to_vec();
        question::set_id(&mut out, id);
        match conn.sock.try_send(&out) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Socket buffer full: wait for room without holding up the caller.
                tokio::spawn(async move {
                    if let Err(e) = conn.sock.send(&out).await {
                        fail(&conn, id, e);
                    }
                });
            }
            Err(e) => fail(&conn, id, e),
        }
    }

    #[cfg(test)]
    /// [`UdpMux::send`] as a future.
    pub async fn exchange(
        &self,
        packet: &[u8],
        name_end: usize,
        question_end: usize,
        resolver: SocketAddr,
        deadline: Instant,
    ) -> io::Result<Reply> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done: Done = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.send(packet, name_end, question_end, resolver, deadline, done);
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("upstream socket closed")))
    }

    /// An ID no pending query of this socket uses (the pending set is far below 65536).
    fn free_id(&self, pending: &HashMap<u16, Waiter>) -> u16 {
        loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let id = self.ids.hash_one(n) as u16;
            if !pending.contains_key(&id) {
                return id;
            }
        }
    }

    /// The next socket for `resolver`, replacing it first when it is due for rotation.
    fn conn(&self, resolver: SocketAddr) -> io::Result<Arc<Conn>> {
        let mut pools = lock(&self.pools);
        if !pools.contains_key(&resolver) && pools.len() >= MAX_RESOLVERS {
            for conn in pools.values().flat_map(|p| p.slots.iter()) {
                conn.retired.store(true, Ordering::Relaxed);
            }
            pools.clear(); // readers of dropped sockets drain and stop on their own
        }
        let pool = pools.entry(resolver).or_default();
        let i = pool.next % SOCKETS;
        pool.next = pool.next.wrapping_add(1);
        if pool.slots.len() <= i || pool.slots[i].due() || pool.slots[i].stopped() {
            let conn = self.open(resolver)?;
            if pool.slots.len() <= i {
                pool.slots.push(conn);
            } else {
                let old = std::mem::replace(&mut pool.slots[i], conn);
                old.retired.store(true, Ordering::Relaxed);
            }
        }
        let conn = pool.slots[i.min(pool.slots.len() - 1)].clone();
        conn.used.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    fn open(&self, resolver: SocketAddr) -> io::Result<Arc<Conn>> {
        let conn = Arc::new(Conn {
            sock: sockets::upstream_udp_std(resolver, self.mark)?,
            pending: Mutex::default(),
            born: Instant::now(),
            used: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        });
        self.spawned.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(read_answers(conn.clone(), self.mismatched.clone()));
        let mut readers = lock(&self.readers);
        readers.retain(|h| !h.is_finished());
        readers.push(task.abort_handle());
        Ok(conn)
    }
}

impl UdpMux {
    /// Stops every reader and forgets the sockets; pending queries are dropped unanswered.
    pub fn shutdown(&self) {
        for h in lock(&self.readers).drain(..) {
            h.abort();
        }
        lock(&self.pools).clear();
    }
}

impl Drop for UdpMux {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Completes query `id` with `e` if it is still pending.
fn fail(conn: &Conn, id: u16, e: io::Error) {
    let waiter = lock(&conn.pending).waiters.remove(&id);
    if let Some(w) = waiter {
        (w.done)(Err(e));
    }
}

/// Completes every query past its deadline with a timeout.
fn sweep(conn: &Conn) {
    let now = Instant::now();
    let expired: Vec<Waiter> = {
        let mut pending = lock(&conn.pending);
        let ids: Vec<u16> = pending
            .waiters
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.iter()
            .filter_map(|id| pending.waiters.remove(id))
            .collect()
    };
    for w in expired {
        (w.done)(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "upstream timeout",
        )));
    }
}

/// Hands each datagram to its waiter. A retired socket (no longer in its pool: only the reader
/// holds it besides in-flight queries) stops once nothing waits on it, or after `DRAIN`.
async fn read_answers(conn: Arc<Conn>, mismatched: Arc<AtomicU64>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut next_sweep = Instant::now() + SWEEP;
    loop {
        if Instant::now() >= next_sweep {
            sweep(&conn);
            next_sweep = Instant::now() + SWEEP;
        }
        if conn.retired.load(Ordering::Relaxed) {
            let mut pending = lock(&conn.pending);
            if pending.waiters.is_empty() || conn.born.elapsed() > DRAIN {
                pending.closed = true;
                let left: Vec<Waiter> = pending.waiters.drain().map(|(_, w)| w).collect();
                drop(pending);
                for w in left {
                    (w.done)(Err(io::Error::other("upstream socket retired")));
                }
                return;
            }
        }
        let n = match timeout_at(next_sweep, conn.sock.recv(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(n)) => n,
            // ICMP errors (port unreachable) surface here; queries time out on their own.
            Ok(Err(_)) => continue,
        };
        let received = Instant::now();
        let msg = &mut buf[..n];
        let Some(id) = question::id_of(msg) else {
            mismatched.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let waiter = {
            let mut pending = lock(&conn.pending);
            match pending.waiters.get(&id) {
                Some(w) if question::reply_matches(&w.question, w.name_end, msg) => {
                    pending.waiters.remove(&id)
                }
                _ => None,
            }
        };
        let Some(w) = waiter else {
            mismatched.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        question::set_id(msg, w.client_id);
        (w.done)(Ok(Reply {
            bytes: msg.to_vec(),
            received,
        }));
    }
}

impl Conn {
    fn stopped(&self) -> bool {
        lock(&self.pending).closed
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[path = "mux_tests.rs"]
mod tests;
