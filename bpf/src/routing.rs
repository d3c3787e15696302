//! Policy routing that delivers redirected packets to the local proxy sockets. Run inside the
//! node's network namespace (never the machine's root namespace).

use std::process::Command;

use crate::DatapathError;

/// Cilium's table for to-proxy traffic.
pub const PROXY_ROUTE_TABLE: u32 = 2004;

fn ip(args: &[&str]) -> Result<std::process::Output, DatapathError> {
    Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| DatapathError::Command {
            command: format!("ip {}", args.join(" ")),
            message: e.to_string(),
        })
}

fn ensure(family: &str, show: &[&str], needle: &str, add: &[&str]) -> Result<(), DatapathError> {
    let mut show_args = vec![family];
    show_args.extend_from_slice(show);
    let out = ip(&show_args)?;
    if String::from_utf8_lossy(&out.stdout).contains(needle) {
        return Ok(());
    }
    let mut add_args = vec![family];
    add_args.extend_from_slice(add);
    let out = ip(&add_args)?;
    if !out.status.success() {
        return Err(DatapathError::Command {
            command: format!("ip {}", add_args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Installs (idempotently) `ip rule add fwmark 0x200/0xf00 lookup 2004 pref 9` and
/// `ip route add local 0.0.0.0/0 dev lo table 2004`, plus the IPv6 equivalents, in the
/// current network namespace.
pub fn install_proxy_routing() -> Result<(), DatapathError> {
    for (family, any) in [("-4", "0.0.0.0/0"), ("-6", "::/0")] {
        let result = ensure(
            family,
            &["rule", "show", "pref", "9"],
            "fwmark 0x200/0xf00 lookup 2004",
            &[
                "rule",
                "add",
                "fwmark",
                "0x200/0xf00",
                "lookup",
                "2004",
                "pref",
                "9",
            ],
        )
        .and_then(|()| {
            ensure(
                family,
                &["route", "show", "table", "2004"],
                "local default dev lo",
                &[
                    "route", "replace", "local", any, "dev", "lo", "table", "2004",
                ],
            )
        });
        match result {
            // IPv6 may be disabled in the namespace: IPv4 redirect still works.
            Err(e) if family == "-6" => {
                tracing::warn!(error = %e, "IPv6 proxy routing not installed")
            }
            other => other?,
        }
    }
    Ok(())
}
