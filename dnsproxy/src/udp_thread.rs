//! The UDP path on a thread of its own with a single-threaded runtime. Listener loop, upstream
//! readers and reply sends then never wake another thread, which costs about a fifth of the
//! per-query CPU on a shared runtime; it also keeps DNS latency independent of whatever else the
//! embedding process (the agent) runs. One thread serves on the order of 10^5 queries/s.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::UdpSocket;
use tokio::sync::{oneshot, Semaphore};

use crate::handler::Shared;
use crate::{drain, udp};

/// The running UDP thread; dropping it stops the thread (without waiting for it).
pub struct UdpThread {
    stop: Option<oneshot::Sender<()>>,
    /// Completes when the UDP listener fails (never on its own otherwise).
    pub failed: oneshot::Receiver<io::Error>,
    _thread: JoinHandle<()>,
}

impl UdpThread {
    /// Moves `sock` to a new thread and serves it there. The thread inherits the caller's
    /// network namespace.
    pub fn spawn(sock: UdpSocket, shared: Arc<Shared>, limit: Arc<Semaphore>) -> io::Result<Self> {
        let sock = sock.into_std()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (failed_tx, failed_rx) = oneshot::channel();
        let (drain_shared, drain_limit) = (shared.clone(), limit.clone());
        let thread = std::thread::Builder::new()
            .name("palisade-dns-udp".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let served = async {
                        let sock = UdpSocket::from_std(sock)?;
                        udp::serve(sock, shared, limit).await
                    };
                    tokio::select! {
                        r = served => {
                            if let Err(e) = r {
                                let _ = failed_tx.send(e);
                            }
                        }
                        _ = stop_rx => {
                            // The listener is closed; queries already read still get answers.
                            let max = drain_shared.config.max_in_flight.max(1);
                            let within = drain::bound(&drain_shared.config);
                            drain::in_flight_done(&drain_limit, max, within).await;
                        }
                    }
                });
                // Learner calls still running on the blocking pool finish on their own.
                runtime.shutdown_background();
            })?;
        Ok(UdpThread {
            stop: Some(stop_tx),
            failed: failed_rx,
            _thread: thread,
        })
    }
}

impl Drop for UdpThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
