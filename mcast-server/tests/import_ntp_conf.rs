//! `mcast-server import-ntp-conf` run as a user would.

// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mcast-server");

#[test]
fn imports_the_deployments_server_ntp_conf_into_a_file_check_config_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let keys = root.join("tests/data/vectors/ntp.keys");
    let conf_text =
        std::fs::read_to_string(root.join("config/tests/data/ntp-multicast-server.conf"))
            .unwrap()
            .replace("/etc/ntp.keys", &keys.display().to_string());
    let conf = dir.path().join("ntp.conf");
    std::fs::write(&conf, conf_text).unwrap();
    let toml = dir.path().join("server.toml");
    let out = Command::new(BIN)
        .args([
            "import-ntp-conf",
            conf.to_str().unwrap(),
            "--interface",
            "bond0",
            "-o",
        ])
        .arg(&toml)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:5: not translated: server 198.18.0.250",
            conf.display()
        )),
        "{stderr}"
    );
    let check = Command::new(BIN)
        .args(["check-config", "-c"])
        .arg(&toml)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(summary.contains("224.0.1.1"), "{summary}");
    assert!(summary.contains("bond0"), "{summary}");
}
