//! The agent's inputs on disk: topology, policy files and TLS secrets. Each file keeps its last good
//! version: a file that fails to parse is reported with file:line and its previous contents
//! stay in force, so a typo never opens or closes anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use palisade_policy::load::{load_file, policy_files, LoadedPolicy};
use palisade_policy::{Topology, Warning};

use super::secrets::Secrets;

/// Size and modification time: enough to notice an edit.
type Stamp = Option<(u64, SystemTime)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// The inputs with their last good contents.
#[derive(Default)]
pub struct Inputs {
    topology_path: PathBuf,
    policy_paths: Vec<PathBuf>,
    topology: Option<(Stamp, Topology)>,
    files: BTreeMap<PathBuf, (Stamp, Vec<LoadedPolicy>)>,
    /// TLS secrets of `terminatingTLS` / `originatingTLS`.
    pub secrets: Secrets,
    /// Errors of the last reload (file:line: field: message).
    pub errors: Vec<String>,
    /// Warnings of the last reload.
    pub warnings: Vec<Warning>,
}

impl Inputs {
    /// Inputs read from these paths.
    pub fn new(topology: PathBuf, policies: Vec<PathBuf>, secrets: Secrets) -> Self {
        Inputs {
            topology_path: topology,
            policy_paths: policies,
            secrets,
            ..Inputs::default()
        }
    }

    /// Re-reads what changed. Returns true when anything in force changed.
    pub fn reload(&mut self) -> bool {
        self.errors.clear();
        let mut changed = self.secrets.reload();
        let ts = stamp(&self.topology_path);
        if self.topology.as_ref().map(|(s, _)| s) != Some(&ts) {
            match Topology::load(&self.topology_path) {
                Ok(t) => {
                    changed |= self.topology.as_ref().map(|(_, old)| old) != Some(&t);
                    self.topology = Some((ts, t));
                }
                Err(e) => self.errors.push(e.to_string()),
            }
        }
        let mut present = Vec::new();
        for root in &self.policy_paths {
            match policy_files(root) {
                Ok(files) => present.extend(files),
                Err(e) => self.errors.push(e.to_string()),
            }
        }
        let before = self.files.len();
        self.files.retain(|p, _| present.contains(p));
        changed |= self.files.len() != before;
        self.warnings.clear();
        for file in present {
            let s = stamp(&file);
            if self.files.get(&file).map(|(old, _)| old) == Some(&s) {
                continue;
            }
            match load_file(&file) {
                Ok(set) => {
                    self.warnings.extend(set.warnings);
                    self.files.insert(file, (s, set.policies));
                    changed = true;
                }
                Err(e) => {
                    self.errors.push(e.to_string());
                    // Remember the stamp only for a file never loaded well, so an unchanged bad
                    // file is not re-reported every poll; its last good version stays in force.
                    if let Some(entry) = self.files.get_mut(&file) {
                        entry.0 = s;
                    } else {
                        self.files.insert(file, (s, Vec::new()));
                    }
                }
            }
        }
        changed
    }

    /// The topology in force.
    pub fn topology(&self) -> Option<&Topology> {
        self.topology.as_ref().map(|(_, t)| t)
    }

    /// Every policy in force, in file order.
    pub fn policies(&self) -> Vec<LoadedPolicy> {
        self.files
            .values()
            .flat_map(|(_, p)| p.iter().cloned())
            .collect()
    }
}
