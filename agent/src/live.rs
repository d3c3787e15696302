//! Commands against the running agent over its local API: tables by default, `-o json` on
//! request.

use std::process::ExitCode;

use anyhow::{Context, Result};
use palisade_api::{render, Client, FlowKind, MonitorFilter};
use serde::Serialize;

use crate::cli::{ApiArgs, Output, TraceArgs};

fn print<T: Serialize>(
    api: &ApiArgs,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<ExitCode> {
    match api.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Table => print!("{}", table(value)),
    }
    Ok(ExitCode::SUCCESS)
}

fn rt() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// `status`: exit 1 when the agent is unreachable (an error) or unhealthy, so probes can use it.
pub fn status(api: &ApiArgs) -> Result<ExitCode> {
    let v = rt()?.block_on(Client::new(&api.socket).status())?;
    print(api, &v, render::render_status)?;
    Ok(if v.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `identity list` from the agent.
pub fn identities(api: &ApiArgs) -> Result<ExitCode> {
    let v = rt()?.block_on(Client::new(&api.socket).identities())?;
    print(api, &v, |v| render::render_identities(v))
}

/// `identity get ID`.
pub fn identity(api: &ApiArgs, id: u32) -> Result<ExitCode> {
    let v = rt()?.block_on(Client::new(&api.socket).identity(id))?;
    print(api, &v, |v| {
        render::render_identities(std::slice::from_ref(v))
    })
}

/// `endpoint list`.
pub fn endpoints(api: &ApiArgs) -> Result<ExitCode> {
    let v = rt()?.block_on(Client::new(&api.socket).endpoints())?;
    print(api, &v, |v| render::render_endpoints(v))
}

/// `endpoint get NAME`.
pub fn endpoint(api: &ApiArgs, name: &str) -> Result<ExitCode> {
    let v = rt()?.block_on(Client::new(&api.socket).endpoint(name))?;
    print(api, &v, render::render_endpoint_detail)
}

/// `policy get`.
pub fn policies(api: &ApiArgs) -> Result<ExitCode> {
    let v = rt()?.block_on(Client::new(&api.socket).policies())?;
    print(api, &v, render::render_policies)
}

/// `policy trace` against the live state.
pub fn trace(args: &TraceArgs) -> Result<ExitCode> {
    let (dport, proto) = crate::offline::parse_dport(&args.dport)?;
    let proto = match proto {
        6 => "TCP",
        17 => "UDP",
        132 => "SCTP",
        58 => "ICMPv6",
        _ => "ICMP",
    };
    let req = palisade_api::TraceRequest {
        from: args.from.clone(),
        to: args.to.clone(),
        dport,
        proto: Some(proto.to_string()),
        http_method: args.http_method.clone(),
        http_path: args.http_path.clone(),
        http_host: args.http_host.clone(),
        http_headers: args.http_headers.clone(),
        dns_name: args.dns_name.clone(),
        dns_answers: args.dns_answers.clone(),
    };
    let v = rt()?.block_on(Client::new(&args.api.socket).trace(&req))?;
    print(&args.api, &v, render::render_trace)
}

/// `bpf policy get ENDPOINT`.
pub fn bpf_policy(api: &ApiArgs, endpoint: &str) -> Result<ExitCode> {
    let v = rt()?.block_on(Client::new(&api.socket).bpf_policy(endpoint))?;
    print(api, &v, |v| render::render_bpf_policy(v))
}

/// `fqdn cache list`.
pub fn fqdn_cache(api: &ApiArgs) -> Result<ExitCode> {
    let v = rt()?.block_on(Client::new(&api.socket).fqdn_cache())?;
    print(api, &v, |v| render::render_fqdn_cache(v))
}

/// `monitor`: streams until the agent goes away or the user interrupts.
pub fn monitor(
    api: &ApiArgs,
    endpoint: Option<String>,
    verdict: Option<String>,
    kind: Option<String>,
) -> Result<ExitCode> {
    let kind = match kind {
        Some(k) => Some(
            FlowKind::parse(&k)
                .with_context(|| format!("--type {k:?}: expected drop, allow, l7 or dns"))?,
        ),
        None => None,
    };
    let filter = MonitorFilter {
        endpoint,
        verdict,
        kind,
    };
    rt()?.block_on(async {
        let mut stream = Client::new(&api.socket).monitor(&filter).await?;
        while let Some(ev) = stream.next().await {
            let ev = ev?;
            match api.output {
                Output::Json => println!("{}", serde_json::to_string(&ev)?),
                Output::Table => println!("{}", render::render_flow(&ev)),
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
