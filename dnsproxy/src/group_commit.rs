//! Group commit for learner calls. The agent applies a learned answer under one lock, and a full
//! apply (re-resolving policy, writing maps) costs about the same for one answer as for fifty.
//! When a burst of new names arrives (a pod starting, 200 names at once), a call per answer on a
//! blocking thread of its own queues on that lock (and spawning the threads alone takes
//! milliseconds). Here one thread applies: each call queues its item and awaits its result; the
//! thread takes every item queued, applies them in one go, and answers each caller. A caller's
//! result always comes from an apply that included its item.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

use tokio::sync::oneshot;

/// Most items applied in one go, so one batch's apply stays short.
const MAX_BATCH: usize = 4096;

type Waiting<T, R> = (T, oneshot::Sender<R>);

/// Items queued for the applying thread; dropping this stops the thread once the queue is empty.
pub struct GroupCommit<T, R> {
    tx: mpsc::Sender<Waiting<T, R>>,
}

impl<T: Send + 'static, R: Clone + Send + 'static> GroupCommit<T, R> {
    /// Starts the thread `name`, which runs `apply` on every batch. If the thread cannot start,
    /// every call returns `None`; if `apply` panics, the calls of that batch do.
    pub fn spawn(name: &str, mut apply: impl FnMut(Vec<T>) -> R + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel::<Waiting<T, R>>();
        let thread_name = name.to_string();
        let started = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let batch = std::iter::once(first).chain(rx.try_iter().take(MAX_BATCH - 1));
                    let (items, waiting): (Vec<T>, Vec<_>) = batch.unzip();
                    // A panic fails this batch's callers (their senders drop), not every later one.
                    let applied = catch_unwind(AssertUnwindSafe(|| apply(items)));
                    let Ok(result) = applied else {
                        tracing::error!(thread = %thread_name, "apply panicked; its batch failed");
                        continue;
                    };
                    for w in waiting {
                        let _ = w.send(result.clone());
                    }
                }
            });
        if let Err(e) = started {
            tracing::error!(thread = name, error = %e, "cannot start the group-commit thread");
        }
        GroupCommit { tx }
    }

    /// Queues `item`; the result of the apply that included it (`None`: the thread is gone).
    pub async fn submit(&self, item: T) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((item, tx)).ok()?;
        rx.await.ok()
    }

    /// [`GroupCommit::submit`] for a blocking caller (not on an async runtime's thread).
    pub fn submit_blocking(&self, item: T) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((item, tx)).ok()?;
        rx.blocking_recv().ok()
    }
}

#[cfg(test)]
#[path = "group_commit_tests.rs"]
mod tests;
