//! The systemd units in packaging/systemd: hardening and capabilities as
//! specified (read with a small parser of our own), and `systemd-analyze
//! verify` accepting them with no warning (the ExecStart paths pointed at
//! the built binaries, since /usr/bin has none). Nothing is started.
#![cfg(test)]
// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use mcast_lab::bins;

/// section -> key -> every value assigned, in order.
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/systemd")
        .join(name)
}

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {line}", i + 1));
        assert!(!section.is_empty(), "line {}: outside a section", i + 1);
        assert!(
            !value.ends_with('\\'),
            "line {}: no continuations here",
            i + 1
        );
        unit.entry(section.clone())
            .or_default()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    unit
}

fn load(name: &str) -> Unit {
    let path = unit_path(name);
    parse_unit(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
}

fn one<'a>(unit: &'a Unit, section: &str, key: &str) -> &'a str {
    let values = unit
        .get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("[{section}] {key}= is missing"));
    assert_eq!(values.len(), 1, "[{section}] {key}= set more than once");
    &values[0]
}

fn words(unit: &Unit, section: &str, key: &str) -> BTreeSet<String> {
    unit.get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("[{section}] {key}= is missing"))
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// What both units must say.
fn check_common(unit: &Unit, program: &str, config: &str, socket: &str) {
    let s = "Service";
    assert_eq!(
        one(unit, s, "ExecStart"),
        format!("/usr/bin/{program} run -c /etc/mcast-ntp/{config}")
    );
    // `systemctl reload` = SIGHUP = the daemon reads its keys file again.
    assert_eq!(one(unit, s, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one(unit, s, "User"), "mcast-ntp");
    assert_eq!(one(unit, s, "Group"), "mcast-ntp");
    assert_eq!(one(unit, s, "NoNewPrivileges"), "yes");
    assert_eq!(one(unit, s, "ProtectSystem"), "strict");
    assert_eq!(one(unit, s, "PrivateTmp"), "yes");
    assert_eq!(one(unit, s, "ProtectHome"), "yes");
    assert_eq!(one(unit, s, "Restart"), "on-failure");
    // The control socket's folder is the runtime directory (writable under
    // ProtectSystem=strict), and it is the configuration's default.
    let runtime = one(unit, s, "RuntimeDirectory")
        .split_whitespace()
        .next()
        .unwrap_or_default();
    assert_eq!(
        Path::new(socket).parent(),
        Some(Path::new("/run").join(runtime).as_path()),
        "default control socket {socket} is in RuntimeDirectory={runtime}"
    );
    let filter = words(unit, s, "SystemCallFilter");
    assert!(filter.contains("@system-service"), "{filter:?}");
    assert!(
        filter.contains("@clock"),
        "clock_adjtime(2) is needed, read-only by the server: {filter:?}"
    );
    assert_eq!(one(unit, s, "SystemCallArchitectures"), "native");
    let families = words(unit, s, "RestrictAddressFamilies");
    assert_eq!(
        families,
        set(&["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"])
    );
    assert_eq!(one(unit, "Install", "WantedBy"), "multi-user.target");
}

#[test]
fn server_unit_is_hardened_and_keeps_only_net_bind_service() {
    let unit = load("mcast-server.service");
    check_common(
        &unit,
        "mcast-server",
        "server.toml",
        mcast_config::DEFAULT_SERVER_CONTROL_SOCKET,
    );
    let caps = set(&["CAP_NET_BIND_SERVICE"]);
    assert_eq!(words(&unit, "Service", "AmbientCapabilities"), caps);
    assert_eq!(words(&unit, "Service", "CapabilityBoundingSet"), caps);
}

#[test]
fn client_unit_is_hardened_and_keeps_net_bind_service_and_sys_time() {
    let unit = load("mcast-client.service");
    check_common(
        &unit,
        "mcast-client",
        "client.toml",
        mcast_config::DEFAULT_CLIENT_CONTROL_SOCKET,
    );
    // CAP_SYS_TIME is granted; the client itself gives it up in monitor
    // mode (tests/tests/client_privileges.rs).
    let caps = set(&["CAP_NET_BIND_SERVICE", "CAP_SYS_TIME"]);
    assert_eq!(words(&unit, "Service", "AmbientCapabilities"), caps);
    assert_eq!(words(&unit, "Service", "CapabilityBoundingSet"), caps);
    assert_eq!(one(&unit, "Unit", "Before"), "time-sync.target");
    // READY=1 once synchronized (tests/tests/client_readiness.rs), pinged
    // from the tick loop.
    assert_eq!(one(&unit, "Service", "Type"), "notify");
    assert_eq!(one(&unit, "Service", "WatchdogSec"), "30s");
    // [clock-bound]'s default segment folder is writable under
    // ProtectSystem=strict.
    let runtime = words(&unit, "Service", "RuntimeDirectory");
    let segment_dir = std::path::Path::new(mcast_config::DEFAULT_CLOCK_BOUND_PATH)
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .expect("a folder");
    assert!(runtime.contains(segment_dir), "{runtime:?}");
    // The coexistence check reads other users' /proc/PID/comm.
    assert_eq!(one(&unit, "Service", "ProtectProc"), "default");
    // Exit 2 (bad configuration, another time daemon) is not retried.
    assert_eq!(one(&unit, "Service", "RestartPreventExitStatus"), "2");
}

#[test]
fn wait_sync_unit_orders_time_sync_target_after_synchronization() {
    let unit = load("mcast-client-wait-sync.service");
    assert_eq!(one(&unit, "Unit", "Before"), "time-sync.target");
    assert_eq!(one(&unit, "Unit", "Wants"), "time-sync.target");
    assert_eq!(one(&unit, "Unit", "After"), "mcast-client.service");
    assert_eq!(one(&unit, "Service", "Type"), "oneshot");
    assert_eq!(
        one(&unit, "Service", "ExecStart"),
        "/usr/bin/mcast-client wait-sync --timeout 180 --config /etc/mcast-ntp/client.toml"
    );
    assert_eq!(one(&unit, "Service", "User"), "mcast-ntp");
    assert_eq!(one(&unit, "Service", "CapabilityBoundingSet"), "");
    assert_eq!(one(&unit, "Install", "WantedBy"), "multi-user.target");
}

#[test]
fn systemd_analyze_verify_accepts_both_units_without_a_warning() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("systemd-analyze not found: run scripts/install-deps (Debian package systemd)")
        });
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for (program, name) in [
        ("mcast-server", "mcast-server"),
        ("mcast-client", "mcast-client"),
        ("mcast-client", "mcast-client-wait-sync"),
    ] {
        let bin = bins::bin_path(program).expect("binary builds");
        let text = std::fs::read_to_string(unit_path(&format!("{name}.service")))
            .unwrap()
            .replace(&format!("/usr/bin/{program}"), &bin.display().to_string());
        let path = dir.path().join(format!("{name}.service"));
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .args(&units)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "verify failed:\n{stdout}{stderr}");
    // verify exits 0 on settings it ignores; any message is a mistake.
    assert!(
        stderr.trim().is_empty() && stdout.trim().is_empty(),
        "verify complained:\n{stdout}{stderr}"
    );
}

#[test]
fn a_misspelt_setting_is_caught_by_the_verify_check() {
    // The check above must be able to fail: systemd-analyze reports an
    // unknown value on stderr while still exiting 0.
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        panic!("systemd-analyze not found: run scripts/install-deps (Debian package systemd)")
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = bins::bin_path("mcast-server").expect("binary builds");
    let text = std::fs::read_to_string(unit_path("mcast-server.service"))
        .unwrap()
        .replace("/usr/bin/mcast-server", &bin.display().to_string())
        .replace("ProtectSystem=strict", "ProtectSystem=stritc");
    let path = dir.path().join("mcast-server.service");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stritc"),
        "{out:?}"
    );
}
