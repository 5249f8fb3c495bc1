//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the
//! properties of `mcast_tests::fuzz_checks`, on stable and without
//! cargo-fuzz: every seed, every input the fuzzer found interesting and kept,
//! and every past crash input that was added to the corpus is checked on
//! each `cargo test`. See `docs/FUZZING.md`.

// A test file: its helpers fail the test by panicking, like the #[test]
// functions that clippy.toml already exempts.
#![allow(clippy::panic, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use mcast_tests::fuzz_checks;

/// Every fuzz target; its corpus is `fuzz/corpus/<name>/`, its cargo-fuzz
/// target `fuzz/fuzz_targets/<name>.rs` and its property the function of
/// the same name in `fuzz_checks`, replayed by the `<name>_corpus` test below.
const TARGETS: [&str; 10] = [
    "datagram_round_trip",
    "keys_file",
    "mac_check",
    "server_config",
    "client_config",
    "capture_analysis",
    "ntp_conf_import",
    "client_packet",
    "server_request",
    "signed_packet",
];

fn fuzz_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz"))
}

/// Names of the entries of `dir` (files or folders, as `dirs` says) whose
/// name ends with `suffix`, with the suffix removed.
fn names(dir: &Path, dirs: bool, suffix: &str) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_dir() == dirs)
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            name.strip_suffix(suffix).map(str::to_owned)
        })
        .collect()
}

/// Runs every file of `fuzz/corpus/<target>/` through `check`; fails, naming
/// each failing file, if any input breaks the property, and fails if the
/// folder is empty (so the test cannot pass by checking nothing).
fn replay(target: &str, check: fn(&[u8])) {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{}: the corpus is empty; the replay test would check nothing",
        dir.display()
    );

    // The panic messages of failing inputs still print (default hook); we
    // collect the file names so that one report lists every failure.
    let mut failures = Vec::new();
    for file in &files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failures.push(file.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} corpus inputs break the property (messages above); \
         reproduce one with `scripts/fuzz --reproduce {target} FILE`:\n  {}",
        failures.len(),
        files.len(),
        failures.join("\n  ")
    );
}

#[test]
fn every_target_has_a_corpus_and_a_replay() {
    let listed: BTreeSet<String> = TARGETS.iter().map(|name| (*name).to_owned()).collect();
    let corpora = names(&fuzz_dir().join("corpus"), true, "");
    let targets = names(&fuzz_dir().join("fuzz_targets"), false, ".rs");
    assert_eq!(
        corpora, listed,
        "fuzz/corpus/ folders vs the targets replayed here"
    );
    assert_eq!(
        targets, listed,
        "fuzz/fuzz_targets/*.rs vs the targets replayed here"
    );
}

#[test]
fn datagram_round_trip_corpus() {
    replay("datagram_round_trip", fuzz_checks::datagram_round_trip);
}

#[test]
fn keys_file_corpus() {
    replay("keys_file", fuzz_checks::keys_file);
}

#[test]
fn mac_check_corpus() {
    replay("mac_check", fuzz_checks::mac_check);
}

#[test]
fn server_config_corpus() {
    replay("server_config", fuzz_checks::server_config);
}

#[test]
fn client_config_corpus() {
    replay("client_config", fuzz_checks::client_config);
}

#[test]
fn capture_analysis_corpus() {
    replay("capture_analysis", fuzz_checks::capture_analysis);
}

#[test]
fn ntp_conf_import_corpus() {
    replay("ntp_conf_import", fuzz_checks::ntp_conf_import);
}

#[test]
fn signed_packet_corpus() {
    replay("signed_packet", fuzz_checks::signed_packet);
}

#[test]
fn client_packet_corpus() {
    replay("client_packet", fuzz_checks::client_packet);
}

#[test]
fn server_request_corpus() {
    replay("server_request", fuzz_checks::server_request);
}
