//! UDP upstream multiplexer: a few long-lived marked sockets per resolver instead of a fresh
//! socket (socket + setsockopt + bind + connect + close) per query.
//!
//! Each query gets a transaction ID unique among the pending queries of its socket, drawn from a
//! keyed hash (unpredictable without the process's secret key); the client's ID is restored in
//! the answer. A reader task per socket hands each datagram to the pending query with that ID, and
//! only if its first question is the query's (name case-insensitive, type and class exact);
//! anything else is dropped and counted, the query keeps waiting.
//!
//! Queries are queued per socket and leave in one `sendmmsg` per socket when the caller calls
//! [`UdpMux::flush`] (the UDP front end does after each batch it reads); readers take answers
//! with `recvmmsg` and call the batch-end hook ([`UdpMux::on_batch_end`]) after each batch, so
//! the front end can send the answers in batches too.
//!
//! Spoofing: an off-path attacker must hit an open port and a pending ID. With `SOCKETS` ports
//! holding `P` pending queries between them, a blind answer hits with probability
//! `P / (ports × 65536)`, the same as with one random port per pending query. Sockets are
//! replaced after `ROTATE_AFTER` or `ROTATE_QUERIES`, so a port learned somehow is short-lived.

use foldhash::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::AbortHandle;
use tokio::time::{timeout_at, Instant};

use crate::batch::{self, RecvBatch};
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

/// Called by a reader after it has handed out each batch of answers.
pub type BatchEnd = Arc<dyn Fn() + Send + Sync>;

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

/// Queries waiting for [`UdpMux::flush`]: their bytes back to back, IDs already rewritten.
#[derive(Default)]
struct Outbox {
    bytes: Vec<u8>,
    /// Start, end and ID of each query in `bytes`.
    msgs: Vec<(usize, usize, u16)>,
}

struct Conn {
    sock: UdpSocket,
    pending: Mutex<Pending>,
    outbox: Mutex<Outbox>,
    born: Instant,
    used: AtomicU64,
    /// Replaced in its pool: takes no new queries, its reader stops once none wait.
    retired: AtomicBool,
    /// Called after completing queries outside the caller's sight (reader, sweep, late send).
    batch_end: Option<BatchEnd>,
}

impl Conn {
    /// Lets the front end send what the queries just completed queued.
    fn batch_ended(&self) {
        if let Some(f) = &self.batch_end {
            f();
        }
    }

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
    /// Sockets with queries in their outbox.
    dirty: Mutex<Vec<Arc<Conn>>>,
    batch_end: Mutex<Option<BatchEnd>>,
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
            dirty: Mutex::default(),
            batch_end: Mutex::default(),
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

    /// Sets what readers call after each batch of answers (readers started later get it).
    pub fn on_batch_end(&self, f: BatchEnd) {
        *lock(&self.batch_end) = Some(f);
    }

    /// Queues `packet` (its first question ends at `question_end`, its name at `name_end`) for
    /// `resolver` under a fresh ID, sent by the next [`UdpMux::flush`]; `done` gets the matching
    /// answer, or an error once `deadline` has passed (checked every `SWEEP`) or when sending
    /// fails.
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
        let mut outbox = lock(&conn.outbox);
        if outbox.msgs.is_empty() {
            lock(&self.dirty).push(conn.clone());
        }
        let start = outbox.bytes.len();
        outbox.bytes.extend_from_slice(packet);
        let end = outbox.bytes.len();
        question::set_id(&mut outbox.bytes[start..end], id);
        outbox.msgs.push((start, end, id));
    }

    /// Sends every queued query, one `sendmmsg` per socket (more only past `BATCH` queries).
    pub fn flush(&self) {
        let conns = std::mem::take(&mut *lock(&self.dirty));
        for conn in conns {
            flush_conn(&conn);
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
        self.flush();
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
            outbox: Mutex::default(),
            born: Instant::now(),
            used: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            batch_end: lock(&self.batch_end).clone(),
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
        lock(&self.dirty).clear();
        *lock(&self.batch_end) = None;
    }
}

impl Drop for UdpMux {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sends a socket's queued queries; a full socket buffer leaves the rest to a task that waits
/// for room, a failed send fails that query only.
fn flush_conn(conn: &Arc<Conn>) {
    let mut out = std::mem::take(&mut *lock(&conn.outbox));
    let msgs: Vec<(&[u8], Option<SocketAddr>)> = out
        .msgs
        .iter()
        .map(|&(start, end, _)| (&out.bytes[start..end], None))
        .collect();
    let mut at = 0;
    while at < msgs.len() {
        match batch::send_now(&conn.sock, &msgs[at..]) {
            Ok(n) => {
                at += n;
                break;
            }
            Err((n, e)) => {
                fail(conn, out.msgs[at + n].2, e);
                at += n + 1;
            }
        }
    }
    if at < msgs.len() {
        // Socket buffer full: wait for room without holding up the caller.
        let rest: Vec<(Vec<u8>, u16)> = out.msgs[at..]
            .iter()
            .map(|&(start, end, id)| (out.bytes[start..end].to_vec(), id))
            .collect();
        let conn = conn.clone();
        tokio::spawn(async move {
            for (bytes, id) in rest {
                if let Err(e) = conn.sock.send(&bytes).await {
                    fail(&conn, id, e);
                    conn.batch_ended();
                }
            }
        });
    }
    drop(msgs);
    // Give the buffers back (keeping their room) unless new queries arrived meanwhile.
    out.bytes.clear();
    out.msgs.clear();
    let mut outbox = lock(&conn.outbox);
    if outbox.msgs.is_empty() {
        *outbox = out;
    }
}

/// Completes query `id` with `e` if it is still pending.
fn fail(conn: &Conn, id: u16, e: io::Error) {
    let waiter = lock(&conn.pending).waiters.remove(&id);
    if let Some(w) = waiter {
        (w.done)(Err(e));
    }
}

/// Completes every query past its deadline with a timeout; true if there were any.
fn sweep(conn: &Conn) -> bool {
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
    let any = !expired.is_empty();
    for w in expired {
        (w.done)(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "upstream timeout",
        )));
    }
    any
}

/// Hands each datagram to its waiter, then calls the batch-end hook once per batch (and after
/// a sweep). A retired socket (no longer in its pool: only the reader holds it besides in-flight
/// queries) stops once nothing waits on it, or after `DRAIN`.
async fn read_answers(conn: Arc<Conn>, mismatched: Arc<AtomicU64>) {
    let mut batch = RecvBatch::new(MAX_MESSAGE, false);
    let mut next_sweep = Instant::now() + SWEEP;
    loop {
        if Instant::now() >= next_sweep {
            if sweep(&conn) {
                conn.batch_ended();
            }
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
                conn.batch_ended();
                return;
            }
        }
        let n = match timeout_at(next_sweep, batch.recv(&conn.sock)).await {
            Err(_) => continue,
            Ok(Ok(n)) => n,
            // ICMP errors (port unreachable) surface here; queries time out on their own.
            Ok(Err(_)) => continue,
        };
        let received = Instant::now();
        for i in 0..n {
            let msg = batch.get_mut(i);
            if !hand_over(&conn, msg, received) {
                mismatched.fetch_add(1, Ordering::Relaxed);
            }
        }
        conn.batch_ended();
        if n == batch::BATCH {
            // More are likely queued: let the listener and the other readers run first.
            tokio::task::yield_now().await;
        }
    }
}

/// Completes the pending query `msg` answers (restoring the client's ID); false if none does.
fn hand_over(conn: &Conn, msg: &mut [u8], received: Instant) -> bool {
    let Some(id) = question::id_of(msg) else {
        return false;
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
        return false;
    };
    question::set_id(msg, w.client_id);
    (w.done)(Ok(Reply {
        bytes: msg.to_vec(),
        received,
    }));
    true
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
