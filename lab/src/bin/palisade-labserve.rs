//! Stand-in for `palisade lab serve KIND --port P --name N`, so the lab's tests start the
//! same servers as the agent binary does: `palisade-labserve lab serve http --port 80 --name web`.

use std::process::ExitCode;

use palisade_lab::ServeKind;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Accept the agent's full `lab serve …` form and the bare `KIND …` form.
    let args = match args.as_slice() {
        [lab, serve, rest @ ..] if lab == "lab" && serve == "serve" => rest.to_vec(),
        _ => args,
    };
    match parse(&args) {
        Ok((kind, port, name)) => match palisade_lab::serve(kind, port, &name) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("palisade-labserve: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("palisade-labserve: {e}\nusage: palisade-labserve [lab serve] http|whoami --port P --name N");
            ExitCode::from(2)
        }
    }
}

fn parse(args: &[String]) -> Result<(ServeKind, u16, String), String> {
    let kind = match args.first().map(String::as_str) {
        Some("http") => ServeKind::Http,
        Some("whoami") => ServeKind::Whoami,
        Some("dns") => ServeKind::Dns,
        other => return Err(format!("unknown kind {other:?}")),
    };
    let mut port = 80;
    let mut name = String::from("lab");
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse().map_err(|e| format!("--port {value}: {e}"))?,
            "--name" => name = value.clone(),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((kind, port, name))
}
