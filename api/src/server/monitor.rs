//! `GET /v1/monitor`: forwards matching flow events from the agent's broadcast channel to
//! the client as NDJSON, one event per line, until the client goes away.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::sync::{broadcast, mpsc};

use crate::flow::{FlowEvent, MonitorFilter};
use crate::http_util::{with_type, Body};

/// Lines buffered per client before the forwarder waits (and the broadcast lags instead).
const CLIENT_BUFFER: usize = 256;

/// Starts a forwarder task and returns the streaming response.
pub(crate) fn stream(rx: broadcast::Receiver<FlowEvent>, filter: MonitorFilter) -> Response<Body> {
    let (tx, lines) = mpsc::channel(CLIENT_BUFFER);
    tokio::spawn(forward(rx, filter, tx));
    with_type(
        StatusCode::OK,
        "application/x-ndjson",
        ChannelBody { lines }.boxed(),
    )
}

/// Copies matching events into the client's channel; ends when the client's body is dropped
/// (hyper drops it when the connection closes) or the agent closes the broadcast.
async fn forward(
    mut rx: broadcast::Receiver<FlowEvent>,
    filter: MonitorFilter,
    tx: mpsc::Sender<Bytes>,
) {
    loop {
        let ev = tokio::select! {
            _ = tx.closed() => return,
            r = rx.recv() => match r {
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "monitor client too slow, events skipped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if !filter.matches(&ev) {
            continue;
        }
        let mut line = match serde_json::to_vec(&ev) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode flow event");
                continue;
            }
        };
        line.push(b'\n');
        if tx.send(Bytes::from(line)).await.is_err() {
            return;
        }
    }
}

/// A response body fed by an mpsc channel; ends when the sender is gone.
struct ChannelBody {
    lines: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.lines
            .poll_recv(cx)
            .map(|line| line.map(|b| Ok(Frame::data(b))))
    }
}
