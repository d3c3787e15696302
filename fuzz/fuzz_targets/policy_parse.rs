//! Fuzz target: the policy parser (`palisade_policy::load::parse_str`) on arbitrary text, and on
//! success the whole engine build (compile, identities, resolution) over the scenario topology.
//! Bad input must give an error, never a panic, a hang or unbounded memory.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use palisade_policy::cluster::LearnedNames;
use palisade_policy::identity::Allocator;
use palisade_policy::load::parse_str;
use palisade_policy::resolve::ResolveOptions;
use palisade_policy::{Engine, Topology};

/// The scenario cluster, parsed once (it is a fixed input, not fuzzed).
fn topology() -> &'static Topology {
    static TOPO: OnceLock<Topology> = OnceLock::new();
    TOPO.get_or_init(|| {
        Topology::parse(
            include_str!("../../config/topology.yaml"),
            Path::new("topology.yaml"),
        )
        .expect("scenario topology parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(set) = parse_str(&text, Path::new("fuzz.yaml")) else {
        return;
    };
    let engine = Engine::new(
        topology().clone(),
        set.policies,
        &LearnedNames::new(),
        Allocator::new(),
        ResolveOptions::default(),
    );
    let _ = engine.local_policies();
});
