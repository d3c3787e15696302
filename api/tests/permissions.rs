//! The socket is root only: a client running as `nobody` (via `setpriv`) is refused with
//! "must be root", and connects once the socket mode is opened (the control).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use palisade_api::*;

#[path = "harness/agent.rs"]
mod harness;

use harness::*;

/// Env var carrying the socket path to the child run as `nobody`.
const CHILD_SOCKET: &str = "PALISADE_API_TEST_SOCKET";
/// Env var telling the child whether connecting must fail (`denied`) or work (`allowed`).
const CHILD_EXPECT: &str = "PALISADE_API_TEST_EXPECT";

/// Runs `nonroot_child_connect` as uid/gid 65534 against `socket`.
fn run_child_as_nobody(socket: &Path, expect: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("test binary path");
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(exe)
        .args([
            "--exact",
            "nonroot_child_connect",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_SOCKET, socket)
        .env(CHILD_EXPECT, expect)
        .output()
        .expect("run setpriv (util-linux)")
}

#[tokio::test]
async fn non_root_caller_is_refused() {
    let h = Harness::start().await;
    // Open the directories so the socket's own mode is what stops `nobody`.
    let mut dir = h.socket.parent().unwrap().to_path_buf();
    loop {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        if dir == h.dir.path() {
            break;
        }
        dir.pop();
    }
    let socket = h.socket.clone();
    let out = tokio::task::spawn_blocking(move || run_child_as_nobody(&socket, "denied"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "child as nobody must be refused with a 'must be root' error:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Control: with the socket opened up, the same child connects. This proves the refusal
    // above came from the socket's mode and not from something else in the child.
    std::fs::set_permissions(&h.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let socket = h.socket.clone();
    let out = tokio::task::spawn_blocking(move || run_child_as_nobody(&socket, "allowed"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "control child with an open socket must connect:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Child half of `non_root_caller_is_refused`; only meaningful when started by it.
#[tokio::test]
#[ignore = "run by non_root_caller_is_refused as uid 65534"]
async fn nonroot_child_connect() {
    let socket = std::env::var(CHILD_SOCKET).expect("started by non_root_caller_is_refused");
    let expect = std::env::var(CHILD_EXPECT).expect("expectation set by parent");
    let result = Client::new(&socket).status().await;
    match (expect.as_str(), result) {
        ("denied", Err(e @ ClientError::PermissionDenied(_))) => {
            let msg = e.to_string();
            assert!(msg.contains("must be root"), "message: {msg}");
            println!("CHILD-OK: {msg}");
        }
        ("allowed", Ok(st)) => {
            assert_eq!(st.policy_revision, 7);
            println!("CHILD-OK: connected");
        }
        (want, got) => panic!("expected {want}, got {got:?}"),
    }
}
