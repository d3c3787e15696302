//! Opening one upstream TCP connection: a socket marked with the proxy's `SO_MARK` (so the
//! datapath passes it), `TCP_NODELAY`, bounded by the connect timeout.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `dst` from a socket carrying `mark`.
pub(crate) async fn connect(
    dst: SocketAddr,
    mark: u32,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let socket = match dst {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket2::SockRef::from(&socket).set_mark(mark)?;
    socket.set_nodelay(true)?;
    match tokio::time::timeout(timeout, socket.connect(dst)).await {
        Ok(stream) => stream,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect to {dst} timed out after {timeout:?}"),
        )),
    }
}
