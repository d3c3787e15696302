//! `palisade-lab`: the lab without the agent binary, for the lab's tests and hand checks.
//! It also answers `lab serve KIND --port P --name N` exactly as `palisade lab serve` does,
//! so it can stand in as `LabOptions::agent_exe` for starting the lab's servers.
//!
//! ```text
//! palisade-lab [--state-dir DIR] [--prefix P] up TOPOLOGY [POLICIES_DIR] [--agent EXE]
//! palisade-lab [--state-dir DIR] [--prefix P] down | status
//! palisade-lab [--state-dir DIR] exec NAME CMD...
//! palisade-lab [--state-dir DIR] label POD key=value|key-
//! palisade-lab lab serve http|whoami --port P --name N
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use palisade_lab::{LabError, LabOptions, ServeKind};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = LabOptions {
        start_agent: false,
        ..LabOptions::default()
    };
    while args.len() >= 2 && args[0].starts_with("--") {
        let value = args.remove(1);
        match args.remove(0).as_str() {
            "--state-dir" => opts.state_dir = PathBuf::from(value),
            "--prefix" => opts.prefix = value,
            other => return usage(&format!("unknown option {other}")),
        }
    }
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["lab", "serve", rest @ ..] => match parse_serve(rest) {
            Ok((kind, port, name)) => palisade_lab::serve(kind, port, &name).map(|()| 0),
            Err(e) => return usage(&e),
        },
        ["up", topology, rest @ ..] => {
            let (policies, agent) = match rest {
                [] => (".", None),
                [p] => (*p, None),
                [p, "--agent", exe] => (*p, Some(*exe)),
                _ => return usage("up TOPOLOGY [POLICIES_DIR] [--agent EXE]"),
            };
            if let Some(exe) = agent {
                opts.agent_exe = PathBuf::from(exe);
                opts.start_agent = true;
            }
            palisade_lab::up(topology.as_ref(), policies.as_ref(), &opts).map(|s| {
                print!("{s}");
                0
            })
        }
        ["down"] => palisade_lab::down(&opts).map(|()| 0),
        ["status"] => palisade_lab::status(&opts).map(|s| {
            print!("{s}");
            0
        }),
        ["exec", name, cmd @ ..] if !cmd.is_empty() => {
            let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            palisade_lab::exec(&opts, name, &cmd)
        }
        ["label", pod, kv] => palisade_lab::label(&opts, pod, kv).map(|()| 0),
        _ => return usage("no command"),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => fail(&e),
    }
}

fn fail(e: &LabError) -> ExitCode {
    eprintln!("palisade-lab: {e}");
    ExitCode::FAILURE
}

fn usage(problem: &str) -> ExitCode {
    let text = include_str!("palisade-lab.rs")
        .lines()
        .skip_while(|l| !l.starts_with("//! ```text"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| l.trim_start_matches("//! "))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("palisade-lab: {problem}\nusage:\n{text}");
    ExitCode::from(2)
}

fn parse_serve(args: &[&str]) -> Result<(ServeKind, u16, String), String> {
    let kind = match args.first() {
        Some(&"http") => ServeKind::Http,
        Some(&"whoami") => ServeKind::Whoami,
        Some(&"dns") => ServeKind::Dns,
        other => return Err(format!("unknown server kind {other:?}")),
    };
    let mut port = 80;
    let mut name = String::from("lab");
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match *flag {
            "--port" => port = value.parse().map_err(|e| format!("--port {value}: {e}"))?,
            "--name" => name = value.to_string(),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((kind, port, name))
}
