//! Attaching programs with TCX links pinned under `<pin_dir>/links/`, so enforcement survives
//! the process. On restart an existing pinned link is updated in place to the new program
//! (atomic, no gap); a defunct one (its interface was deleted) is replaced.

use std::{fs, io, path::PathBuf};

use aya::programs::{
    links::{FdLink, LinkError, PinnedLink},
    tc::{SchedClassifierLink, TcAttachOptions},
    LinkOrder, SchedClassifier, TcAttachType,
};
use tracing::{debug, warn};

use crate::{
    datapath::{PROG_FROM_CONTAINER, PROG_FROM_NETDEV, PROG_TO_CONTAINER},
    Datapath, DatapathError,
};

const ALL_PROGS: [&str; 3] = [PROG_FROM_CONTAINER, PROG_TO_CONTAINER, PROG_FROM_NETDEV];

fn link_err(path: &std::path::Path, message: impl ToString) -> DatapathError {
    DatapathError::Link {
        path: path.into(),
        message: message.to_string(),
    }
}

impl Datapath {
    fn link_path(&self, ifname: &str, prog: &str) -> PathBuf {
        self.pin_dir.join("links").join(format!("{ifname}@{prog}"))
    }

    /// Attaches both endpoint programs to a pod's host-side veth: TC ingress (pod egress) and
    /// TC egress (pod ingress). Idempotent; adopts links pinned by an earlier process.
    pub fn attach_endpoint(&mut self, ifname: &str) -> Result<(), DatapathError> {
        self.attach_one(ifname, PROG_FROM_CONTAINER, TcAttachType::Ingress)?;
        self.attach_one(ifname, PROG_TO_CONTAINER, TcAttachType::Egress)
    }

    /// Attaches the external-interface program (TC ingress) to the node's uplink.
    pub fn attach_external(&mut self, ifname: &str) -> Result<(), DatapathError> {
        self.attach_one(ifname, PROG_FROM_NETDEV, TcAttachType::Ingress)
    }

    /// Detaches every program of ours from `ifname` by removing the pinned links.
    pub fn detach(&mut self, ifname: &str) -> Result<(), DatapathError> {
        for prog in ALL_PROGS {
            let path = self.link_path(ifname, prog);
            match fs::remove_file(&path) {
                Ok(()) => debug!(ifname, prog, "detached"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(link_err(&path, e)),
            }
        }
        Ok(())
    }

    /// Interfaces with a pinned link of ours (from this or an earlier process).
    pub fn attached_interfaces(&self) -> Result<Vec<String>, DatapathError> {
        let dir = self.pin_dir.join("links");
        let mut out: Vec<String> = fs::read_dir(&dir)
            .map_err(|e| link_err(&dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.split_once('@').map(|(ifname, _)| ifname.to_string())
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn program(&mut self, prog: &'static str) -> Result<&mut SchedClassifier, DatapathError> {
        let ebpf = if prog == PROG_FROM_NETDEV {
            &mut self.netdev
        } else {
            &mut self.lxc
        };
        ebpf.program_mut(prog)
            .ok_or_else(|| link_err(&self.pin_dir, format!("no program {prog}")))?
            .try_into()
            .map_err(|e| DatapathError::program(prog, e))
    }

    fn attach_one(
        &mut self,
        ifname: &str,
        prog_name: &'static str,
        attach_type: TcAttachType,
    ) -> Result<(), DatapathError> {
        let path = self.link_path(ifname, prog_name);
        let prog = self.program(prog_name)?;
        match PinnedLink::from_pin(&path) {
            Ok(old) => {
                if replace_in_place(prog, prog_name, old)? {
                    debug!(ifname, prog = prog_name, "pinned link updated in place");
                    return Ok(());
                }
                warn!(
                    ifname,
                    prog = prog_name,
                    "pinned link defunct, attaching anew"
                );
                fs::remove_file(&path).map_err(|e| link_err(&path, e))?;
            }
            Err(LinkError::SyscallError(e)) if e.io_error.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(link_err(&path, e)),
        }
        let id = prog
            .attach_with_options(
                ifname,
                attach_type,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )
            .map_err(|e| DatapathError::program(prog_name, e))?;
        let link = prog
            .take_link(id)
            .map_err(|e| DatapathError::program(prog_name, e))?;
        let fd = FdLink::try_from(link).map_err(|e| link_err(&path, e))?;
        // Closing our fd afterwards keeps the link: the pin holds it.
        fd.pin(&path).map_err(|e| link_err(&path, e))?;
        debug!(ifname, prog = prog_name, "attached and pinned");
        Ok(())
    }
}

/// Points a live pinned link at `prog`. Ok(false) when the link is defunct or not ours.
fn replace_in_place(
    prog: &mut SchedClassifier,
    prog_name: &'static str,
    old: PinnedLink,
) -> Result<bool, DatapathError> {
    let Ok(link) = SchedClassifierLink::try_from(FdLink::from(old)) else {
        return Ok(false);
    };
    match prog.attach_to_link(link) {
        Ok(id) => {
            let link = prog
                .take_link(id)
                .map_err(|e| DatapathError::program(prog_name, e))?;
            // Drop only the fd (FdLink has no detaching Drop); the pin keeps the link.
            drop(FdLink::try_from(link));
            Ok(true)
        }
        Err(e) => {
            debug!(prog = prog_name, error = %e, "link update failed");
            Ok(false)
        }
    }
}
