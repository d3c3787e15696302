//! `palisade lab …`: thin wrappers over the lab crate.

use std::process::ExitCode;

use anyhow::{bail, Result};
use palisade_lab::{LabOptions, ServeKind};

use crate::cli::{LabArgs, LabCmd};

fn options(lab: &LabArgs) -> LabOptions {
    let default = LabOptions::default();
    let bpf_pin_dir = if lab.prefix == default.prefix {
        default.bpf_pin_dir.clone()
    } else {
        std::path::PathBuf::from(format!("/sys/fs/bpf/palisade-{}lab", lab.prefix))
    };
    LabOptions {
        state_dir: lab.state_dir.clone(),
        prefix: lab.prefix.clone(),
        bpf_pin_dir,
        ..default
    }
}

/// Runs a lab command.
pub fn run(cmd: LabCmd) -> Result<ExitCode> {
    match cmd {
        LabCmd::Up {
            topology,
            policies,
            no_agent,
            lab,
        } => {
            let opts = LabOptions {
                start_agent: !no_agent,
                ..options(&lab)
            };
            let status = palisade_lab::up(&topology, &policies, &opts)?;
            println!("{status}");
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Down { lab } => {
            palisade_lab::down(&options(&lab))?;
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Exec { name, cmd, lab } => {
            let code = palisade_lab::exec(&options(&lab), &name, &cmd)?;
            Ok(ExitCode::from(code.clamp(0, 255) as u8))
        }
        LabCmd::Label { pod, label, lab } => {
            palisade_lab::label(&options(&lab), &pod, &label)?;
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Status { lab } => {
            println!("{}", palisade_lab::status(&options(&lab))?);
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Serve {
            kind,
            port,
            name,
            tls_cert,
            tls_key,
        } => {
            let kind = match kind.as_str() {
                "http" => ServeKind::Http,
                "whoami" => ServeKind::Whoami,
                "dns" => ServeKind::Dns,
                other => bail!("unknown server kind {other:?} (http, whoami, dns)"),
            };
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(palisade_lab::TlsFiles { cert, key }),
                _ => None,
            };
            palisade_lab::serve_with(kind, port, &name, tls.as_ref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
