//! Errors of the lab: every failure names the command, file or lab member involved.

use std::path::PathBuf;

/// What can go wrong while building, running or tearing down the lab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// The topology file could not be read or is invalid.
    #[error(transparent)]
    Topology(#[from] palisade_policy::LoadError),
    /// The topology is valid YAML but the lab cannot build it.
    #[error("topology: {0}")]
    Plan(String),
    /// A file of the lab's state could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A helper program (`ip`, `dnsmasq`, …) could not be started or failed.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and standard error.
        message: String,
    },
    /// The state file is unreadable.
    #[error("{path}: {message}")]
    State {
        /// The state or topology file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `up` found a lab already running (or leftovers of one).
    #[error("a lab is already up ({0}); run `palisade lab down` first")]
    AlreadyUp(String),
    /// The command needs a running lab and there is none.
    #[error("no lab is up (no {0})")]
    NotUp(PathBuf),
    /// `exec`/`label` named something that is not in the lab.
    #[error("no pod, node or external host named {0:?} in the lab")]
    UnknownMember(String),
    /// `label` got an argument that is neither `key=value` nor `key-`.
    #[error("label {0:?}: expected `key=value` or `key-`")]
    BadLabel(String),
    /// A server did not start listening in time.
    #[error("server {what} in {netns} did not start: {message}")]
    ServerStart {
        /// Kind and port of the server.
        what: String,
        /// Network namespace it runs in.
        netns: String,
        /// Why (exit status or timeout, with the tail of its log).
        message: String,
    },
    /// The agent exited before it became ready.
    #[error("the agent exited ({status}) before it was ready; tail of {log}:\n{tail}")]
    AgentExited {
        /// Exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// The agent did not write its ready file in time.
    #[error(
        "the agent was not ready after {seconds} s (the lab stays up); tail of {log}:\n{tail}"
    )]
    AgentTimeout {
        /// The timeout.
        seconds: u64,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
    /// A command was called with arguments it cannot use.
    #[error("{0}")]
    Usage(String),
    /// A lab server failed while serving.
    #[error("serve: {0}")]
    Serve(String),
}

impl LabError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> LabError {
        LabError::Io {
            path: path.into(),
            source,
        }
    }
}
