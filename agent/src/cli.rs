//! Command-line interface: the agent (`run`), offline policy tools, live queries against the
//! running agent, and the lab.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Palisade: Cilium-style network policy for Linux, enforced with eBPF and L7 proxies.
#[derive(Debug, Parser)]
#[command(name = "palisade", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of listings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables.
    #[default]
    Table,
    /// JSON.
    Json,
}

/// Where live commands reach the agent.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The agent's API socket.
    #[arg(long, env = "PALISADE_SOCKET", default_value = palisade_api::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent.
    Run {
        /// Config file.
        #[arg(long, default_value = "/etc/palisade/palisade.yaml")]
        config: PathBuf,
    },
    /// Run the HTTP and DNS proxies as their own process (the agent starts it when needed).
    Proxy {
        /// Config file (the agent's).
        #[arg(long, default_value = "/etc/palisade/palisade.yaml")]
        config: PathBuf,
        /// Replace the running proxy process: take over its listening sockets and policy, then
        /// let it drain and exit (no connection or query is refused meanwhile).
        #[arg(long)]
        upgrade: bool,
    },
    /// Policy tools (offline, or live with --socket).
    Policy {
        /// Subcommand.
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
    /// Security identities.
    Identity {
        /// Subcommand.
        #[command(subcommand)]
        cmd: IdentityCmd,
    },
    /// Endpoints known to the running agent.
    Endpoint {
        /// Subcommand.
        #[command(subcommand)]
        cmd: EndpointCmd,
    },
    /// The running agent's health and counts.
    Status {
        /// API.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// What is in the kernel maps.
    Bpf {
        /// Subcommand.
        #[command(subcommand)]
        cmd: BpfCmd,
    },
    /// DNS names learned for toFQDNs.
    Fqdn {
        /// Subcommand.
        #[command(subcommand)]
        cmd: FqdnCmd,
    },
    /// Stream verdicts (drops, allows, L7, DNS) live.
    Monitor {
        /// API.
        #[command(flatten)]
        api: ApiArgs,
        /// Only this endpoint (`NAMESPACE/POD`).
        #[arg(long)]
        endpoint: Option<String>,
        /// Only this verdict (e.g. `DROPPED`, `FORWARDED`, `DENIED`).
        #[arg(long)]
        verdict: Option<String>,
        /// Only this event type (`drop`, `allow`, `l7`, `dns`).
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// The one-box lab: namespaces as nodes, pods and external hosts.
    Lab {
        /// Subcommand.
        #[command(subcommand)]
        cmd: LabCmd,
    },
}

/// `policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Check policy files; exit 0 when valid.
    Validate {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Explain the verdict for one flow.
    Trace(Box<TraceArgs>),
    /// Policies loaded by the running agent.
    Get {
        /// API.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `policy trace` arguments.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Topology file (offline); without it the running agent is asked.
    #[arg(long)]
    pub topology: Option<PathBuf>,
    /// Policy files or directories (offline).
    #[arg(long = "policies")]
    pub policies: Vec<PathBuf>,
    /// Source: `NAMESPACE/POD`, `node:NAME` or an IP.
    #[arg(long)]
    pub from: String,
    /// Destination, same forms.
    #[arg(long)]
    pub to: String,
    /// `PORT/PROTO` (`80/TCP`, `53/UDP`, `8/ICMP`).
    #[arg(long)]
    pub dport: String,
    /// HTTP method.
    #[arg(long)]
    pub http_method: Option<String>,
    /// HTTP path.
    #[arg(long)]
    pub http_path: Option<String>,
    /// HTTP host.
    #[arg(long)]
    pub http_host: Option<String>,
    /// HTTP header `K: V` (repeatable).
    #[arg(long = "http-header")]
    pub http_headers: Vec<String>,
    /// DNS query name: trace the DNS proxy's decision.
    #[arg(long)]
    pub dns_name: Option<String>,
    /// What the DNS proxy learned: `NAME=IP[,IP...]` (repeatable).
    #[arg(long = "dns-answer")]
    pub dns_answers: Vec<String>,
    /// API (live mode).
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `identity …`
#[derive(Debug, Subcommand)]
pub enum IdentityCmd {
    /// List identities (offline with --topology, else from the running agent).
    List {
        /// Topology file (offline).
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Policy files (offline; CIDR/FQDN identities).
        #[arg(long = "policies")]
        policies: Vec<PathBuf>,
        /// API.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One identity.
    Get {
        /// Numeric identity.
        id: u32,
        /// API.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `endpoint …`
#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// List endpoints.
    List {
        /// API.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One endpoint with its resolved policy.
    Get {
        /// `NAMESPACE/POD`.
        name: String,
        /// API.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `bpf …`
#[derive(Debug, Subcommand)]
pub enum BpfCmd {
    /// Policy map entries.
    Policy {
        /// Subcommand.
        #[command(subcommand)]
        cmd: BpfPolicyCmd,
    },
}

/// `bpf policy …`
#[derive(Debug, Subcommand)]
pub enum BpfPolicyCmd {
    /// Decoded entries of one endpoint.
    Get {
        /// `NAMESPACE/POD`.
        endpoint: String,
        /// API.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `fqdn …`
#[derive(Debug, Subcommand)]
pub enum FqdnCmd {
    /// The FQDN cache.
    Cache {
        /// Subcommand.
        #[command(subcommand)]
        cmd: FqdnCacheCmd,
    },
}

/// `fqdn cache …`
#[derive(Debug, Subcommand)]
pub enum FqdnCacheCmd {
    /// List learned names and addresses.
    List {
        /// API.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Lab state location shared by lab commands.
#[derive(Debug, Clone, Args)]
pub struct LabArgs {
    /// Lab state directory.
    #[arg(long, env = "PALISADE_LAB_DIR", default_value = "/run/palisade-lab")]
    pub state_dir: PathBuf,
    /// Prefix of every namespace the lab makes (tests use their own, so they never meet a
    /// running lab).
    #[arg(long, env = "PALISADE_LAB_PREFIX", default_value = "plab-")]
    pub prefix: String,
}

/// `lab …`
#[derive(Debug, Subcommand)]
pub enum LabCmd {
    /// Build the topology as namespaces, start servers and the agent; returns when ready.
    Up {
        /// Topology file.
        topology: PathBuf,
        /// Policy directory the agent watches.
        #[arg(long)]
        policies: PathBuf,
        /// Build the network without starting the agent.
        #[arg(long)]
        no_agent: bool,
        /// Lab state.
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Stop the agent and remove everything the lab made.
    Down {
        /// Lab state.
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Run a command in a pod (`NAMESPACE/POD`), node or external host.
    Exec {
        /// Where.
        name: String,
        /// The command.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
        /// Lab state.
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Set (`key=value`) or remove (`key-`) a pod label.
    Label {
        /// `NAMESPACE/POD`.
        pod: String,
        /// `key=value` or `key-`.
        label: String,
        /// Lab state.
        #[command(flatten)]
        lab: LabArgs,
    },
    /// What the lab has, with addresses.
    Status {
        /// Lab state.
        #[command(flatten)]
        lab: LabArgs,
    },
    /// A lab server (run by the lab inside pods).
    #[command(hide = true)]
    Serve {
        /// `http`, `whoami` or `dns`.
        kind: String,
        /// Port.
        #[arg(long)]
        port: u16,
        /// Name shown in answers.
        #[arg(long)]
        name: String,
        /// Serve over TLS with this PEM certificate chain (needs `--tls-key`).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// PEM private key of `--tls-cert`.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
    },
}
