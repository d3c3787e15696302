//! Verdict events from the ring buffer: drops and new flows (rate-limited in the datapath).

use std::{
    net::SocketAddr,
    os::fd::{AsRawFd, RawFd},
};

use aya::maps::{Map, MapData, RingBuf};

use crate::{
    abi::{self, RawEvent},
    keys, Datapath, DatapathError, Direction, DropReason, Event, EventKind, Hook,
};

/// Reader of the event ring buffer. `poll` never blocks; register `as_raw_fd()` with an
/// `AsyncFd` (or epoll) to wait for readiness.
pub struct EventReader {
    ring: RingBuf<MapData>,
}

fn arr<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[off..off + N]);
    out
}

/// Decodes one record (layout checked in abi.rs) without any unsafe cast.
fn raw_event(b: &[u8]) -> Option<RawEvent> {
    if b.len() < size_of::<RawEvent>() {
        return None;
    }
    Some(RawEvent {
        ts_ns: u64::from_ne_bytes(arr(b, 0)),
        saddr: arr(b, 8),
        daddr: arr(b, 24),
        sport_be: arr(b, 40),
        dport_be: arr(b, 42),
        proto: b[44],
        family: b[45],
        kind: b[46],
        reason: b[47],
        direction: b[48],
        hook: b[49],
        endpoint: u16::from_ne_bytes(arr(b, 50)),
        src_identity: u32::from_ne_bytes(arr(b, 52)),
        dst_identity: u32::from_ne_bytes(arr(b, 56)),
        proxy_port: u16::from_ne_bytes(arr(b, 60)),
        pad: 0,
    })
}

fn event_of(r: &RawEvent) -> Event {
    let family = u32::from(r.family);
    let src = SocketAddr::new(
        keys::addr_from(family, r.saddr),
        u16::from_be_bytes(r.sport_be),
    );
    let dst = SocketAddr::new(
        keys::addr_from(family, r.daddr),
        u16::from_be_bytes(r.dport_be),
    );
    let kind = match r.kind {
        abi::EVENT_DROP => EventKind::Drop,
        abi::EVENT_REDIRECT => EventKind::Redirect {
            proxy_port: r.proxy_port,
        },
        _ => EventKind::Allow,
    };
    let hook = match r.hook {
        1 => Hook::FromContainer,
        2 => Hook::ToContainer,
        _ => Hook::FromNetdev,
    };
    Event {
        kind,
        reason: DropReason::from_raw(r.reason),
        direction: if r.direction == abi::DIR_EGRESS {
            Direction::Egress
        } else {
            Direction::Ingress
        },
        hook,
        endpoint: r.endpoint,
        src_identity: r.src_identity,
        dst_identity: r.dst_identity,
        src,
        dst,
        proto: r.proto,
    }
}

impl EventReader {
    /// Everything currently in the ring buffer (non-blocking).
    pub fn poll(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            if let Some(raw) = raw_event(&item) {
                out.push(event_of(&raw));
            }
        }
        out
    }
}

impl AsRawFd for EventReader {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

impl Datapath {
    /// A reader of the event ring buffer (opened from its pin; one reader at a time is the
    /// intended use, as readers share the consumer position).
    pub fn events(&self) -> Result<EventReader, DatapathError> {
        let data = MapData::from_pin(self.pin_dir.join("pal_events"))
            .map_err(|e| DatapathError::map("pal_events", e))?;
        let ring = RingBuf::try_from(Map::RingBuf(data))
            .map_err(|e| DatapathError::map("pal_events", e))?;
        Ok(EventReader { ring })
    }
}
