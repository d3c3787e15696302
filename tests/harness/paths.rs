//! Where things are: the workspace, the `palisade` binary, the scenario configuration.

use std::path::PathBuf;

/// The workspace root (this crate lives in `<workspace>/tests`).
pub fn workspace() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().expect("tests/ has a parent").to_path_buf()
}

/// The `palisade` binary: `$PALISADE_BIN`, else `<workspace>/target/debug/palisade`. Panics when
/// it is missing: the e2e suite tests the binary, it does not build it.
pub fn palisade_bin() -> PathBuf {
    let bin = std::env::var_os("PALISADE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug/palisade"));
    assert!(
        bin.is_file(),
        "{} not found: run cargo build -p palisade first (or set PALISADE_BIN)",
        bin.display()
    );
    bin
}

/// `config/` of the workspace.
pub fn config_dir() -> PathBuf {
    workspace().join("config")
}

/// `config/topology.yaml`: the scenario cluster.
pub fn topology() -> PathBuf {
    config_dir().join("topology.yaml")
}

/// `config/policies/<rel>`.
pub fn scenario_policy(rel: &str) -> PathBuf {
    config_dir().join("policies").join(rel)
}

/// Start of every lab name this suite creates: `$PALISADE_E2E_PREFIX` (default `pe2e`), so two
/// checkouts can run the suite at once without meeting each other's namespaces.
pub fn lab_name(tag: &str) -> String {
    let base = std::env::var("PALISADE_E2E_PREFIX").unwrap_or_else(|_| "pe2e".to_string());
    format!("{base}-{tag}")
}
