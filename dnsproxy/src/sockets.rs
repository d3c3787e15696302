//! Socket setup: transparent listeners, marked upstream sockets, reply sockets bound to the
//! resolver's address. All the socket options live here (receiving is in `batch`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
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

/// A non-blocking UDP socket bound (transparently) to the resolver's address, so the client sees
/// the answer come from the server it asked. `SO_REUSEADDR`/`SO_REUSEPORT` let concurrent replies
/// share it. Send-only, so it is left out of the runtime's epoll: registered, every datagram sent
/// would wake it on completion (write space), a sizable share of the answer path's cost.
pub fn reply_udp(resolver: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(domain_of(&resolver), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_ip_transparent(true)?;
    s.set_nonblocking(true)?;
    s.bind(&resolver.into())?;
    Ok(s.into())
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
