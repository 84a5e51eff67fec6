//! Replays every seed in `fuzz/corpus/<target>/` through the same `split_core::fuzzing`
//! functions the cargo-fuzz targets call, on the stable toolchain. Needs the `fuzzing`
//! feature (`cargo test -p split-core --features fuzzing`).

use std::fs;
use std::path::{Path, PathBuf};

type Target = fn(&[u8]);

/// Every fuzz target, by the name of its corpus directory and shim.
const TARGETS: &[(&str, Target)] = &[
    ("config_json", split_core::fuzzing::config_json),
    ("expr", split_core::fuzzing::expr),
    ("select", split_core::fuzzing::select),
    ("rewrite", split_core::fuzzing::rewrite),
    ("admin_token", split_core::fuzzing::admin_token),
    ("gateway_yaml", split_core::fuzzing::gateway_yaml),
    ("standalone", split_core::fuzzing::standalone),
    ("json_scan", split_core::fuzzing::json_scan),
    ("h1_request", split_core::fuzzing::h1_request),
    ("h1_response", split_core::fuzzing::h1_response),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz")
}

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
        .map(|entry| entry.expect("readable corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, f: Target) {
    let files = seeds(target);
    assert!(!files.is_empty(), "corpus for {target} is empty");
    for path in files {
        let data = fs::read(&path).expect("readable seed");
        let outcome = std::panic::catch_unwind(|| f(&data));
        assert!(
            outcome.is_ok(),
            "{target}: seed {} broke an invariant",
            path.display()
        );
    }
}

#[test]
fn config_json_corpus() {
    replay("config_json", split_core::fuzzing::config_json);
}

#[test]
fn expr_corpus() {
    replay("expr", split_core::fuzzing::expr);
}

#[test]
fn select_corpus() {
    replay("select", split_core::fuzzing::select);
}

#[test]
fn rewrite_corpus() {
    replay("rewrite", split_core::fuzzing::rewrite);
}

#[test]
fn admin_token_corpus() {
    replay("admin_token", split_core::fuzzing::admin_token);
}

#[test]
fn gateway_yaml_corpus() {
    replay("gateway_yaml", split_core::fuzzing::gateway_yaml);
}

#[test]
fn standalone_corpus() {
    replay("standalone", split_core::fuzzing::standalone);
}

#[test]
fn json_scan_corpus() {
    replay("json_scan", split_core::fuzzing::json_scan);
}

/// Every shim in `fuzz/fuzz_targets/` has a corpus and a replay here, and vice versa.
#[test]
fn every_target_is_replayed() {
    let mut shims: Vec<String> = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets exists")
        .filter_map(|e| {
            let p = e.expect("readable entry").path();
            if p.extension()? != "rs" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    shims.sort();
    let mut known: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    known.sort();
    assert_eq!(shims, known);
    for (name, _) in TARGETS {
        let shim =
            fs::read(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"))).expect("shim");
        let shim = String::from_utf8_lossy(&shim);
        assert!(
            shim.contains(&format!("split_core::fuzzing::{name}(")),
            "shim {name}.rs does not call split_core::fuzzing::{name}"
        );
    }
}

#[test]
fn h1_request_corpus() {
    replay("h1_request", split_core::fuzzing::h1_request);
}

#[test]
fn h1_response_corpus() {
    replay("h1_response", split_core::fuzzing::h1_response);
}
