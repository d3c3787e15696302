//! Flow records out, in batches moved by a timer. Handing records to the agent's channel from the
//! DNS thread wakes the consumer's runtime from another thread (a futex wake and a context switch
//! each time its task has drained the channel and parked: several times per batch, a fifth of the
//! proxy's CPU per query). Instead the DNS thread only appends to a buffer, and a task on the
//! consumer's runtime moves the buffer into the channel every `FLUSH`: no cross-thread wake per
//! query or per batch. Records reach the agent at most `FLUSH` later.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::flow::DnsFlowRecord;
use crate::server::DnsProxyStats;

/// Most records buffered between flushes (4 MB or so); past it records are dropped and counted.
const MAX_BUFFERED: usize = 16_384;
/// Longest a record waits in the buffer.
pub const FLUSH: Duration = Duration::from_millis(25);

/// The buffering sender (records are dropped and counted when the channel is full).
pub struct FlowOut {
    tx: mpsc::Sender<DnsFlowRecord>,
    buf: Mutex<Vec<DnsFlowRecord>>,
    stats: Arc<DnsProxyStats>,
}

impl FlowOut {
    /// Buffers for `tx`; drops are counted in `stats.flows_dropped`.
    pub fn new(tx: mpsc::Sender<DnsFlowRecord>, stats: Arc<DnsProxyStats>) -> Self {
        FlowOut {
            tx,
            buf: Mutex::new(Vec::new()),
            stats,
        }
    }

    /// Queues one record until the next [`FlowOut::flush`].
    pub fn push(&self, record: DnsFlowRecord) {
        let mut buf = self.lock();
        if buf.len() >= MAX_BUFFERED {
            drop(buf);
            self.stats.flows_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buf.push(record);
    }

    /// Sends whatever is queued (called every `FLUSH` from the consumer's runtime).
    pub fn flush(&self) {
        let batch = {
            let mut buf = self.lock();
            // The next batch is likely as large: give the buffer that room up front.
            let room = buf.len();
            std::mem::replace(&mut *buf, Vec::with_capacity(room))
        };
        for record in batch {
            // Never let a slow consumer hold up DNS: drop the record and count it.
            if self.tx.try_send(record).is_err() {
                self.stats.flows_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<DnsFlowRecord>> {
        self.buf.lock().unwrap_or_else(|p| p.into_inner())
    }
}
