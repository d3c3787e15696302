//! Running a program on a crafted frame with BPF_PROG_TEST_RUN (no interface needed): used
//! by the table tests and handy for benchmarking one hook in isolation.

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};

use crate::{
    datapath::{PROG_FROM_CONTAINER, PROG_FROM_NETDEV, PROG_TO_CONTAINER},
    Datapath, DatapathError, Hook,
};

/// TC return codes the programs use.
pub const TC_ACT_OK: u32 = 0;
/// See [`TC_ACT_OK`].
pub const TC_ACT_SHOT: u32 = 2;

/// Offsets in `struct __sk_buff` the kernel lets a test set.
const SKB_MARK_OFF: usize = 8;
const SKB_IFINDEX_OFF: usize = 40;
const SKB_CTX_LEN: usize = 44;

impl Datapath {
    /// Runs the program of `hook` once on an Ethernet `frame` with the given skb mark and
    /// ifindex (0 = loopback; otherwise it must exist in the current namespace). Returns
    /// the TC action ([`TC_ACT_OK`] or [`TC_ACT_SHOT`]). Maps are the live, pinned ones.
    pub fn test_run(
        &self,
        hook: Hook,
        frame: &[u8],
        mark: u32,
        ifindex: u32,
    ) -> Result<u32, DatapathError> {
        let name = match hook {
            Hook::FromContainer => PROG_FROM_CONTAINER,
            Hook::ToContainer => PROG_TO_CONTAINER,
            Hook::FromNetdev => PROG_FROM_NETDEV,
        };
        let ebpf = if hook == Hook::FromNetdev {
            &self.netdev
        } else {
            &self.lxc
        };
        let prog: &SchedClassifier = ebpf
            .program(name)
            .ok_or_else(|| DatapathError::InvalidEntry(format!("no program {name}")))?
            .try_into()
            .map_err(|e| DatapathError::program(name, e))?;
        let mut ctx = [0u8; SKB_CTX_LEN];
        ctx[SKB_MARK_OFF..SKB_MARK_OFF + 4].copy_from_slice(&mark.to_ne_bytes());
        ctx[SKB_IFINDEX_OFF..SKB_IFINDEX_OFF + 4].copy_from_slice(&ifindex.to_ne_bytes());
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: Some(&ctx),
            ..TestRunOptions::default()
        };
        let result = prog
            .test_run(opts)
            .map_err(|e| DatapathError::program(name, e))?;
        Ok(result.return_value)
    }
}
