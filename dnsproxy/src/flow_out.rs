//! Flow records out, in small batches. Handing each record to the agent's channel at once wakes
//! the consumer's thread once per query (a futex wake and a context switch, about a third of the
//! proxy's CPU per query); batches of up to `BATCH`, flushed at least every `FLUSH`, wake it once
//! per batch. Records reach the agent at most `FLUSH` later.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::flow::DnsFlowRecord;
use crate::server::DnsProxyStats;

/// Records per batch.
const BATCH: usize = 256;
/// Longest a record waits in a batch.
pub const FLUSH: Duration = Duration::from_millis(25);

/// The batching sender (records are dropped and counted when the channel is full).
pub struct FlowOut {
    tx: mpsc::Sender<DnsFlowRecord>,
    buf: Mutex<Vec<DnsFlowRecord>>,
    stats: Arc<DnsProxyStats>,
}

impl FlowOut {
    /// Batches into `tx`; drops are counted in `stats.flows_dropped`.
    pub fn new(tx: mpsc::Sender<DnsFlowRecord>, stats: Arc<DnsProxyStats>) -> Self {
        FlowOut {
            tx,
            buf: Mutex::new(Vec::with_capacity(BATCH)),
            stats,
        }
    }

    /// Queues one record; sends the batch when it is full.
    pub fn push(&self, record: DnsFlowRecord) {
        let full = {
            let mut buf = self.lock();
            buf.push(record);
            (buf.len() >= BATCH).then(|| std::mem::replace(&mut *buf, Vec::with_capacity(BATCH)))
        };
        if let Some(batch) = full {
            self.send(batch);
        }
    }

    /// Sends whatever is queued.
    pub fn flush(&self) {
        let batch = std::mem::take(&mut *self.lock());
        self.send(batch);
    }

    fn send(&self, batch: Vec<DnsFlowRecord>) {
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
