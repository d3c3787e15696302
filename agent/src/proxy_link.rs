//! The link between the agent and the proxy process (`palisade proxy`), like cilium-agent and
//! cilium-envoy: the proxy process owns the HTTP and DNS listeners and serves a unix socket;
//! the agent connects, pushes policy snapshots, and receives flow records and DNS learn
//! requests. Either side can restart: the proxy keeps enforcing its last snapshots, and learn
//! requests that are still pending are sent again when an agent connects.
//!
//! The protocol is newline-delimited JSON, one [`ToProxy`] or [`ToAgent`] message a line.

use palisade_dnsproxy::{DnsFlowRecord, DnsSnapshot, LearnedAnswer};
use palisade_proxy::{HttpFlowRecord, PolicySnapshot};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// Agent → proxy.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToProxy {
    /// A new HTTP policy snapshot.
    Http {
        /// The snapshot.
        snapshot: PolicySnapshot,
    },
    /// A new DNS policy snapshot.
    Dns {
        /// The snapshot.
        snapshot: DnsSnapshot,
    },
    /// A learn request was applied to the maps (or failed).
    Learned {
        /// The request's id.
        id: u64,
        /// Why it failed, if it did.
        error: Option<String>,
    },
}

/// Proxy → agent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToAgent {
    /// Sent first on every connection.
    Hello {
        /// The proxy process.
        pid: u32,
        /// Revision of the HTTP snapshot in force (0: none yet).
        http_revision: u64,
    },
    /// One HTTP request handled.
    HttpFlow {
        /// The record.
        record: HttpFlowRecord,
    },
    /// One DNS query handled.
    DnsFlow {
        /// The record.
        record: DnsFlowRecord,
    },
    /// The HTTP proxy enforces this snapshot revision now (the DNS snapshot of the same
    /// revision was handed over before it).
    Applied {
        /// The revision.
        revision: u64,
    },
    /// Addresses from an allowed DNS answer: write them, then answer `Learned`.
    Learn {
        /// Request id.
        id: u64,
        /// What was learned.
        answer: LearnedAnswer,
    },
}

/// Writes one message as a JSON line.
pub async fn send<T: Serialize>(w: &mut OwnedWriteHalf, msg: &T) -> std::io::Result<()> {
    send_all(w, std::slice::from_ref(msg)).await
}

/// Writes messages as JSON lines with one write (flow records come in bursts: one write per
/// record cost a system call per DNS query).
pub async fn send_all<T: Serialize>(w: &mut OwnedWriteHalf, msgs: &[T]) -> std::io::Result<()> {
    let mut lines = Vec::new();
    for msg in msgs {
        serde_json::to_writer(&mut lines, msg).map_err(std::io::Error::other)?;
        lines.push(b'\n');
    }
    w.write_all(&lines).await
}

/// Reads JSON-line messages.
pub struct Reader {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
}

impl Reader {
    /// Wraps the read half of a connection.
    pub fn new(r: OwnedReadHalf) -> Self {
        Reader {
            lines: BufReader::new(r).lines(),
        }
    }

    /// The next message; `None` at end of stream. A malformed line is an error.
    pub async fn next<T: for<'de> Deserialize<'de>>(&mut self) -> std::io::Result<Option<T>> {
        match self.lines.next_line().await? {
            None => Ok(None),
            Some(line) => serde_json::from_str(&line)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}
