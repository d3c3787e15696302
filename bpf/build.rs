//! Compiles every `c/*.c` into a BPF object in OUT_DIR with Debian's clang; the loader embeds
//! them with `include_bytes_aligned!`. Reruns when any C source or header changes.

use std::{env, fs, path::PathBuf, process::Command};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let c_dir = manifest.join("c");
    println!("cargo:rerun-if-changed={}", c_dir.display());
    for dir in [c_dir.clone(), c_dir.join("lib")] {
        for entry in fs::read_dir(&dir).expect("read c dir") {
            let path = entry.expect("dir entry").path();
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    for entry in fs::read_dir(&c_dir).expect("read c dir") {
        let src = entry.expect("dir entry").path();
        if src.extension().and_then(|e| e.to_str()) != Some("c") {
            continue;
        }
        let stem = src.file_stem().and_then(|s| s.to_str()).expect("file stem");
        let obj = out.join(format!("{stem}.o"));
        let status = Command::new(&clang)
            .args(["-g", "-O2", "-Wall", "-Werror", "-target", "bpfel"])
            .arg("-I/usr/include/x86_64-linux-gnu")
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .unwrap_or_else(|e| panic!("running {clang}: {e} (install clang)"));
        assert!(status.success(), "clang failed on {}", src.display());
    }
}
