//! Reading the NDJSON monitor stream, one [`FlowEvent`] per line.

use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::ClientError;
use crate::flow::FlowEvent;

/// Flow events as the agent sends them; dropping it closes the connection.
#[derive(Debug)]
pub struct FlowStream {
    body: Incoming,
    buf: Vec<u8>,
}

impl FlowStream {
    pub(crate) fn new(body: Incoming) -> FlowStream {
        FlowStream {
            body,
            buf: Vec::new(),
        }
    }

    /// The next event; `None` when the agent ends the stream (e.g. it shuts down).
    pub async fn next(&mut self) -> Option<Result<FlowEvent, ClientError>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = &line[..line.len() - 1];
                // Tolerate blank lines (keep-alives from a future server).
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(serde_json::from_slice(line).map_err(ClientError::from));
            }
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Err(e) => return Some(Err(ClientError::from(e))),
            }
        }
    }

    /// Calls `f` for every event until it returns `false`, the stream ends, or an error.
    pub async fn for_each(
        mut self,
        mut f: impl FnMut(FlowEvent) -> bool,
    ) -> Result<(), ClientError> {
        while let Some(ev) = self.next().await {
            if !f(ev?) {
                break;
            }
        }
        Ok(())
    }
}
