//! Writing the FQDN cache file behind the learn path. A DNS answer waits for the map writes
//! only; the file (written with fsync, tens of milliseconds on a busy disk) follows on a thread of
//! its own. Requests made while a write runs, or within `MIN_INTERVAL` of its start, coalesce
//! into one more write of the latest cache: the file trails the cache by at most that long plus
//! one write, and a stream of new names (each rewrites the whole file) costs at most a few writes
//! a second. A request after a quiet spell is written at once.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use super::agent::{fqdn_path, Agent};

/// Shortest time between the starts of two writes.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Handle to the writer thread; the thread ends when the agent is dropped.
pub struct FqdnWriter {
    tx: SyncSender<()>,
    /// Serializes writes: the thread's and a final one at shutdown share the temp file.
    writing: Mutex<()>,
}

impl FqdnWriter {
    /// Starts the writer for `agent` (a weak reference: the agent owns the handle).
    pub fn spawn(agent: Weak<Agent>) -> FqdnWriter {
        // One slot: a request while one is queued is already covered by it.
        let (tx, rx) = sync_channel(1);
        let started = std::thread::Builder::new()
            .name("palisade-fqdn-save".into())
            .spawn(move || run(agent, rx));
        if let Err(e) = started {
            tracing::error!("cannot start the FQDN cache writer; the cache is not persisted: {e}");
        }
        FqdnWriter {
            tx,
            writing: Mutex::new(()),
        }
    }

    /// Asks for the cache to be written soon; never blocks.
    pub fn request(&self) {
        match self.tx.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("FQDN cache writer is gone; learned names are not persisted")
            }
        }
    }
}

fn run(agent: Weak<Agent>, rx: Receiver<()>) {
    while rx.recv().is_ok() {
        let started = Instant::now();
        {
            let Some(agent) = agent.upgrade() else { return };
            agent.fqdn_writer.save_now(&agent);
        }
        // Requests meanwhile wait in the channel's one slot.
        std::thread::sleep(MIN_INTERVAL.saturating_sub(started.elapsed()));
    }
}

impl FqdnWriter {
    /// Writes `agent`'s cache as it is now: a copy taken under the agent lock, written (with
    /// fsync) without it, so learning goes on meanwhile.
    pub fn save_now(&self, agent: &Agent) {
        let _one = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let copy = agent.lock().fqdn.clone();
        let path: PathBuf = fqdn_path(&agent.config);
        if let Err(e) = copy.save(&path) {
            tracing::warn!("cannot persist the FQDN cache: {e}");
        }
    }
}
