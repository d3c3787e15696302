//! Datagrams in batches: `recvmmsg` (nix) and `sendmmsg` (rustix), one system call for up to [`BATCH`]
//! datagrams. Under load a socket holds many datagrams when its task wakes, and the per-call cost
//! (entry, descriptor lookup, the runtime's readiness bookkeeping) was a large share of the UDP
//! path's CPU with one call per datagram.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{
    cmsg_space, recvmmsg, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage,
};
use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Most datagrams moved by one call.
pub const BATCH: usize = 32;

/// One received datagram's length and addresses (its bytes are in the batch's buffer).
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// Length as sent (larger than the slot when truncated).
    pub len: usize,
    /// Sender, when the socket reports it.
    pub src: Option<SocketAddr>,
    /// Original destination from `IP(V6)_RECVORIGDSTADDR`, when asked for and present.
    pub orig_dst: Option<SocketAddr>,
}

/// Buffers for receiving up to [`BATCH`] datagrams of up to `slot` bytes each.
pub struct RecvBatch {
    buf: Vec<u8>,
    slot: usize,
    metas: Vec<Meta>,
    /// Ask for the original destination of each datagram (transparent listener).
    orig_dst: bool,
}

impl RecvBatch {
    /// Room for [`BATCH`] datagrams of `slot` bytes; `orig_dst` reads each one's original
    /// destination. The buffer is zeroed lazily by the allocator, so unused room costs no memory.
    pub fn new(slot: usize, orig_dst: bool) -> Self {
        RecvBatch {
            buf: vec![0u8; slot * BATCH],
            slot,
            metas: Vec::with_capacity(BATCH),
            orig_dst,
        }
    }

    /// Waits until `sock` is readable and receives what it holds (at most [`BATCH`]); returns
    /// how many datagrams arrived (at least one).
    pub async fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        sock.async_io(Interest::READABLE, || self.recv_now(sock))
            .await
    }

    /// Receives without waiting (`WouldBlock` when nothing is queued).
    fn recv_now(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.metas.clear();
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
            .buf
            .chunks_mut(self.slot)
            .map(|c| [IoSliceMut::new(c)])
            .collect();
        let flags = MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT;
        let fd = sock.as_raw_fd();
        if !self.orig_dst {
            // Connected socket: no addresses, no control messages (and no room made for them).
            let mut headers = MultiHeaders::<()>::preallocate(BATCH, None);
            let results =
                recvmmsg(fd, &mut headers, iovs.iter_mut(), flags, None).map_err(nix_err)?;
            self.metas.extend(results.map(|msg| Meta {
                len: msg.bytes,
                src: None,
                orig_dst: None,
            }));
            return Ok(self.metas.len());
        }
        // Fresh headers per call: the kernel shrinks each header's control length to what it
        // wrote, and nix does not reset it, so reused headers would lose the address later.
        let cmsg = vec![0u8; cmsg_space::<nix::libc::sockaddr_in6>()];
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, Some(cmsg));
        let results = recvmmsg(fd, &mut headers, iovs.iter_mut(), flags, None).map_err(nix_err)?;
        for msg in results {
            let mut orig_dst = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::Ipv4OrigDstAddr(a) => {
                            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                            orig_dst = Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into());
                        }
                        ControlMessageOwned::Ipv6OrigDstAddr(a) => {
                            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                            orig_dst =
                                Some(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), 0, 0).into());
                        }
                        _ => {}
                    }
                }
            }
            self.metas.push(Meta {
                len: msg.bytes,
                src: msg.address.as_ref().and_then(storage_to_std),
                orig_dst,
            });
        }
        Ok(self.metas.len())
    }

    /// Datagram `i` of the last receive: its bytes (cut to the slot) and addresses.
    pub fn get(&self, i: usize) -> (&[u8], Meta) {
        let meta = self.metas[i];
        let start = i * self.slot;
        (&self.buf[start..start + meta.len.min(self.slot)], meta)
    }

    /// Datagram `i` of the last receive, writable (to rewrite its ID in place).
    pub fn get_mut(&mut self, i: usize) -> &mut [u8] {
        let len = self.metas[i].len.min(self.slot);
        let start = i * self.slot;
        &mut self.buf[start..start + len]
    }
}

/// Sends `msgs` (bytes, destination; `None` on a connected socket) with as few calls as
/// possible, without waiting. Returns how many were sent before the socket buffer filled
/// (`WouldBlock` is not an error here); other errors are returned with the index of the datagram
/// that failed, and sending stops there.
pub fn send_now(
    sock: &UdpSocket,
    msgs: &[(&[u8], Option<SocketAddr>)],
) -> Result<usize, (usize, io::Error)> {
    send_chunks(msgs, |chunk| {
        sock.try_io(Interest::WRITABLE, || send_chunk(sock, chunk))
    })
}

/// [`send_now`] for a non-blocking socket the runtime does not watch (a send-only socket: out of
/// epoll, each datagram's completion wakes nothing).
pub fn send_now_unwatched(
    sock: &std::net::UdpSocket,
    msgs: &[(&[u8], Option<SocketAddr>)],
) -> Result<usize, (usize, io::Error)> {
    send_chunks(msgs, |chunk| send_chunk(sock, chunk))
}

/// Sends `msgs` in chunks of at most [`BATCH`] with `send`, as [`send_now`] describes.
fn send_chunks(
    msgs: &[(&[u8], Option<SocketAddr>)],
    mut send: impl FnMut(&[(&[u8], Option<SocketAddr>)]) -> io::Result<usize>,
) -> Result<usize, (usize, io::Error)> {
    let mut sent = 0;
    while sent < msgs.len() {
        let chunk = &msgs[sent..msgs.len().min(sent + BATCH)];
        match send(chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(sent),
            Err(e) => return Err((sent, e)),
        }
    }
    Ok(sent)
}

fn send_chunk(sock: impl AsFd, chunk: &[(&[u8], Option<SocketAddr>)]) -> io::Result<usize> {
    let iovs: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
    let addrs: Vec<Option<SocketAddrAny>> = chunk
        .iter()
        .map(|(_, a)| a.map(SocketAddrAny::from))
        .collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = chunk
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut headers: Vec<MMsgHdr<'_>> = iovs
        .iter()
        .zip(&addrs)
        .zip(controls.iter_mut())
        .map(|((iov, addr), control)| match addr {
            Some(a) => MMsgHdr::new_with_addr(a, iov, control),
            None => MMsgHdr::new(iov, control),
        })
        .collect();
    Ok(sendmmsg(sock, &mut headers, SendFlags::DONTWAIT)?)
}

fn storage_to_std(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddrV4::new(v4.ip(), v4.port()).into());
    }
    s.as_sockaddr_in6()
        .map(|v6| SocketAddrV6::new(v6.ip(), v6.port(), 0, 0).into())
}

fn nix_err(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
