//! A per-test pin directory under /sys/fs/bpf/palisade-test-*, removed on drop. Mounts bpffs
//! at /sys/fs/bpf first if this machine has none there (as systemd would).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn ensure_bpffs() {
    let mounts = std::fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf"))
    {
        return;
    }
    let status = Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()
        .expect("spawn mount");
    assert!(status.success(), "mounting bpffs at /sys/fs/bpf failed");
}

/// A bpffs directory owned by one test.
pub struct PinDir(PathBuf);

impl PinDir {
    /// Creates `/sys/fs/bpf/palisade-test-<pid>-<n>`.
    pub fn new() -> PinDir {
        ensure_bpffs();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/palisade-test-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        PinDir(dir)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        // Unlinking the pins releases maps and detaches pinned links.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
