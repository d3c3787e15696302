//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong loading or programming the datapath.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatapathError {
    /// The pin directory is not on a BPF filesystem (mount bpffs at /sys/fs/bpf).
    #[error("{0} is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)")]
    NotBpffs(PathBuf),
    /// Creating or reading the pin directory failed.
    #[error("pin directory {path}: {source}")]
    PinDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Loading an embedded object failed (verifier log included by aya).
    #[error("loading {object}: {source}")]
    Load {
        /// Object name.
        object: &'static str,
        /// aya's error.
        source: Box<aya::EbpfError>,
    },
    /// A program operation failed.
    #[error("program {program}: {source}")]
    Program {
        /// Program name.
        program: &'static str,
        /// aya's error.
        source: Box<aya::programs::ProgramError>,
    },
    /// Pinning or unpinning a link failed.
    #[error("link pin {path}: {message}")]
    Link {
        /// Pin path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// aya's error.
        source: Box<aya::maps::MapError>,
    },
    /// The desired policy would not fit into the policy map; nothing was written.
    #[error("policy map full: {needed} entries needed, capacity {capacity}")]
    PolicyCapacity {
        /// Entries the map would hold after the sync.
        needed: usize,
        /// Capacity of the map.
        capacity: usize,
    },
    /// A policy entry is not valid (e.g. end_port < port).
    #[error("invalid policy entry: {0}")]
    InvalidEntry(String),
    /// Endpoint id out of range.
    #[error("endpoint id {0} out of range 1..{max}", max = crate::abi::MAX_ENDPOINTS)]
    EndpointId(u16),
    /// A command (ip rule/route) failed.
    #[error("command `{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// stderr or spawn error.
        message: String,
    },
    /// Interface not found.
    #[error("interface {0} not found")]
    NoInterface(String),
}

impl DatapathError {
    pub(crate) fn map(map: &'static str, source: aya::maps::MapError) -> Self {
        DatapathError::Map {
            map,
            source: Box::new(source),
        }
    }

    pub(crate) fn program(program: &'static str, source: aya::programs::ProgramError) -> Self {
        DatapathError::Program {
            program,
            source: Box::new(source),
        }
    }
}
