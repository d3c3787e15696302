//! The least a transparent DNS proxy can do per query, for the DNS benchmark's floor:
//! `udp_floor [LISTEN]` receives datagrams on a transparent UDP socket (default
//! `0.0.0.0:15053`, IPv4), forwards each to its original destination under a fresh ID from one
//! upstream socket, and sends the answer back from the original destination's address. No
//! parsing beyond the ID, no policy, no learning: what a real proxy adds comes on top of this.
//! One thread polls both sockets and drains each until it would block.

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    cmsg_space, recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashMap;
use std::io::{ErrorKind, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};

/// Where an answer goes back: the client, the address it asked, and its own ID.
#[derive(Clone, Copy)]
struct Pending {
    client: SocketAddr,
    resolver: SocketAddr,
    id: [u8; 2],
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.0.0.0:15053".into())
        .parse()?;
    let listener = transparent_udp(listen, false)?;
    setsockopt(&listener, sockopt::Ipv4OrigDstAddr, &true)?;
    let upstream = UdpSocket::bind("0.0.0.0:0")?;
    upstream.set_nonblocking(true)?;
    let mut replies: HashMap<SocketAddr, UdpSocket> = HashMap::new();
    let mut pending: Vec<Option<Pending>> = vec![None; 1 << 16];
    let mut next_id: u16 = 0;
    let mut buf = [0u8; 4096];
    let mut cmsg = vec![0u8; cmsg_space::<nix::libc::sockaddr_in>()];
    println!("listening on {listen}");
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(upstream.as_fd(), PollFlags::POLLIN),
        ];
        poll(&mut fds, PollTimeout::NONE)?;
        // Queries: note where each came from, forward under a fresh ID.
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<SockaddrStorage>(
                listener.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            };
            let len = msg.bytes;
            let client = msg.address.and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| SocketAddrV4::new(v4.ip(), v4.port()))
            });
            let mut resolver = None;
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::Ipv4OrigDstAddr(a) = c {
                    let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                    resolver = Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)));
                }
            }
            let (Some(client), Some(resolver)) = (client, resolver) else {
                continue;
            };
            if len < 12 {
                continue;
            }
            let id = next_id;
            next_id = next_id.wrapping_add(1);
            pending[usize::from(id)] = Some(Pending {
                client: client.into(),
                resolver: resolver.into(),
                id: [buf[0], buf[1]],
            });
            buf[..2].copy_from_slice(&id.to_be_bytes());
            let _ = upstream.send_to(&buf[..len], resolver);
        }
        // Answers: restore the client's ID and send from the address it asked.
        loop {
            let (len, _) = match upstream.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            };
            if len < 12 {
                continue;
            }
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            let Some(p) = pending[usize::from(id)].take() else {
                continue;
            };
            buf[..2].copy_from_slice(&p.id);
            let reply = match replies.get(&p.resolver) {
                Some(s) => s,
                None => {
                    let s = transparent_udp(p.resolver, true)?;
                    replies.entry(p.resolver).or_insert(s)
                }
            };
            let _ = reply.send_to(&buf[..len], p.client);
        }
    }
}

/// A nonblocking UDP socket bound to `addr` with `IP_TRANSPARENT` (a reply socket may share
/// its address with the listener's traffic, hence `SO_REUSEPORT` there).
fn transparent_udp(addr: SocketAddr, reply: bool) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    if reply {
        s.set_reuse_port(true)?;
    }
    s.set_ip_transparent(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}
