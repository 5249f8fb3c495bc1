//! `mcast-client import-ntp-conf` run as a user would: TOML on standard
//! output or in a file, untranslated lines on standard error as FILE:LINE,
//! and a result that `check-config` accepts.

// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mcast-client");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The deployment's ntp.conf, its keys line pointing at the lab keys.
fn ntp_conf(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let keys = root.join("tests/data/vectors/ntp.keys");
    let conf = std::fs::read_to_string(root.join("config/tests/data/ntp-multicast-client.conf"))
        .expect("fixture")
        .replace("/etc/ntp.keys", &keys.display().to_string());
    let path = dir.join("ntp.conf");
    std::fs::write(&path, conf).expect("write ntp.conf");
    path
}

#[test]
fn prints_toml_and_lists_untranslated_lines_with_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ntp_conf(dir.path());
    let conf_s = conf.to_str().unwrap();
    let out = run(&["import-ntp-conf", conf_s, "--interface", "bond0"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "written, but the servers cannot be derived: needs editing: {out:?}"
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        stdout.contains("[[listen]]\ngroup = \"224.0.1.1\"\ninterface = \"bond0\""),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "{conf_s}:17: not translated: restrict default kod notrap nomodify nopeer noquery notrust"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{conf_s}:21: not translated: disable monitor")),
        "{stderr}"
    );
    assert!(
        !stdout.contains("not translated"),
        "notes stay off standard output"
    );

    // ntp.conf names no servers, so the result discovers them; its keys
    // list no addresses, so any LAN host could relay a server's packets
    // from spoofed addresses and mint servers: the client refuses it
    // until the servers are named (or the risk is accepted in words).
    assert!(
        stderr.contains("--server ADDRESS=KEY"),
        "the note says how to name the servers: {stderr}"
    );
    let toml = dir.path().join("client.toml");
    std::fs::write(&toml, &stdout).unwrap();
    let check = run(&["check-config", "-c", toml.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2), "{check:?}");
    let why = text(&check.stderr);
    assert!(
        why.contains("client.toml:") && why.contains("discover: key 1") && why.contains("/32"),
        "names the file, the line, the field and the fix: {why}"
    );
    let accepted = stdout.replace(
        "discover = true",
        "discover = true\ndiscover-any-address = true",
    );
    std::fs::write(&toml, accepted).unwrap();
    let check = run(&["check-config", "-c", toml.to_str().unwrap()]);
    assert!(check.status.success(), "check-config refused it: {check:?}");
    assert!(text(&check.stdout).contains("listen[0]: group 224.0.1.1 on bond0"));
}

#[test]
fn writes_a_file_with_servers_and_never_replaces_one_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ntp_conf(dir.path());
    let out_path = dir.path().join("client.toml");
    let args = [
        "import-ntp-conf",
        conf.to_str().unwrap(),
        "--interface",
        "bond0",
        "--server",
        "198.18.0.1=1",
        "--server",
        "198.18.0.2=2",
        "-o",
        out_path.to_str().unwrap(),
    ];
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        written.contains("[[server]]\naddress = \"198.18.0.1\"\nkey = 1"),
        "{written}"
    );
    assert!(!written.contains("discover = true"), "{written}");

    std::fs::write(&out_path, "precious").unwrap();
    let again = run(&args);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert!(text(&again.stderr).contains("--force"), "{again:?}");
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), "precious");

    let mut forced = args.to_vec();
    forced.push("--force");
    assert_eq!(run(&forced).status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), written);

    let bad = run(&["import-ntp-conf", "--server", "198.18.0.1"]);
    assert_eq!(bad.status.code(), Some(2), "clap usage error");
    assert!(text(&bad.stderr).contains("ADDRESS=KEY"), "{bad:?}");
}

#[test]
fn exit_status_says_whether_the_result_needs_editing() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ntp_conf(dir.path());
    // No --interface: written with the placeholder, exit 1.
    let out = run(&["import-ntp-conf", conf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stdout).contains("interface = \"CHANGE-ME\""));
    assert!(
        text(&out.stderr).contains("no --interface given"),
        "{out:?}"
    );
    // Unreadable input: exit 2.
    let out = run(&[
        "import-ntp-conf",
        dir.path().join("absent.conf").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("cannot read"), "{out:?}");
}
