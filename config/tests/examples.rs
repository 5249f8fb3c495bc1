//! The example files are the configuration reference: each must validate.
//!
//! Tests marked "needs real keys" pass only once mcast-keys parses keys files
//! (the skeleton returns an empty store).

// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use mcast_config::{ClientConfig, ServerConfig, TimeSourceKind};
use mcast_keys::{KeyId, KeyStore};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn lab_keys() -> KeyStore {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/vectors/ntp.keys");
    KeyStore::load(&path).unwrap_or_else(|e| panic!("lab keys file: {e}"))
}

fn read(name: &str) -> (String, PathBuf) {
    let path = examples().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, path)
}

#[test]
fn production_server_example_parses() {
    let (text, path) = read("server.toml");
    let c = ServerConfig::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.keys, Path::new("/etc/mcast-ntp/ntp.keys"));
    assert_eq!(c.destinations.len(), 1);
    assert_eq!(c.destinations[0].interface, "bond0");
    assert_eq!(
        c.destinations[0].address,
        "224.0.1.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(c.destinations[0].key, KeyId::new(3));
    assert_eq!(c.time_source.kind, TimeSourceKind::Kernel);
}

#[test]
fn production_client_example_parses() {
    let (text, path) = read("client.toml");
    let c = ClientConfig::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.keys, Path::new("/etc/mcast-ntp/ntp.keys"));
    assert_eq!(c.listen[0].interface, "bond0");
    assert_eq!(c.servers.len(), 4);
    assert_eq!(c.servers[3].key, None, "the public-key-only entry");
    assert!(c.servers[3].public_key.is_some());
}

#[test]
fn production_server_example_validates_with_lab_keys() {
    // needs real keys
    let (text, path) = read("server.toml");
    let c = ServerConfig::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    c.validate_with_keys(&lab_keys())
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn production_client_example_validates_with_lab_keys() {
    // needs real keys
    let (text, path) = read("client.toml");
    let c = ClientConfig::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    c.validate_with_keys(&lab_keys())
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn lab_examples_point_at_the_lab_keys_file_from_any_working_directory() {
    let (text, path) = read("lab-loopback-server.toml");
    let s = ServerConfig::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        s.keys.is_file(),
        "{} should be the lab keys file",
        s.keys.display()
    );
    assert_eq!(s.port, 12300);
    assert_eq!(s.destinations[0].interface, "lo");
    let (text, path) = read("lab-loopback-client.toml");
    let c = ClientConfig::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        c.keys.is_file(),
        "{} should be the lab keys file",
        c.keys.display()
    );
    assert_eq!(
        c.port, s.port,
        "lab client and server must agree on the port"
    );
    assert_eq!(c.listen[0].group, s.destinations[0].address);
    assert_eq!(
        c.servers[0].key, s.destinations[0].key,
        "lab client must verify with the lab server's key"
    );
}

#[test]
fn lab_loopback_server_example_loads() {
    // needs real keys
    ServerConfig::load(&examples().join("lab-loopback-server.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn lab_loopback_client_example_loads() {
    // needs real keys
    ClientConfig::load(&examples().join("lab-loopback-client.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
}
