//! The least a user-space transparent proxy can do per request, for the HTTP benchmark's floor:
//! `relay_floor [LISTEN]` accepts on a transparent listener (default `0.0.0.0:15001`), connects
//! to each connection's original destination and copies bytes both ways. No HTTP parsing, no
//! policy, no flow records: whatever a real proxy adds comes on top of this.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};

// One thread, like the single worker of each proxy in the benchmark.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.0.0.0:15001".into())
        .parse()?;
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_ip_transparent(true)?;
    socket.bind(&listen.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    let listener = TcpListener::from_std(socket.into())?;
    println!("listening on {listen}");
    loop {
        let (mut client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(dst) = client.local_addr() else { return };
            let Ok(mut upstream) = TcpStream::connect(dst).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}
