//! The Debian packages' description (`[package.metadata.deb]` in
//! mcast-server/Cargo.toml: mcast-ntp, and its `client` variant
//! mcast-ntp-client), checked without building them: every asset exists,
//! no keys file is ever installed, every man page and completion is shipped
//! by exactly one package and no file by both, the units are installed but
//! neither enabled nor started, and only the client declares the
//! time-daemon relations. `scripts/package` builds the real .debs with
//! cargo-deb and inspects them.
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

/// The two packages' descriptions, as cargo-deb sees them: the base, and
/// the `client` variant's keys over the base's.
fn packages() -> [toml::Table; 2] {
    let base = deb_metadata();
    let mut client = base.clone();
    client.remove("variants");
    let variant = base["variants"]["client"]
        .as_table()
        .expect("[package.metadata.deb.variants.client]");
    for (k, v) in variant {
        client.insert(k.clone(), v.clone());
    }
    [base, client]
}

/// (source, destination) of every asset of `package`.
fn assets_of(package: &toml::Table) -> Vec<(String, String)> {
    package["assets"]
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

/// Every asset of both packages.
fn assets() -> Vec<(String, String)> {
    packages().iter().flat_map(assets_of).collect()
}

/// Files a source pattern (a path, or `dir/prefix*suffix`) names, relative
/// to the crate.
fn expand(source: &str) -> Vec<PathBuf> {
    let path = server_crate().join(source);
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    match name.split_once('*') {
        Some((prefix, suffix)) => {
            let dir = path.parent().unwrap();
            std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    let n = p.file_name().unwrap().to_str().unwrap();
                    n.starts_with(prefix) && n.ends_with(suffix)
                })
                .collect()
        }
        None => vec![path],
    }
}

/// Where `source` lands: `dest`, or `dest` + the file name when `dest` is
/// a directory.
fn installed(source: &Path, dest: &str) -> String {
    if dest.ends_with('/') {
        format!("/{dest}{}", source.file_name().unwrap().to_str().unwrap())
    } else {
        format!("/{dest}")
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
fn every_man_page_and_completion_is_shipped_by_one_package_and_no_file_by_both() {
    let shipped: Vec<Vec<PathBuf>> = packages()
        .iter()
        .map(|p| {
            assets_of(p)
                .iter()
                .filter(|(s, _)| !s.starts_with("target/"))
                .flat_map(|(s, _)| expand(s))
                .map(|p| p.canonicalize().unwrap())
                .collect()
        })
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["man", "completions"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = entry.unwrap().path().canonicalize().unwrap();
            let by = shipped.iter().filter(|s| s.contains(&p)).count();
            assert_eq!(by, 1, "{} is shipped by {by} packages", p.display());
        }
    }
    let [server, client] = packages().map(|p| {
        assets_of(&p)
            .iter()
            .flat_map(|(s, d)| {
                let files = if s.starts_with("target/") {
                    vec![PathBuf::from(s)]
                } else {
                    expand(s)
                };
                files
                    .into_iter()
                    .map(|f| installed(&f, d))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    for f in &server {
        assert!(
            !client.contains(f),
            "{f} is in both packages (dpkg refuses that)"
        );
    }
}

#[test]
fn units_are_installed_but_neither_enabled_nor_started() {
    let names = packages().map(|meta| {
        let units = meta["systemd-units"].as_array().expect("systemd-units");
        let mut names: Vec<String> = units
            .iter()
            .map(|u| {
                assert_eq!(u["enable"].as_bool(), Some(false), "{u}");
                assert_eq!(u["start"].as_bool(), Some(false), "{u}");
                let dir = server_crate().join(u["unit-scripts"].as_str().unwrap());
                let name = u["unit-name"].as_str().unwrap();
                assert!(dir.join(format!("{name}.service")).is_file(), "{name}");
                name.to_owned()
            })
            .collect();
        names.sort_unstable();
        (meta["name"].as_str().unwrap().to_owned(), names)
    });
    assert_eq!(
        names,
        [
            ("mcast-ntp".to_owned(), vec!["mcast-server".to_owned()]),
            (
                "mcast-ntp-client".to_owned(),
                vec![
                    "mcast-client".to_owned(),
                    "mcast-client-wait-sync".to_owned()
                ]
            ),
        ]
    );
}

/// The client disciplines the clock: like chrony, ntp and
/// systemd-timesyncd it provides, conflicts with and replaces
/// `time-daemon`, so only one runs. The server does not: it runs on hosts
/// that chrony or ntpd discipline (`[time-source] kind = "kernel"`).
#[test]
fn only_the_client_package_declares_the_time_daemon_relations() {
    let [server, client] = packages();
    for field in ["provides", "conflicts", "replaces"] {
        assert_eq!(
            client.get(field).and_then(|v| v.as_str()),
            Some("time-daemon"),
            "mcast-ntp-client {field}"
        );
    }
    for field in ["provides", "conflicts", "replaces", "breaks"] {
        assert!(server.get(field).is_none(), "mcast-ntp declares {field}");
    }
    let bins = |p: &toml::Table| -> Vec<String> {
        assets_of(p)
            .into_iter()
            .filter(|(_, d)| d == "usr/bin/")
            .map(|(s, _)| s)
            .collect()
    };
    assert_eq!(bins(&client), ["target/release/mcast-client"]);
    assert!(!bins(&server).iter().any(|b| b.ends_with("mcast-client")));
}
