//! Proxy upgrade without refusing a connection: the running `palisade proxy` hands its
//! listening sockets (the same kernel sockets, passed with `SCM_RIGHTS`, as Envoy's hot restart
//! does) and its last policy snapshots to `palisade proxy --upgrade`. The new process serves at
//! once with the policy in force; the old one then stops accepting and drains.
//!
//! Protocol on `<stateDir>/proxy-handover.sock`, old process listening:
//! 1. old → new: one `sendmsg` with [`MAGIC`] and three descriptors (HTTP listener, DNS UDP
//!    socket, DNS TCP listener), then one JSON line with the snapshots;
//! 2. new → old: `serving\n` once it accepts on those sockets; only then does the old one stop.

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use palisade_dnsproxy::DnsSnapshot;
use palisade_proxy::PolicySnapshot;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use socket2::{SockRef, Type};

use crate::config::Config;

/// First bytes of the descriptor message: names the protocol and its version.
const MAGIC: &[u8] = b"palisade-handover-1";
/// What the new process answers once it serves.
const SERVING: &str = "serving";
/// How long either side waits for the other before giving up (the old process keeps serving).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The handover socket under the state directory.
pub fn socket_path(config: &Config) -> PathBuf {
    config.state_dir.join("proxy-handover.sock")
}

/// The proxy's listening sockets.
pub struct Listeners {
    /// The transparent HTTP listener.
    pub http: std::net::TcpListener,
    /// The DNS proxy's transparent UDP socket.
    pub dns_udp: std::net::UdpSocket,
    /// The DNS proxy's transparent TCP listener.
    pub dns_tcp: std::net::TcpListener,
}

/// Descriptors of the listeners, as the old process keeps them for an upgrade.
pub struct ListenerFds {
    /// HTTP listener.
    pub http: OwnedFd,
    /// DNS UDP socket.
    pub dns_udp: OwnedFd,
    /// DNS TCP listener.
    pub dns_tcp: OwnedFd,
}

/// The policy in force, so the new process enforces it before any agent talks to it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshots {
    /// HTTP proxy snapshot.
    pub http: PolicySnapshot,
    /// DNS proxy snapshot.
    pub dns: DnsSnapshot,
}

/// New side, step 1: takes the listeners and snapshots of the proxy serving `path`.
pub fn take_over(path: &Path) -> Result<(Listeners, Snapshots, UnixStream)> {
    let stream = UnixStream::connect(path).with_context(|| {
        format!(
            "connecting to {} (is a palisade proxy running with this config?)",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    let mut payload = [0u8; 64];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut payload)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .context("receiving the listeners")?;
    ensure!(
        &payload[..received.bytes] == MAGIC,
        "unexpected handover message from {}",
        path.display()
    );
    let mut fds: Vec<OwnedFd> = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    let [http, dns_udp, dns_tcp]: [OwnedFd; 3] = fds
        .try_into()
        .map_err(|fds: Vec<OwnedFd>| anyhow::anyhow!("expected 3 listeners, got {}", fds.len()))?;
    expect_type(&http, Type::STREAM, "HTTP listener")?;
    expect_type(&dns_udp, Type::DGRAM, "DNS UDP socket")?;
    expect_type(&dns_tcp, Type::STREAM, "DNS TCP listener")?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .context("reading the snapshots")?;
    let snapshots: Snapshots =
        serde_json::from_str(&line).context("decoding the handed-over snapshots")?;
    let listeners = Listeners {
        http: http.into(),
        dns_udp: dns_udp.into(),
        dns_tcp: dns_tcp.into(),
    };
    Ok((listeners, snapshots, stream))
}

/// New side, step 2: tells the old process that the listeners are served here now.
pub fn confirm(mut stream: UnixStream) -> Result<()> {
    writeln!(stream, "{SERVING}").context("confirming the handover")
}

/// Old side: sends the listeners and snapshots to one upgrader and waits for its confirmation.
/// An error leaves this process serving as before.
pub fn hand_over(stream: UnixStream, fds: &ListenerFds, snapshots: &Snapshots) -> Result<()> {
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    stream.set_write_timeout(Some(STEP_TIMEOUT))?;
    let rights = [fds.http.as_fd(), fds.dns_udp.as_fd(), fds.dns_tcp.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    ensure!(
        control.push(SendAncillaryMessage::ScmRights(&rights)),
        "control buffer too small"
    );
    rustix::net::sendmsg(
        &stream,
        &[IoSlice::new(MAGIC)],
        &mut control,
        SendFlags::empty(),
    )
    .context("sending the listeners")?;
    let mut json = serde_json::to_vec(snapshots)?;
    json.push(b'\n');
    (&stream)
        .write_all(&json)
        .context("sending the snapshots")?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .context("waiting for the new proxy to serve")?;
    if line.trim() != SERVING {
        bail!("the new proxy did not confirm (got {:?})", line.trim());
    }
    Ok(())
}

fn expect_type(fd: &OwnedFd, want: Type, what: &str) -> Result<()> {
    let got = SockRef::from(fd).r#type().context(what.to_string())?;
    ensure!(got == want, "{what}: handed a socket of the wrong type");
    Ok(())
}
