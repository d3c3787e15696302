//! Socket setup: transparent listeners, marked upstream sockets, reply sockets bound to the
//! resolver's address, and `recvmsg` with `IP_RECVORIGDSTADDR`. All the socket options live here.

use std::io;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    cmsg_space, recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

fn domain_of(addr: &SocketAddr) -> Domain {
    if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    }
}

fn nix_err(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Transparent UDP listener that reports each datagram's original destination.
pub fn udp_listener(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(domain_of(&addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    // IP_TRANSPARENT: accept datagrams addressed to the resolver, not to us (TPROXY / sk_assign).
    s.set_ip_transparent(true)?;
    if addr.is_ipv4() {
        setsockopt(&s, sockopt::Ipv4OrigDstAddr, &true).map_err(nix_err)?;
    } else {
        setsockopt(&s, sockopt::Ipv6OrigDstAddr, &true).map_err(nix_err)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// Transparent TCP listener: accepted sockets' `local_addr()` is the original resolver.
pub fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(domain_of(&addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    // Without IP_TRANSPARENT the SYN-ACK from the resolver's address has no route.
    s.set_ip_transparent(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// A UDP socket connected to `resolver` from a random port, marked so the datapath lets it pass.
/// Long-lived: the multiplexer sends many queries through it (see `mux`).
/// Mark 0 leaves the socket unmarked (setting a mark needs `CAP_NET_ADMIN`).
pub fn upstream_udp_std(resolver: SocketAddr, mark: u32) -> io::Result<UdpSocket> {
    let s = Socket::new(domain_of(&resolver), Type::DGRAM, Some(Protocol::UDP))?;
    if mark != 0 {
        s.set_mark(mark)?;
    }
    s.set_nonblocking(true)?;
    let any: SocketAddr = match resolver {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    s.bind(&any.into())?;
    // A connected UDP socket only receives from the resolver's address and port.
    s.connect(&resolver.into())?;
    UdpSocket::from_std(s.into())
}

/// A TCP connection to `resolver` from a marked socket.
pub async fn upstream_tcp(resolver: SocketAddr, mark: u32) -> io::Result<TcpStream> {
    let s = Socket::new(domain_of(&resolver), Type::STREAM, Some(Protocol::TCP))?;
    s.set_mark(mark)?;
    s.set_nonblocking(true)?;
    let sock = TcpSocket::from_std_stream(s.into());
    sock.connect(resolver).await
}

/// A UDP socket bound (transparently) to the resolver's address, so the client sees the answer
/// come from the server it asked. `SO_REUSEADDR`/`SO_REUSEPORT` let concurrent replies share it.
pub fn reply_udp(resolver: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(domain_of(&resolver), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_ip_transparent(true)?;
    s.set_nonblocking(true)?;
    s.bind(&resolver.into())?;
    UdpSocket::from_std(s.into())
}

/// One received datagram: length, client address and original destination (if reported).
pub struct Datagram {
    /// Bytes received.
    pub len: usize,
    /// Sender.
    pub src: SocketAddr,
    /// Original destination from `IP_RECVORIGDSTADDR`.
    pub orig_dst: Option<SocketAddr>,
}

/// Receives one datagram with its original destination address.
pub async fn recv_with_orig_dst(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Datagram> {
    sock.async_io(Interest::READABLE, || recv_once(sock, buf))
        .await
}

fn recv_once(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Datagram> {
    // Room for one IP(V6)_ORIGDSTADDR message of either family.
    let mut cmsg = vec![0u8; cmsg_space::<nix::libc::sockaddr_in6>()];
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_TRUNC,
    )
    .map_err(nix_err)?;
    let src = msg
        .address
        .as_ref()
        .and_then(storage_to_std)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without source"))?;
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
                    orig_dst = Some(SocketAddrV6::new(ip, u16::from_be(a.sin6_port), 0, 0).into());
                }
                _ => {}
            }
        }
    }
    Ok(Datagram {
        len: msg.bytes,
        src,
        orig_dst,
    })
}

fn storage_to_std(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddrV4::new(v4.ip(), v4.port()).into());
    }
    s.as_sockaddr_in6()
        .map(|v6| SocketAddrV6::new(v6.ip(), v6.port(), 0, 0).into())
}

/// Unmaps `::ffff:a.b.c.d` so policy lookups see the IPv4 address.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}
