//! The Debian package description (`[package.metadata.deb]` in
//! mcast-server/Cargo.toml), checked without building it: every asset
//! exists, no keys file is ever installed, every man page and completion is
//! shipped, and the units are installed but neither enabled nor started.
//! `scripts/package` builds the real .deb with cargo-deb and inspects it.
#![cfg(test)]
// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn server_crate() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mcast-server")
}

fn deb_metadata() -> toml::Table {
    let text = std::fs::read_to_string(server_crate().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

/// (source, destination) of every asset.
fn assets() -> Vec<(String, String)> {
    deb_metadata()["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .map(|a| {
            let a = a.as_array().expect("[source, dest, mode]");
            (
                a[0].as_str().unwrap().to_owned(),
                a[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Files a source pattern (a path, or `dir/*.ext`) names, relative to the
/// workspace.
fn expand(source: &str) -> Vec<PathBuf> {
    let path = server_crate().join(source);
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    match name.strip_prefix('*') {
        Some(suffix) => {
            let dir = path.parent().unwrap();
            std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_str().unwrap().ends_with(suffix))
                .collect()
        }
        None => vec![path],
    }
}

#[test]
fn every_asset_exists_and_no_keys_file_is_installed() {
    let assets = assets();
    assert!(assets.len() > 10);
    for (source, dest) in &assets {
        let lower = dest.to_ascii_lowercase();
        assert!(
            !lower.ends_with(".keys") && !lower.contains("ntp.keys") && !lower.contains("ntpkey"),
            "{source} -> {dest}: keys are generated on site, never packaged"
        );
        if source.starts_with("target/release/") {
            continue; // built by scripts/package
        }
        let files = expand(source);
        assert!(!files.is_empty(), "{source} matches nothing");
        for f in files {
            assert!(f.is_file(), "{source}: {} is missing", f.display());
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            assert!(
                !text.contains("LAB KEYS ONLY") && !f.to_str().unwrap().ends_with(".keys"),
                "{} is a keys file",
                f.display()
            );
        }
    }
    for bin in ["mcast-server", "mcast-client", "mcast-keygen"] {
        assert!(
            assets
                .iter()
                .any(|(s, d)| s == &format!("target/release/{bin}") && d == "usr/bin/"),
            "{bin} is not installed in /usr/bin"
        );
    }
    for (file, dir) in [
        ("prometheus/alerts.yml", "usr/share/mcast-ntp/prometheus/"),
        (
            "prometheus/alerts.test.yml",
            "usr/share/mcast-ntp/prometheus/",
        ),
        ("grafana/mcast-ntp.json", "usr/share/mcast-ntp/grafana/"),
    ] {
        assert!(
            assets
                .iter()
                .any(|(s, d)| s == &format!("../packaging/{file}") && d == dir),
            "{file} is not installed in /{dir}"
        );
    }
    for conf in ["server.toml", "client.toml"] {
        assert!(
            assets
                .iter()
                .any(|(_, d)| d == &format!("etc/mcast-ntp/{conf}")),
            "{conf} is not installed in /etc/mcast-ntp"
        );
    }
}

#[test]
fn every_man_page_and_completion_is_shipped() {
    let shipped: Vec<PathBuf> = assets()
        .iter()
        .filter(|(s, _)| !s.starts_with("target/"))
        .flat_map(|(s, _)| expand(s))
        .map(|p| p.canonicalize().unwrap())
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["man", "completions"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = entry.unwrap().path().canonicalize().unwrap();
            assert!(
                shipped.contains(&p),
                "{} is not in the package",
                p.display()
            );
        }
    }
}

#[test]
fn units_are_installed_but_neither_enabled_nor_started() {
    let meta = deb_metadata();
    let units = meta["systemd-units"].as_array().expect("systemd-units");
    let mut names: Vec<&str> = units
        .iter()
        .map(|u| {
            assert_eq!(u["enable"].as_bool(), Some(false), "{u}");
            assert_eq!(u["start"].as_bool(), Some(false), "{u}");
            let dir = server_crate().join(u["unit-scripts"].as_str().unwrap());
            let name = u["unit-name"].as_str().unwrap();
            assert!(dir.join(format!("{name}.service")).is_file(), "{name}");
            name
        })
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["mcast-client", "mcast-client-wait-sync", "mcast-server"]
    );
    assert_eq!(meta["name"].as_str(), Some("mcast-ntp"));
}
