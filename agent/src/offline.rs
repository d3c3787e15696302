//! Offline policy tools: `policy validate`, `policy trace --topology`, `identity list
//! --topology`. They work on files alone, without a running agent.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use palisade_policy::cluster::LearnedNames;
use palisade_policy::fqdn::normalize_name;
use palisade_policy::identity::{render_list, Allocator};
use palisade_policy::load::load_paths;
use palisade_policy::resolve::ResolveOptions;
use palisade_policy::trace::{trace, HttpRequest, TraceRequest};
use palisade_policy::{Engine, Topology};

use crate::cli::TraceArgs;

/// `policy validate PATH...`: errors and warnings with file:line; exit 1 on any error.
pub fn validate(paths: &[PathBuf]) -> Result<ExitCode> {
    let (set, errors) = load_paths(paths);
    for w in &set.warnings {
        eprintln!("warning: {w}");
    }
    for e in &errors {
        eprintln!("error: {e}");
    }
    if errors.is_empty() {
        println!("{} policies valid", set.policies.len());
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}

/// Parses `80/TCP`, `53/udp`, `8/ICMP` into (port, protocol number).
pub fn parse_dport(s: &str) -> Result<(u16, u8)> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "TCP"));
    let port: u16 = port
        .parse()
        .with_context(|| format!("--dport {s:?}: invalid port"))?;
    let proto = match proto.to_ascii_uppercase().as_str() {
        "TCP" => 6,
        "UDP" => 17,
        "SCTP" => 132,
        "ICMP" => 1,
        "ICMPV6" => 58,
        other => bail!("--dport {s:?}: unknown protocol {other:?} (TCP, UDP, SCTP, ICMP, ICMPv6)"),
    };
    Ok((port, proto))
}

/// Parses `--dns-answer NAME=IP[,IP...]` flags.
pub fn parse_answers(answers: &[String]) -> Result<LearnedNames> {
    let mut learned = LearnedNames::new();
    for a in answers {
        let (name, ips) = a
            .split_once('=')
            .with_context(|| format!("--dns-answer {a:?}: expected NAME=IP[,IP...]"))?;
        for ip in ips.split(',') {
            let ip = ip
                .trim()
                .parse()
                .with_context(|| format!("--dns-answer {a:?}: invalid address {ip:?}"))?;
            learned.entry(normalize_name(name)).or_default().insert(ip);
        }
    }
    Ok(learned)
}

/// Splits `K: V` header flags.
pub fn parse_headers(headers: &[String]) -> Result<Vec<(String, String)>> {
    headers
        .iter()
        .map(|h| {
            let (k, v) = h
                .split_once(':')
                .with_context(|| format!("--http-header {h:?}: expected 'Name: value'"))?;
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The trace request from CLI flags.
pub fn trace_request(args: &TraceArgs) -> Result<TraceRequest> {
    let (dport, proto) = parse_dport(&args.dport)?;
    let http = (args.http_method.is_some()
        || args.http_path.is_some()
        || args.http_host.is_some()
        || !args.http_headers.is_empty())
    .then(|| -> Result<HttpRequest> {
        Ok(HttpRequest {
            method: args.http_method.clone(),
            path: args.http_path.clone(),
            host: args.http_host.clone(),
            headers: parse_headers(&args.http_headers)?,
        })
    })
    .transpose()?;
    Ok(TraceRequest {
        from: args.from.clone(),
        to: args.to.clone(),
        dport,
        proto,
        http,
        dns_name: args.dns_name.clone(),
    })
}

/// Loads topology and policies into an engine, failing on any policy error.
pub fn engine(
    topology: &std::path::Path,
    policies: &[PathBuf],
    learned: &LearnedNames,
) -> Result<Engine> {
    let topo = Topology::load(topology)?;
    let (set, errors) = load_paths(policies);
    if let Some(e) = errors.first() {
        bail!("{e}");
    }
    for w in &set.warnings {
        eprintln!("warning: {w}");
    }
    Ok(Engine::new(
        topo,
        set.policies,
        learned,
        Allocator::new(),
        ResolveOptions::default(),
    ))
}

/// `policy trace --topology FILE --policies PATH ...`.
pub fn trace_offline(topology: &std::path::Path, args: &TraceArgs) -> Result<ExitCode> {
    let learned = parse_answers(&args.dns_answers)?;
    let engine = engine(topology, &args.policies, &learned)?;
    let result = trace(&engine, &trace_request(args)?)?;
    for line in result.lines {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `identity list --topology FILE`.
pub fn identities_offline(topology: &std::path::Path, policies: &[PathBuf]) -> Result<ExitCode> {
    let engine = engine(topology, policies, &LearnedNames::new())?;
    print!("{}", render_list(engine.alloc.all()));
    Ok(ExitCode::SUCCESS)
}
