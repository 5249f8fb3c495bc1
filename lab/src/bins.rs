//! The workspace's binaries for the lab and for the tests that use it.
//!
//! Cargo builds a package's own binaries for its integration tests
//! (`env!("CARGO_BIN_EXE_<name>")`), but not those of other packages (the
//! tests in `mcast-tests` run this package's tools, and the lab runs
//! `mcast-server` and `mcast-client`):
//! [`bin_path`] runs `cargo build -p <package> --bin <name>` once per test
//! process (so the binary is never stale) into the target directory this
//! test executable came from, and returns the path.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

/// The package that owns each binary this helper knows how to build.
const PACKAGES: [(&str, &str); 9] = [
    ("ntp-attack", "mcast-lab"),
    ("mcast-server", "mcast-server"),
    ("mcast-client", "mcast-client"),
    ("mcast-lab", "mcast-lab"),
    ("ntp-probe", "mcast-lab"),
    ("ntp-load", "mcast-lab"),
    ("ntp-liar", "mcast-lab"),
    ("udp-floor", "mcast-lab"),
    ("lab-bench", "mcast-lab"),
];

/// The path of workspace binary `name` (`mcast-server`, `mcast-client`,
/// and this crate's tools `mcast-lab`, `ntp-probe`, `ntp-load`,
/// `ntp-liar`, `udp-floor` and `lab-bench`, for library code and for
/// other packages' tests, where `CARGO_BIN_EXE_*` is not set),
/// built first (once per process) with the profile of the running test.
///
/// # Errors
/// An unknown name, or the build failing (its output is in the message).
pub fn bin_path(name: &str) -> io::Result<PathBuf> {
    static BUILT: Mutex<Option<HashMap<String, Result<PathBuf, String>>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    let map = built.get_or_insert_with(HashMap::new);
    let result = map
        .entry(name.to_owned())
        .or_insert_with(|| build(name))
        .clone();
    result.map_err(io::Error::other)
}

fn build(name: &str) -> Result<PathBuf, String> {
    let package = PACKAGES
        .iter()
        .find(|(bin, _)| *bin == name)
        .map(|(_, p)| *p)
        .ok_or_else(|| format!("bin_path: no package known for binary {name:?}"))?;
    // A test executable is <target>/<profile dir>/deps/<test>-<hash>; a
    // binary of this crate (mcast-lab, lab-bench) is
    // <target>/<profile dir>/<name>.
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(|p| {
            if p.file_name().is_some_and(|n| n == "deps") {
                p.parent()
            } else {
                Some(p)
            }
        })
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("unexpected test executable path {}", exe.display()))?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = Command::new(&cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["-p", package, "--bin", name, "--profile", &profile])
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .map_err(|e| format!("running {} build: {e}", cargo.to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p {package} --bin {name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = profile_dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "cargo build -p {package} --bin {name} succeeded but {} is missing",
            path.display()
        ))
    }
}
