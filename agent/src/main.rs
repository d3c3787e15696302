//! The `palisade` binary: the agent (`palisade run`), offline policy tools, live queries
//! against a running agent, and the one-box lab.
#![forbid(unsafe_code)]

mod cli;
mod config;
mod lab_cmd;
mod live;
mod offline;
mod proxy_handover;
mod proxy_link;
mod proxy_process;
mod run;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc: the proxies allocate per request and per query.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cli::{
    BpfCmd, BpfPolicyCmd, Cli, Command, EndpointCmd, FqdnCacheCmd, FqdnCmd, IdentityCmd, PolicyCmd,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => run::main(&config),
        Command::Proxy { config, upgrade } => proxy_process::main(&config, upgrade),
        Command::Policy { cmd } => match cmd {
            PolicyCmd::Validate { paths } => offline::validate(&paths),
            PolicyCmd::Trace(args) => match &args.topology {
                Some(topo) => offline::trace_offline(topo, &args),
                None => live::trace(&args),
            },
            PolicyCmd::Get { api } => live::policies(&api),
        },
        Command::Identity { cmd } => match cmd {
            IdentityCmd::List {
                topology: Some(t),
                policies,
                ..
            } => offline::identities_offline(&t, &policies),
            IdentityCmd::List {
                topology: None,
                api,
                ..
            } => live::identities(&api),
            IdentityCmd::Get { id, api } => live::identity(&api, id),
        },
        Command::Endpoint { cmd } => match cmd {
            EndpointCmd::List { api } => live::endpoints(&api),
            EndpointCmd::Get { name, api } => live::endpoint(&api, &name),
        },
        Command::Status { api } => live::status(&api),
        Command::Bpf {
            cmd:
                BpfCmd::Policy {
                    cmd: BpfPolicyCmd::Get { endpoint, api },
                },
        } => live::bpf_policy(&api, &endpoint),
        Command::Fqdn {
            cmd: FqdnCmd::Cache {
                cmd: FqdnCacheCmd::List { api },
            },
        } => live::fqdn_cache(&api),
        Command::Monitor {
            api,
            endpoint,
            verdict,
            kind,
        } => live::monitor(&api, endpoint, verdict, kind),
        Command::Lab { cmd } => lab_cmd::run(cmd),
    }
}
